"""Grading metrics with 95 % intervals by patient, from one `spine-report eval` run.

    python eval/grading_ci.py RUN_DIR [RUN_DIR ...] [--conditions pfirrmann,modic] [--json]

Reads RUN_DIR/studies.jsonl (one record per study, written by the eval harness) and prints, per
condition: balanced accuracy over every graded truth value with the unassessed ones (level not
found, study failed) counted as wrong, the same over the assessed discs only, quadratic weighted
kappa (assessed), the counts, and a 95 % percentile interval for each from 1,000 resamplings of
whole patients (a study is one patient in the real formats; discs of one patient are not
independent). Several RUN_DIRs are pooled (e.g. two data sets for a combined figure).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from reporter.evaluation import metrics as M
from reporter.evaluation.scoring import UNASSESSED, condition_labels

DEFAULT_CONDITIONS = "pfirrmann,modic,herniation,narrowing,bulging,spondylolisthesis"


def rows_of(run_dirs: list[Path], cond: str) -> tuple[list[str], list[Any], list[Any]]:
    """(patient, truth, prediction) per graded truth value; prediction UNASSESSED if none."""
    groups, truth, pred = [], [], []
    for run in run_dirs:
        for line in (run / "studies.jsonl").read_text().splitlines():
            rec = json.loads(line)
            pid = f"{run.name}/{rec['case_id']}"
            for t, p in rec.get("pairs", {}).get(cond, []):
                groups.append(pid)
                truth.append(t)
                pred.append(p)
            for t in rec.get("unassessed", {}).get(cond, []):
                groups.append(pid)
                truth.append(t)
                pred.append(UNASSESSED)
    return groups, truth, pred


def summarise(run_dirs: list[Path], cond: str) -> dict[str, Any]:
    groups, truth, pred = rows_of(run_dirs, cond)
    labels = [*condition_labels(cond), UNASSESSED]
    kept = [i for i, p in enumerate(pred) if p != UNASSESSED]
    g_a = [groups[i] for i in kept]
    t_a = [truth[i] for i in kept]
    p_a = [pred[i] for i in kept]
    ba, qwk = M.balanced_accuracy, M.quadratic_weighted_kappa
    return {
        "n_patients": len(set(groups)),
        "n_graded": len(truth),
        "n_unassessed": len(truth) - len(kept),
        "balanced_accuracy_all": ba(truth, pred, labels),
        "balanced_accuracy_all_ci95": M.bootstrap_by_group(groups, truth, pred, ba, labels=labels),
        "balanced_accuracy_assessed": ba(t_a, p_a, labels),
        "balanced_accuracy_assessed_ci95": M.bootstrap_by_group(g_a, t_a, p_a, ba, labels=labels),
        "qwk_assessed": qwk(t_a, p_a, labels[:-1]),
        "qwk_assessed_ci95": M.bootstrap_by_group(g_a, t_a, p_a, qwk, labels=labels[:-1]),
    }


def _fmt(v: float, ci: tuple[float, float]) -> str:
    if v is None or math.isnan(v):
        return "n/a"
    return f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--conditions", default=DEFAULT_CONDITIONS)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    for run in args.runs:
        if not (run / "studies.jsonl").is_file():
            print(f"grading_ci: error: {run}/studies.jsonl not found", file=sys.stderr)
            return 66
    out = {c: summarise(args.runs, c) for c in args.conditions.split(",")}
    if args.json:
        print(json.dumps(M.nan_to_none(out), indent=1))
        return 0
    print(
        "| condition | patients | graded | unassessed | BA (unassessed wrong) | BA assessed "
        "| QWK assessed |"
    )
    print("|---|---|---|---|---|---|---|")
    for c, m in out.items():
        print(
            f"| {c} | {m['n_patients']} | {m['n_graded']} | {m['n_unassessed']} | "
            f"{_fmt(m['balanced_accuracy_all'], m['balanced_accuracy_all_ci95'])} | "
            f"{_fmt(m['balanced_accuracy_assessed'], m['balanced_accuracy_assessed_ci95'])} | "
            f"{_fmt(m['qwk_assessed'], m['qwk_assessed_ci95'])} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
