"""Per-study material for fitting the grounding checker's error models and choosing the report
policy's thresholds, collected once on VALIDATION phantoms and reused offline.

One JSON line per study: the phantom's exact truth (the generator's measured values behind every
grade, reporter/synth/groundtruth.py, and its findings), the grounding measurements taken on the
built-in segmenter's label map (the pipeline's own anatomy) and on the ground-truth label map, the
model's raw findings with their probabilities, the band verdicts, the anatomy's facts and the
series spacings. Everything the fitting scripts (reporter.training.error_models,
reporter.training.evidence_policy) need, without running the pipeline again.

    python eval/grounding_dump.py --seed 300000 --per-site 20 --out runs/gv/fit.jsonl

Seeds must not overlap any benchmark used for reporting (phantom-v1 and every evaluation seed are
>= 1000000): the default ranges 300000.. lie in reporter/synth/seeds.py's unassigned range, used by
nothing else.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from reporter.synth.seeds import EVALUATION_START

SITES = ("site-a", "site-b", "site-c")


def spacing_of(study: Any) -> dict[str, dict[str, float]]:
    """Slice thickness and in-plane spacing (mm) of each series role, first series of each."""
    out: dict[str, dict[str, float]] = {}
    for s in study.series:
        if s.role in out:
            continue
        sp = [float(x) for x in s.spacing]
        out[s.role] = {
            "slice_thickness_mm": float(s.slice_thickness or sp[-1]),
            "pixel_mm": float(min(sp[:2]) if len(sp) >= 2 else sp[0]),
        }
    return out


def _measures(per_level: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        level: {k: m.model_dump(mode="json") for k, m in ms.items()}
        for level, ms in per_level.items()
    }


def collect(seed: int, site: str, overrides: dict[str, Any], tags: list[str], model: Any) -> dict:
    from reporter.grounding.check import existing_levels
    from reporter.grounding.measure import measure
    from reporter.pipeline import report_study, study_anatomy
    from reporter.synth import generate_study

    ph = generate_study(seed, site=site, **overrides)
    anatomy = study_anatomy(ph.study)
    # The band verdicts, whatever the default policy: the tuner weighs statements itself.
    report = report_study(ph.study, model=model, anatomy=anatomy, policy="bands")
    seg_measures: dict[str, dict[str, Any]] = {}
    for m in report.measurements:
        if m.level is not None:
            seg_measures.setdefault(m.level, {})[m.name] = m.model_dump(mode="json")
    exists = existing_levels(anatomy)
    return {
        "case_id": f"{site}-{seed}",
        "seed": seed,
        "site": site,
        "tags": tags,
        "spacing": spacing_of(ph.study),
        "truth_values": {k: v for k, v in ph.meta["levels"].items()},
        "truth_findings": ph.findings.model_dump(mode="json", exclude_none=True),
        "raw_findings": report.raw_findings.model_dump(mode="json", exclude_none=True),
        "verdicts": [v.model_dump(mode="json") for v in report.verdicts],
        "anatomy": {
            "source": anatomy.source,
            "levels": list(anatomy.levels),
            "existing_levels": sorted(exists) if exists is not None else None,
            "lumbar_vertebrae": anatomy.lumbar_vertebrae,
            "naming_uncertain": anatomy.naming_uncertain,
        },
        "measures": {
            "builtin_segmenter": seg_measures,
            "ground_truth": _measures(measure(ph.study, ph.anatomy)),
        },
    }


def cases(first_seed: int, per_site: int) -> list[tuple[int, str, dict[str, Any], list[str]]]:
    """`per_site` studies per site with phantom-v1's mix of variants (reporter.evaluation's
    SiteBlock rule), sites 10000 seeds apart from `first_seed`."""
    from reporter.evaluation.benchmark import PHANTOM_V1, SiteBlock

    variants, standard = PHANTOM_V1.blocks[0].variants, PHANTOM_V1.blocks[0].standard
    out = []
    for k, site in enumerate(SITES):
        block = SiteBlock(site, first_seed + 10_000 * k, per_site, variants, standard)
        out += [(c.seed, c.site, c.overrides_dict(), list(c.tags)) for c in block.cases()]
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=300_000)
    ap.add_argument("--per-site", type=int, default=20)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.seed + 30_000 > EVALUATION_START:
        raise SystemExit("validation material must use seeds below the evaluation range")
    import torch

    from reporter.pipeline import get_model

    torch.set_num_threads(1)
    model = get_model()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if args.out.exists():  # resumable
        done = {json.loads(line)["seed"] for line in args.out.read_text().splitlines() if line}
    t0 = time.monotonic()
    with args.out.open("a") as fh:
        for seed, site, overrides, tags in cases(args.seed, args.per_site):
            if seed in done:
                continue
            row = collect(seed, site, overrides, tags, model)
            fh.write(json.dumps(row, default=str) + "\n")
            fh.flush()
            print(f"{site}-{seed} done ({time.monotonic() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
