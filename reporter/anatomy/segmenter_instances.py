"""From the segmenter's generic classes to named structures.

The network says "vertebra", "sacrum", "disc", ...; this module splits those into instances,
drops what cannot be a mobile level (fragments, remnant discs inside the sacrum), estimates the
number of lumbar-type vertebrae, and hands the ordering and naming to reporter.anatomy.naming.

Enumeration. Nothing on a sagittal lumbar MRI marks T12 as thoracic except ribs, usually outside
the field of view, so the count of lumbar-type vertebrae is estimated from the conus medullaris:
its tip usually lies at L1 - L2 (Saifuddin et al., Spine 1998: mean lower third of L1, SD about
one third of a vertebral level). Four or six is called only when the tip sits far from where
five would put it (prior prevalence of 4 / 6 lumbar vertebrae about 1.5% / 3%), and the
enumeration confidence says how sure that is. In real patients the conus varies more than in
phantoms; naming from the sacrum upward with five lumbar vertebrae stays the default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from reporter.anatomy import labels as lab
from reporter.anatomy import naming as nm
from reporter.anatomy import segmenter_data as sd
from reporter.anatomy.anatomy import Anatomy
from reporter.study import Series

# Conus tip relative to the centroid of L1 along the spine, and its spread (mm; phantom and
# literature agree on about a quarter body height below the centroid, SD ~9 mm).
CONUS_OFFSET_MM = -6.5
CONUS_SD_MM = 9.0
PRIOR_LUMBAR = {4: 0.015, 5: 0.955, 6: 0.03}
# Four or six is reported only when the conus makes it this probable; below, five is kept.
MIN_POSTERIOR_TRANSITIONAL = 0.95
# Smallest instance kept (ml): a lumbar body is 20-40 ml, a disc 5-15 ml; smaller pieces are
# false positives or structures mostly outside the field of view, which are not named.
MIN_ML = {"vertebra": 3.0, "disc": 1.0, "sacrum": 2.0}
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
    if cls == sd.VERTEBRA:
        spacing = float(np.linalg.norm(affine[:3, 1]))
        steps = max(1, round(ERODE_MM / max(spacing, 1e-3)))
        core = ndimage.binary_erosion(mask, structure=_IN_PLANE, iterations=steps)
    comp, n = ndimage.label(core)
    if n == 0:
        comp, n = ndimage.label(mask)
    elif core is not mask:
        _, (kk, jj, ii) = ndimage.distance_transform_edt(comp == 0, return_indices=True)
        comp = np.where(mask, comp[kk, jj, ii], 0)
    counts = np.bincount(comp.ravel())
    centres = ndimage.center_of_mass(np.ones_like(comp), comp, range(1, n + 1))
    # A vertebral body is 20-40 ml and a disc 5+ ml; anything under 0.3 ml is a fragment.
    min_voxels = max(4, int(0.3 / voxel_ml))
    found = [
        Instance(kind, comp == i, np.asarray(c) @ affine[:3, :3].T + affine[:3, 3], int(counts[i]))
        for i, c in enumerate(centres, start=1)
        if counts[i] >= min_voxels
    ]
    return [m for m in _merge_fragments(found) if m.voxels * voxel_ml >= MIN_ML[kind]]


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
        c = np.argwhere(it.mask).mean(0) @ affine[:3, :3].T + affine[:3, 3]
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
        pts = np.argwhere(d.mask) @ affine[:3, :3].T
        if len(pts) < 10:
            continue
        centred = pts - pts.mean(0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        extent = float(np.abs(centred @ vt[1]).max())  # in-plane half width, mm
        planes.append((pts.mean(0), vt[2], extent))
    out: list[Instance] = []
    for v in vertebrae:
        idx = np.argwhere(v.mask)
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
    grown = ndimage.binary_dilation(mask, structure=np.ones((1, 3, 3), bool), iterations=reach)
    return int((grown & other).sum())


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
    pts = np.argwhere(disc.mask) @ affine[:3, :3].T
    centred = pts - pts.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    along = centred @ vt[2]
    return float(np.percentile(along, 95) - np.percentile(along, 5))


def carve_lumbosacral_disc(
    sacrum: Instance | None,
    lowest: Instance | None,
    discs: list[Instance],
    affine: np.ndarray,
    axis: np.ndarray,
) -> tuple[Instance | None, list[Instance]]:
    """Recover a lumbosacral disc the network took for sacrum.

    A thin or dark L5-S1 disc (degenerated, or the rudimentary disc of a sacralized L5) is
    often classed as sacrum, so the sacrum seems to touch the lowest mobile vertebra and the
    lowest level goes unnamed. Every spine has a lumbosacral disc space between the lowest
    mobile vertebra and the sacrum, so when no disc of at least half the size of the discs
    just above is found there, the sacrum voxels within one disc height (that of the nearest
    discs above) of the lowest vertebra become the disc, together with any fragment found.
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
    ref_voxels = float(np.median([d.voxels for d in above]))
    if any(d.voxels >= 0.5 * ref_voxels for d in between):
        return sacrum, discs
    thickness = float(np.median([disc_thickness_mm(d, affine) for d in above]))
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    dist = ndimage.distance_transform_edt(~lowest.mask, sampling=spacing)
    slab = sacrum.mask & (dist <= thickness)
    for d in between:
        slab |= d.mask
    if not slab.any():
        return sacrum, discs
    idx = np.argwhere(slab).mean(0)
    disc = Instance("disc", slab, idx @ affine[:3, :3].T + affine[:3, 3], int(slab.sum()))
    rest = sacrum.mask & ~slab
    idx = np.argwhere(rest).mean(0)
    sacrum = Instance("sacrum", rest, idx @ affine[:3, :3].T + affine[:3, 3], int(rest.sum()))
    return sacrum, [d for d in discs if not any(d is b for b in between)] + [disc]


def estimate_lumbar_count(
    mobile: list[Instance], cord: np.ndarray, affine: np.ndarray, axis: np.ndarray
) -> tuple[int, float]:
    """(number of lumbar-type vertebrae, confidence) from the conus tip; (5, low) without it.

    `mobile`: vertebrae above the sacrum, caudal first.
    """
    if not cord.any() or len(mobile) < 4:
        return 5, 0.6
    pts = np.argwhere(cord) @ affine[:3, :3].T + affine[:3, 3]
    heights = pts @ axis
    tip = float(np.percentile(heights, 1.0))  # the caudal end, robust to a stray voxel
    scores = {}
    for n_lumbar, prior in PRIOR_LUMBAR.items():
        if n_lumbar > len(mobile):
            continue
        l1 = float(mobile[n_lumbar - 1].centroid @ axis)
        d = tip - (l1 + CONUS_OFFSET_MM)
        scores[n_lumbar] = np.log(prior) - 0.5 * (d / CONUS_SD_MM) ** 2
    if not scores:
        return 5, 0.6
    vals = np.array(list(scores.values()))
    post = np.exp(vals - vals.max())
    post /= post.sum()
    best = max(scores, key=lambda k: scores[k])
    p_best = float(post[list(scores).index(best)])
    if best != 5 and p_best < MIN_POSTERIOR_TRANSITIONAL:
        return 5, 1.0 - p_best
    return int(best), p_best


def anatomy_from_generic(
    generic: np.ndarray, series: Series, detail: str = "", enumerate_from_conus: bool = False
) -> Anatomy:
    """Generic class map on `series`' grid -> Anatomy with named vertebrae and discs.

    `enumerate_from_conus` estimates 4 / 6 lumbar vertebrae from the conus tip. Off by default:
    with the shipped weights the cord is segmented too unreliably (phantom Dice ~0.58) and the
    estimate cost more standard studies than it won transitional ones (eval/bench_segmenter.py).
    """
    affine = np.asarray(series.affine, dtype=float)
    voxel_ml = float(np.prod(series.spacing)) / 1000.0
    vertebrae = instances(generic, sd.VERTEBRA, affine, voxel_ml)
    sacra = instances(generic, sd.SACRUM, affine, voxel_ml)
    sacrum = max(sacra, key=lambda s: s.voxels) if sacra else None
    if sacrum is not None and sacrum.voxels * voxel_ml < 2.0:
        sacrum = None  # a sliver at the FOV edge does not anchor the count
    discs = drop_sacral_discs(instances(generic, sd.DISC, affine, voxel_ml), generic, sacrum)
    vertebrae = _recentre(split_by_discs(vertebrae, discs, affine), affine, voxel_ml)

    axis = nm.spine_axis([v.centroid for v in vertebrae + discs])
    sacral_height = float(sacrum.centroid @ axis) if sacrum is not None else -np.inf
    mobile = sorted(
        (v for v in vertebrae if float(v.centroid @ axis) > sacral_height),
        key=lambda v: float(v.centroid @ axis),
    )
    sacrum, discs = carve_lumbosacral_disc(
        sacrum, mobile[0] if mobile else None, discs, affine, axis
    )
    n_lumbar, confidence = 5, 0.6
    if sacrum is not None and enumerate_from_conus:
        n_lumbar, confidence = estimate_lumbar_count(mobile, generic == sd.CORD, affine, axis)
    if mobile or discs or sacrum is not None:
        named, naming = nm.name_instances(
            [v.mask for v in mobile],
            [d.mask for d in discs],
            sacrum.mask if sacrum is not None else None,
            affine,
            n_lumbar=n_lumbar,
        )
    else:  # nothing spinal found: say so rather than name anything
        named = np.zeros(generic.shape, dtype=np.int16)
        naming = nm.Naming(
            naming_uncertain=True,
            confidence=0.0,
            convention="no vertebra, disc or sacrum found",
            missing=nm.lumbar_sequence(5)[3:],
        )
    out = _tissues(generic, affine)
    structures = named > 0
    out[structures] = named[structures]
    return Anatomy(
        reference_series_uid=series.series_uid,
        reference_stack_index=series.stack_index,
        labels=out,
        affine=affine,
        source="builtin_segmenter",
        source_detail=detail,
        vertebrae=naming.vertebrae,
        levels=naming.levels,
        lumbar_vertebrae=naming.lumbar_vertebrae,
        transitional=naming.transitional,
        enumeration_confidence=min(naming.confidence, confidence),
        naming_uncertain=naming.naming_uncertain,
        naming_convention=naming.convention,
        missing=naming.missing,
    )


def _tissues(generic: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Non-level classes in our convention; foramina and roots get their side from the slice."""
    out = np.zeros(generic.shape, dtype=np.int16)
    out[generic == sd.CANAL] = lab.CANAL
    out[generic == sd.CORD] = lab.CORD
    out[generic == sd.POSTERIOR] = lab.POSTERIOR_ELEMENTS
    left = _left_slices(generic, affine)[:, None, None]
    out[(generic == sd.FORAMEN) & left] = lab.FORAMEN_LEFT
    out[(generic == sd.FORAMEN) & ~left] = lab.FORAMEN_RIGHT
    out[(generic == sd.ROOT) & left] = lab.ROOT_LEFT
    out[(generic == sd.ROOT) & ~left] = lab.ROOT_RIGHT
    return out


def _left_slices(generic: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Per slice: does it lie on the patient's left of the canal (LPS +x)?"""
    n = generic.shape[0]
    mid = np.array([[k, generic.shape[1] / 2, generic.shape[2] / 2] for k in range(n)])
    x = (mid @ affine[:3, :3].T + affine[:3, 3])[:, 0]
    canal = np.nonzero(generic == sd.CANAL)[0]
    centre = float(np.mean(x[canal])) if canal.size else float(np.mean(x))
    return x > centre
