"""Choose the posterior policy's thresholds (reporter/grounding/evidence_policy.json) on
validation phantoms, and print the trade-off of hallucination against retention.

    python -m reporter.training.evidence_policy --dump runs/gv/fit.jsonl runs/gv/heldout.jsonl \
        --out reporter/grounding/evidence_policy.json --plot-dir eval/results/evidence-validation

Input: dumps of eval/grounding_dump.py (validation seeds only: the model's raw statements on the
built-in segmenter's anatomy, its measurements, the band verdicts and the exact truth). Every
statement is weighed with reporter.grounding.evidence (the function the checker calls) under the
current error_models.json.

Rule (stated in the file): over a grid of probability clip x contradiction threshold x assertion
threshold, keep the settings whose hallucinated share of asserted positive statements is <= 0.5 %
and whose false-flag rate (true statements contradicted) is <= 3 %, and take the one with the
highest true-positive retention (ties: the higher assertion threshold, then the lower
contradiction threshold, then the lower clip). The posterior policy becomes the default only when
that retention is >= 90 % (the phantom target); otherwise the band policy stays the default.
Definitions as reporter.evaluation.scoring's (a positive statement is hallucinated when the truth
at its level is normal or the level does not exist).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reporter.contracts.findings import LEVEL_FIELDS, StudyFindings, is_abnormal
from reporter.contracts.verdicts import Measurement, Verdict
from reporter.grounding import error_model
from reporter.grounding.evidence import Weighing, combine, likelihood

CLIPS = (0.99, 0.995, 0.999, 0.9999)
CONTRADICT = (0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3)
ASSERT = tuple(sorted({*np.round(np.linspace(0.0, 1.0, 101), 4), 0.995, 0.998, 0.999}))
MAX_HALLUCINATED, MAX_FALSE_FLAGS, MIN_RETENTION = 0.005, 0.03, 0.90
PRIOR_WITHOUT_PROBABILITY = 0.5  # external findings without a probability: an even prior


@dataclass
class Item:
    """One raw level statement with what the policies need."""

    field: str
    claim: Any
    probability: float
    lik: dict[Any, float] | None  # None: nothing measured
    level_missing: bool  # the band checker found the level does not exist
    band: str  # the band verdict
    positive: bool
    hallucinated: bool | None  # positives only
    correct: bool | None  # None: the truth cannot judge it


def items_of(row: dict[str, Any]) -> list[Item]:
    raw = StudyFindings.model_validate(row["raw_findings"])
    truth = StudyFindings.model_validate(row["truth_findings"])
    verdicts = {(v["level"], v["field"]): Verdict.model_validate(v) for v in row["verdicts"]}
    facts = row["anatomy"]
    source = facts["source"]
    measures = {
        level: {k: Measurement.model_validate(m) for k, m in ms.items()}
        for level, ms in row["measures"][source].items()
    }
    thickness = {role: s["slice_thickness_mm"] for role, s in row["spacing"].items()}
    where = Weighing(source=source, thickness=thickness)
    out = []
    for lf in raw.levels:
        gt = truth.level(lf.level)
        for fld in LEVEL_FIELDS:
            f = getattr(lf, fld)
            if not f.assessed:
                continue
            v = verdicts.get((lf.level, fld))
            if v is None:
                continue
            positive = is_abnormal(fld, f.value)
            gt_value = (
                getattr(gt, fld).value if gt is not None and getattr(gt, fld).assessed else None
            )
            if gt is None:
                hallucinated, correct = (True if positive else None), None
            elif gt_value is None:
                continue
            else:
                hallucinated = (not is_abnormal(fld, gt_value)) if positive else None
                correct = f.value == gt_value
            level_missing = v.rule == "level_exists" and v.verdict == "contradicted"
            # As the checker: evidence only for levels named, existing, in view and measured.
            measured_level = (
                not facts["naming_uncertain"]
                and not level_missing
                and lf.level in facts["levels"]
                and lf.level in measures
            )
            got = likelihood(fld, lf, measures[lf.level], where) if measured_level else None
            p = PRIOR_WITHOUT_PROBABILITY if f.probability is None else float(f.probability)
            out.append(
                Item(
                    fld,
                    f.value,
                    p,
                    got[0] if got else None,
                    level_missing,
                    v.verdict,
                    positive,
                    hallucinated,
                    correct,
                )
            )
    return out


def posteriors(items: list[Item], clip: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(posterior of the claim, posterior abnormal, measured?) per item."""
    post, abn, meas = [], [], []
    for it in items:
        lik = it.lik or {v: 1.0 for v in _values(it.field)}
        _, p, a = combine(it.field, it.claim, lik, it.probability, clip)
        if it.level_missing:
            p, a = 0.0, 0.0
        post.append(p)
        abn.append(a)
        meas.append(it.lik is not None)
    return np.array(post), np.array(abn), np.array(meas)


def _values(field: str) -> tuple[Any, ...]:
    from reporter.contracts.findings import field_values

    return field_values(field)


def rates(
    items: list[Item], contradicted: np.ndarray, asserted_pos: np.ndarray
) -> dict[str, float]:
    pos = np.array([it.positive for it in items])
    hall = np.array([bool(it.hallucinated) for it in items])
    corr = np.array([it.correct is True for it in items])
    n_true_raw = int((pos & ~hall).sum())
    n_asserted = int(asserted_pos.sum())
    n_hall = int((asserted_pos & hall).sum())
    return {
        "n_positive_raw": int(pos.sum()),
        "n_hallucinated_raw": int((pos & hall).sum()),
        "n_asserted": n_asserted,
        "n_hallucinated_asserted": n_hall,
        "hallucinated_after": n_hall / n_asserted if n_asserted else 0.0,
        "true_positive_retention": int((asserted_pos & ~hall).sum()) / n_true_raw
        if n_true_raw
        else float("nan"),
        "false_flag_rate": float((contradicted & corr).sum() / corr.sum()) if corr.sum() else 0.0,
        "flag_recall": float((contradicted & pos & hall).sum() / (pos & hall).sum())
        if (pos & hall).sum()
        else float("nan"),
    }


def band_policies(items: list[Item]) -> dict[str, dict[str, float]]:
    pos = np.array([it.positive for it in items])
    contradicted = np.array([it.band == "contradicted" for it in items])
    supported = np.array([it.band == "supported" for it in items])
    return {
        "bands": rates(items, contradicted, pos & supported),
        "contradicted-only": rates(items, contradicted, pos & ~contradicted),
    }


def evaluate(
    items: list[Item], clip: float, t_c: float, t_a: float, cache: dict[float, Any]
) -> dict[str, float]:
    if clip not in cache:
        cache[clip] = posteriors(items, clip)
    post, abn, meas = cache[clip]
    missing = np.array([it.level_missing for it in items])
    pos = np.array([it.positive for it in items])
    contradicted = missing | (meas & (post < t_c))
    return rates(items, contradicted, pos & ~contradicted & (abn >= t_a))


def choose(items: list[Item]) -> tuple[tuple[float, float, float], dict[str, float]]:
    cache: dict[float, Any] = {}
    best: tuple[tuple[float, ...], tuple[float, float, float], dict[str, float]] | None = None
    for clip in CLIPS:
        for t_c in CONTRADICT:
            for t_a in ASSERT:
                r = evaluate(items, clip, t_c, t_a, cache)
                if (
                    r["hallucinated_after"] > MAX_HALLUCINATED
                    or r["false_flag_rate"] > MAX_FALSE_FLAGS
                ):
                    continue
                key = (r["true_positive_retention"], t_a, -t_c, -clip)
                if best is None or key > best[0]:
                    best = (key, (clip, t_c, t_a), r)
    assert best is not None  # asserting nothing is always feasible
    return best[1], best[2]


def curve(items: list[Item], clip: float, t_c: float) -> list[dict[str, float]]:
    cache: dict[float, Any] = {}
    return [{"assert_at": float(t_a), **evaluate(items, clip, t_c, t_a, cache)} for t_a in ASSERT]


def plot_curve(
    path: Path,
    points: list[dict[str, float]],
    chosen: dict[str, float],
    bands: dict[str, dict[str, float]],
    title: str,
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ax.plot(
        [p["true_positive_retention"] for p in points],
        [100 * p["hallucinated_after"] for p in points],
        "-",
        label="posterior policy",
    )
    ax.plot(
        chosen["true_positive_retention"],
        100 * chosen["hallucinated_after"],
        "o",
        label="chosen threshold",
    )
    for name, r in bands.items():
        ax.plot(r["true_positive_retention"], 100 * r["hallucinated_after"], "s", label=name)
    ax.axhline(100 * MAX_HALLUCINATED, ls=":", c="grey")
    ax.axvline(MIN_RETENTION, ls=":", c="grey")
    ax.set_xlabel("true-positive retention")
    ax.set_ylabel("hallucinated share of asserted positives (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fmt(r: dict[str, float]) -> str:
    return (
        f"hallucinated {100 * r['hallucinated_after']:.2f}% ({r['n_hallucinated_asserted']}"
        f" of {r['n_asserted']}), retention {100 * r['true_positive_retention']:.1f}%, "
        f"false flags {100 * r['false_flag_rate']:.2f}%, flag recall {r['flag_recall']:.3f}"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dump", type=Path, nargs="+", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--plot-dir", type=Path, required=True)
    args = ap.parse_args(argv)
    rows = [json.loads(line) for p in args.dump for line in p.read_text().splitlines() if line]
    if any(r["seed"] >= 1_000_000 for r in rows):
        raise SystemExit("thresholds are chosen on validation seeds (< 1000000) only")
    items = [it for row in rows for it in items_of(row)]
    (clip, t_c, t_a), best = choose(items)
    bands = band_policies(items)
    points = curve(items, clip, t_c)
    met = best["true_positive_retention"] >= MIN_RETENTION
    print(
        f"validation: {len(rows)} studies, {len(items)} statements, "
        f"{bands['bands']['n_positive_raw']} positive ({bands['bands']['n_hallucinated_raw']} "
        "hallucinated)"
    )
    for name, r in bands.items():
        print(f"  {name:18s} {_fmt(r)}")
    print(f"  {'posterior':18s} {_fmt(best)}")
    print(
        f"chosen: probability clip {clip}, contradict below {t_c}, assert at {t_a}; "
        f"targets (<= 0.5% / >= 90% / <= 3%) {'met' if met else 'NOT met'}"
    )
    print("\ntrade-off over the assertion threshold (clip and contradiction threshold as chosen)")
    print(f"{'assert_at':>9s} {'halluc%':>8s} {'retention%':>10s} {'asserted':>8s} {'ff%':>6s}")
    for p in points[::5] + [p for p in points if p["assert_at"] > 0.99]:
        print(
            f"{p['assert_at']:9.3f} {100 * p['hallucinated_after']:8.2f} "
            f"{100 * p['true_positive_retention']:10.1f} {p['n_asserted']:8d} "
            f"{100 * p['false_flag_rate']:6.2f}"
        )
    seeds = "; ".join(sorted({f"{r['site']} {r['seed']}" for r in rows})[:3]) + " ..."
    span = (
        f"{len(rows)} studies, seeds {min(r['seed'] for r in rows)}-{max(r['seed'] for r in rows)}"
    )
    command = (
        f"python -m reporter.training.evidence_policy --dump "
        f"{' '.join(map(str, args.dump))} --out {args.out} --plot-dir {args.plot_dir}"
    )
    doc = {
        "version": "1",
        "note": "Thresholds of the posterior report policy (reporter/grounding/policy.py), chosen "
        "on validation phantoms only; see the rule. prior_without_probability: the prior of a "
        "statement that carries no probability (external findings), an even prior by choice.",
        "rule": "Over probability clip {0.99, 0.995, 0.999, 0.9999} x contradict_below {0, "
        "0.001 .. 0.3} x assert_at {0, 0.01 .. 1}: among settings with hallucinated share of "
        "asserted positives <= 0.5% and false-flag rate <= 3% on validation, the highest "
        "true-positive retention (ties: higher assert_at, lower contradict_below, lower clip). "
        "default_policy is 'posterior' only when that retention is >= 90%.",
        "derived_with": command,
        "seeds": f"{span} ({seeds})",
        "error_models_sha256": error_model.sha256(),
        "contradict_below": t_c,
        "assert_at": float(t_a),
        "probability_clip": clip,
        "prior_without_probability": PRIOR_WITHOUT_PROBABILITY,
        "targets_met_on_validation": met,
        "default_policy": "posterior" if met else "bands",
        "validation": {"n_studies": len(rows), **best},
        "validation_by_policy": bands,
    }
    from reporter.grounding.policy import PolicyFile

    PolicyFile.model_validate(doc)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    args.plot_dir.mkdir(parents=True, exist_ok=True)
    (args.plot_dir / "tradeoff_validation.json").write_text(
        json.dumps({"clip": clip, "contradict_below": t_c, "points": points}, indent=1) + "\n"
    )
    png = plot_curve(
        args.plot_dir / "tradeoff_validation.png",
        points,
        best,
        bands,
        f"validation phantoms ({len(rows)} studies)",
    )
    print(f"\nwrote {args.out}, {png}")


if __name__ == "__main__":
    main()
