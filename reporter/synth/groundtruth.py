"""Ground truth measured back from what was drawn, graded with reporter.grounding.grading.

Nothing here reads the sampled targets: each grade comes from an exact cross-section of the drawn
geometry (rasterized on a fine grid with the same `sample` the images use) or from the noise-free
tissue signal of the study's own series, through the same functions the grounding checker uses.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reporter.contracts import labels as lb
from reporter.contracts.findings import (
    LevelFindings,
    StudyFindings,
    not_assessable_level,
)
from reporter.grounding import grading
from reporter.synth import tissues as tx
from reporter.synth.rasterize import F32, foramen_params, project, sample
from reporter.synth.spine import Disc, SpineModel, disc_plane

GRID = 0.25  # mm, cross-section sampling for areas
FORAMEN_GRID = 0.125  # mm, the parasagittal foramen section
FREE_TISSUES = (tx.CSF, tx.CORD, tx.FAT, tx.ROOT)
# Herniation zone by the angle of the focal extension from the posterior midline (rad).
ZONE_LIMITS = (
    (0.2, "central"),
    (0.6, "paracentral"),
    (1.05, "foraminal"),
    (np.pi, "extraforaminal"),
)


def _signal(m: SpineModel, tissue: int, field_t: float, tr: float, te: float) -> float:
    pd, t1, t2 = tx.relaxation(m.tissues[tissue], field_t)
    return float(tx.spin_echo(pd, t1, t2, tr, te))


def _plane_sample(m: SpineModel, d: Disc, u: np.ndarray, v: np.ndarray):
    """Sample the drawn anatomy at in-plane offsets (u lateral, v posterior, mm) of the disc
    plane, through the same projection the images use."""
    centre, _, lat, post = disc_plane(m, d)
    pts = centre + u[:, None] * lat + v[:, None] * post
    s_, u_, v_ = project(m, pts)
    return sample(m, s_, u_, v_)


def canal_section(m: SpineModel, d: Disc) -> dict[str, float]:
    i = int(m.idx(d.s_mid))
    b = float(m.tables["B"][i])
    u = np.arange(-22.0, 22.0 + 1e-6, GRID, dtype=F32)
    v = np.arange(b - 8.0, b + 34.0, GRID, dtype=F32)
    uu, vv = np.meshgrid(u, v, indexing="ij")
    sm = _plane_sample(m, d, uu.ravel(), vv.ravel())
    sac = np.isin(sm.label, (lb.CANAL, lb.CORD)).reshape(uu.shape)
    area = float(sac.sum() * GRID * GRID)
    mid = sac[np.argmin(np.abs(u))]
    return {"dural_sac_area_mm2": round(area, 2), "canal_ap_mm": round(float(mid.sum() * GRID), 2)}


def recess_depth(m: SpineModel, d: Disc, side: float) -> float:
    """Free AP run (CSF, cord, fat, root) in the lateral recess, from the disc/body backwards,
    in the disc plane at 2 mm inside the bony canal's lateral wall."""
    i = int(m.idx(d.s_mid))
    b, a_bc = float(m.tables["B"][i]), float(m.tables["a_bc"][i])
    step = 0.05
    v = np.arange(b - 4.0, b + 28.0, step, dtype=F32)
    u = np.full(v.size, side * (a_bc - 2.0), F32)
    sm = _plane_sample(m, d, u, v)
    free = np.isin(sm.tissue, FREE_TISSUES)
    bony = np.isin(sm.label, [lb.disc_label(x.level) for x in m.discs]) | (
        (sm.label >= lb.VERTEBRA_BASE) & (sm.label < lb.DISC_BASE)
    )
    last_front = int(np.nonzero(bony)[0].max()) + 1 if bony.any() else 0
    run = 0
    for f in free[last_front:]:
        if not f:
            break
        run += 1
    return round(run * step, 3)


def foramen_measure(m: SpineModel, j: int, side: int) -> dict[str, Any]:
    """Lee sectors (cranial, caudal, anterior, posterior) on a parasagittal section through the
    foramen, each as the fat present over the fat of this patient's unnarrowed foramen."""
    d = m.discs[j]
    geo = foramen_params(m)
    sr, vr, r = float(geo["s_root"][j]), float(geo["v_root"][j]), float(geo["r_root"][j])
    i = int(m.idx(sr))
    a_bc = float(m.tables["a_bc"][i])
    sgn = 1.0 if side == 0 else -1.0
    s = np.arange(sr - 10.0, sr + 16.0, FORAMEN_GRID, dtype=F32)
    vb = np.arange(0.0, 12.5, FORAMEN_GRID, dtype=F32)
    ss, vv = np.meshgrid(s, vb, indexing="ij")
    b_s = m.tables["B"][m.idx(ss.ravel())]
    u = np.full(ss.size, sgn * (a_bc + 4.75), F32)
    sm = sample(m, ss.ravel(), u, b_s + vv.ravel())
    fat_lab = lb.FORAMEN_LEFT if side == 0 else lb.FORAMEN_RIGHT
    root_lab = lb.ROOT_LEFT if side == 0 else lb.ROOT_RIGHT
    fat = (sm.label == fat_lab).reshape(ss.shape)
    root = (sm.label == root_lab).reshape(ss.shape)
    ds, dv = ss - sr, vv - vr
    tn = d.fat_normal
    zone = m.tables["fdi"][m.idx(ss.ravel())].reshape(ss.shape) == j
    exp_fat = (ds / (r + np.where(ds < 0, tn[0], tn[1]))) ** 2 + (
        dv / (r + np.where(dv < 0, tn[2], tn[3]))
    ) ** 2 <= 1.0
    exp_fat &= ((ds / r) ** 2 + (dv / r) ** 2 > 1.0) & zone
    sectors = (
        (ds < 0) & (np.abs(dv) <= np.abs(ds)),
        (ds > 0) & (np.abs(dv) <= np.abs(ds)),
        (dv < 0) & (np.abs(dv) > np.abs(ds)),
        (dv > 0) & (np.abs(dv) > np.abs(ds)),
    )
    fr = [float((fat & sec).sum() / max((exp_fat & sec).sum(), 1)) for sec in sectors]
    fr = [round(min(x, 1.5), 3) for x in fr]
    root_ratio = round(float(root.sum() * FORAMEN_GRID**2 / (np.pi * r * r)), 3)
    return {"sector_fat_fractions": fr, "root_area_ratio": root_ratio,
            "grade": grading.lee_grade(fr, root_ratio)}  # fmt: skip


def disc_height(m: SpineModel, j: int) -> float:
    d = m.discs[j]
    s = np.arange(d.s_top - 4.0, d.s_bot + 4.0, 0.02, dtype=F32)
    z = np.zeros(s.size, F32)
    sm = sample(m, s, z, z)
    return round(float((sm.label == lb.disc_label(d.level)).sum() * 0.02), 3)


def herniation_measure(m: SpineModel, j: int) -> dict[str, Any]:
    d = m.discs[j]
    i = int(m.idx(d.s_mid))
    a, b = float(m.tables["A"][i]), float(m.tables["B"][i])
    th = np.deg2rad(np.arange(-180.0, 180.0, 0.5))
    dth = np.angle(np.exp(1j * (th - d.hern_theta)))
    bump = np.clip(1.0 - (dth / d.hern_halfwidth) ** 2, 0.0, 1.0)
    ext = d.bulge_mm + d.hern_ext * bump
    bv = np.where(np.cos(th) < 0, b, 1.25 * b)
    rad = 1.0 / np.sqrt((np.sin(th) / a) ** 2 + (np.cos(th) / bv) ** 2)
    rad = np.where(np.cos(th) > 1e-3, np.minimum(rad, b / np.maximum(np.cos(th), 1e-3)), rad)
    posterior = np.abs(th) <= np.deg2rad(100.0)
    depth = float(ext[posterior].max())
    circ = float((ext >= grading.rules()["herniation"]["min_extension_mm"]).sum() * 0.5)
    half = ext >= 0.5 * depth
    base = float((rad[half] * np.deg2rad(0.5)).sum())
    grade = grading.herniation_grade(depth, base, circ)
    zone = None
    if grade in ("protrusion", "extrusion"):
        peak = float(th[posterior][np.argmax(ext[posterior])])
        name = next(z for lim, z in ZONE_LIMITS if abs(peak) < lim)
        zone = name if name == "central" else f"{name}_{'left' if peak > 0 else 'right'}"
    return {"posterior_extension_mm": round(depth, 2), "base_mm": round(base, 2),
            "circumference_deg": round(circ, 1), "grade": grade, "zone": zone}  # fmt: skip


def slip_measure(m: SpineModel, j: int) -> float:
    """Slip of the upper vertebra's posterior-inferior corner over the lower's posterior-superior
    corner, along the lower endplate, as % of the lower endplate length (+ = anterior)."""
    d = m.discs[j]
    up, lo = m.vertebrae[d.upper], m.vertebrae[d.lower]
    iu, il = int(m.idx(up.s_bot - 0.5)), int(m.idx(lo.s_top + 0.5))
    corner_u = m.c[iu] + float(m.tables["B"][iu]) * m.nrm[iu]
    corner_l = m.c[il] + float(m.tables["B"][il]) * m.nrm[il]
    slip = float((corner_u - corner_l) @ (-m.nrm[il]))
    return round(100.0 * slip / (2.0 * lo.half_depth), 2)


def modic_measure(m: SpineModel, band_tissue: int, seqs: dict[str, tuple[float, float]],
                  field_t: float) -> dict[str, Any]:  # fmt: skip
    ratios = {}
    for key, (tr, te) in seqs.items():
        marrow = _signal(m, tx.MARROW, field_t, tr, te)
        band = _signal(m, band_tissue, field_t, tr, te) if band_tissue else marrow
        ratios[key] = round(band / marrow, 4)
    return {"t1_ratio": ratios["t1"], "t2_ratio": ratios["t2"],
            "type": grading.modic_type(ratios["t1"], ratios["t2"])}  # fmt: skip


def alignment(m: SpineModel) -> dict[str, Any]:
    l1, s1 = m.vertebra("L1"), m.vertebra("S1")
    t1, t2 = m.t[int(m.idx(l1.s_top + 1))], m.t[int(m.idx(s1.s_top + 1))]
    a1 = np.degrees(np.arctan2(t1[1], -t1[2]))
    a2 = np.degrees(np.arctan2(t2[1], -t2[2]))
    lordosis = float(a2 - a1)
    lo = m.vertebrae[-2]
    k0, k1 = int(m.idx(m.vertebra("T12").s_top)), int(m.idx(lo.s_bot))
    beta = np.degrees(np.arcsin(np.clip(m.t[k0:k1, 0], -1, 1)))
    cobb = float(beta.max() - beta.min())
    if cobb >= 10.0:
        value = "scoliosis"
    elif lordosis < 30.0:
        value = "reduced_lordosis"
    elif lordosis > 68.0:
        value = "increased_lordosis"
    else:
        value = "normal"
    return {"lordosis_deg": round(lordosis, 2), "cobb_deg": round(cobb, 2), "value": value}


def calibrate(m: SpineModel) -> None:
    """Aim once more: the canal and lateral recess interact with bulges, herniations and each
    other, so measure them as drawn and correct the drawing parameters by the shortfall. The
    ground truth is still measured afterwards; this only brings it nearer the sampled targets."""
    from reporter.synth.curve import build_tables

    changed = False
    for d in m.discs:
        fronts = list(d.recess_front)
        for k, side in enumerate((1.0, -1.0)):
            target = d.recess_target[k]
            if target is None:
                continue
            got = recess_depth(m, d, side)
            if abs(got - target) > 0.1:
                fronts[k] = fronts[k] + (target - got)
                changed = True
        d.recess_front = (fronts[0], fronts[1])
        if d.canal_target_area is not None:
            got = canal_section(m, d)["dural_sac_area_mm2"]
            if got > 1.0 and abs(got - d.canal_target_area) > 3.0:
                d.sac_scale = float(min(1.0, d.sac_scale * np.sqrt(d.canal_target_area / got)))
                changed = True
    if changed:
        build_tables(m)


def measure_study(
    m: SpineModel,
    levels: list[str],
    assessable: dict[str, str | None],
    field_t: float,
    t1_seq: tuple[float, float],
    t2_seq: tuple[float, float],
) -> tuple[StudyFindings, dict[str, Any]]:
    """Ground-truth findings for `levels` and the measured values behind every grade."""
    csf = _signal(m, tx.CSF, field_t, *t2_seq)
    out_levels: list[LevelFindings] = []
    meta: dict[str, Any] = {}
    for level in levels:
        reason = assessable.get(level)
        if reason:
            out_levels.append(not_assessable_level(level, reason))
            meta[level] = {"not_assessable": reason}
            continue
        j = next(k for k, d in enumerate(m.discs) if d.level == level)
        d = m.discs[j]
        up, lo = m.vertebrae[d.upper], m.vertebrae[d.lower]
        canal = canal_section(m, d)
        rec = [recess_depth(m, d, 1.0), recess_depth(m, d, -1.0)]
        fl, fr = foramen_measure(m, j, 0), foramen_measure(m, j, 1)
        h = disc_height(m, j)
        hi = round(h / d.expected_height, 4)
        ratio = round(_signal(m, d.nucleus_tissue, field_t, *t2_seq) / csf, 4)
        hern = herniation_measure(m, j)
        slip = slip_measure(m, j)
        seqs = {"t1": t1_seq, "t2": t2_seq}
        mu = modic_measure(m, up.band_inf[0], seqs, field_t)
        ml = modic_measure(m, lo.band_sup[0], seqs, field_t)
        grade = grading.meyerding_grade(slip)
        lf = {
            "level": level,
            "pfirrmann": {"value": grading.pfirrmann_grade(ratio, hi)},
            "disc_narrowing": {"value": grading.narrowing_grade(hi)},
            "disc_bulging": {"value": hern["grade"] == "bulge"},
            "herniation": {
                "value": hern["grade"],
                **({"zone": hern["zone"]} if hern["zone"] else {}),
            },
            "canal_stenosis": {"value": grading.canal_grade(canal["dural_sac_area_mm2"])},
            "foraminal_stenosis_left": {"value": fl["grade"]},
            "foraminal_stenosis_right": {"value": fr["grade"]},
            "subarticular_stenosis_left": {"value": grading.subarticular_grade(rec[0])},
            "subarticular_stenosis_right": {"value": grading.subarticular_grade(rec[1])},
            "modic_upper": {"value": mu["type"]},
            "modic_lower": {"value": ml["type"]},
            "endplate_defect_upper": {"value": up.schmorl_inf[0] > 0},
            "endplate_defect_lower": {"value": lo.schmorl_sup[0] > 0},
            "spondylolisthesis": {
                "value": grade,
                **({"direction": "antero" if slip > 0 else "retro"} if grade else {}),
            },
        }
        out_levels.append(LevelFindings.model_validate(lf))
        meta[level] = {
            **canal,
            "lateral_recess_depth_mm": {"left": rec[0], "right": rec[1]},
            "foramen": {"left": fl, "right": fr},
            "disc_height_mm": h,
            "expected_disc_height_mm": round(d.expected_height, 3),
            "disc_height_index": hi,
            "nucleus_csf_t2_ratio": ratio,
            "herniation": hern,
            "slip_percent": slip,
            "modic_upper": mu,
            "modic_lower": ml,
            "schmorl_depth_mm": {"upper": up.schmorl_inf[0], "lower": lo.schmorl_sup[0]},
            "s_mid_mm": round(d.s_mid, 3),
        }
    al = alignment(m)
    study = {
        "lumbar_vertebrae": m.n_lumbar,
        "transitional": {"value": m.transitional},
        "alignment": {"value": al["value"]},
    }
    findings = StudyFindings.model_validate({"study": study, "levels": out_levels})
    meta["_alignment"] = al
    return findings, meta
