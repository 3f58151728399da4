"""Grading metrics with 95 % intervals by patient, from one `spine-report eval` run.

    python eval/grading_ci.py RUN_DIR [RUN_DIR ...] [--conditions pfirrmann,modic] [--json]
        [--by site | --by field_strength --overview ../shared/data/real/spider/overview.csv]

Reads RUN_DIR/studies.jsonl (one record per study, written by the eval harness) and prints, per
condition: balanced accuracy over every graded truth value with the unassessed ones (level not
found, study failed) counted as wrong, the same over the assessed discs only, quadratic weighted
kappa (assessed), the counts, and a 95 % percentile interval for each from 1,000 resamplings of
whole patients (a study is one patient in the real formats; discs of one patient are not
independent). Several RUN_DIRs are pooled (e.g. two data sets for a combined figure).

Also, with the same patient resampling: ROC AUC of abnormal against normal (the model's probability
of an abnormal value, scoring.is_abnormal: Pfirrmann >= 3, any Modic, any herniation, ...; over
the discs it assessed), and the expected calibration error
over every stated value. `--by` repeats the table per group of patients: `site` (the study's
manufacturer, as the harness records it) or `field_strength` (from SPIDER's overview.csv).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

from reporter.evaluation import metrics as M
from reporter.evaluation.scoring import UNASSESSED, condition_labels

DEFAULT_CONDITIONS = "pfirrmann,modic,herniation,narrowing,bulging,spondylolisthesis"


Record = tuple[str, dict[str, Any]]  # (patient key, one studies.jsonl record)


def records_of(run_dirs: list[Path]) -> list[Record]:
    out = []
    for run in run_dirs:
        for line in (run / "studies.jsonl").read_text().splitlines():
            rec = json.loads(line)
            out.append((f"{run.name}/{rec['case_id']}", rec))
    return out


def rows_of(records: list[Record], cond: str) -> tuple[list[str], list[Any], list[Any]]:
    """(patient, truth, prediction) per graded truth value; prediction UNASSESSED if none."""
    groups, truth, pred = [], [], []
    for pid, rec in records:
        for t, p in rec.get("pairs", {}).get(cond, []):
            groups.append(pid)
            truth.append(t)
            pred.append(p)
        for t in rec.get("unassessed", {}).get(cond, []):
            groups.append(pid)
            truth.append(t)
            pred.append(UNASSESSED)
    return groups, truth, pred


def _auc(t: list[Any], s: list[Any], _labels: Any = None) -> float:
    return M.roc_auc(t, s) if len(set(t)) == 2 else math.nan


def _ece(conf: list[float], ok: list[bool], _labels: Any = None) -> float:
    return M.expected_calibration_error(conf, ok)


def auc_of(records: list[Record], cond: str) -> dict[str, Any]:
    """ROC AUC of P(present) over the assessed discs of a binary condition (n/a otherwise)."""
    groups, truth, score = [], [], []
    for pid, rec in records:
        for t, s in rec.get("scores", {}).get(cond, []):
            groups.append(pid)
            truth.append(bool(t))
            score.append(float(s))
    return {"auc": _auc(truth, score), "auc_ci95": M.bootstrap_by_group(groups, truth, score, _auc)}


def ece_of(records: list[Record]) -> dict[str, Any]:
    """ECE over every value the model stated (confidence, whether it equals the truth)."""
    groups, conf, ok = [], [], []
    for pid, rec in records:
        for c, k in rec.get("calibration") or []:
            groups.append(pid)
            conf.append(float(c))
            ok.append(bool(k))
    return {
        "n_values": len(conf),
        "ece": _ece(conf, ok),
        "ece_ci95": M.bootstrap_by_group(groups, conf, ok, _ece),
    }


def summarise(records: list[Record], cond: str) -> dict[str, Any]:
    groups, truth, pred = rows_of(records, cond)
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
        **auc_of(records, cond),
    }


def field_strengths(overview: Path) -> dict[str, str]:
    """SPIDER case id -> MagneticFieldStrength (e.g. "1.5"), from overview.csv."""
    out = {}
    with overview.open(newline="") as fh:
        for row in csv.DictReader(fh):
            case = row["new_file_name"].split("_")[0]
            out.setdefault(case, row["MagneticFieldStrength"].strip() or "unknown")
    return out


def group_key(rec: dict[str, Any], by: str, strengths: dict[str, str]) -> str:
    if by == "site":
        return str(rec.get("site") or "unknown")
    return f"{strengths.get(str(rec['case_id']), 'unknown')} T"


def table(records: list[Record], conditions: list[str]) -> dict[str, Any]:
    return {
        "conditions": {c: summarise(records, c) for c in conditions},
        "calibration": ece_of(records),
    }


def _print(out: dict[str, Any]) -> None:
    print(
        "| condition | patients | graded | unassessed | BA (unassessed wrong) | BA assessed "
        "| QWK assessed | AUC abnormal |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for c, m in out["conditions"].items():
        print(
            f"| {c} | {m['n_patients']} | {m['n_graded']} | {m['n_unassessed']} | "
            f"{_fmt(m['balanced_accuracy_all'], m['balanced_accuracy_all_ci95'])} | "
            f"{_fmt(m['balanced_accuracy_assessed'], m['balanced_accuracy_assessed_ci95'])} | "
            f"{_fmt(m['qwk_assessed'], m['qwk_assessed_ci95'])} | "
            f"{_fmt(m['auc'], m['auc_ci95'])} |"
        )
    cal = out["calibration"]
    print(f"ECE over {cal['n_values']} stated values: {_fmt(cal['ece'], cal['ece_ci95'])}")


def _fmt(v: float, ci: tuple[float, float]) -> str:
    if v is None or math.isnan(v):
        return "n/a"
    return f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--conditions", default=DEFAULT_CONDITIONS)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--by", choices=("site", "field_strength"), default=None)
    ap.add_argument(
        "--overview", type=Path, default=None, help="SPIDER overview.csv (--by field_strength)"
    )
    args = ap.parse_args(argv)
    if args.by == "field_strength" and (args.overview is None or not args.overview.is_file()):
        print(
            "grading_ci: error: --by field_strength needs --overview overview.csv", file=sys.stderr
        )
        return 64
    for run in args.runs:
        if not (run / "studies.jsonl").is_file():
            print(f"grading_ci: error: {run}/studies.jsonl not found", file=sys.stderr)
            return 66
    records = records_of(args.runs)
    conditions = args.conditions.split(",")
    out: dict[str, Any] = {"all": table(records, conditions)}
    if args.by:
        strengths = field_strengths(args.overview) if args.overview else {}
        keys = sorted({group_key(r, args.by, strengths) for _p, r in records})
        for key in keys:
            sub = [(p, r) for p, r in records if group_key(r, args.by, strengths) == key]
            out[key] = table(sub, conditions)
    if args.json:
        print(json.dumps(M.nan_to_none(out), indent=1))
        return 0
    for key, t in out.items():
        if args.by:
            print(f"### {args.by}: {key}")
        _print(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
