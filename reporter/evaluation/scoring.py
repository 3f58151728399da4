"""From one study's truth and output to a `StudyRecord`, and from records to metrics.json.

The harness runs the pipeline; this module only compares. A `StudyRecord` holds everything the
metrics need from one study (pairs of truth and prediction per condition, RSNA rows, statement
outcomes, calibration points), is plain JSON, and is written to studies.jsonl for audit; the
metrics of the whole run and of every subgroup are computed from the same records.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from reporter.contracts import labels as L
from reporter.contracts.anatomy import Anatomy
from reporter.contracts.findings import (
    LEVEL_FIELDS,
    LEVELS,
    VERTEBRAE,
    Finding,
    StudyFindings,
    field_values,
    is_abnormal,
)
from reporter.contracts.verdicts import Verdict
from reporter.evaluation import checker_block
from reporter.evaluation import metrics as M
from reporter.grounding.policy import condition as policy_condition

# metrics.json condition name -> the schema fields pooled into it (left/right, upper/lower).
CONDITIONS: dict[str, tuple[str, ...]] = {
    "pfirrmann": ("pfirrmann",),
    "canal_stenosis": ("canal_stenosis",),
    "foraminal_stenosis": ("foraminal_stenosis_left", "foraminal_stenosis_right"),
    "subarticular_stenosis": ("subarticular_stenosis_left", "subarticular_stenosis_right"),
    "modic": ("modic_upper", "modic_lower"),
    "spondylolisthesis": ("spondylolisthesis",),
    "herniation": ("herniation",),
}
# Beyond the contract, for datasets that grade them (SPIDER): same block, same definitions.
EXTRA_CONDITIONS: dict[str, tuple[str, ...]] = {
    "narrowing": ("disc_narrowing",),
    "bulging": ("disc_bulging",),
}
ALL_CONDITIONS = {**CONDITIONS, **EXTRA_CONDITIONS}


def condition_of(fld: str) -> str:
    """The metrics.json condition a schema field is pooled into (a field outside every
    condition, such as an endplate defect, by its name without the endplate suffix)."""
    return next((c for c, fields in ALL_CONDITIONS.items() if fld in fields), policy_condition(fld))


UNASSESSED = "unassessed"  # stands in for the prediction of a truth value left unassessed

# The RSNA 2024 cells: their five levels and the schema field -> competition condition group.
RSNA_LEVELS: tuple[str, ...] = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")
RSNA_FIELDS: dict[str, str] = {
    "canal_stenosis": "spinal",
    "foraminal_stenosis_left": "foraminal",
    "foraminal_stenosis_right": "foraminal",
    "subarticular_stenosis_left": "subarticular",
    "subarticular_stenosis_right": "subarticular",
}
_RSNA_CLASS: dict[Any, str] = {
    "none": "normal_mild",
    "mild": "normal_mild",
    "moderate": "moderate",
    "severe": "severe",
    0: "normal_mild",
    1: "normal_mild",
    2: "moderate",
    3: "severe",
}
# A cell the model left unassessed still has to be scored (the competition requires a row for
# every cell): it gets the uninformative prediction.
_UNIFORM = (1 / 3, 1 / 3, 1 / 3)

AGE_BANDS: tuple[tuple[str, int, int], ...] = (
    ("18-39", 0, 40),
    ("40-59", 40, 60),
    ("60-79", 60, 80),
    ("80+", 80, 200),
)


def age_band(age: float | None) -> str:
    if age is None:
        return "unknown"
    return next(name for name, lo, hi in AGE_BANDS if lo <= age < hi)


@dataclass
class StudyRecord:
    case_id: str
    site: str = "unknown"
    sex: str = "unknown"
    age: float | None = None
    tags: list[str] = field(default_factory=list)
    error: str | None = None  # the study could not be reported (counted, metrics skip it)
    schema_valid: bool = False
    latency_s: float | None = None
    # seconds per stage: the pipeline's own (report.provenance.timings_s) plus the harness's
    # "generate", "segment" and "injected_check"
    timings: dict[str, float] = field(default_factory=dict)
    # condition -> [[truth, prediction], ...] over levels (and sides) both assessed
    pairs: dict[str, list[list[Any]]] = field(default_factory=dict)
    # condition -> truth values the raw output left unassessed (level not found, field not
    # assessable, or the study failed): they count as wrong in `balanced_accuracy_all`
    unassessed: dict[str, list[Any]] = field(default_factory=dict)
    # condition -> [[truth is abnormal, P(abnormal)], ...]
    scores: dict[str, list[list[Any]]] = field(default_factory=dict)
    # [condition group, RSNA class, [p_normal_mild, p_moderate, p_severe]]
    rsna_rows: list[list[Any]] = field(default_factory=list)
    # raw positive statements: [hallucinated, flagged]
    raw_positives: list[list[bool]] = field(default_factory=list)
    # positive statements the rendered report asserts: hallucinated? (and, in parallel, whether
    # the report marks it indeterminate: shown, but flagged as low confidence)
    rendered_positives: list[bool] = field(default_factory=list)
    rendered_indeterminate: list[bool] = field(default_factory=list)
    # raw statements equal to the truth: flagged?
    true_flagged: list[bool] = field(default_factory=list)
    # raw positive statements whose verdict weighed evidence (the posterior policy):
    # [hallucinated, posterior of an abnormal value, contradicted] (reporter.evaluation.tradeoff)
    positive_posteriors: list[list[Any]] = field(default_factory=list)
    # [confidence, correct] per raw statement with a probability and a truth
    calibration: list[list[Any]] = field(default_factory=list)
    naming: list[int] = field(default_factory=lambda: [0, 0])  # [correct, total]
    # structure class -> Dice of each truth structure of that class (vertebra, disc, canal)
    dice: dict[str, list[float]] = field(default_factory=dict)
    # per truth structure (a labelled vertebra or disc, a disc box, a disc of a 2-D mask):
    # found where the truth puts it? (reporter.evaluation.localisation)
    detected: list[bool] = field(default_factory=list)
    # centroid distance (mm) of each truth structure the prediction has by the same name
    localisation_mm: list[float] = field(default_factory=list)
    # per graded truth disc (L1-L2 .. L5-S1 with a Pfirrmann grade): assessed by the report?
    graded_assessed: list[bool] = field(default_factory=list)
    # ... and graded by the model at all (the level found and named, confident or not): what the
    # anatomy alone gives; the gap to graded_assessed is the grades marked indeterminate
    graded_found: list[bool] = field(default_factory=list)
    injected_planted: list[bool] = field(default_factory=list)  # planted error flagged?
    injected_true: list[bool] = field(default_factory=list)  # untouched statement flagged?
    hallucinated_examples: list[str] = field(default_factory=list)  # for the summary, capped
    # "level field=value" of each correct statement the checker flagged (false flags), so a
    # run says which rules over-flag
    false_flags: list[str] = field(default_factory=list)
    # one row per raw statement the truth grades, for metrics.json "checker_by_condition"
    # (reporter.evaluation.checker_block)
    checked_statements: list[list[Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return M.nan_to_none(asdict(self))


# --- one study ----------------------------------------------------------------------------------


def _value(f: Finding[Any] | None) -> Any:
    return f.value if f is not None and f.assessed else None


Distributions = dict[str, dict[str, dict[Any, float]]]  # level -> field -> {value: probability}


def distribution(
    finding: Finding[Any], fld: str, full: dict[Any, float] | None = None
) -> dict[Any, float]:
    """P(value) over the field's vocabulary: the model's full distribution `full` when it gave
    one; otherwise the stated value's probability, the rest spread evenly over the other values
    (the least informative completion). A finding without a probability is taken as certain."""
    values = field_values(fld)
    if full:
        got = {v: float(full.get(v, full.get(str(v), 0.0))) for v in values}
        total = sum(got.values())
        if total > 0:
            return {v: p / total for v, p in got.items()}
    p = 1.0 if finding.probability is None else float(finding.probability)
    rest = (1.0 - p) / (len(values) - 1) if len(values) > 1 else 0.0
    return {v: (p if v == finding.value else rest) for v in values}


def _verdict_index(verdicts: Iterable[Verdict]) -> dict[tuple[str | None, str], Verdict]:
    return {(v.level, v.field): v for v in verdicts}


def _flagged(index: dict[tuple[str | None, str], Verdict], level: str, fld: str) -> bool:
    v = index.get((level, fld))
    return v is not None and v.verdict == "contradicted"


def _weighed(
    record: StudyRecord,
    index: dict[tuple[str | None, str], Verdict],
    level: str,
    fld: str,
    hallucinated: bool,
) -> None:
    v = index.get((level, fld))
    if v is not None and v.weight is not None and v.band_verdict is not None:
        record.positive_posteriors.append(
            [hallucinated, float(v.weight.posterior_abnormal), v.verdict == "contradicted"]
        )


def compare_findings(
    record: StudyRecord,
    truth: StudyFindings,
    raw: StudyFindings,
    rendered: StudyFindings,
    verdicts: Sequence[Verdict],
    indeterminate: Iterable[tuple[str | None, str]] = (),
    distributions: Distributions | None = None,
) -> None:
    """Fill `record` with everything comparable between truth and the model's output.
    `indeterminate`: the (level, field) statements the report marks as low confidence;
    `distributions`: the model's full distribution per level and field, where it gives them."""
    vindex = _verdict_index(verdicts)
    low_conf = set(indeterminate)
    dists = distributions or {}
    band_index, posterior_index = checker_block.statement_verdicts(raw, verdicts)

    # Conditions, calibration, AUC and true statements: over the raw output, level by level.
    for lf in raw.levels:
        gt_level = truth.level(lf.level)
        for fld in LEVEL_FIELDS:
            pred: Finding[Any] = getattr(lf, fld)
            if not pred.assessed:
                continue
            gt_value = _value(getattr(gt_level, fld)) if gt_level is not None else None
            positive = is_abnormal(fld, pred.value)
            if gt_level is None:
                # The level does not exist: every positive statement there is hallucinated.
                if positive:
                    record.raw_positives.append([True, _flagged(vindex, lf.level, fld)])
                    _weighed(record, vindex, lf.level, fld, True)
                    _example(record, lf.level, fld, pred.value, "no such level")
                continue
            if gt_value is None:
                continue  # truth cannot judge it (outside the FOV in the ground truth)
            correct = pred.value == gt_value
            key = (lf.level, fld)
            record.checked_statements.append(
                checker_block.row(
                    condition_of(fld),
                    fld,
                    pred.value,
                    gt_value,
                    band_index.get(key),
                    posterior_index.get(key),
                )
            )
            if positive:
                hallucinated = not is_abnormal(fld, gt_value)
                record.raw_positives.append([hallucinated, _flagged(vindex, lf.level, fld)])
                _weighed(record, vindex, lf.level, fld, hallucinated)
                if hallucinated:
                    _example(record, lf.level, fld, pred.value, f"truth {gt_value!r}")
            if correct:
                flagged = _flagged(vindex, lf.level, fld)
                record.true_flagged.append(flagged)
                if flagged:
                    record.false_flags.append(f"{lf.level} {fld}={pred.value!r}")
            if pred.probability is not None:
                record.calibration.append([float(pred.probability), bool(correct)])

    for cond, fields in ALL_CONDITIONS.items():
        for gt_level in truth.levels:
            lf = raw.level(gt_level.level)
            for fld in fields:
                gt_value = _value(getattr(gt_level, fld))
                pred = getattr(lf, fld) if lf is not None else None
                pred_value = _value(pred)
                if gt_value is None:
                    continue
                if pred_value is None or pred is None:
                    record.unassessed.setdefault(cond, []).append(gt_value)
                    continue
                record.pairs.setdefault(cond, []).append([gt_value, pred_value])
                dist = distribution(pred, fld, dists.get(gt_level.level, {}).get(fld))
                p_abn = sum(p for v, p in dist.items() if is_abnormal(fld, v))
                record.scores.setdefault(cond, []).append([is_abnormal(fld, gt_value), p_abn])

    # RSNA cells: every graded truth cell at the five RSNA levels gets a row.
    for level in RSNA_LEVELS:
        gt_level = truth.level(level)
        if gt_level is None:
            continue
        lf = raw.level(level)
        for fld, group in RSNA_FIELDS.items():
            gt_value = _value(getattr(gt_level, fld))
            if gt_value is None:
                continue
            pred = getattr(lf, fld) if lf is not None else None
            if pred is None or not pred.assessed:
                probs = _UNIFORM
            else:
                acc = {"normal_mild": 0.0, "moderate": 0.0, "severe": 0.0}
                for v, p in distribution(pred, fld, dists.get(level, {}).get(fld)).items():
                    acc[_RSNA_CLASS[v]] += p
                probs = (acc["normal_mild"], acc["moderate"], acc["severe"])
            record.rsna_rows.append([group, _RSNA_CLASS[gt_value], list(probs)])

    # What the report asserts after grounding.
    for lf in rendered.levels:
        gt_level = truth.level(lf.level)
        for fld in LEVEL_FIELDS:
            value = _value(getattr(lf, fld))
            if value is None or not is_abnormal(fld, value):
                continue
            if gt_level is None:
                hallucinated = True
            else:
                gt_value = _value(getattr(gt_level, fld))
                if gt_value is None:
                    continue
                hallucinated = not is_abnormal(fld, gt_value)
            record.rendered_positives.append(hallucinated)
            record.rendered_indeterminate.append((lf.level, fld) in low_conf)


# The discs whose graded Pfirrmann coverage is counted: the lumbar discs every format grades.
COVERAGE_LEVELS: tuple[str, ...] = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")


def all_unassessed(record: StudyRecord, truth: StudyFindings) -> None:
    """A study without a report: every graded truth value of every condition is unassessed."""
    for cond, fields in ALL_CONDITIONS.items():
        for gt_level in truth.levels:
            for fld in fields:
                gt_value = _value(getattr(gt_level, fld))
                if gt_value is not None:
                    record.unassessed.setdefault(cond, []).append(gt_value)


def graded_discs_assessed(
    truth: StudyFindings,
    rendered: StudyFindings | None,
    indeterminate: Iterable[tuple[str | None, str]] = (),
) -> list[bool]:
    """Per graded truth disc (a Pfirrmann grade at L1-L2 .. L5-S1): does the report state a
    Pfirrmann grade there, assessed and not marked indeterminate? `rendered` None (no report)
    makes every graded disc unassessed."""
    low_conf = set(indeterminate)
    out = []
    for level in COVERAGE_LEVELS:
        gt_level = truth.level(level)
        if gt_level is None or _value(gt_level.pfirrmann) is None:
            continue
        lf = rendered.level(level) if rendered is not None else None
        out.append(
            lf is not None
            and _value(lf.pfirrmann) is not None
            and (level, "pfirrmann") not in low_conf
        )
    return out


def _example(record: StudyRecord, level: str, fld: str, value: Any, why: str) -> None:
    if len(record.hallucinated_examples) < 5:
        record.hallucinated_examples.append(f"{level} {fld}={value!r} ({why})")


# --- many studies -------------------------------------------------------------------------------


def condition_labels(cond: str) -> list[Any]:
    return list(field_values(ALL_CONDITIONS[cond][0]))


def condition_block(records: Sequence[StudyRecord], cond: str) -> dict[str, float]:
    pairs = [p for r in records for p in r.pairs.get(cond, [])]
    labels = condition_labels(cond)
    block = M.condition_metrics([p[0] for p in pairs], [p[1] for p in pairs], labels)
    # The same with every unassessed truth value counted as wrong (a failed study or a level
    # not found must not make the grades look better): predicted as a value never right.
    missed = [v for r in records for v in r.unassessed.get(cond, [])]
    block["n_unassessed"] = len(missed)
    block["balanced_accuracy_all"] = M.balanced_accuracy(
        [p[0] for p in pairs] + missed,
        [p[1] for p in pairs] + [UNASSESSED] * len(missed),
        [*labels, UNASSESSED],
    )
    scores = [s for r in records for s in r.scores.get(cond, [])]
    block["auc"] = M.roc_auc([s[0] for s in scores], [s[1] for s in scores])
    return block


def rsna_loss(records: Sequence[StudyRecord]) -> dict[str, float]:
    rows = [
        M.RsnaRow(r.case_id, group, label, tuple(probs))  # type: ignore[arg-type]
        for r in records
        for group, label, probs in r.rsna_rows
    ]
    return M.rsna_weighted_log_loss(rows)


def hallucination_block(records: Sequence[StudyRecord]) -> dict[str, float]:
    block = M.hallucination_rates(
        [M.StatementOutcome(bool(h), bool(f)) for r in records for h, f in r.raw_positives],
        [h for r in records for h in r.rendered_positives],
        [f for r in records for f in r.true_flagged],
    )
    # Extra: the rate among positives the report states without an "indeterminate" mark.
    definite = [
        h
        for r in records
        for h, low in zip(
            r.rendered_positives,
            r.rendered_indeterminate or [False] * len(r.rendered_positives),
            strict=True,
        )
        if not low
    ]
    block["after_grounding_rate_definite"] = sum(definite) / len(definite) if definite else math.nan
    block["n_positive_after_grounding_definite"] = len(definite)
    # For comparison: what a report would assert under the older "withhold contradicted only"
    # policy (every raw positive the checker did not flag, unverifiable ones included).
    # `after_grounding_rate` itself counts the rendered report, whatever its policy.
    kept = [bool(h) for r in records for h, f in r.raw_positives if not f]
    block["after_grounding_rate_contradicted_only"] = sum(kept) / len(kept) if kept else math.nan
    block["n_positive_after_grounding_contradicted_only"] = len(kept)
    # The cost beside the rate: how many of the model's true positive statements the report
    # still asserts (a report that asserts nothing has no hallucinations and no findings).
    n_true_raw = sum(not h for r in records for h, _ in r.raw_positives)
    n_true_after = sum(not h for r in records for h in r.rendered_positives)
    block["n_true_positive_raw"] = n_true_raw
    block["n_true_positive_after_grounding"] = n_true_after
    block["true_positive_retention"] = n_true_after / n_true_raw if n_true_raw else math.nan
    n_true_kept = len(kept) - sum(kept)
    block["n_true_positive_after_grounding_contradicted_only"] = n_true_kept
    block["true_positive_retention_contradicted_only"] = (
        n_true_kept / n_true_raw if n_true_raw else math.nan
    )
    return block


def naming_accuracy(records: Sequence[StudyRecord]) -> float:
    correct = sum(r.naming[0] for r in records)
    total = sum(r.naming[1] for r in records)
    return correct / total if total else math.nan


def dice_block(records: Sequence[StudyRecord]) -> dict[str, float]:
    """Mean Dice per structure class over every truth structure of every study."""
    out: dict[str, float] = {}
    for cls in ("vertebra", "disc", "canal"):
        vals = [d for r in records for d in r.dice.get(cls, [])]
        out[cls] = float(np.mean(vals)) if vals else math.nan
    return out


def localisation_block(records: Sequence[StudyRecord]) -> dict[str, float]:
    """`detect_rate`: share of truth structures found where the truth puts them (failed studies
    included: their structures count as not detected); `median_error_mm`: median centroid
    distance over the truth structures the prediction has by the same name (formats without a
    known pixel spacing have none). Definitions per format: reporter.evaluation.localisation."""
    detected = [d for r in records for d in r.detected]
    errors = [e for r in records for e in r.localisation_mm]
    return {
        "detect_rate": sum(detected) / len(detected) if detected else math.nan,
        "median_error_mm": float(np.median(errors)) if errors else math.nan,
        "n_structures": len(detected),
        "n_measured": len(errors),
    }


def coverage_block(records: Sequence[StudyRecord]) -> dict[str, float]:
    """Share of the graded truth discs (L1-L2 .. L5-S1) that the report assesses; a failed
    study's graded discs count as not assessed."""
    graded = [g for r in records for g in r.graded_assessed]
    found = [g for r in records for g in r.graded_found]
    return {
        "graded_discs_assessed": sum(graded) / len(graded) if graded else math.nan,
        "graded_discs_found": sum(found) / len(found) if found else math.nan,
        "n_graded_discs": len(graded),
    }


def subgroup_metrics(records: Sequence[StudyRecord]) -> dict[str, Any]:
    """The condition metrics (and the headline rates) of one subgroup."""
    ok = [r for r in records if r.error is None]
    return {
        "n_studies": len(records),
        "conditions": {c: condition_block(ok, c) for c in ALL_CONDITIONS},
        "rsna_weighted_log_loss": rsna_loss(ok)["score"],
        # Failed studies too: they carry their truth structures counted as wrong, if any.
        "level_naming_accuracy": naming_accuracy(records),
        "hallucination": hallucination_block(ok),
        "calibration": {"ece": _ece(ok)},
    }


def _median_timings(records: Sequence[StudyRecord]) -> dict[str, float]:
    stages = sorted({k for r in records for k in r.timings})
    return {k: M.percentile([r.timings[k] for r in records if k in r.timings], 50) for k in stages}


def _ece(records: Sequence[StudyRecord]) -> float:
    pts = [c for r in records for c in r.calibration]
    return M.expected_calibration_error([c[0] for c in pts], [c[1] for c in pts])


def _by(
    records: Sequence[StudyRecord], key: Callable[[StudyRecord], str]
) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[StudyRecord]] = {}
    for r in records:
        groups.setdefault(key(r), []).append(r)
    return {k: subgroup_metrics(v) for k, v in sorted(groups.items())}


def compute_metrics(records: Sequence[StudyRecord], peak_rss_mb: float | None) -> dict[str, Any]:
    """metrics.json, with the keys and definitions of ARCHITECTURE.md (plus documented extras)."""
    ok = [r for r in records if r.error is None]
    latencies = [r.latency_s for r in ok if r.latency_s is not None]
    rsna = rsna_loss(ok)
    out: dict[str, Any] = {
        "n_studies": len(records),
        "n_failed": len(records) - len(ok),
        "schema_valid_rate": (
            sum(r.schema_valid for r in records) / len(records) if records else math.nan
        ),
        "conditions": {c: condition_block(ok, c) for c in ALL_CONDITIONS},
        "rsna_weighted_log_loss": rsna["score"],
        "rsna_terms": {k: v for k, v in rsna.items() if k != "score"},
        # Structure metrics count failed studies too: a study without a report carries its truth
        # structures as not named, not segmented, not detected and not assessed.
        "level_naming_accuracy": naming_accuracy(records),
        "segmentation": {"dice": dice_block(records)},
        "localisation": localisation_block(records),
        "coverage": coverage_block(records),
        "hallucination": hallucination_block(ok),
        "checker_by_condition": checker_block.block([s for r in ok for s in r.checked_statements]),
        "injected": {
            "flag_recall": M.flag_recall([f for r in ok for f in r.injected_planted]),
            "false_flag_rate": M.false_flag_rate([f for r in ok for f in r.injected_true]),
            "n_planted": sum(len(r.injected_planted) for r in ok),
            "n_untouched": sum(len(r.injected_true) for r in ok),
        },
        "calibration": {"ece": _ece(ok), "ece_bins": M.ECE_BINS},
        "latency_s_per_study": {
            "median": M.percentile(latencies, 50),
            "p95": M.percentile(latencies, 95),
        },
        "peak_rss_mb": peak_rss_mb,
        "timings_s_median": _median_timings(ok),
        "by_site": _by(records, lambda r: r.site),
        "by_sex": _by(records, lambda r: r.sex),
        "by_age": _by(records, lambda r: age_band(r.age)),
        # Extras: per benchmark variant (first tag) and by sagittal artifacts present or not.
        "by_variant": _by([r for r in records if r.tags], lambda r: r.tags[0]),
        "by_artifacts": _by(
            records,
            lambda r: (
                "sagittal_artifacts" if any(t.startswith("artifact:") for t in r.tags) else "none"
            ),
        ),
    }
    return M.nan_to_none(out)


# --- level naming -------------------------------------------------------------------------------


def level_naming(
    truth: Anatomy, predicted: Anatomy | None, max_points: int = 400, vertebrae: bool = False
) -> list[int]:
    """[correct, total] over the ground truth's discs (and, with `vertebrae`, its vertebrae too):
    a structure is named correctly when the predicted label map carries the same label
    (reporter.contracts.labels: one value per name) at the majority of the truth structure's
    voxels among the labels of its class (disc or vertebra), mapped through patient coordinates
    so the two maps may lie on different grids. A structure the prediction misses counts as
    wrong. Phantom benchmarks count discs only (the "levels" of the README's number); formats
    whose masks label vertebrae (lumbar3d) count every labelled structure."""
    gt_labels = np.asarray(truth.labels)
    values = [
        int(v)
        for v in np.unique(gt_labels)
        if L.is_disc(int(v)) or (vertebrae and L.is_vertebra(int(v)))
    ]
    if predicted is None:
        return [0, len(values)]
    pred_labels = np.asarray(predicted.labels)
    same_grid = pred_labels.shape == gt_labels.shape and np.allclose(
        np.asarray(predicted.affine), np.asarray(truth.affine), atol=1e-3
    )
    inv = np.linalg.inv(np.asarray(predicted.affine, dtype=float))
    gt_aff = np.asarray(truth.affine, dtype=float)
    correct = 0
    for value in values:
        idx = np.argwhere(gt_labels == value)
        if len(idx) > max_points:  # an even subsample keeps this cheap on big discs
            idx = idx[:: math.ceil(len(idx) / max_points)]
        if same_grid:
            found = pred_labels[tuple(idx.T)]
        else:
            lps = idx @ gt_aff[:3, :3].T + gt_aff[:3, 3]
            pidx = np.rint(lps @ inv[:3, :3].T + inv[:3, 3]).astype(int)
            inside = np.all((pidx >= 0) & (pidx < np.array(pred_labels.shape)), axis=1)
            found = pred_labels[tuple(pidx[inside].T)]
        if L.is_disc(value):
            same_class = found[(found >= L.DISC_BASE) & (found < L.DISC_BASE + len(LEVELS))]
        else:
            same_class = found[
                (found >= L.VERTEBRA_BASE) & (found < L.VERTEBRA_BASE + len(VERTEBRAE))
            ]
        if same_class.size and np.bincount(same_class).argmax() == value:
            correct += 1
    return [correct, len(values)]


def _on_truth_grid(truth: Anatomy, predicted: Anatomy) -> np.ndarray:
    """The predicted label map sampled (nearest) at every voxel of the truth's grid."""
    gt_shape = np.asarray(truth.labels).shape
    pred = np.asarray(predicted.labels)
    if pred.shape == gt_shape and np.allclose(
        np.asarray(predicted.affine), np.asarray(truth.affine), atol=1e-3
    ):
        return pred
    m = np.linalg.inv(np.asarray(predicted.affine, dtype=float)) @ np.asarray(
        truth.affine, dtype=float
    )
    out = np.zeros(gt_shape, dtype=pred.dtype)
    jj, ii = np.meshgrid(np.arange(gt_shape[1]), np.arange(gt_shape[2]), indexing="ij")
    for k in range(gt_shape[0]):  # slice by slice keeps memory small
        idx = np.stack([np.full(jj.shape, k), jj, ii], axis=-1).reshape(-1, 3).astype(float)
        p = np.rint(idx @ m[:3, :3].T + m[:3, 3]).astype(int)
        inside = np.all((p >= 0) & (p < np.array(pred.shape)), axis=1)
        flat = np.zeros(len(p), dtype=pred.dtype)
        flat[inside] = pred[tuple(p[inside].T)]
        out[k] = flat.reshape(jj.shape)
    return out


def dice_scores(truth: Anatomy, predicted: Anatomy | None) -> dict[str, list[float]]:
    """Dice of each truth vertebra, disc and the canal against the same label in the prediction
    (named structures must match by name: a disc labelled L4-L5 where truth has L5-S1 scores 0)."""
    gt = np.asarray(truth.labels)
    pred = _on_truth_grid(truth, predicted) if predicted is not None else np.zeros_like(gt)
    out: dict[str, list[float]] = {"vertebra": [], "disc": [], "canal": []}
    for value in np.unique(gt):
        v = int(value)
        if L.is_vertebra(v):
            cls = "vertebra"
        elif L.DISC_BASE <= v < L.DISC_BASE + len(LEVELS):
            cls = "disc"
        elif v == L.CANAL:
            cls = "canal"
        else:
            continue
        a, b = gt == v, pred == v
        denom = int(a.sum()) + int(b.sum())
        out[cls].append(2.0 * int((a & b).sum()) / denom if denom else math.nan)
    return out
