"""Measurements per disc level, from the label map and the images of the same study.

Every number is taken in a local frame of the level: `u` is the disc's normal pointing
cranially, `a` runs posteriorly in the mid-sagittal plane, `l` to the patient's left (LPS +x),
origin at the disc centroid. Sagittal measurements use the mid-sagittal slice (through the
thecal sac's centre at the level); cross-sections use the axial slice nearest the disc centre.

Definitions (the phantom generator measures its ground truth from the drawn geometry with the
same definitions, reporter/synth/groundtruth.py; thresholds in rules.json):
- dural_sac_area_mm2: thecal sac (canal + cord) area on the axial slice nearest the disc centre;
  canal_ap_mm: its AP extent on the mid-sagittal slice at the disc's mid-height;
  *_relative: the level's value over the median of the study's own normal levels;
- disc_height_mm: disc height at its AP centre (mid-sagittal); disc_height_index: that over the
  expected height, `expected_height_to_body_depth[level]` x the mean AP depth of the two bodies;
- disc_csf_t2_ratio: median T2 signal of the central disc (nucleus) over that of CSF nearby;
- modic_t{1,2}_ratio_{upper,lower}: median signal of the marrow 1.5-2.8 mm from the endplate
  (past the cortex, inside the thinnest Modic band) over the body's central marrow;
  upper = inferior endplate of the vertebra above, lower = superior endplate of the one below;
- slip_percent: offset of the upper body's posterior-inferior corner from the lower body's
  posterior-superior corner along the lower body's AP axis, in % of the lower body's AP depth
  (positive = anterolisthesis; Meyerding);
- posterior_extension_mm: the largest radial reach of the disc beyond the vertebral outline
  (per sagittal slice, the disc's posterior edge against the bodies' posterior edges on the
  same slice); herniation_base_mm: rim length where the reach is at least half the largest;
  herniation_circumference_deg: rim angle where it reaches the minimum extension;
  herniation_lateral_mm: lateral position of the largest reach (+ = left);
- foraminal_fat_{cranial,caudal,anterior,posterior}_{side}: perineural fat thickness around the
  exiting root in each Lee sector over the thickness of an unnarrowed foramen; root_area_ratio:
  root cross-section over the study's median root (expected);
- lateral_recess_depth_mm_{side}: free AP run (no bone, ligament or disc) behind the disc at
  2 mm inside the bony canal's lateral wall, on the axial slice.

On a single 2-D image (a one-slice label map) every structure is first reduced to its largest
part, and the single-image measurements of reporter.grounding.measures.sagittal2d are added
(disc_body_height_ratio, slip_mm, wall_line_extension_mm, endplate_band_{t1,t2}_{side}, each
image on its own label map).
"""

from __future__ import annotations

import numpy as np

from reporter.contracts import labels as L
from reporter.contracts.anatomy import Anatomy
from reporter.contracts.findings import split_level
from reporter.contracts.study import Series, Study
from reporter.contracts.verdicts import Measurement, ReadOn, Unit
from reporter.grounding import grading
from reporter.grounding.measures.alignment import slip_of
from reporter.grounding.measures.canal import (
    area_from_ap,
    axial_for,
    canal_ap,
    canal_half_width,
    recess_depths,
    recess_depths_axial,
    recess_without_axial,
    thecal_area,
)
from reporter.grounding.measures.disc import (
    body_outline,
    disc_csf_ratio,
    disc_height,
    expected_disc_height,
)
from reporter.grounding.measures.endplate import MODIC_BAND_MM, modic_ratio
from reporter.grounding.measures.foramen import SECTORS, foramen_sectors, root_ratios
from reporter.grounding.measures.frame import (
    Frame,
    Grid,
    find_series,
    grid_for,
    level_frame,
    make_measurement,
    mid_slice,
)
from reporter.grounding.measures.herniation import HERNIATION_UNITS, herniation_reach
from reporter.grounding.measures.sagittal2d import is_single_image, keep_largest_parts
from reporter.grounding.measures.sagittal2d import measure_level as measure_single_image
from reporter.masks import voxels

# --- the study ------------------------------------------------------------------------------------
# Why a measurement is not taken from a label map that cannot support it (the verdict quotes it).
NO_FLAVUM = (
    "not measured: the label map does not delineate the ligamentum flavum, the recess's "
    "posterior wall"
)
RESAMPLED_AXIAL = (
    "not measured: the axial label map is resampled from the sagittal segmentation, so the sac's "
    "width is quantized to the sagittal slice spacing"
)


def measure(study: Study, anatomy: Anatomy) -> dict[str, dict[str, Measurement]]:
    """Measurements at every level the anatomy names (levels outside the FOV are absent).

    Quantities the label map cannot support are kept with no value and the reason as their
    method, so the checker says why a claim is unverifiable: the lateral recess needs the
    ligamentum flavum (the built-in segmenter and SPIDER-style maps do not label it), and the
    dural sac area needs an axial segmentation (the built-in segmenter's axial maps are its
    sagittal map resampled)."""
    ref = find_series(study, anatomy.reference_series_uid, anatomy.reference_stack_index)
    if ref is None or tuple(anatomy.labels.shape) != ref.shape:
        return {}
    single = is_single_image(anatomy.labels)
    # One image: each structure is its largest part (reporter.grounding.measures.sagittal2d).
    grid = Grid(ref, keep_largest_parts(anatomy.labels) if single else anatomy.labels)
    has_flavum = bool(np.any(anatomy.labels == L.LIGAMENTUM_FLAVUM))
    native_axial = anatomy.source != "builtin_segmenter"
    t2 = ref if ref.role == "sag_t2" else study.get("sag_t2")
    t1 = study.get("sag_t1")
    grids = {
        "t1": (t1, grid_for(t1, anatomy, ref)),
        "t2": (t2, grid if t2 is ref else grid_for(t2, anatomy, ref)),
    }
    if single:
        grids = {
            tag: (s, g if g is None or g is grid else Grid(g.series, keep_largest_parts(g.labels)))
            for tag, (s, g) in grids.items()
        }
    axials = [grid_for(s, anatomy, ref) for s in study.all("ax_t2")]
    out: dict[str, dict[str, Measurement]] = {}
    frames: dict[str, Frame] = {}
    for level in anatomy.levels:
        frame = level_frame(grid, level)
        if frame is not None:
            frames[level] = frame
            out[level] = _measure_level(level, frame, grid, grids, axials, single)
            _set_aside(out[level], has_flavum, native_axial)
    if has_flavum:
        recess_without_axial(out, grid, frames)
    _add_relative(out)
    area_from_ap(out)
    root_ratios(out)
    return out


def _set_aside(m: dict[str, Measurement], has_flavum: bool, native_axial: bool) -> None:
    """Blank the measurements this label map cannot support, keeping the reason."""
    for name, src in list(m.items()):
        why = None
        if not has_flavum and name.startswith("lateral_recess_depth_mm_"):
            why = NO_FLAVUM
        elif not native_axial and name == "dural_sac_area_mm2":
            why = RESAMPLED_AXIAL
        if why is not None:
            m[name] = src.model_copy(update={"value": None, "method": why})
    if not has_flavum:
        for side in ("left", "right"):
            name = f"lateral_recess_depth_mm_{side}"
            m.setdefault(name, Measurement(name=name, value=None, unit="mm", method=NO_FLAVUM))


def _measure_level(
    level: str,
    frame: Frame,
    grid: Grid,
    grids: dict[str, tuple[Series | None, Grid | None]],
    axials: list[Grid | None],
    single: bool = False,
) -> dict[str, Measurement]:
    upper, lower = split_level(level)
    k = mid_slice(grid, frame)
    pos = frame.origin
    res: dict[str, Measurement] = {}

    def add(name: str, value: float | None, unit: Unit, method: str, g: Grid | None = grid,
            kk: int | None = k, read_on: ReadOn | None = None) -> None:  # fmt: skip
        res[name] = make_measurement(name, value, unit, level, g, kk, pos, method, read_on)

    up, lo = body_outline(grid, upper, frame, k), body_outline(grid, lower, frame, k)
    bodies = [b for b in (up, lo) if b is not None]
    height = disc_height(grid, level, frame, k, bodies)
    add("disc_height_mm", height, "mm", "disc height at its AP centre, mid-sagittal")
    expected = expected_disc_height(level, [b.depth for b in bodies])
    if height is not None and expected:
        add("disc_height_index", height / expected, "ratio",
            "disc height / (expected height-to-depth ratio x mean body depth)")  # fmt: skip
    add("canal_ap_mm", canal_ap(grid, frame, k), "mm", "thecal sac AP at the disc, mid-sagittal")
    t2, g2 = grids["t2"]
    if t2 is not None and g2 is not None:
        k2 = mid_slice(g2, frame)
        add("disc_csf_t2_ratio", disc_csf_ratio(t2, g2, level, frame, k2), "ratio",
            "median nucleus / median CSF at the level, T2", g=g2, kk=k2)  # fmt: skip
    for tag, (series, g) in grids.items():
        if series is None or g is None:
            continue
        for side, body in (("upper", upper), ("lower", lower)):
            add(f"modic_{tag}_ratio_{side}", modic_ratio(series, g, body, frame, side),
                "ratio", f"marrow {MODIC_BAND_MM[0]}-{MODIC_BAND_MM[1]} mm from the endplate / "
                "central marrow", g=g, kk=mid_slice(g, frame))  # fmt: skip
    if single:
        images = {t: (s, g) for t, (s, g) in grids.items() if s is not None and g is not None}
        for name, value, unit, method, tag in measure_single_image(
            level, frame, grid, images, up, lo
        ):
            add(name, value, unit, method, g=images[tag][1] if tag in images else grid, kk=0)
    if up is not None and lo is not None:
        add("slip_percent", slip_of(up, lo), "%",
            "posterior corners along the lower body's AP axis, % of its depth")  # fmt: skip
        for name, value in herniation_reach(grid, level, frame, upper, lower).items():
            add(name, value, HERNIATION_UNITS[name],
                "sagittal slices: disc edge beyond the bodies' edges", kk=None)  # fmt: skip
    disc_half = 0.5 * (height or 8.0)
    for side in ("left", "right"):
        f = foramen_sectors(grid, frame, side, disc_half, up, lower)
        fk = int(f["slice"]) if "slice" in f else None
        for sector in SECTORS:
            if sector in f:
                add(f"foraminal_fat_{sector}_{side}", f[sector], "ratio",
                    "fat thickness around the exiting root / unnarrowed", kk=fk)  # fmt: skip
        if "root_area_mm2" in f:
            add(f"root_area_mm2_{side}", f["root_area_mm2"], "mm2", "root cross-section", kk=fk)
    ax = axial_for(axials, frame)
    half_width: dict[str, float] = {}
    if ax is not None:
        g, kk = ax
        add("dural_sac_area_mm2", thecal_area(g, kk, frame), "mm2",
            "thecal sac area, axial slice nearest the disc centre", g=g, kk=kk)  # fmt: skip
        half_width = canal_half_width(g, kk, frame, level)
    for side, hw in half_width.items():
        add(f"canal_half_width_mm_{side}", hw, "mm", "bony canal wall from the axial", kk=None)
    if half_width and ax is not None:
        depths = recess_depths(grid, frame, level, upper, lower, half_width)
        axial = recess_depths_axial(ax[0], frame, level, upper, lower, half_width)
        for side in ("left", "right"):
            # The axial block sees the line itself (in the disc plane); sagittal slices sit a
            # few mm beside it and are the fallback (on phantoms: mean error 0.6 vs 1.2 mm).
            vals = [d[side] for d in (axial, depths) if side in d]
            if not vals:
                continue
            depth = float(vals[0])
            on_axial = side in axial
            add(f"lateral_recess_depth_mm_{side}", depth, "mm",
                "free AP run behind the disc 2 mm inside the canal wall, "
                + ("axial block" if on_axial else "sagittal slices beside the line"),
                kk=None, read_on="axial" if on_axial else "sagittal")  # fmt: skip
    return res


def _add_relative(out: dict[str, dict[str, Measurement]]) -> None:
    """Canal AP and area relative to the study's own normal levels."""
    for name, rel, grade_fn in (
        ("canal_ap_mm", "canal_ap_relative", grading.canal_grade_from_ap),
        ("dural_sac_area_mm2", "dural_sac_area_relative", grading.canal_grade),
    ):
        vals = {lv: m[name].value for lv, m in out.items() if name in m and m[name].value}
        normal = [v for v in vals.values() if grade_fn(v) == "none"]  # type: ignore[arg-type]
        if not normal:
            continue
        ref = float(np.median(normal))
        for lv, v in vals.items():
            out[lv][rel] = out[lv][name].model_copy(
                update={
                    "name": rel,
                    "value": round(v / ref, 4),
                    "unit": "ratio",  # type: ignore[operator]
                    "method": "over the median of the study's normal levels",
                }
            )


def central_heights_mm(
    labels: np.ndarray,
    affine: np.ndarray,
    values: list[int],
    lateral_half_mm: float = 3.0,
    ap_fraction: float = 0.4,
) -> dict[int, float]:
    """Mid-sagittal central height of each structure (vertebral body or disc) in a 3-D label map.

    The spine axis at a structure runs between its neighbours' centroids (the structures in
    `values`, ordered along the column); the height is the structure's volume inside a slab of
    +-`lateral_half_mm` about its centre and the central `ap_fraction` of its AP depth, divided by
    that slab's cross-section: the mean central height, unbiased by the voxel grid's tilt.
    """
    from reporter.anatomy.naming import centroids, spine_axis

    cents = {v: c for v, (c, _) in centroids(labels, affine).items() if v in values}
    if not cents:
        return {}
    axis = spine_axis(list(cents.values()))
    order = sorted(cents, key=lambda v: -float(cents[v] @ axis))
    voxel_volume = abs(float(np.linalg.det(affine[:3, :3])))
    out: dict[int, float] = {}
    for n, v in enumerate(order):
        nb = [cents[w] for w in order[max(n - 1, 0) : n + 2]]
        u = nb[0] - nb[-1] if len(nb) > 1 else axis
        u = u / np.linalg.norm(u)
        lat = np.array([1.0, 0.0, 0.0]) - u[0] * u  # left-right, orthogonal to the axis
        lat /= np.linalg.norm(lat)
        a = np.cross(u, lat)
        idx = voxels(labels == v)
        pts = idx @ affine[:3, :3].T + affine[:3, 3] - cents[v]
        ca, cl = pts @ a, pts @ lat
        a0, a1 = np.percentile(ca, [1, 99])
        half_ap = ap_fraction * (a1 - a0) / 2
        sel = (np.abs(cl) <= lateral_half_mm) & (np.abs(ca - (a0 + a1) / 2) <= half_ap)
        if sel.sum() == 0:
            continue
        out[v] = float(sel.sum() * voxel_volume / (2 * lateral_half_mm * 2 * half_ap))
    return out
