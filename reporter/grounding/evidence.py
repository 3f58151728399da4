"""Evidence-weighted verdicts: how strongly a level's measurements, with their error models
(error_models.json), support each value of a field, combined with the model's calibrated
probability into a posterior.

For a field whose grade is a function G of true measurements x (the grading functions of
rules.json, the same the phantom generator uses for its ground truth), the measurements y give
    L(g) = P(G(x) = g | y)   with x = y - bias - scale * t(df) per measurement,
i.e. the probability of each grade under a flat prior on the true values (a likelihood of the
grade when every grade is taken to cover equal prior mass of true values; stated as such). 1-D
fields are integrated exactly (t CDF); fields of several measurements (foramen, Modic,
Pfirrmann with collapse, listhesis with direction) by N_DRAWS fixed quasi-random draws, errors
of different measurements independent. Every L(g) is smoothed by half a draw (never exactly 0).

The model's probability p of its stated value c is the prior; the other values share 1 - p
evenly (the least informative completion, as the evaluation's scoring does). Then
    posterior(g) = prior(g) L(g) / sum_h prior(h) L(h),
    likelihood ratio = L(c) / (sum_{g != c} prior(g) L(g) / (1 - p)),
and posterior_abnormal = sum of posterior(g) over the abnormal values. p is clipped to
[1 - clip, clip] (evidence_policy.json: a probability of exactly 1 would make any measurement
powerless).

On a single 2-D image there is no exact truth to fit residuals against: L(g) comes from the
grade models of image2d_evidence.json (reporter.grounding.image2d_evidence, the measurements'
distributions among real discs of each grade) and is combined the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from reporter.contracts.findings import field_values, is_abnormal
from reporter.contracts.verdicts import Evidence, Measurement, WeighedValue
from reporter.grounding import error_model, grading, image2d_evidence
from reporter.grounding.error_model import Residual

N_DRAWS = 512
# Fixed draws (a seeded generator): the same measurements always give the same evidence.
_UNIT = np.random.default_rng(20261127).uniform(0.0005, 0.9995, size=(N_DRAWS, 6))
SECTORS = ("cranial", "caudal", "anterior", "posterior")


@dataclass(frozen=True)
class Weighing:
    """Where the measurements were read: the label map's source and the slice thickness (mm) of
    each series role (sag_t1, sag_t2, ax_t2); `single_image`: read on one 2-D image (the
    single-image grade models apply)."""

    source: str
    thickness: Mapping[str, float]
    single_image: bool = False


Likelihood = dict[Any, float]


def _smooth(counts: dict[Any, float], values: list[Any]) -> Likelihood:
    k = len(values)
    return {v: (counts.get(v, 0.0) * N_DRAWS + 0.5) / (N_DRAWS + 0.5 * k) for v in values}


def _grades_of(rule: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """The interval grade of each value in `x` (object array of grade keys)."""
    out = np.empty(x.shape, dtype=object)
    for g, (lo, hi) in rule["grades"].items():
        mask = np.ones(x.shape, bool)
        if lo is not None:
            mask &= x >= lo
        if hi is not None:
            mask &= x < hi
        out[mask] = g
    return out


def _share(grades: np.ndarray, cast: Callable[[Any], Any] = lambda g: g) -> dict[Any, float]:
    keys, counts = np.unique(grades.astype(str), return_counts=True)
    return {cast(k): c / grades.size for k, c in zip(keys, counts, strict=True)}


class _Reader:
    """The level's usable measurements and their residual models."""

    def __init__(self, measures: Mapping[str, Measurement], where: Weighing) -> None:
        self.measures, self.where = measures, where
        self.used: list[WeighedValue] = []

    def get(self, name: str) -> tuple[float, Residual] | None:
        m = self.measures.get(name)
        if m is None or m.value is None:
            return None
        role = error_model.read_role(name, m.read_on)
        res = error_model.residual(
            self.where.source, name, self.where.thickness.get(role), m.read_on
        )
        if res is None:
            return None
        self.used.append(
            WeighedValue(
                name=name,
                value=float(m.value),
                unit=m.unit,
                half_width_90=round(res.half_width(0.9), 4),
                error_model=res.model_id,
            )
        )
        return float(m.value), res

    def draws(self, name: str, column: int) -> np.ndarray | None:
        got = self.get(name)
        if got is None:
            return None
        value, res = got
        return res.truth_draws(value, _UNIT[:, column])


def _interval_likelihood(rule: dict[str, Any], value: float, res: Residual) -> dict[str, float]:
    return {g: res.prob_truth_in(value, lo, hi) for g, (lo, hi) in rule["grades"].items()}


# --- per field: P(grade | measurements) under a flat prior on the truth, or None ----------------
def _canal(r: _Reader, rules: dict[str, Any], lf: Any) -> dict[Any, float] | None:
    rule = rules["canal_stenosis"]
    for name, grading_rule in (
        ("dural_sac_area_mm2", rule),
        ("dural_sac_area_est_mm2", rule),
        ("canal_ap_mm", rule["fallback"]),
    ):
        got = r.get(name)
        if got is not None:
            return _interval_likelihood(grading_rule, *got)
    return None


def _narrowing(r: _Reader, rules: dict[str, Any], lf: Any) -> dict[Any, float] | None:
    m = r.measures.get("disc_height_index")
    lo, hi = rules["disc_narrowing"]["plausible"]
    if m is None or m.value is None or not lo <= m.value <= hi:
        return None  # missing, or a segmentation failure (judges._narrowing says so)
    got = r.get("disc_height_index")
    return None if got is None else _interval_likelihood(rules["disc_narrowing"], *got)


def _pfirrmann(r: _Reader, rules: dict[str, Any], lf: Any) -> dict[Any, float] | None:
    ratio = r.draws("disc_csf_t2_ratio", 0)
    if ratio is None:
        return None
    rule = rules["pfirrmann"]
    grades = _grades_of(rule, ratio)
    dhi = r.draws("disc_height_index", 1)
    if dhi is not None:
        collapsed = (dhi < rule["collapse_height_index"]) & (ratio < rule["collapse_max_ratio"])
        grades[collapsed] = "5"
    return _share(grades, int)


def _herniated(r: _Reader, rules: dict[str, Any]) -> float | None:
    """P(the disc reaches out at all: extension >= the rule's minimum). Base and circumference
    are not weighed (error_models.json: their sagittal readings do not follow the truth's
    definition), so the evidence cannot tell a bulge from a protrusion or an extrusion."""
    got = r.get("posterior_extension_mm")
    if got is None:
        return None
    value, res = got
    return res.prob_truth_in(value, rules["herniation"]["min_extension_mm"], None)


def _herniation(r: _Reader, rules: dict[str, Any], lf: Any) -> dict[Any, float] | None:
    out = _herniated(r, rules)
    if out is None:
        return None
    return {"none": 1.0 - out, "bulge": out, "protrusion": out, "extrusion": out}


def _bulging(r: _Reader, rules: dict[str, Any], lf: Any) -> dict[Any, float] | None:
    out = _herniated(r, rules)
    if out is None:
        return None
    # A disc that reaches out is a bulge, a protrusion or an extrusion alike (one third each):
    # 'no bulge' stays possible for two of the three.
    return {True: out / 3.0, False: (1.0 - out) + 2.0 * out / 3.0}


def _foraminal(side: str) -> Callable[[_Reader, dict[str, Any], Any], dict[Any, float] | None]:
    def lik(r: _Reader, rules: dict[str, Any], lf: Any) -> dict[Any, float] | None:
        fat = [r.draws(f"foraminal_fat_{s}_{side}", k) for k, s in enumerate(SECTORS)]
        root = r.draws(f"root_area_ratio_{side}", 4)
        if root is None or any(f is None for f in fat):
            return None
        rule = rules["foraminal_stenosis"]
        lost = np.stack([f < rule["sector_fat_fraction_lost"] for f in fat])  # type: ignore[operator]
        grade = np.zeros(N_DRAWS, int)
        opposing = (lost[0] & lost[1]) | (lost[2] & lost[3])
        grade[opposing] = 1
        grade[lost.all(axis=0)] = 2
        grade[root < rule["root_collapse_ratio"]] = 3
        return {g: float(np.mean(grade == g)) for g in range(4)}

    return lik


def _subarticular(side: str) -> Callable[[_Reader, dict[str, Any], Any], dict[Any, float] | None]:
    def lik(r: _Reader, rules: dict[str, Any], lf: Any) -> dict[Any, float] | None:
        got = r.get(f"lateral_recess_depth_mm_{side}")
        return None if got is None else _interval_likelihood(rules["subarticular_stenosis"], *got)

    return lik


def _modic(which: str) -> Callable[[_Reader, dict[str, Any], Any], dict[Any, float] | None]:
    def lik(r: _Reader, rules: dict[str, Any], lf: Any) -> dict[Any, float] | None:
        floor = rules["modic"]["plausible_min_ratio"]
        for seq in ("t1", "t2"):
            m = r.measures.get(f"modic_{seq}_ratio_{which}")
            if m is not None and m.value is not None and m.value < floor:
                return None  # not marrow: a segmentation failure (judges._modic says so)
        t1 = r.draws(f"modic_t1_ratio_{which}", 0)
        t2 = r.draws(f"modic_t2_ratio_{which}", 1)
        if t1 is None and t2 is None:
            return None
        # A sequence without a measurement: low, iso or high alike (one third each).
        spread = np.array([0.5, 1.0, 1.5])[(_UNIT[:, 2] * 3).astype(int)]
        t1 = spread if t1 is None else t1
        t2 = spread if t2 is None else t2
        low, high = rules["modic"]["low"], rules["modic"]["high"]
        t1l, t1h, t2l, t2h = t1 < low, t1 > high, t2 < low, t2 > high
        kind = np.zeros(N_DRAWS, int)
        kind[t1l & t2h] = 1
        kind[t1h & ~t2l] = 2
        kind[t1l & t2l] = 3
        return {k: float(np.mean(kind == k)) for k in range(4)}

    return lik


def _slip(r: _Reader, rules: dict[str, Any], lf: Any) -> dict[Any, float] | None:
    m = r.measures.get("slip_percent")
    rule = rules["spondylolisthesis"]
    if m is None or m.value is None or abs(m.value) > rule["plausible_max_percent"]:
        return None
    x = r.draws("slip_percent", 0)
    if x is None:
        return None
    grades = _grades_of(rule, np.abs(x)).astype(str).astype(int)
    out = {g: float(np.mean(grades == g)) for g in range(5)}
    claim = lf.spondylolisthesis.value if lf is not None else None
    direction = lf.spondylolisthesis.direction if lf is not None else None
    if claim and direction is not None:
        # The claimed grade in the claimed direction; the same grade the other way counts
        # against it (as an alternative of the claim, not of the grade).
        same = (x > 0) if direction == "antero" else (x < 0)
        out[claim] = float(np.mean((grades == claim) & same))
    return out


LIKELIHOODS: dict[str, Callable[[_Reader, dict[str, Any], Any], dict[Any, float] | None]] = {
    "pfirrmann": _pfirrmann,
    "disc_narrowing": _narrowing,
    "disc_bulging": _bulging,
    "herniation": _herniation,
    "canal_stenosis": _canal,
    "foraminal_stenosis_left": _foraminal("left"),
    "foraminal_stenosis_right": _foraminal("right"),
    "subarticular_stenosis_left": _subarticular("left"),
    "subarticular_stenosis_right": _subarticular("right"),
    "modic_upper": _modic("upper"),
    "modic_lower": _modic("lower"),
    "spondylolisthesis": _slip,
}


def likelihood(
    field: str,
    lf: Any,
    measures: Mapping[str, Measurement],
    where: Weighing,
    rules: dict[str, Any] | None = None,
) -> tuple[Likelihood, list[WeighedValue]] | None:
    """P(measurements | value) for every value of `field` (flat-prior grade probabilities,
    smoothed), and the measurements weighed; None when no usable measurement bears on it."""
    fn = LIKELIHOODS.get(field)
    if fn is None:
        return None
    reader = _Reader(measures, where)
    raw = fn(reader, rules or grading.rules(), lf)
    if raw is None:
        return None
    values = list(field_values(field))
    by_value = {v: float(raw.get(v, raw.get(str(v), 0.0))) for v in values}
    return _smooth(by_value, values), reader.used


def combine(
    field: str, claim: Any, lik: Likelihood, probability: float, clip: float
) -> tuple[float, float, float]:
    """(likelihood ratio, posterior of the claim, posterior of any abnormal value) from the
    model's probability `probability` of `claim` (clipped to [1 - clip, clip])."""
    values = list(lik)
    p = min(max(probability, 1.0 - clip), clip)
    others = [v for v in values if v != claim]
    prior = {v: (p if v == claim else (1.0 - p) / max(len(others), 1)) for v in values}
    joint = {v: prior[v] * lik[v] for v in values}
    total = sum(joint.values())
    alt = sum(joint[v] for v in others) / (1.0 - p)
    lr = lik[claim] / alt if alt > 0 else float("inf")
    posterior = joint[claim] / total
    abnormal = sum(joint[v] for v in values if is_abnormal(field, v)) / total
    return lr, posterior, abnormal


def weigh(
    field: str,
    claim: Any,
    lf: Any,
    probability: float,
    measures: Mapping[str, Measurement],
    where: Weighing,
    clip: float,
    rules: dict[str, Any] | None = None,
) -> Evidence | None:
    """The evidence for one statement (None: no usable measurement)."""
    if where.single_image:
        got = image2d_evidence.likelihood(field, measures)
        sha = image2d_evidence.sha256()
    else:
        got = likelihood(field, lf, measures, where, rules)
        sha = error_model.sha256()
    if got is None:
        return None
    lik, used = got
    lr, posterior, abnormal = combine(field, claim, lik, probability, clip)
    return Evidence(
        measured=used,
        error_models_sha256=sha,
        models="image2d_evidence" if where.single_image else "error_models",
        likelihood={str(v): round(x, 6) for v, x in lik.items()},
        prior=round(float(probability), 6),
        likelihood_ratio=round(lr, 6),
        posterior=round(posterior, 6),
        posterior_abnormal=round(abnormal, 6),
    )


def prior_only(field: str, claim: Any, probability: float, clip: float) -> tuple[float, float]:
    """(posterior, posterior_abnormal) without measurements: the model's clipped probability."""
    values = list(field_values(field))
    lik = {v: 1.0 for v in values}
    _, posterior, abnormal = combine(field, claim, lik, probability, clip)
    return posterior, abnormal
