"""Evaluation metrics, implemented once: every other area imports these rather than its own.

All functions take plain sequences / numpy arrays and return Python floats, so they serve the
harness, training scripts and tests alike. A metric that is undefined on its input (no samples, a
single class where two are needed) returns ``nan`` rather than raising: an evaluation over a small
subgroup must still write its metrics.json.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# --- classification ------------------------------------------------------------------------------


def _codes(
    y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any] | None
) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """Map values to 0..K-1 in the order of `labels` (ordinal order for kappa)."""
    if len(y_true) != len(y_pred):
        raise ValueError(
            f"Arguments 'y_true' and 'y_pred' must have the same length ({len(y_true)} != "
            f"{len(y_pred)})."
        )
    if labels is None:
        labels = sorted(set(y_true) | set(y_pred), key=lambda v: (str(type(v)), v))
    index = {v: i for i, v in enumerate(labels)}
    unknown = (set(y_true) | set(y_pred)) - set(index)
    if unknown:
        raise ValueError(f"Values {sorted(map(repr, unknown))} are not in argument 'labels'.")
    return (
        np.fromiter((index[v] for v in y_true), dtype=int, count=len(y_true)),
        np.fromiter((index[v] for v in y_pred), dtype=int, count=len(y_pred)),
        list(labels),
    )


def confusion_matrix(
    y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any] | None = None
) -> np.ndarray:
    """Counts with rows = truth, columns = prediction, in the order of `labels`."""
    t, p, labels = _codes(y_true, y_pred, labels)
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def accuracy(y_true: Sequence[Any], y_pred: Sequence[Any]) -> float:
    if len(y_true) == 0:
        return math.nan
    t, p, _ = _codes(y_true, y_pred, None)
    return float(np.mean(t == p))


def balanced_accuracy(
    y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any] | None = None
) -> float:
    """Mean recall over the classes that occur in the truth (sklearn's definition)."""
    if len(y_true) == 0:
        return math.nan
    cm = confusion_matrix(y_true, y_pred, labels)
    support = cm.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(cm)[present] / support[present]))


def quadratic_weighted_kappa(
    y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any] | None = None
) -> float:
    """Cohen's kappa with quadratic weights w_ij = (i-j)^2 / (K-1)^2 over the ordinal `labels`.

    kappa = 1 - sum(w * O) / sum(w * E), E the outer product of the marginals scaled to n.
    Undefined (nan) with no samples; 1.0 when both raters agree perfectly on a single class
    (sum(w * E) = 0 with perfect agreement), as sklearn's cohen_kappa_score would give nan there
    but a perfect rater deserves 1.
    """
    if len(y_true) == 0:
        return math.nan
    cm = confusion_matrix(y_true, y_pred, labels).astype(float)
    k = cm.shape[0]
    if k < 2:
        return 1.0
    idx = np.arange(k)
    w = (idx[:, None] - idx[None, :]) ** 2 / (k - 1) ** 2
    n = cm.sum()
    expected = np.outer(cm.sum(axis=1), cm.sum(axis=0)) / n
    den = float((w * expected).sum())
    num = float((w * cm).sum())
    if den == 0.0:
        return 1.0 if num == 0.0 else math.nan
    return 1.0 - num / den


def bootstrap_by_group(
    groups: Sequence[Any],
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    statistic: Any,
    n_boot: int = 1000,
    seed: int = 0,
    labels: Sequence[Any] | None = None,
) -> tuple[float, float]:
    """95 % percentile interval of `statistic(y_true, y_pred, labels)` when whole groups
    (patients) are resampled with replacement: the discs of one patient are not independent, so
    resampling discs would make the interval too narrow. NaN draws (a class missing) are left out.
    """
    keys = sorted(set(groups), key=str)
    if len(keys) < 2:
        return (math.nan, math.nan)
    rows: dict[Any, list[int]] = {k: [] for k in keys}
    for i, g in enumerate(groups):
        rows[g].append(i)
    rng = np.random.default_rng(seed)
    t, p = list(y_true), list(y_pred)
    values = []
    for _ in range(n_boot):
        idx = [i for k in rng.choice(len(keys), size=len(keys)) for i in rows[keys[k]]]
        v = statistic([t[i] for i in idx], [p[i] for i in idx], labels)
        if not math.isnan(v):
            values.append(v)
    if not values:
        return (math.nan, math.nan)
    lo, hi = np.percentile(values, [2.5, 97.5])
    return (float(lo), float(hi))


# --- ranking -------------------------------------------------------------------------------------


def roc_auc(y_true: Sequence[bool | int], scores: Sequence[float]) -> float:
    """Area under the ROC curve = P(score of a positive > score of a negative), ties count 1/2
    (the Mann-Whitney U statistic over n_pos * n_neg). nan without both classes."""
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(scores, dtype=float)
    if y.shape != s.shape:
        raise ValueError("Arguments 'y_true' and 'scores' must have the same length.")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    # Mid-ranks handle ties exactly.
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=float)
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


# --- calibration ---------------------------------------------------------------------------------

ECE_BINS = 10  # equal-width confidence bins over [0, 1]


@dataclass(frozen=True)
class ReliabilityBin:
    lo: float
    hi: float
    count: int
    mean_confidence: float
    accuracy: float


def reliability_bins(
    confidences: Sequence[float], correct: Sequence[bool], n_bins: int = ECE_BINS
) -> list[ReliabilityBin]:
    """Equal-width bins [0, 1/n), ..., [(n-1)/n, 1]; a confidence of exactly 1 falls in the last."""
    c = np.asarray(confidences, dtype=float)
    ok = np.asarray(correct, dtype=float)
    if c.shape != ok.shape:
        raise ValueError("Arguments 'confidences' and 'correct' must have the same length.")
    if np.any((c < 0) | (c > 1)):
        raise ValueError("Argument 'confidences' must lie in [0, 1].")
    if n_bins < 1:
        raise ValueError(f"Argument 'n_bins' must be at least 1, not {n_bins}.")
    which = np.minimum((c * n_bins).astype(int), n_bins - 1)
    out = []
    for b in range(n_bins):
        m = which == b
        cnt = int(m.sum())
        out.append(
            ReliabilityBin(
                lo=b / n_bins,
                hi=(b + 1) / n_bins,
                count=cnt,
                mean_confidence=float(c[m].mean()) if cnt else math.nan,
                accuracy=float(ok[m].mean()) if cnt else math.nan,
            )
        )
    return out


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], n_bins: int = ECE_BINS
) -> float:
    """ECE = sum over bins of (n_b / n) * |accuracy_b - mean confidence_b| (Guo et al. 2017),
    with `n_bins` equal-width bins (default 10). `confidences` is the probability the model gave
    to the value it stated, `correct` whether that value equals the ground truth."""
    bins = reliability_bins(confidences, correct, n_bins)
    n = sum(b.count for b in bins)
    if n == 0:
        return math.nan
    return float(sum(b.count / n * abs(b.accuracy - b.mean_confidence) for b in bins if b.count))


# --- the RSNA 2024 lumbar spine competition metric ------------------------------------------------

RSNA_CLASSES: tuple[str, ...] = ("normal_mild", "moderate", "severe")
RSNA_SAMPLE_WEIGHTS: dict[str, float] = {"normal_mild": 1.0, "moderate": 2.0, "severe": 4.0}
RSNA_CONDITIONS: tuple[str, ...] = ("spinal", "foraminal", "subarticular")
# sklearn's log_loss clipping (the eps the competition's scoring environment used).
LOG_LOSS_EPS = 1e-15


@dataclass(frozen=True)
class RsnaRow:
    """One graded (study, condition, side, level) cell, as a row of the competition's solution.

    `condition` is the competition's condition group: "spinal" (canal stenosis), "foraminal"
    (left and right neural foraminal narrowing pooled) or "subarticular" (left and right pooled).
    `probs` is (normal_mild, moderate, severe); it is normalised to sum to 1 like the scorer does.
    """

    study_id: Hashable
    condition: str
    label: str  # one of RSNA_CLASSES
    probs: tuple[float, float, float]


def _weighted_log_loss(p_of_truth: np.ndarray, w: np.ndarray) -> float:
    """sklearn.metrics.log_loss(y, p, sample_weight=w) given the probability each sample put on
    its true class: sum w_i * -log p_i / sum w_i, with p clipped to [eps, 1 - eps]."""
    p = np.clip(p_of_truth, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    return float(-(w * np.log(p)).sum() / w.sum())


def rsna_weighted_log_loss(
    rows: Sequence[RsnaRow], any_severe_scalar: float = 1.0
) -> dict[str, float]:
    """The RSNA 2024 Lumbar Spine Degenerative Classification score, as its scoring code does it.

    1. Predictions are normalised per row to sum to 1.
    2. Per condition group (spinal / foraminal / subarticular) the sample-weighted log loss,
       weights 1 / 2 / 4 for a true normal_mild / moderate / severe.
    3. The any-severe-spinal term: per study, label = any spinal level severe, prediction = the
       largest P(severe) over its spinal levels, weight = the largest spinal sample weight; a binary
       sample-weighted log loss over studies.
    4. The score is the average of the condition losses and the any-severe term (the latter weighted
       by `any_severe_scalar`, 1 in the competition). Conditions absent from `rows` are skipped,
       like the scorer's `target_conditions`.

    Returns the per-term losses and "score". Rows whose label is unknown must be left out by the
    caller (the scorer drops NaN-labelled rows).
    """
    if not rows:
        return {"score": math.nan}
    for r in rows:
        if r.label not in RSNA_CLASSES:
            raise ValueError(f"RSNA row label must be one of {RSNA_CLASSES}, not {r.label!r}.")
        if r.condition not in RSNA_CONDITIONS:
            raise ValueError(
                f"RSNA row condition must be one of {RSNA_CONDITIONS}, not {r.condition!r}."
            )
        if any(p < 0 or not math.isfinite(p) for p in r.probs) or sum(r.probs) <= 0:
            raise ValueError(f"RSNA row probabilities must be finite and >= 0: {r.probs!r}.")
    probs = np.array([r.probs for r in rows], dtype=float)
    probs = probs / probs.sum(axis=1, keepdims=True)
    label_idx = np.array([RSNA_CLASSES.index(r.label) for r in rows])
    weights = np.array([RSNA_SAMPLE_WEIGHTS[r.label] for r in rows])
    p_true = probs[np.arange(len(rows)), label_idx]
    conditions = np.array([r.condition for r in rows])

    terms: dict[str, float] = {}
    term_weights: list[float] = []
    for cond in RSNA_CONDITIONS:
        m = conditions == cond
        if m.any():
            terms[cond] = _weighted_log_loss(p_true[m], weights[m])
            term_weights.append(1.0)

    spinal = np.flatnonzero(conditions == "spinal")
    if spinal.size:
        by_study: dict[Hashable, list[int]] = {}
        for i in spinal:
            by_study.setdefault(rows[i].study_id, []).append(int(i))
        y = np.array([label_idx[ix].max() == 2 for ix in by_study.values()])
        p_sev = np.array([probs[ix, 2].max() for ix in by_study.values()])
        w = np.array([weights[ix].max() for ix in by_study.values()])
        p_of_truth = np.where(y, p_sev, 1.0 - p_sev)
        terms["any_severe_spinal"] = _weighted_log_loss(p_of_truth, w)
        term_weights.append(any_severe_scalar)

    terms["score"] = float(np.average(list(terms.values()), weights=term_weights))
    return terms


# --- hallucination and the checker ----------------------------------------------------------------


@dataclass(frozen=True)
class StatementOutcome:
    """One positive (abnormal) statement of the model's raw output.

    hallucinated: the ground truth at that level and field is normal, or the level does not exist.
    flagged: the grounding checker contradicted it (so the report withholds it).
    """

    hallucinated: bool
    flagged: bool


def _rate(num: int, den: int) -> float:
    return num / den if den else math.nan


def hallucination_rates(
    raw_positives: Sequence[StatementOutcome],
    rendered_positives_hallucinated: Sequence[bool],
    true_statements_flagged: Sequence[bool],
) -> dict[str, float]:
    """ARCHITECTURE.md definitions.

    raw_rate: hallucinated / positive statements in the model's output (`raw_positives`).
    after_grounding_rate: hallucinated / positive statements the rendered report still asserts
    (`rendered_positives_hallucinated`: one bool per such statement; counted from the report as
    rendered, so whatever the pipeline does with a contradicted statement is what is measured --
    by default contradicted statements are withheld and unverifiable positive ones are not
    asserted, reporter/render/statements.py).
    flag_recall: share of the hallucinated raw statements the checker flagged.
    false_flag_rate: share of the true statements (`true_statements_flagged`: one bool per raw
    statement whose value equals the ground truth) that the checker flagged.
    """
    n_pos = len(raw_positives)
    n_hall = sum(s.hallucinated for s in raw_positives)
    n_after = len(rendered_positives_hallucinated)
    n_hall_after = sum(rendered_positives_hallucinated)
    return {
        "raw_rate": _rate(n_hall, n_pos),
        "after_grounding_rate": _rate(n_hall_after, n_after),
        "flag_recall": _rate(sum(s.hallucinated and s.flagged for s in raw_positives), n_hall),
        "false_flag_rate": _rate(sum(true_statements_flagged), len(true_statements_flagged)),
        "n_positive_statements": n_pos,
        "n_hallucinated": n_hall,
        "n_positive_after_grounding": n_after,
        "n_hallucinated_after_grounding": n_hall_after,
        "n_true_statements": len(true_statements_flagged),
    }


def flag_recall(planted_flagged: Sequence[bool]) -> float:
    """Planted-error recall: share of deliberately wrong statements the checker flagged."""
    return _rate(sum(planted_flagged), len(planted_flagged))


def false_flag_rate(true_flagged: Sequence[bool]) -> float:
    """Share of true statements the checker flagged."""
    return _rate(sum(true_flagged), len(true_flagged))


def condition_metrics(
    y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any]
) -> dict[str, float]:
    """The per-condition block of metrics.json: qwk, balanced_accuracy, accuracy (+ n)."""
    return {
        "qwk": quadratic_weighted_kappa(y_true, y_pred, labels),
        "balanced_accuracy": balanced_accuracy(y_true, y_pred, labels),
        "accuracy": accuracy(y_true, y_pred),
        "n": len(y_true),
    }


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default); nan for no values."""
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else math.nan


def nan_to_none(obj: Any) -> Any:
    """JSON has no NaN: undefined metrics are written as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {k: nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [nan_to_none(v) for v in obj]
    if isinstance(obj, np.floating):
        return nan_to_none(float(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
