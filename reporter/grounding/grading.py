"""Measurement -> grade definitions, shared by the phantom generator (ground truth) and the checker.

Thresholds come from `rules.json` beside this file, each with its published source. The phantom
generator computes every ground-truth grade with these functions from the geometry it drew; the
grounding checker calls the same functions on what it measures, plus `supports()` to judge a claim
with a tolerance.
"""

from __future__ import annotations

import copy
import hashlib
import json
from functools import cache
from importlib import resources
from typing import Any

from reporter.errors import ModelFileError
from reporter.grounding.rules_file import RulesFile

_RULES_FILE = "rules.json"


@cache
def _document() -> dict[str, Any]:
    """rules.json, validated against its model (reporter.grounding.rules_file) on first use."""
    text = (resources.files("reporter.grounding") / _RULES_FILE).read_text(encoding="utf-8")
    try:
        document = json.loads(text)
        RulesFile.model_validate(document)
    except ValueError as exc:  # JSONDecodeError and pydantic's ValidationError alike
        first = " ".join(str(exc).split())[:300]
        raise ModelFileError(f"reporter/grounding/{_RULES_FILE} is invalid: {first}") from None
    return document


def rules() -> dict[str, Any]:
    return _document()["rules"]


def verification() -> dict[str, Any]:
    """Project policy on what counts as verified (rules.json "verification")."""
    return dict(_document().get("verification", {}))


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@cache
def rules_for(anatomy_source: str) -> dict[str, Any]:
    """The rules with the tolerances for the measurement noise of `anatomy_source`'s label maps
    (rules.json "measurement_noise"; sources without an entry get the base tolerances). Grades
    never change with the source, only how far a measurement may sit outside a claimed grade's
    interval before the claim is contradicted. Treat the result as read-only."""
    noise = _document().get("measurement_noise", {}).get(anatomy_source, {})
    return _merge(rules(), noise.get("rules", {}))


def bias_for(anatomy_source: str) -> dict[str, float]:
    """Median error (measured - truth) of measurements on `anatomy_source`'s label maps, by
    measurement name (rules.json "measurement_noise"); the checker subtracts it before judging."""
    noise = _document().get("measurement_noise", {}).get(anatomy_source, {})
    return {str(k): float(v) for k, v in noise.get("bias", {}).items()}


@cache
def rules_sha256() -> str:
    data = (resources.files("reporter.grounding") / _RULES_FILE).read_bytes()
    return hashlib.sha256(data).hexdigest()


def _in(value: float, lo: float | None, hi: float | None, tol: float = 0.0) -> bool:
    return (lo is None or value >= lo - tol) and (hi is None or value < hi + tol)


def _interval_grade(rule: dict[str, Any], value: float) -> str:
    for grade, (lo, hi) in rule["grades"].items():
        if _in(value, lo, hi):
            return grade
    raise ValueError(f"Argument 'value' {value!r} falls in no interval of rule {rule!r}.")


def _interval_supports(rule: dict[str, Any], grade: Any, value: float) -> bool:
    lo, hi = rule["grades"][str(grade)]
    return _in(value, lo, hi, rule.get("tolerance", 0.0))


def _supported(rule: dict[str, Any], value: float) -> list[str]:
    return [g for g in rule["grades"] if _interval_supports(rule, g, value)]


# --- canal ------------------------------------------------------------------------------------
def canal_grade(dural_sac_area_mm2: float) -> str:
    return _interval_grade(rules()["canal_stenosis"], dural_sac_area_mm2)


def canal_grade_from_ap(canal_ap_mm: float) -> str:
    return _interval_grade(rules()["canal_stenosis"]["fallback"], canal_ap_mm)


def canal_supported(
    dural_sac_area_mm2: float | None,
    canal_ap_mm: float | None,
    rule: dict[str, Any] | None = None,
) -> list[str]:
    """Grades the measurement allows (with tolerance); area preferred, AP as the fallback."""
    rule = rule or rules()["canal_stenosis"]
    if dural_sac_area_mm2 is not None:
        return _supported(rule, dural_sac_area_mm2)
    if canal_ap_mm is not None:
        return _supported(rule["fallback"], canal_ap_mm)
    return []


# --- lateral recess -----------------------------------------------------------------------------
def subarticular_grade(lateral_recess_depth_mm: float) -> str:
    return _interval_grade(rules()["subarticular_stenosis"], lateral_recess_depth_mm)


def subarticular_supported(
    lateral_recess_depth_mm: float, rule: dict[str, Any] | None = None
) -> list[str]:
    return _supported(rule or rules()["subarticular_stenosis"], lateral_recess_depth_mm)


# --- foramina (Lee) -------------------------------------------------------------------------------
def lee_grade(sector_fat_fractions: list[float], root_area_ratio: float) -> int:
    """Lee grade from the perineural fat fraction in 4 sectors (cranial, caudal, anterior,
    posterior; each 0..1 of the fat expected there) and the root cross-section over expected."""
    r = rules()["foraminal_stenosis"]
    if len(sector_fat_fractions) != 4:
        raise ValueError("Argument 'sector_fat_fractions' must hold 4 values.")
    if root_area_ratio < r["root_collapse_ratio"]:
        return 3
    lost = [f < r["sector_fat_fraction_lost"] for f in sector_fat_fractions]
    if all(lost):
        return 2
    cranial, caudal, anterior, posterior = lost
    if (cranial and caudal) or (anterior and posterior):
        return 1
    return 0


def lee_supported(
    sector_fat_fractions: list[float], root_area_ratio: float, rule: dict[str, Any] | None = None
) -> list[int]:
    """Grades allowed: the measured grade and its neighbours when a sector sits near the cut
    (within the rule's `margin`) or the root near collapse."""
    r = rule or rules()["foraminal_stenosis"]
    base = lee_grade(sector_fat_fractions, root_area_ratio)
    margin = r["margin"]
    near_cut = any(abs(f - r["sector_fat_fraction_lost"]) < margin for f in sector_fat_fractions)
    near_collapse = abs(root_area_ratio - r["root_collapse_ratio"]) < margin
    allowed = {base}
    if near_cut:
        allowed |= {max(base - 1, 0), min(base + 1, 2) if base < 3 else 3}
    if near_collapse:
        allowed |= {2, 3}
    return sorted(allowed)


# --- disc -----------------------------------------------------------------------------------------
def pfirrmann_grade(disc_csf_t2_ratio: float, disc_height_index: float) -> int:
    r = rules()["pfirrmann"]
    if disc_height_index < r["collapse_height_index"] and disc_csf_t2_ratio < 0.38:
        return 5
    return int(_interval_grade(r, disc_csf_t2_ratio))


def pfirrmann_supported(disc_csf_t2_ratio: float, rule: dict[str, Any] | None = None) -> list[int]:
    return [int(g) for g in _supported(rule or rules()["pfirrmann"], disc_csf_t2_ratio)]


def narrowing_grade(disc_height_index: float) -> str:
    return _interval_grade(rules()["disc_narrowing"], disc_height_index)


def narrowing_supported(disc_height_index: float, rule: dict[str, Any] | None = None) -> list[str]:
    return _supported(rule or rules()["disc_narrowing"], disc_height_index)


def herniation_grade(
    posterior_extension_mm: float, base_mm: float, circumference_deg: float
) -> str:
    r = rules()["herniation"]
    if posterior_extension_mm < r["min_extension_mm"]:
        return "none"
    if circumference_deg > r["bulge_min_circumference_deg"]:
        return "bulge"
    return "extrusion" if posterior_extension_mm > base_mm else "protrusion"


# --- endplates (Modic) ----------------------------------------------------------------------------
def _level3(ratio: float, low: float, high: float) -> str:
    return "low" if ratio < low else "high" if ratio > high else "iso"


def modic_type(t1_ratio: float, t2_ratio: float) -> int:
    """Modic type from endplate-band / central-marrow signal ratios on T1 and T2."""
    r = rules()["modic"]
    t1 = _level3(t1_ratio, r["low"], r["high"])
    t2 = _level3(t2_ratio, r["low"], r["high"])
    if t1 == "low" and t2 == "high":
        return 1
    if t1 == "high" and t2 in ("iso", "high"):
        return 2
    if t1 == "low" and t2 == "low":
        return 3
    return 0


def modic_supported(
    t1_ratio: float | None, t2_ratio: float | None, margin: float = 0.07
) -> list[int]:
    """Types compatible with the ratios, allowing `margin` around each cut; with one sequence
    missing, every type compatible with the other is allowed."""
    r = rules()["modic"]

    def options(x: float | None) -> set[str]:
        if x is None:
            return {"low", "iso", "high"}
        out = {_level3(x, r["low"], r["high"])}
        if abs(x - r["low"]) < margin:
            out |= {"low", "iso"}
        if abs(x - r["high"]) < margin:
            out |= {"iso", "high"}
        return out

    allowed = set()
    for a in options(t1_ratio):
        for b in options(t2_ratio):
            t1_val = {"low": 0.5, "iso": 1.0, "high": 1.5}[a]
            t2_val = {"low": 0.5, "iso": 1.0, "high": 1.5}[b]
            allowed.add(modic_type(t1_val, t2_val))
    return sorted(allowed)


# --- alignment ------------------------------------------------------------------------------------
def meyerding_grade(slip_percent: float) -> int:
    return int(_interval_grade(rules()["spondylolisthesis"], abs(slip_percent)))


def meyerding_supported(slip_percent: float, rule: dict[str, Any] | None = None) -> list[int]:
    return [int(g) for g in _supported(rule or rules()["spondylolisthesis"], abs(slip_percent))]
