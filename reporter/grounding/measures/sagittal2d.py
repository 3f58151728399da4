"""Measurements on one sagittal image (a label map of a single slice, reporter.ingest.image2d):
disc height against the adjacent vertebral bodies' heights, slip of the posterior vertebral
walls, disc extension beyond the posterior wall line, and the endplate marrow bands of each
image (T1 and T2, each read on its own label map).

Everything is read in the level's frame (reporter.grounding.measures.frame: `a` posterior, `u`
cranial, origin at the disc centroid) on the one slice. Bodies are described by
`disc.body_outline` (endplate direction `e`, the facing endplate's pixels `face`), the outline
the volume measurements use; the sacrum's height is no body height and is left out.

Definitions (their grade models: reporter/grounding/image2d_evidence.json):
- disc_body_height_ratio: the disc height at its AP centre (`disc.disc_height`) over the mean
  central height of the adjacent lumbar-type bodies;
- slip_mm: the upper body's posterior-inferior corner against the lower body's
  posterior-superior corner, along the lower body's endplate (positive = anterolisthesis; the
  same offset as `alignment.slip_of`, in mm rather than % of the endplate);
- wall_line_extension_mm: the disc's reach beyond the line through those two corners
  (perpendicular to the line, posterior positive; negative when the disc stays in front of it);
- endplate_band_{t1,t2}_{upper,lower}: the 90th percentile of the marrow within 6 mm of the
  endplate facing the disc (at least 1 mm inside the body's edge, across the central 90 % of its
  AP length) over the median of the body's central marrow (the middle third of its height, 3 mm
  inside its edge). A Modic change rarely spans the whole endplate, so the band's bright tail,
  not its median, carries it (on SPIDER training patients the 90th percentile separated Modic 2
  from none better than the median or the phantoms' 1.5-2.8 mm band).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from reporter.contracts import labels as L
from reporter.contracts.findings import split_level
from reporter.contracts.study import Series
from reporter.contracts.verdicts import Unit
from reporter.grounding.measures.alignment import slip_of
from reporter.grounding.measures.disc import Body, disc_height
from reporter.grounding.measures.endplate import depth_inside
from reporter.grounding.measures.frame import Frame, Grid

BAND_DEPTH_MM = 6.0
BAND_EDGE_MM = 1.0
BAND_AP_FRACTION = 0.9
BAND_PERCENTILE = 90.0
CORE_EDGE_MM = 3.0


def is_single_image(labels: np.ndarray) -> bool:
    """A label map of one slice: a 2-D image's."""
    return labels.ndim == 3 and labels.shape[0] == 1


def keep_largest_parts(labels: np.ndarray) -> np.ndarray:
    """Each vertebra and disc label reduced to its largest connected part on the slice: a
    2-D segmentation's stray islands (a bit of bone named after the nearest body centre) would
    otherwise stretch a body's outline or a disc's reach."""
    out = labels.copy()
    for k in range(out.shape[0]):
        sl = out[k]
        for value in np.unique(sl):
            if not (L.is_vertebra(int(value)) or int(value) >= L.DISC_BASE):
                continue
            comp, n = ndimage.label(sl == value)
            if n <= 1:
                continue
            sizes = np.bincount(comp.ravel())
            sizes[0] = 0
            sl[(comp > 0) & (comp != int(np.argmax(sizes)))] = L.BACKGROUND
    return out


def posterior_corner(body: Body) -> np.ndarray:
    """(a, u) of the body's posterior corner at the endplate facing the disc."""
    return body.face[int(np.argmax(body.face @ body.e))]


def disc_body_height_ratio(
    grid: Grid, level: str, frame: Frame, k: int, bodies: list[Body], lumbar: list[Body]
) -> float | None:
    """The disc's central height (measured between `bodies`, both adjacent outlines) over the
    mean height of the adjacent lumbar-type bodies `lumbar` (the sacrum left out)."""
    if not lumbar:
        return None
    height = disc_height(grid, level, frame, k, bodies)
    body = float(np.mean([b.height for b in lumbar]))
    return height / body if height is not None and body > 0 else None


def slip_mm(up: Body, lo: Body) -> float:
    """The posterior corners' offset along the lower body's endplate, in mm (alignment.slip_of
    in % of that endplate)."""
    return slip_of(up, lo) * lo.depth / 100.0


def wall_line_extension(grid: Grid, level: str, frame: Frame, k: int, up: Body, lo: Body) -> float:
    """The disc's largest reach beyond the line through the two posterior corners (mm,
    posterior positive): pixel centre against pixel centres, so the edges' half pixels cancel;
    the 99.5th percentile, so one stray pixel does not make a herniation."""
    cu, cl = posterior_corner(up), posterior_corner(lo)
    t = cl - cu
    t = t / (np.linalg.norm(t) + 1e-9)
    n = np.array([t[1], -t[0]])
    if n[0] < 0:  # posterior (+a) side
        n = -n
    mask = grid.labels[k] == L.disc_label(level)
    c = grid.slice_coords(k, mask, frame)[:, 1:]
    d = (c - cu) @ n
    return float(np.percentile(d, 99.5))


def endplate_band(series: Series, grid: Grid, body: str, frame: Frame, side: str) -> float | None:
    """The endplate band's bright tail over the body's central marrow on slice 0 of `series`
    (`side` 'upper': the body above the disc, its inferior endplate; 'lower': the body below)."""
    sp = grid.series.spacing
    m = grid.labels[0] == L.vertebra_label(body)
    if m.sum() < 50:
        return None
    dist = depth_inside(m, (sp[1], sp[2]))[m]
    c = grid.slice_coords(0, m, frame)
    a0, a1 = np.percentile(c[:, 1], [2, 98])
    central = np.abs(c[:, 1] - (a0 + a1) / 2) <= 0.5 * BAND_AP_FRACTION * (a1 - a0)
    inward = 1.0 if side == "upper" else -1.0
    face_u = float(np.percentile(c[central, 2], 1 if side == "upper" else 99))
    depth_in = (c[:, 2] - face_u) * inward
    band = central & (depth_in <= BAND_DEPTH_MM) & (dist >= BAND_EDGE_MM)
    height = float(np.ptp(c[:, 2]))
    core = central & (np.abs(depth_in - height / 2) <= height / 6) & (dist >= CORE_EDGE_MM)
    if band.sum() < 8 or core.sum() < 8:
        return None
    jj, ii = np.nonzero(m)
    px = series.pixels[0, jj, ii]
    ref = float(np.median(px[core]))
    return float(np.percentile(px[band], BAND_PERCENTILE)) / ref if ref > 0 else None


Taken = tuple[str, float | None, Unit, str, str]  # name, value, unit, method, series tag


def measure_level(
    level: str,
    frame: Frame,
    grid: Grid,
    images: dict[str, tuple[Series, Grid]],
    up: Body | None,
    lo: Body | None,
) -> list[Taken]:
    """The single-image measurements of one level (`images`: series tag 't1' / 't2' -> the image
    and its own label map; `up`, `lo`: the adjacent bodies' outlines on the reference image)."""
    upper, lower = split_level(level)
    both = [b for b in (up, lo) if b is not None]
    lumbar = [b for b, name in ((up, upper), (lo, lower)) if b is not None and name != "S1"]
    out: list[Taken] = [
        (
            "disc_body_height_ratio",
            disc_body_height_ratio(grid, level, frame, 0, both, lumbar),
            "ratio",
            "disc height at its AP centre / mean height of the adjacent lumbar bodies",
            "ref",
        )
    ]
    if up is not None and lo is not None:
        out.append(("slip_mm", slip_mm(up, lo), "mm",
                    "posterior corners along the lower endplate (+ antero)", "ref"))  # fmt: skip
        out.append(("wall_line_extension_mm", wall_line_extension(grid, level, frame, 0, up, lo),
                    "mm", "disc beyond the line through the posterior corners", "ref"))  # fmt: skip
    for tag, (series, g) in images.items():
        for side, body in (("upper", upper), ("lower", lower)):
            out.append((f"endplate_band_{tag}_{side}", endplate_band(series, g, body, frame, side),
                        "ratio", f"endplate marrow band p{BAND_PERCENTILE:g} (0-{BAND_DEPTH_MM:g} "
                        "mm) / central marrow, on this image's own label map", tag))  # fmt: skip
    return out
