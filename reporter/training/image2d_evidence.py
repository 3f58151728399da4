"""Fit the single-image grade models (reporter/grounding/image2d_evidence.json) on real SPIDER
training patients and choose their thresholds on validation patients.

    python -m reporter.training.image2d_evidence collect --data ../shared/data/real/spider \
        --split train --out runs/i2d/train.jsonl
    python -m reporter.training.image2d_evidence collect --data ../shared/data/real/spider \
        --split val --out runs/i2d/val.jsonl
    python -m reporter.training.image2d_evidence fit --fit runs/i2d/train.jsonl \
        --choose runs/i2d/val.jsonl --out reporter/grounding/image2d_evidence.json

`collect` runs what a user's study goes through (the 2-D ingest, DiscNet + SegNet2D anatomy,
the default VLM with the fields a single image cannot show removed, the checker's measurements)
on every patient of one split and writes, per graded disc, the radiologists' grades, the model's
statements and the measurements. Test patients are refused: they are for the final check only.

`fit` (module constants are the stated choices):
1. Models, on the fitting (training) patients only: for every condition of CONDITIONS, each
   measurement's distribution among the discs of each grade class, a Student-t by maximum
   likelihood over reporter.training.error_models.DF_GRID (scale at least SCALE_FLOOR); a class
   with fewer than MIN_CLASS discs gets no model (its values take the pooled density). A
   measurement listed in `per_level` is divided by its level's median among normal discs of the
   fitting patients. Where a condition names candidate measurements, the one with the highest
   AUC for "abnormal" on the fitting patients (after that division) is kept (recorded under
   validation.selection_auc_on_fitting).
2. Thresholds, on the choosing (validation) patients only, per condition, over the model's
   statements there and the radiologists' grades:
   - bands.contradict_ratio: the largest of RATIO_GRID whose false-flag rate (correct
     statements contradicted / correct statements) is <= FALSE_FLAG_BUDGET (the issue's 3 % less
     a one-point margin);
   - bands.exclude_ratio: the largest of RATIO_GRID whose band-asserted positive statements
     (supported) hold a hallucinated share <= HALLUCINATION_BUDGET counted with one hallucinated
     statement more than observed ((hallucinated + 1) / (asserted + 1): a few asserted
     statements without a hallucination prove little), 0 (none asserted) when none does;
   - posterior.contradict_below: the largest of POSTERIOR_GRID whose false-flag rate is <=
     FALSE_FLAG_BUDGET; posterior.assert_at: the smallest of ASSERT_GRID whose asserted
     positives (not contradicted, posterior of an abnormal value >= it) hold a hallucinated
     share <= HALLUCINATION_BUDGET counted the same way, "never" when none does;
     posterior.assert_at_unmeasured: the same over the condition's statements the image could not
     measure, on the model's probability alone.
   HALLUCINATION_BUDGET is 5 %, not the phantoms' 0.5 %: validated on a few hundred real discs
   per condition, 0.5 % with the added statement would need 200 asserted positives without one
   hallucination, and no single-image measurement separates grades that well (AUCs of 0.6-0.8
   on the fitting patients); the evaluation reports what each policy asserts either way.
   The numbers each choice gives on the choosing patients are written to validation.chosen.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import mannwhitneyu

from reporter.contracts.findings import LEVEL_FIELDS, NORMAL_VALUES, field_values, is_abnormal
from reporter.contracts.verdicts import Measurement
from reporter.grounding.evidence import combine, prior_only
from reporter.grounding.image2d_evidence import Image2dEvidenceFile, class_likelihoods
from reporter.training.error_models import DF_GRID, fit_t

# condition -> fields, measurements (candidates: one is kept), grade classes (the normal class
# first), measurements read as absolute values, measurements divided by their level's reference.
# Bulging and herniation use the signed reach beyond the wall line, not the volumes'
# posterior_extension_mm: that one is clipped at 0 and reads exactly 0 on most discs, which no
# Student-t describes (on the fitting patients both classes got the same density), while its AUC
# was no better (0.66 / 0.70 against 0.65 / 0.69).
CONDITIONS: dict[str, dict[str, Any]] = {
    "disc_narrowing": {
        "fields": ["disc_narrowing"],
        "candidates": ["disc_body_height_ratio", "disc_height_index"],
        "per_level": ["disc_body_height_ratio", "disc_height_index"],
        "abnormal_when": "low",
        "classes": [("none", ["none"]), ("narrowed", ["mild", "moderate", "severe"])],
    },
    "disc_bulging": {
        "fields": ["disc_bulging"],
        "measurements": ["wall_line_extension_mm"],
        "classes": [("no", [False]), ("yes", [True])],
    },
    "herniation": {
        "fields": ["herniation"],
        "measurements": ["wall_line_extension_mm"],
        "classes": [
            ("none", ["none"]),
            ("bulge", ["bulge"]),
            ("herniated", ["protrusion", "extrusion"]),
        ],
    },
    "spondylolisthesis": {
        "fields": ["spondylolisthesis"],
        "measurements": ["slip_mm"],
        "absolute": ["slip_mm"],
        "classes": [("none", [0]), ("slipped", [1, 2, 3, 4])],
    },
    "modic": {
        "fields": ["modic_upper", "modic_lower"],
        "measurements": ["endplate_band_t1_{side}", "endplate_band_t2_{side}"],
        "classes": [("none", [0]), ("type1", [1]), ("type2", [2]), ("type3", [3])],
    },
    "pfirrmann": {
        "fields": ["pfirrmann"],
        "measurements": ["disc_csf_t2_ratio"],
        "classes": [(str(g), [g]) for g in range(1, 6)],
    },
}  # fmt: skip
MIN_CLASS = 15
SCALE_FLOOR = {"ratio": 0.01, "mm": 0.2}
FALSE_FLAG_BUDGET = 0.02
HALLUCINATION_BUDGET = 0.05
RATIO_GRID = (0.0, 1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
POSTERIOR_GRID = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
ASSERT_GRID = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999)
PROBABILITY_CLIP = 0.9999  # as reporter/grounding/evidence_policy.json


# --- collect ---------------------------------------------------------------------------------
def collect(data: Path, split: str, out: Path, limit: int | None = None) -> int:
    """Write one row per graded disc of `split`'s patients; returns the number of rows."""
    from reporter.datasets import open_dataset
    from reporter.grounding.measure import measure
    from reporter.ingest.assessability import unassessable_fields
    from reporter.pipeline import get_model, study_anatomy

    if split == "test":
        raise SystemExit("test patients are for the final check only: collect train or val")
    model = get_model(None)
    cases = [c for c in open_dataset(data, "spider") if c.split == split][:limit]
    n = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for i, case in enumerate(cases):
            try:
                study = case.study
                anatomy = study_anatomy(study)
                raw = model.predict(study, anatomy)
                measures = measure(study, anatomy)
            except Exception as exc:  # one unreadable case is skipped, never the run
                print(f"{case.case_id}: skipped ({type(exc).__name__}: {exc})", file=sys.stderr)
                continue
            cannot = unassessable_fields(study)
            truth = case.findings
            for gt in truth.levels if truth is not None else []:
                lf = raw.level(gt.level)
                row: dict[str, Any] = {"case": case.case_id, "level": gt.level, "truth": {},
                                       "claims": {}, "measures": {}}  # fmt: skip
                for f in LEVEL_FIELDS:
                    g = getattr(gt, f)
                    if g.assessed:
                        row["truth"][f] = g.value
                    p = getattr(lf, f) if lf is not None else None
                    if p is not None and p.assessed and f not in cannot:
                        row["claims"][f] = [p.value, p.probability]
                row["measures"] = {
                    k: [m.value, m.unit] for k, m in measures.get(gt.level, {}).items()
                }
                fh.write(json.dumps(row) + "\n")
                n += 1
            print(f"[{i + 1}/{len(cases)}] {case.case_id}", file=sys.stderr)
    return n


def read_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            r["m"] = {
                k: Measurement(name=k, value=v, unit=u or "", level=r["level"])
                for k, (v, u) in r["measures"].items()
            }
            rows.append(r)
    return rows


# --- fit -------------------------------------------------------------------------------------
def _auc(y_true: list[bool], scores: list[float]) -> float:
    """Area under the ROC curve as the Mann-Whitney U over n_pos * n_neg (ties count 1/2), the
    same figure as reporter.evaluation.metrics.roc_auc: training may not import evaluation, which
    imports training's shard reader."""
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(scores, dtype=float)
    if y.all() or not y.any():
        return math.nan
    return float(mannwhitneyu(s[y], s[~y]).statistic / (y.sum() * (~y).sum()))


def _side(field: str) -> str:
    return next((s for s in ("upper", "lower") if field.endswith(s)), "")


def _samples(
    rows: list[dict[str, Any]], spec: dict[str, Any], template: str
) -> list[tuple[Any, float, str, str]]:
    """(truth value, measurement, level, field) over the rows and the condition's fields."""
    out = []
    for r in rows:
        for f in spec["fields"]:
            if f not in r["truth"]:
                continue
            m = r["m"].get(template.format(side=_side(f)))
            if m is None or m.value is None or not math.isfinite(m.value):
                continue
            x = abs(m.value) if template in spec.get("absolute", []) else m.value
            out.append((r["truth"][f], float(x), r["level"], f))
    return out


def fit_condition(rows: list[dict[str, Any]], name: str, spec: dict[str, Any]) -> dict[str, Any]:
    normal_values = spec["classes"][0][1]
    candidates = list(spec.get("candidates", spec.get("measurements", [])))
    level_reference: dict[str, dict[str, float]] = {}
    for t in spec.get("per_level", []):
        by_level: dict[str, list[float]] = defaultdict(list)
        for truth, x, level, _ in _samples(rows, spec, t):
            if truth in normal_values:
                by_level[level].append(x)
        ref = {lv: round(float(np.median(v)), 4) for lv, v in by_level.items() if len(v) >= 5}
        ref["default"] = round(float(np.median([x for v in by_level.values() for x in v])), 4)
        level_reference[t] = ref

    def values_of(t: str) -> list[tuple[Any, float]]:
        out = []
        for truth, x, level, _ in _samples(rows, spec, t):
            if t in level_reference:
                x /= level_reference[t].get(level, level_reference[t]["default"])
            out.append((truth, x))
        return out

    selection: dict[str, float] = {}
    measurements = list(spec.get("measurements", []))
    if "candidates" in spec:
        field = spec["fields"][0]
        sign = -1.0 if spec.get("abnormal_when") == "low" else 1.0
        for cand in candidates:
            y = [is_abnormal(field, truth) for truth, _ in values_of(cand)]
            selection[cand] = round(_auc(y, [sign * x for _, x in values_of(cand)]), 4)
        measurements = [max(candidates, key=lambda c: selection[c])]
    level_reference = {t: r for t, r in level_reference.items() if t in measurements}

    floor = {t: SCALE_FLOOR["mm" if t.endswith("_mm") else "ratio"] for t in measurements}
    classes, pooled = [], {}
    for t in measurements:
        xs = np.array([x for _, x in values_of(t)])
        loc, scale, df = fit_t(xs, floor[t])
        pooled[t] = {"loc": round(loc, 5), "scale": round(scale, 5), "df": df, "n": int(xs.size)}
    for cname, vals in spec["classes"]:
        dens = {}
        for t in measurements:
            xs = np.array([x for truth, x in values_of(t) if truth in vals])
            if xs.size < MIN_CLASS:
                break
            loc, scale, df = fit_t(xs, floor[t])
            dens[t] = {"loc": round(loc, 5), "scale": round(scale, 5), "df": df, "n": int(xs.size)}
        else:
            classes.append({"name": cname, "values": vals, "densities": dens})
    return {
        "fields": spec["fields"],
        "measurements": measurements,
        "absolute": [t for t in spec.get("absolute", []) if t in measurements],
        "level_reference": level_reference,
        "classes": classes,
        "pooled": pooled,
        "bands": {"contradict_ratio": 0.0, "exclude_ratio": 0.0},
        "posterior": {
            "assert_at": "never",
            "contradict_below": 0.0,
            "assert_at_unmeasured": "never",
        },
        "_selection": selection,
    }


# --- choose ----------------------------------------------------------------------------------
def statements(doc: Image2dEvidenceFile, rows: list[dict[str, Any]]) -> dict[str, list[dict]]:
    """Per condition, every statement of the model that the radiologists graded: whether it is
    correct, positive, hallucinated, and the likelihood ratios the thresholds act on."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        for cname, cond in doc.conditions.items():
            for f in cond.fields:
                if f not in r["claims"] or f not in r["truth"]:
                    continue
                claim, p = r["claims"][f]
                truth = r["truth"][f]
                st: dict[str, Any] = {
                    "correct": claim == truth,
                    "positive": is_abnormal(f, claim),
                    "hallucinated": is_abnormal(f, claim) and not is_abnormal(f, truth),
                    "measured": False,
                    # the model's probability alone (a statement the image could not measure)
                    "posterior_abnormal": prior_only(
                        f, claim, 0.5 if p is None else p, PROBABILITY_CLIP
                    )[1],
                }
                got = class_likelihoods(cond, f, r["m"])
                if got is not None:
                    logs, _ = got
                    lik = {}
                    for v in field_values(f):
                        cls = next((c.name for c in cond.classes if v in c.values), "*")
                        lik[v] = logs[cls]
                    top = max(lik.values())
                    ratio = {v: math.exp(lg - top) for v, lg in lik.items()}
                    normal = NORMAL_VALUES[f]
                    others = [v for v in ratio if (v in normal) != (claim in normal)]
                    total = sum(ratio.values())
                    _, post, abn = combine(
                        f,
                        claim,
                        {v: x / total for v, x in ratio.items()},
                        0.5 if p is None else p,
                        PROBABILITY_CLIP,
                    )
                    st.update(
                        measured=True,
                        claim_ratio=ratio[claim],
                        others_ratio=max(ratio[v] for v in others) if others else 0.0,
                        posterior=post,
                        posterior_abnormal=abn,
                    )
                out[cname].append(st)
    return out


def _rates(sts: list[dict[str, Any]], contradicted: Any, asserted: Any) -> dict[str, float]:
    correct = [s for s in sts if s["correct"]]
    halls = [s for s in sts if s["hallucinated"]]
    pos = [s for s in sts if s["positive"]]
    kept = [s for s in pos if asserted(s)]
    true_pos = [s for s in pos if not s["hallucinated"]]
    return {
        "n_statements": len(sts),
        "n_correct": len(correct),
        "false_flag_rate": sum(map(contradicted, correct)) / len(correct) if correct else 0.0,
        "flag_recall": sum(map(contradicted, halls)) / len(halls) if halls else math.nan,
        "n_asserted_positive": len(kept),
        "hallucinated_asserted": sum(s["hallucinated"] for s in kept) / len(kept) if kept else 0.0,
        # one hallucinated statement more than observed: the rule's small-sample guard
        "hallucinated_asserted_plus_one": (sum(s["hallucinated"] for s in kept) + 1)
        / (len(kept) + 1),
        "retention": sum(not s["hallucinated"] for s in kept) / len(true_pos)
        if true_pos
        else math.nan,
    }


def choose(sts: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(bands and posterior thresholds, their numbers on these statements) by the module rule."""

    def band_flag(r: float) -> Any:
        return lambda s: s["measured"] and s["claim_ratio"] < r

    def band_assert(r_c: float, r_x: float) -> Any:
        return lambda s: (
            s["measured"] and s["claim_ratio"] >= r_c and s["others_ratio"] < r_x and r_x > 0
        )

    contradict_ratio = max(
        r for r in RATIO_GRID if _rates(sts, band_flag(r), lambda s: False)["false_flag_rate"]
        <= FALSE_FLAG_BUDGET
    )  # fmt: skip
    ok = [
        r
        for r in RATIO_GRID
        if r == 0.0
        or _rates(sts, band_flag(contradict_ratio), band_assert(contradict_ratio, r))[
            "hallucinated_asserted_plus_one"
        ]
        <= HALLUCINATION_BUDGET
    ]
    exclude_ratio = max(ok) if ok else 0.0

    def post_flag(t: float) -> Any:
        return lambda s: s["measured"] and s["posterior"] < t

    def post_assert(t_c: float, t_a: float | str) -> Any:
        return lambda s: (
            t_a != "never"
            and s["measured"]
            and s["posterior"] >= t_c
            and s["posterior_abnormal"] >= float(t_a)
        )

    contradict_below = max(
        t for t in POSTERIOR_GRID if _rates(sts, post_flag(t), lambda s: False)["false_flag_rate"]
        <= FALSE_FLAG_BUDGET
    )  # fmt: skip
    assert_at: float | str = "never"
    for t in ASSERT_GRID:
        rates = _rates(sts, post_flag(contradict_below), post_assert(contradict_below, t))
        if rates["hallucinated_asserted_plus_one"] <= HALLUCINATION_BUDGET:
            assert_at = t
            break
    unmeasured = [s for s in sts if not s["measured"]]
    assert_unmeasured: float | str = "never"
    for t in ASSERT_GRID:
        asserted = [s for s in unmeasured if s["positive"] and s["posterior_abnormal"] >= t]
        if (sum(s["hallucinated"] for s in asserted) + 1) / (len(asserted) + 1) <= (
            HALLUCINATION_BUDGET
        ):
            assert_unmeasured = t
            break
    chosen = {
        "bands": {"contradict_ratio": contradict_ratio, "exclude_ratio": exclude_ratio},
        "posterior": {
            "assert_at": assert_at,
            "contradict_below": contradict_below,
            "assert_at_unmeasured": assert_unmeasured,
        },
    }
    numbers = {
        "bands": _rates(
            sts, band_flag(contradict_ratio), band_assert(contradict_ratio, exclude_ratio)
        ),
        "posterior": _rates(
            sts, post_flag(contradict_below), post_assert(contradict_below, assert_at)
        ),
        "verifiable_share": sum(s["measured"] for s in sts) / len(sts) if sts else 0.0,
    }
    return chosen, numbers


def _round(x: Any) -> Any:
    if isinstance(x, float):
        return None if math.isnan(x) else round(x, 4)
    if isinstance(x, dict):
        return {k: _round(v) for k, v in x.items()}
    return x


def build(fit_rows: list[dict[str, Any]], choose_rows: list[dict[str, Any]], command: str,
          fitted_on: str, chosen_on: str) -> dict[str, Any]:  # fmt: skip
    conditions = {name: fit_condition(fit_rows, name, spec) for name, spec in CONDITIONS.items()}
    selection = {k: s for k, c in conditions.items() if (s := c.pop("_selection"))}
    doc: dict[str, Any] = {
        "version": "1",
        "note": (
            "Per condition, the distribution of each single-image measurement "
            "(reporter/grounding/measures/sagittal2d.py, measure.py) among graded discs of each "
            "grade class, a Student-t (location, scale by maximum likelihood for each df in "
            f"{list(DF_GRID)}, the most likely df kept; scale at least 0.01 for ratios, 0.2 mm), "
            "fitted on real SPIDER training patients against the radiologists' gradings, read "
            "through the product's 2-D path (DiscNet levels, SegNet2D shapes, spacing estimated "
            "from anatomy). Classes with fewer than "
            f"{MIN_CLASS} discs are left out (their values take the pooled density). SPIDER "
            "grades narrowing and herniation as present or absent and Modic per disc (both "
            "endplates get the disc's grade), so a class pools every grade of that kind and an "
            "endplate's band is modelled against its disc's grade. Measurements of one "
            "condition are taken as independent given the class. Thresholds were then chosen "
            "on validation patients (rule)."
        ),
        "derived_with": command,
        "fitted_on": fitted_on,
        "chosen_on": chosen_on,
        "rule": (
            "Per condition on the validation patients' statements of the default VLM: "
            "bands.contradict_ratio = the largest of "
            f"{list(RATIO_GRID)} with false-flag rate <= {FALSE_FLAG_BUDGET:g} (the 3 % target "
            "less a margin); bands.exclude_ratio = the largest of the same grid whose supported "
            "positive statements hold (hallucinated + 1) / (asserted + 1) <= "
            f"{HALLUCINATION_BUDGET:g} (0: none supported); posterior.contradict_below = the "
            f"largest of {list(POSTERIOR_GRID)} with false-flag rate <= {FALSE_FLAG_BUDGET:g}; "
            f"posterior.assert_at = the smallest of {list(ASSERT_GRID)} whose asserted "
            f"positives hold (hallucinated + 1) / (asserted + 1) <= {HALLUCINATION_BUDGET:g}, "
            "'never' when none does. The hallucination budget is 5 %, not the phantoms' 0.5 %: "
            "on a few hundred real discs per condition 0.5 % would need 200 asserted positives "
            "without a hallucination (reporter/training/image2d_evidence.py)."
        ),
        "conditions": conditions,
        "validation": {"selection_auc_on_fitting": selection, "chosen": {}},
    }
    first = Image2dEvidenceFile.model_validate(doc)
    per_condition = statements(first, choose_rows)
    for name, sts in per_condition.items():
        chosen, numbers = choose(sts)
        doc["conditions"][name].update(chosen)
        doc["validation"]["chosen"][name] = _round(numbers)
    Image2dEvidenceFile.model_validate(doc)
    return doc


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--data", type=Path, required=True)
    c.add_argument("--split", choices=("train", "val"), required=True)
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--limit", type=int, default=None)
    f = sub.add_parser("fit")
    f.add_argument("--fit", type=Path, required=True, help="collect output on train patients")
    f.add_argument("--choose", type=Path, required=True, help="collect output on val patients")
    f.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.cmd == "collect":
        n = collect(args.data, args.split, args.out, args.limit)
        print(f"wrote {args.out} ({n} graded discs)")
        return
    fit_rows, choose_rows = read_rows(args.fit), read_rows(args.choose)
    if {r["case"] for r in fit_rows} & {r["case"] for r in choose_rows}:
        raise SystemExit("the fitting and choosing rows share patients")
    command = (
        f"python -m reporter.training.image2d_evidence fit --fit {args.fit} --choose "
        f"{args.choose} --out {args.out}"
    )
    n_fit, n_choose = len({r["case"] for r in fit_rows}), len({r["case"] for r in choose_rows})
    doc = build(
        fit_rows,
        choose_rows,
        command,
        f"SPIDER train split: {n_fit} patients, {len(fit_rows)} graded discs",
        f"SPIDER val split: {n_choose} patients, {len(choose_rows)} graded discs",
    )
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc["validation"], indent=1))
    for name, cond in doc["conditions"].items():
        print(name, cond["measurements"], cond["bands"], cond["posterior"])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
