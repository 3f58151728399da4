"""Instances of the segmenter's generic classes: vertebrae, discs and the sacrum split into
separate structures, fragments merged, remnant discs inside the sacrum dropped, the lumbosacral
disc carved out, and bodies segmented as one found."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from reporter.anatomy import naming as nm
from reporter.anatomy import segmenter_data as sd
from reporter.masks import bounding_box, voxels

# A mobile vertebra this many times the median body height (along the spine) among the seven
# lowest is two bodies segmented as one (the disc between them missed): every name above it is
# off by one, so names are marked uncertain. Validation: unmerged bodies reach 1.34 times the
# median, the one merged L4+L5 2.3.
MERGED_HEIGHT_RATIO = 1.6
MERGE_CHECKED = 7  # lowest mobile vertebrae checked: T12 and below in every count hypothesis
# Smallest instance kept (ml): a lumbar body is 20-40 ml, a disc 5-15 ml; smaller pieces are
# false positives or structures mostly outside the field of view, which are not named.
MIN_ML = {"vertebra": 3.0, "disc": 1.0, "sacrum": 2.0}
TOUCH_PIXELS = 1.5  # sacrum this close (in-plane pixels) to the lowest vertebra touches it
ERODE_MM = 3.0  # in-plane erosion that separates touching vertebral bodies
_IN_PLANE = np.zeros((3, 3, 3), dtype=bool)
_IN_PLANE[1] = ndimage.generate_binary_structure(2, 1)


@dataclass
class Instance:
    kind: str  # "vertebra" | "sacrum" | "disc"
    mask: np.ndarray  # boolean, native grid
    centroid: np.ndarray  # LPS mm
    voxels: int


def instances(generic: np.ndarray, cls: int, affine: np.ndarray, voxel_ml: float) -> list[Instance]:
    """Instances of one class, specks dropped, fragments of one body merged.

    Neighbouring vertebrae touch wherever the disc between them was missed (thin thoracic
    discs, a narrowed disc), so components are found after an in-plane erosion that cuts such
    bridges, and every voxel of the class then goes to its nearest eroded component.
    """
    kind = {sd.VERTEBRA: "vertebra", sd.SACRUM: "sacrum", sd.DISC: "disc"}[cls]
    mask = generic == cls
    if not mask.any():
        return []
    core = mask
    # Erosion and the nearest-component search only matter inside the mask's bounding box
    # (grown by a voxel): run there, the same voxels and the same nearest components as on the
    # whole volume (every component lies inside the box; outside it the mask is empty).
    box = bounding_box(mask, (1,) * mask.ndim)
    assert box is not None  # the mask is not empty
    if cls == sd.VERTEBRA:
        spacing = float(np.linalg.norm(affine[:3, 1]))
        steps = max(1, round(ERODE_MM / max(spacing, 1e-3)))
        core = np.zeros_like(mask)
        core[box] = ndimage.binary_erosion(mask[box], structure=_IN_PLANE, iterations=steps)
    comp, n = ndimage.label(core)
    if n == 0:
        comp, n = ndimage.label(mask)
    elif core is not mask:
        inner = comp[box]
        _, (kk, jj, ii) = ndimage.distance_transform_edt(inner == 0, return_indices=True)
        nearest = np.zeros_like(comp)
        nearest[box] = np.where(mask[box], inner[kk, jj, ii], 0)
        comp = nearest
    counts = np.bincount(comp.ravel())
    centres = _centres(comp, n)
    # A vertebral body is 20-40 ml and a disc 5+ ml; anything under 0.3 ml is a fragment.
    min_voxels = max(4, int(0.3 / voxel_ml))
    found = [
        Instance(kind, comp == i, np.asarray(c) @ affine[:3, :3].T + affine[:3, 3], int(counts[i]))
        for i, c in enumerate(centres, start=1)
        if counts[i] >= min_voxels
    ]
    return [m for m in _merge_fragments(found) if m.voxels * voxel_ml >= MIN_ML[kind]]


def _centres(comp: np.ndarray, n: int) -> list[tuple[float, ...]]:
    """Index-space centroids of components 1..n of `comp`: the numbers
    `ndimage.center_of_mass(np.ones_like(comp), comp, range(1, n + 1))` gives, bit for bit (the
    same per-label sums in the same order: np.bincount over the raveled array), taken on the
    bounding box of the labelled voxels only (voxels outside it are background, label 0)."""
    if n == 0:
        return []
    box = bounding_box(comp > 0, (0,) * comp.ndim)
    assert box is not None  # n > 0 components: some voxel is labelled
    labels = comp[box].ravel()
    counts = np.bincount(labels, minlength=n + 1)[1 : n + 1].astype(float)
    coords = np.ogrid[tuple(slice(b.start, b.stop) for b in box)]
    shape = comp[box].shape
    sums = [
        np.bincount(labels, np.broadcast_to(c.astype(float), shape).ravel(), n + 1)[1 : n + 1]
        for c in coords
    ]
    return [tuple(v) for v in (np.array(sums) / counts).T]


def _merge_fragments(items: list[Instance], gap_mm: float = 12.0) -> list[Instance]:
    """Pieces of one body (split across slices) have nearly the same centroid; consecutive
    vertebrae or discs are 25-45 mm apart in 3-D (their height difference alone can be small
    where lordosis lays the lumbosacral column almost flat), so pieces closer than 12 mm are one.
    """
    merged: list[Instance] = []
    for item in sorted(items, key=lambda s: -s.voxels):
        near = [
            i for i, m in enumerate(merged) if np.linalg.norm(m.centroid - item.centroid) < gap_mm
        ]
        if near:
            a = merged[near[0]]
            w = a.voxels + item.voxels
            c = (a.centroid * a.voxels + item.centroid * item.voxels) / w
            merged[near[0]] = Instance(a.kind, a.mask | item.mask, c, w)
        else:
            merged.append(item)
    return sorted(merged, key=lambda s: -s.centroid[2])


def _recentre(items: list[Instance], affine: np.ndarray, voxel_ml: float) -> list[Instance]:
    out = []
    for it in items:
        if it.voxels * voxel_ml < MIN_ML[it.kind]:
            continue
        c = voxels(it.mask).mean(0) @ affine[:3, :3].T + affine[:3, 3]
        out.append(Instance(it.kind, it.mask, c, it.voxels))
    return out


def split_by_discs(
    vertebrae: list[Instance], discs: list[Instance], affine: np.ndarray
) -> list[Instance]:
    """Split vertebra instances that run through a disc.

    Where a disc was missed at its rim or on a lateral slice, two bodies stay connected. A disc
    is a flat object: its plane (centroid, normal = direction of least extent) separates the
    body above it from the body below. Voxels of one vertebra instance on both sides of a
    nearby disc plane become two instances.
    """
    planes = []
    for d in discs:
        # In mm: slices are several times thicker than pixels, so index space would bend it.
        pts = voxels(d.mask) @ affine[:3, :3].T
        if len(pts) < 10:
            continue
        centred = pts - pts.mean(0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        extent = float(np.abs(centred @ vt[1]).max())  # in-plane half width, mm
        planes.append((pts.mean(0), vt[2], extent))
    out: list[Instance] = []
    for v in vertebrae:
        idx = voxels(v.mask)
        pts = idx @ affine[:3, :3].T
        key = np.zeros(len(pts), dtype=np.int64)
        for centre, normal, extent in planes:
            rel = pts - centre
            side = rel @ normal
            lateral = np.linalg.norm(rel - np.outer(side, normal), axis=1)
            # Only a disc that lies inside this instance splits it: voxels on both sides
            # within its reach.
            near = lateral < 1.2 * extent
            if (side[near] > 0).sum() > 0.1 * len(pts) and (side[near] < 0).sum() > 0.1 * len(pts):
                key = key * 2 + (side > 0)
        if key.max() == 0:
            out.append(v)
            continue
        for k in np.unique(key):
            sel = idx[key == k]
            mask = np.zeros_like(v.mask)
            mask[tuple(sel.T)] = True
            out.append(Instance(v.kind, mask, v.centroid, len(sel)))
    return out


def _touches(mask: np.ndarray, other: np.ndarray, reach: int = 3) -> int:
    """Voxels of `other` within `reach` in-plane pixels of `mask` (slice by slice)."""
    # Only the mask's bounding box grown by `reach` can be reached: dilate that box alone (the
    # same voxels as dilating the whole volume, in a fraction of the time).
    box = bounding_box(mask, (0, reach + 1, reach + 1))
    if box is None:
        return 0
    grown = ndimage.binary_dilation(mask[box], structure=np.ones((1, 3, 3), bool), iterations=reach)
    return int((grown & other[box]).sum())


def drop_sacral_discs(
    discs: list[Instance], generic: np.ndarray, sacrum: Instance | None
) -> list[Instance]:
    """A disc with sacrum around it and no mobile vertebra next to it is a sacral remnant
    (S1-S2 of a lumbarized S1), not a named level."""
    if sacrum is None:
        return discs
    vert = generic == sd.VERTEBRA
    keep = []
    for d in discs:
        near_sacrum = _touches(d.mask, sacrum.mask)
        near_vertebra = _touches(d.mask, vert)
        if near_sacrum > 0 and near_vertebra < 0.05 * near_sacrum:
            continue
        keep.append(d)
    return keep


def disc_thickness_mm(disc: Instance, affine: np.ndarray) -> float:
    """Extent of a disc along its normal (the direction of least extent), 5th-95th percentile."""
    pts = voxels(disc.mask) @ affine[:3, :3].T
    centred = pts - pts.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    along = centred @ vt[2]
    return float(np.percentile(along, 95) - np.percentile(along, 5))


def distance_within(mask: np.ndarray, spacing: np.ndarray, reach_mm: float) -> np.ndarray:
    """Distance (mm) of every voxel to the nearest voxel of `mask`, exact wherever it is at most
    `reach_mm` and +inf beyond the mask's bounding box grown by `reach_mm` (where it is larger).

    `ndimage.distance_transform_edt(~mask, sampling=spacing)` on that box only: every voxel of
    the mask is inside it, so the nearest one is found there too; a voxel outside is more than
    `reach_mm` away along one axis. Comparisons with thresholds up to `reach_mm` are bit for bit
    those on the whole volume (tests/test_speed_equivalence.py), at a fraction of the cost."""
    if not np.isfinite(reach_mm) or not np.all(np.asarray(spacing) > 0):
        return ndimage.distance_transform_edt(~mask, sampling=spacing)
    margin = tuple(int(np.ceil(reach_mm / float(s))) + 1 for s in spacing)
    box = bounding_box(mask, margin)
    if box is None:
        return ndimage.distance_transform_edt(~mask, sampling=spacing)
    out = np.full(mask.shape, np.inf)
    out[box] = ndimage.distance_transform_edt(~mask[box], sampling=spacing)
    return out


def carve_lumbosacral_disc(
    sacrum: Instance | None,
    lowest: Instance | None,
    discs: list[Instance],
    affine: np.ndarray,
    axis: np.ndarray,
) -> tuple[Instance | None, list[Instance]]:
    """Recover a lumbosacral disc the network took (wholly or partly) for sacrum.

    A thin or dark L5-S1 disc (degenerated, or the rudimentary disc of a sacralized L5) is
    often classed as sacrum, so the sacrum touches the lowest mobile vertebra and the lowest
    level goes unnamed or keeps only a fragment. Every spine has a lumbosacral disc space
    between the lowest mobile vertebra and the sacrum, so where the sacrum touches that
    vertebra, the sacrum voxels within one disc height of it (that of the nearest discs above)
    become the lumbosacral disc, together with the disc pieces found between the two.
    """
    if sacrum is None or lowest is None:
        return sacrum, discs
    h_low, h_sac = float(lowest.centroid @ axis), float(sacrum.centroid @ axis)
    between = [d for d in discs if h_sac < float(d.centroid @ axis) < h_low]
    above = sorted(
        (d for d in discs if float(d.centroid @ axis) > h_low),
        key=lambda d: float(d.centroid @ axis),
    )[:2]
    if not above:
        return sacrum, discs
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    touch_mm = TOUCH_PIXELS * float(spacing[1:].max())
    dist = distance_within(lowest.mask, spacing, touch_mm)
    touching = sacrum.mask & (dist <= touch_mm)
    if not touching.any():
        return sacrum, discs
    thickness = float(np.median([disc_thickness_mm(d, affine) for d in above]))
    if thickness > touch_mm:  # exact up to the larger reach
        dist = distance_within(lowest.mask, spacing, thickness)
    slab = sacrum.mask & (dist <= thickness)
    for d in between:
        slab |= d.mask
    # An empty slab (a disc thinner than the touching margin, as on one 2-D slice) carves no
    # disc; a slab that takes the whole sacrum leaves none: neither is a disc space.
    if not slab.any() or slab.sum() >= sacrum.voxels:
        return sacrum, discs
    idx = voxels(slab).mean(0)
    disc = Instance("disc", slab, idx @ affine[:3, :3].T + affine[:3, 3], int(slab.sum()))
    rest = sacrum.mask & ~slab
    idx = voxels(rest).mean(0)
    sacrum = Instance("sacrum", rest, idx @ affine[:3, :3].T + affine[:3, 3], int(rest.sum()))
    return sacrum, [d for d in discs if not any(d is b for b in between)] + [disc]


def split_spine(
    generic: np.ndarray, affine: np.ndarray, voxel_ml: float
) -> tuple[list[Instance], list[Instance], Instance | None, np.ndarray]:
    """Mobile vertebrae (caudal first), discs, the sacrum (None when absent or a sliver) and the
    spine axis: the steps shared by anatomy_from_generic and the enumeration calibration."""
    vertebrae = instances(generic, sd.VERTEBRA, affine, voxel_ml)
    sacra = instances(generic, sd.SACRUM, affine, voxel_ml)
    sacrum = max(sacra, key=lambda s: s.voxels) if sacra else None
    if sacrum is not None and sacrum.voxels * voxel_ml < 2.0:
        sacrum = None  # a sliver at the FOV edge does not anchor the count
    discs = drop_sacral_discs(instances(generic, sd.DISC, affine, voxel_ml), generic, sacrum)
    vertebrae = _recentre(split_by_discs(vertebrae, discs, affine), affine, voxel_ml)
    axis = nm.spine_axis([v.centroid for v in vertebrae + discs])
    floor = float(sacrum.centroid @ axis) if sacrum is not None else -np.inf
    mobile = sorted(
        (v for v in vertebrae if float(v.centroid @ axis) > floor),
        key=lambda v: float(v.centroid @ axis),
    )
    return mobile, discs, sacrum, axis


def mobile_vertebrae(
    generic: np.ndarray, affine: np.ndarray, voxel_ml: float
) -> tuple[list[Instance], np.ndarray]:
    """Vertebra instances above the sacrum, caudal first, and the spine axis (for calibration
    and inspection; anatomy_from_generic starts with the same steps)."""
    mobile, _discs, _sacrum, axis = split_spine(generic, affine, voxel_ml)
    return mobile, axis


def body_height_mm(v: Instance, affine: np.ndarray, axis: np.ndarray) -> float:
    """Extent of a vertebral body along the spine axis, 5th-95th percentile."""
    along = (voxels(v.mask) @ affine[:3, :3].T) @ axis
    return float(np.percentile(along, 95) - np.percentile(along, 5))


def merged_body(mobile: list[Instance], affine: np.ndarray, axis: np.ndarray) -> int | None:
    """Index (caudal first) of a mobile vertebra among the MERGE_CHECKED lowest that is at least
    MERGED_HEIGHT_RATIO times the median body height: two bodies read as one. None if none."""
    if len(mobile) < 3:
        return None
    heights = [body_height_mm(v, affine, axis) for v in mobile]
    median = float(np.median(heights))
    low = heights[:MERGE_CHECKED]
    j = int(np.argmax(low))
    return j if low[j] >= MERGED_HEIGHT_RATIO * median else None
