"""The field judges: for each field of the finding schema, which values the level's measurements
allow (an `Outcome`), through the grading functions and tolerances of rules.json. A judge never
decides the verdict itself; reporter.grounding.check turns outcomes into verdicts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reporter.contracts.anatomy import Anatomy
from reporter.contracts.findings import LEVEL_FIELDS, LevelFindings
from reporter.contracts.verdicts import Measurement, UnverifiedReason
from reporter.grounding import grading

LevelMeasures = dict[str, Measurement]
Judge = Callable[[Any, LevelFindings, LevelMeasures, "Context"], "Outcome"]


@dataclass
class Outcome:
    """What a field judge concluded: the allowed values (None = cannot tell) and its evidence."""

    allowed: list[Any] | None
    evidence: list[Measurement]
    rule: str
    why_missing: str = ""
    note: str = ""
    # Why `allowed` is None (Verdict.unverified_because).
    missing_code: UnverifiedReason = "structure_not_found"


@dataclass
class Context:
    measures: dict[str, LevelMeasures]
    anatomy: Anatomy
    # The rules with the tolerances for this anatomy source's measurement noise.
    rules: dict[str, Any]


def _values(m: LevelMeasures, *names: str) -> tuple[list[float | None], list[Measurement]]:
    vals: list[float | None] = []
    ev: list[Measurement] = []
    for n in names:
        meas = m.get(n)
        vals.append(meas.value if meas is not None else None)
        if meas is not None and meas.value is not None:
            ev.append(meas)
    return vals, ev


def _missing(rule: str, names: str, m: LevelMeasures | None = None, *keys: str) -> Outcome:
    """No usable measurement. When measure() set one of `keys` aside (the label map cannot
    support it), it is kept with no value and the reason in its method: the verdict says why."""
    kept = [(m or {}).get(k) for k in keys]
    why = next((x.method for x in kept if x is not None and x.value is None and x.method), "")
    code: UnverifiedReason = "label_map_lacks_structure" if why else "structure_not_found"
    why = f"no {names} measurement at this level" + (f" ({why})" if why else "")
    return Outcome(None, [], rule, why_missing=why, missing_code=code)


def _implausible(rule: str, what: str, ev: list[Measurement]) -> Outcome:
    """A measurement outside the range the anatomy allows: the segmentation under it failed, so
    the claim cannot be judged (never contradicted on a broken measurement)."""
    shown = ", ".join(format_measurement(e) for e in ev)
    return Outcome(
        None,
        ev,
        rule,
        why_missing=f"{shown} is implausible ({what}); segmentation unreliable",
        missing_code="implausible_measurement",
    )


# --- field judges ---------------------------------------------------------------------------------
def _canal(claim: Any, lf: LevelFindings, m: LevelMeasures, ctx: Context) -> Outcome:
    """Dural sac area from the axial slice; else the area estimated from the AP diameter
    relative to the study's own normal levels; else the absolute AP diameter (Verbiest)."""
    (area, est, ap), ev = _values(m, "dural_sac_area_mm2", "dural_sac_area_est_mm2", "canal_ap_mm")
    if area is None and est is None and ap is None:
        return _missing(
            "canal_stenosis", "canal area or AP diameter", m, "dural_sac_area_mm2", "canal_ap_mm"
        )
    rule = ctx.rules["canal_stenosis"]
    if area is None and est is not None:
        ev = [e for e in ev if e.name != "canal_ap_mm"]
        return Outcome(grading.canal_supported(est, None, rule), ev, "canal_stenosis")
    return Outcome(grading.canal_supported(area, ap, rule), ev, "canal_stenosis")


def _subarticular(side: str) -> Judge:
    def judge(claim: Any, lf: LevelFindings, m: LevelMeasures, ctx: Context) -> Outcome:
        (depth,), ev = _values(m, f"lateral_recess_depth_mm_{side}")
        if depth is None:
            return _missing(
                "subarticular_stenosis",
                f"{side} lateral recess depth",
                m,
                f"lateral_recess_depth_mm_{side}",
            )
        if ev and ev[0].read_on == "sagittal":
            rule = {**ctx.rules["subarticular_stenosis"]}
            rule["tolerance"] = max(rule["tolerance"], rule["sagittal_tolerance"])
            allowed = [g for g, (lo, hi) in rule["grades"].items()
                       if (lo is None or depth >= lo - rule["tolerance"])
                       and (hi is None or depth < hi + rule["tolerance"])]  # fmt: skip
            return Outcome(allowed, ev, "subarticular_stenosis", note="read on sagittal slices")
        return Outcome(
            grading.subarticular_supported(depth, ctx.rules["subarticular_stenosis"]),
            ev,
            "subarticular_stenosis",
        )

    return judge


SECTORS = ("cranial", "caudal", "anterior", "posterior")


def _foraminal(side: str) -> Judge:
    def judge(claim: Any, lf: LevelFindings, m: LevelMeasures, ctx: Context) -> Outcome:
        names = [f"foraminal_fat_{s}_{side}" for s in SECTORS] + [f"root_area_ratio_{side}"]
        vals, ev = _values(m, *names)
        if any(v is None for v in vals):
            return _missing("foraminal_stenosis", f"{side} foraminal fat / root")
        fat = [float(v) for v in vals[:4]]  # type: ignore[arg-type]
        allowed = grading.lee_supported(fat, float(vals[4]), ctx.rules["foraminal_stenosis"])  # type: ignore[arg-type]
        return Outcome(allowed, ev, "foraminal_stenosis")

    return judge


def _pfirrmann(claim: Any, lf: LevelFindings, m: LevelMeasures, ctx: Context) -> Outcome:
    (ratio, dhi), ev = _values(m, "disc_csf_t2_ratio", "disc_height_index")
    if ratio is None:
        return _missing("pfirrmann", "disc/CSF T2 signal ratio")
    r = ctx.rules["pfirrmann"]
    allowed = set(grading.pfirrmann_supported(ratio, r))
    # Grade 5 is also a collapsed, dark disc whose ratio sits in grade 4's band.
    collapse = r["collapse_height_index"] + ctx.rules["disc_narrowing"]["tolerance"]
    if dhi is not None and dhi < collapse and ratio < r["collapse_max_ratio"] + r["tolerance"]:
        allowed.add(5)
    return Outcome(sorted(allowed), ev, "pfirrmann")


def _narrowing(claim: Any, lf: LevelFindings, m: LevelMeasures, ctx: Context) -> Outcome:
    (dhi,), ev = _values(m, "disc_height_index")
    if dhi is None:
        return _missing("disc_narrowing", "disc height index")
    r = ctx.rules["disc_narrowing"]
    if not r["plausible"][0] <= dhi <= r["plausible"][1]:
        return _implausible("disc_narrowing", "outside the range a disc can have", ev)
    return Outcome(grading.narrowing_supported(dhi, r), ev, "disc_narrowing")


def _herniation_options(
    m: LevelMeasures, r: dict[str, Any]
) -> tuple[set[str] | None, list[Measurement]]:
    """Herniation types the measurements allow: extension and base with the rule's tolerance,
    the focal angle +-20 degrees (sagittal slices are coarse across the rim), and a
    circumferential bulge when most slices across the posterior wall reach out."""
    (ext, base, circ, broad), ev = _values(
        m,
        "posterior_extension_mm",
        "herniation_base_mm",
        "herniation_circumference_deg",
        "herniation_broad_fraction",
    )
    if ext is None:
        return None, ev
    tol = r["tolerance_mm"]
    base = base if base is not None else 0.0
    dc = r["circumference_tolerance_deg"]
    circs = [(circ or 0.0) - dc, circ or 0.0, (circ or 0.0) + dc]
    if broad is not None and broad >= r["broad_fraction_min"]:
        circs.append(360.0)
    opts: set[str] = set()
    for e in (ext - tol, ext, ext + tol):
        for c in circs:
            for b in (base - 2 * tol, base, base + 2 * tol):
                opts.add(grading.herniation_grade(max(e, 0.0), max(b, 0.0), c))
    return opts, ev


def _herniation(claim: Any, lf: LevelFindings, m: LevelMeasures, ctx: Context) -> Outcome:
    opts, ev = _herniation_options(m, ctx.rules["herniation"])
    if opts is None:
        return _missing("herniation", "posterior disc extension")
    zone = lf.herniation.zone
    if claim in ("protrusion", "extrusion") and zone is not None and claim in opts:
        (lat,), ev_side = _values(m, "herniation_lateral_mm")
        side = _zone_side(zone)
        # Wrong side: the claimed side is opposite to where the disc material is (LPS +x = left).
        min_lateral = ctx.rules["herniation"]["side_min_lateral_mm"]
        if side is not None and lat is not None and abs(lat) > min_lateral:
            measured = "left" if lat > 0 else "right"
            if measured != side:
                return Outcome(
                    [c for c in sorted(opts) if c not in ("protrusion", "extrusion")],
                    ev + ev_side,
                    "herniation",
                    note=f"disc material lies to the {measured}, the claim says {side}",
                )
    return Outcome(sorted(opts), ev, "herniation")


def _zone_side(zone: str) -> str | None:
    if zone.endswith("_left"):
        return "left"
    if zone.endswith("_right"):
        return "right"
    return None


def _bulging(claim: Any, lf: LevelFindings, m: LevelMeasures, ctx: Context) -> Outcome:
    opts, ev = _herniation_options(m, ctx.rules["herniation"])
    if opts is None:
        return _missing("herniation", "posterior disc extension")
    # A bulge is circumferential extension; SPIDER-style 'bulging' is true for a bulge and is
    # compatible with a focal herniation on top of it.
    allowed = {"bulge" in opts or bool(opts & {"protrusion", "extrusion"})}
    if opts & {"none", "protrusion", "extrusion"}:
        allowed.add(False)
    return Outcome(sorted(allowed), ev, "herniation")


def _modic(which: str) -> Judge:
    def judge(claim: Any, lf: LevelFindings, m: LevelMeasures, ctx: Context) -> Outcome:
        (t1, t2), ev = _values(m, f"modic_t1_ratio_{which}", f"modic_t2_ratio_{which}")
        if t1 is None and t2 is None:
            return _missing("modic", f"{which} endplate marrow signal")
        floor = ctx.rules["modic"]["plausible_min_ratio"]
        if any(x is not None and x < floor for x in (t1, t2)):
            return _implausible(
                "modic", f"marrow darker than {floor:g} x the central marrow: the band holds "
                "disc, cortex or fluid, not marrow", ev
            )  # fmt: skip
        return Outcome(grading.modic_supported(t1, t2), ev, "modic")

    return judge


def _slip(claim: Any, lf: LevelFindings, m: LevelMeasures, ctx: Context) -> Outcome:
    (slip,), ev = _values(m, "slip_percent")
    if slip is None:
        return _missing("spondylolisthesis", "slip")
    r = ctx.rules["spondylolisthesis"]
    if abs(slip) > r["plausible_max_percent"]:
        return _implausible("spondylolisthesis", "beyond complete spondyloptosis", ev)
    allowed = grading.meyerding_supported(slip, r)
    direction = lf.spondylolisthesis.direction
    tol = r["tolerance"]
    if claim and direction is not None and abs(slip) > 8 + tol:
        measured = "antero" if slip > 0 else "retro"
        if measured != direction:
            return Outcome(
                [0],
                ev,
                "spondylolisthesis",
                note=f"measured {measured}listhesis, claim {direction}",
            )
    return Outcome(allowed, ev, "spondylolisthesis")


def _unmeasured(what: str) -> Judge:
    def judge(claim: Any, lf: LevelFindings, m: LevelMeasures, ctx: Context) -> Outcome:
        return Outcome(
            None,
            [],
            "",
            why_missing=f"{what} is not measured by the checker",
            missing_code="not_measured",
        )

    return judge


# Fields the checker takes no measurement for, and what they describe.
UNMEASURED: dict[str, str] = {
    "endplate_defect_upper": "endplate irregularity",
    "endplate_defect_lower": "endplate irregularity",
}
JUDGES: dict[str, Judge] = {
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
    **{f: _unmeasured(what) for f, what in UNMEASURED.items()},
    "spondylolisthesis": _slip,
}
if set(JUDGES) != set(LEVEL_FIELDS):  # a schema field added without a judge is a bug here
    raise RuntimeError(f"fields without a judge: {sorted(set(LEVEL_FIELDS) - set(JUDGES))}")


def format_measurement(m: Measurement) -> str:
    """A measurement as a reason quotes it: name, value, unit."""
    return (
        f"{m.name} {m.value:.3g}{(' ' + m.unit) if m.unit else ''}"
        if m.value is not None
        else m.name
    )
