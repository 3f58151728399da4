"""Measurement error of the built-in segmenter: every grounding measurement taken on the
segmenter's label map against the same measurement on the phantom's ground-truth map.

The measurement-noise tolerances of reporter/grounding/rules.json (`measurement_noise.
builtin_segmenter`) are chosen from these percentiles, on VALIDATION seeds only, and must be
re-derived whenever the segmenter's weights change:

    python eval/bench_measure_error.py --seed 100000 --n 30 --site site-a \
        [--weights FOLDER] [--out rows.json]

Prints, per measurement: levels compared, levels the segmenter could not measure, and the
median / 75th / 90th / 95th percentile / max of |segmenter - ground truth|, plus the median
signed error (the bias the rules may subtract).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch


def measure_pairs(seed: int, site: str, model: object) -> list[dict]:
    """Per level, every measurement on the ground-truth map and on `model`'s (a Segmenter)."""
    from reporter.anatomy import segment
    from reporter.grounding import measure
    from reporter.synth import generate_study

    ph = generate_study(seed, site=site)
    seg = segment(ph.study, model=model)
    truth, ours = measure(ph.study, ph.anatomy), measure(ph.study, seg)
    rows = []
    for level in sorted(set(truth) | set(ours)):
        gt = {k: m.value for k, m in truth.get(level, {}).items()}
        sg = {k: m.value for k, m in ours.get(level, {}).items()}
        rows.append({"seed": seed, "level": level, "gt": gt, "seg": sg})
    return rows


def summarize(rows: list[dict]) -> dict[str, dict]:
    errors: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        for key, g in row["gt"].items():
            if g is None or not isinstance(g, (int, float)):
                continue
            s = row["seg"].get(key)
            errors[key].append(np.nan if s is None else float(s) - float(g))
    out = {}
    for key in sorted(errors):
        e = np.asarray(errors[key])
        ok = e[~np.isnan(e)]
        if not ok.size:
            continue
        a = np.abs(ok)
        p50, p75, p90, p95 = np.percentile(a, [50, 75, 90, 95])
        out[key] = {
            "n": int(e.size), "missing": int(np.isnan(e).sum()),
            "median_abs": round(float(p50), 3), "p75_abs": round(float(p75), 3),
            "p90_abs": round(float(p90), 3), "p95_abs": round(float(p95), 3),
            "max_abs": round(float(a.max()), 3), "median_signed": round(float(np.median(ok)), 3),
        }  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=100_000, help="first seed (validation: 100000)")
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--site", default="site-a")
    ap.add_argument("--weights", default=None, help="segmenter folder; default embedded")
    ap.add_argument("--out", type=Path, default=None, help="per-level rows as JSON")
    args = ap.parse_args()
    if args.seed >= 1_000_000:
        raise SystemExit("tolerances are chosen on validation seeds (< 1000000), not evaluation")
    from reporter.anatomy.segmenter import load_segmenter

    torch.set_num_threads(1)
    model = load_segmenter(args.weights)  # once: the weights are read and hashed at load
    rows: list[dict] = []
    t0 = time.monotonic()
    for seed in range(args.seed, args.seed + args.n):
        rows += measure_pairs(seed, args.site, model)
        print(f"seed {seed} done ({time.monotonic() - t0:.0f} s)", flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows) + "\n")
    summary = summarize(rows)
    print(f"{'measurement':42s}    n miss   med   p75   p90   p95    max  bias")
    for key, s in summary.items():
        print(
            f"{key:42s} {s['n']:4d} {s['missing']:4d} {s['median_abs']:5.2f} {s['p75_abs']:5.2f} "
            f"{s['p90_abs']:5.2f} {s['p95_abs']:5.2f} {s['max_abs']:6.2f} {s['median_signed']:+.2f}"
        )


if __name__ == "__main__":
    main()
