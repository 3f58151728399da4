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

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from reporter.anatomy import naming as nm
from reporter.anatomy import segmenter_data as sd
from reporter.contracts import labels as lab
from reporter.contracts.anatomy import Anatomy
from reporter.contracts.study import Series

PRIOR_LUMBAR = {4: 0.015, 5: 0.955, 6: 0.03}  # prevalence (see reporter.synth.priors)
# Four or six is reported only when the evidence makes it this probable; below, five is kept.
# Chosen on validation phantoms (654 studies, seeds 100_000..100_115 and 150_000..150_175):
# apart from one 5-lumbar study on which all three signs agree on four (posterior 0.99), no
# 5-lumbar study gives four or six more than 0.46, while 4- and 6-lumbar spines often land
# between 0.7 and 0.95. Calls below UNCERTAIN_BELOW stay marked uncertain.
MIN_POSTERIOR_TRANSITIONAL = 0.7
# Below this posterior for the count used, names are marked uncertain: a wrong count names
# every level wrong, and a wrong name not marked uncertain is checked against the wrong level.
# Chosen on the same 654 validation studies (eval/bench_segmenter.py --rescore): at 0.8, 22 of
# 264 four/six-lumbar spines were named wrong unflagged (most called five at 0.82-0.999); at
# 0.985, 5 of 264 (1.9%), at the cost of 20 of 297 standard studies named right but flagged
# (was 4). 0.98: 6/264 and 16 flagged; 0.99: 3/264 and 27 flagged. 0.985 also sits just above
# the prior alone (0.9845 for five against four), so a count no sign was read for is flagged.
UNCERTAIN_BELOW = 0.985
# A mobile vertebra this many times the median body height (along the spine) among the seven
# lowest is two bodies segmented as one (the disc between them missed): every name above it is
# off by one, so names are marked uncertain. Validation: unmerged bodies reach 1.34 times the
# median, the one merged L4+L5 2.3.
MERGED_HEIGHT_RATIO = 1.6
MERGE_CHECKED = 7  # lowest mobile vertebrae checked: T12 and below in every count hypothesis
# Enumeration evidence as each weight file's segmentation shows it (its enumeration.json beside
# the weights, reporter.anatomy.enumeration_file), measured on validation phantoms (never
# evaluation seeds) with `eval/bench_segmenter.py --calibrate-enumeration DIR`
# (medians and 1.4826 x MAD; one spread for lumbar and thoracic, their root mean square):
# - conus: tip of the segmented cord minus the L1 centroid along the spine (drawn: -6.5 mm,
#   SD 9; a segmenter that misses the thin tapering tip puts it higher);
# - spinous reach of the vertebrae above L4 relative to L2..L4, lumbar and thoracic (drawn:
#   thoracic 6 mm shorter);
# - transverse: log ratio of transverse-process volume to L2..L4's (transverse_volume; drawn:
#   thoracic 12 mm long, L1 15, L2 18, L3 22, with a narrower thoracic canal).
# Weights without a calibration get no enumeration estimate (five lumbar, low confidence):
# evidence read with another model's noise would be weighed wrongly.
# Fewer vertebrae above the sacrum than this: no count is weighed (five, not marked uncertain
# on this account).
MIN_MOBILE_FOR_COUNT = 4
OUTLIER_SHARE = 0.05
OUTLIER_RANGE_MM = 100.0
OUTLIER_RANGE_LOG = 6.0  # the same for a log volume ratio (volumes 1/20 to 20 times L2..L4's)
SPINOUS_MIDLINE_MM = 8.0  # spinous processes are read within this distance of the canal centre
# Posterior elements further out than this from the canal midline are transverse processes (the
# facets end about 21-25 mm out in the phantoms); their volume is compared with L2..L4's in log,
# with a small offset so an empty thoracic level is a finite number.
TRANSVERSE_LATERAL_MM = 22.0
TRANSVERSE_EPS_ML = 0.2
TRANSVERSE_MIN_REF_ML = 0.1
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
    dist = ndimage.distance_transform_edt(~lowest.mask, sampling=spacing)
    touching = sacrum.mask & (dist <= TOUCH_PIXELS * float(spacing[1:].max()))
    if not touching.any():
        return sacrum, discs
    thickness = float(np.median([disc_thickness_mm(d, affine) for d in above]))
    slab = sacrum.mask & (dist <= thickness)
    for d in between:
        slab |= d.mask
    if slab.sum() >= sacrum.voxels:  # nothing of the sacrum would be left: not a disc space
        return sacrum, discs
    idx = np.argwhere(slab).mean(0)
    disc = Instance("disc", slab, idx @ affine[:3, :3].T + affine[:3, 3], int(slab.sum()))
    rest = sacrum.mask & ~slab
    idx = np.argwhere(rest).mean(0)
    sacrum = Instance("sacrum", rest, idx @ affine[:3, :3].T + affine[:3, 3], int(rest.sum()))
    return sacrum, [d for d in discs if not any(d is b for b in between)] + [disc]


def conus_tip(cord: np.ndarray, affine: np.ndarray, axis: np.ndarray) -> float | None:
    """Height (mm along `axis`) of the caudal end of the cord, or None without a cord.

    The cord runs down from the top of the field of view, so only its largest connected piece
    counts: stray cord voxels lower in the canal (cauda equina roots) would fake a low conus.
    """
    if not cord.any():
        return None
    comp, n = ndimage.label(cord, structure=np.ones((3, 3, 3), bool))
    if n > 1:
        sizes = np.bincount(comp.ravel())[1:]
        cord = comp == (int(np.argmax(sizes)) + 1)
    heights = (np.argwhere(cord) @ affine[:3, :3].T + affine[:3, 3]) @ axis
    return float(np.percentile(heights, 1.0))  # the caudal end, robust to a stray voxel


def spinous_reach(
    mobile: list[Instance], generic: np.ndarray, affine: np.ndarray
) -> list[float | None]:
    """Per mobile vertebra (caudal first): how far its posterior elements reach behind the
    vertebral body's posterior wall (mm, 97th percentile, within 8 mm of the midline).

    In the phantoms the spinous processes of lumbar vertebrae project further than thoracic
    ones (reporter.synth.curve), which marks the thoracolumbar junction when no rib is drawn.
    """
    post_idx = np.argwhere(generic == sd.POSTERIOR)
    canal_idx = np.argwhere(generic == sd.CANAL)
    if len(post_idx) == 0 or len(mobile) < 2:
        return [None] * len(mobile)
    post = post_idx @ affine[:3, :3].T + affine[:3, 3]
    mid_x = (
        float((canal_idx @ affine[:3, :3].T + affine[:3, 3])[:, 0].mean())
        if len(canal_idx)
        else float(post[:, 0].mean())
    )
    near_mid = np.abs(post[:, 0] - mid_x) < SPINOUS_MIDLINE_MM
    post = post[near_mid]
    cents = [v.centroid for v in mobile]
    out: list[float | None] = []
    for j, v in enumerate(mobile):
        tangent = cents[min(j + 1, len(cents) - 1)] - cents[max(j - 1, 0)]
        tangent /= np.linalg.norm(tangent)
        back = np.array([0.0, 1.0, 0.0]) - tangent[1] * tangent  # LPS +y is posterior
        back /= np.linalg.norm(back)
        body = np.argwhere(v.mask) @ affine[:3, :3].T + affine[:3, 3] - v.centroid
        along = body @ tangent
        height = float(np.percentile(along, 95) - np.percentile(along, 5))
        wall = float(np.percentile(body @ back, 98))
        rel = post - v.centroid
        ax = rel @ tangent
        # The spinous process leaves the arch at the body's lower half and runs caudally.
        band = (ax > -0.7 * height) & (ax < 0.2 * height)
        out.append(float(np.percentile(rel[band] @ back, 97)) - wall if band.sum() >= 5 else None)
    return out


def transverse_volume(
    mobile: list[Instance], generic: np.ndarray, affine: np.ndarray, axis: np.ndarray
) -> list[float]:
    """Per mobile vertebra (caudal first): volume (ml) of posterior-element voxels more than
    TRANSVERSE_LATERAL_MM from the canal midline, level with the upper half of the body.

    That far out, past the facets, only transverse processes lie. Lumbar ones are long and reach
    the lateral slices of a sagittal stack; thoracic ones (no rib is drawn in the phantoms) are
    short, so the volume drops at the thoracolumbar junction, independently of the spinous step.
    """
    post = np.argwhere(generic == sd.POSTERIOR) @ affine[:3, :3].T + affine[:3, 3]
    canal = np.argwhere(generic == sd.CANAL) @ affine[:3, :3].T + affine[:3, 3]
    if len(post) == 0:
        return [0.0] * len(mobile)
    mid_x = float(canal[:, 0].mean()) if len(canal) else float(post[:, 0].mean())
    lateral = post[np.abs(post[:, 0] - mid_x) > TRANSVERSE_LATERAL_MM]
    voxel_ml = float(np.prod(np.linalg.norm(affine[:3, :3], axis=0))) / 1000.0
    out = []
    for v in mobile:
        along = (np.argwhere(v.mask) @ affine[:3, :3].T + affine[:3, 3] - v.centroid) @ axis
        height = float(np.percentile(along, 95) - np.percentile(along, 5))
        ax = (lateral - v.centroid) @ axis
        # The transverse processes leave the pedicles, in the upper half of the body.
        out.append(float(((ax > -0.1 * height) & (ax < 0.5 * height)).sum()) * voxel_ml)
    return out


def transverse_ratio(volumes: list[float]) -> list[float | None]:
    """log(volume / that of L2..L4) per vertebra, or None everywhere when the reference
    vertebrae show no transverse process (a narrow sagittal stack): nothing to compare with."""
    ref = float(np.mean(volumes[1:4])) if len(volumes) >= 4 else 0.0
    if ref < TRANSVERSE_MIN_REF_ML:
        return [None] * len(volumes)
    return [float(np.log((v + TRANSVERSE_EPS_ML) / (ref + TRANSVERSE_EPS_ML))) for v in volumes]


@dataclass
class Enumeration:
    """How many lumbar-type vertebrae, how sure, and the evidence read."""

    n_lumbar: int = 5
    confidence: float = 0.6  # posterior probability of `n_lumbar`
    posterior: dict[int, float] | None = None
    evidence: list[str] | None = None


def estimate_lumbar_count(
    mobile: list[Instance],
    generic: np.ndarray,
    affine: np.ndarray,
    axis: np.ndarray,
    calibration: Mapping[str, float],
) -> Enumeration:
    """Posterior over 4 / 5 / 6 lumbar-type vertebrae from independent signs of where the
    lumbar spine starts: the conus tip (near L1), the step down in spinous-process reach from
    L1 to T12 and, where the calibration has it, the drop in transverse-process volume from L1
    to T12. `mobile`: vertebrae above the sacrum, caudal first.

    A count is a hypothesis when its L1 is in view or, judged by the conus alone, one vertebra
    above the top of the field of view (see _count_in_view): a four-lumbar spine cut at T12-L1
    must be weighed against five, not named as five unquestioned. Four or six is called only at
    MIN_POSTERIOR_TRANSITIONAL; below that five is kept, with its posterior as the confidence.
    """
    if len(mobile) < MIN_MOBILE_FOR_COUNT:
        return Enumeration(evidence=["thoracolumbar junction not in the field of view"])
    heights = [float(v.centroid @ axis) for v in mobile]
    step = float(np.median(np.diff(heights)))  # vertebral spacing, to place an L1 out of view
    tip = conus_tip(generic == sd.CORD, affine, axis)
    reach = spinous_reach(mobile, generic, affine)
    ref = reach[1:4]  # L2..L4 in every hypothesis: the patient's own lumbar reach
    ref_ok = all(r is not None for r in ref)
    transverse: list[float | None] = [None] * len(mobile)
    if "transverse_sd" in calibration:
        transverse = transverse_ratio(transverse_volume(mobile, generic, affine, axis))
    scores: dict[int, float] = {}
    for n_lumbar, prior in PRIOR_LUMBAR.items():
        if not _count_in_view(n_lumbar, len(mobile)):
            continue
        score = float(np.log(prior))
        if tip is not None:
            l1 = (heights[n_lumbar - 1] if n_lumbar <= len(mobile)
                  else heights[-1] + step * (n_lumbar - len(mobile)))  # fmt: skip
            offset = tip - l1 - calibration["conus_offset_mm"]
            score += _robust_loglik(offset, calibration["conus_sd_mm"])
        if ref_ok:
            base = float(np.mean(ref))  # type: ignore[arg-type]
            rel = [None if r is None else r - base for r in reach]
            score += _kind_loglik(rel, n_lumbar, calibration, "reach")
        score += _kind_loglik(transverse, n_lumbar, calibration, "transverse")
        scores[n_lumbar] = score
    evidence = []
    if tip is None:
        evidence.append("no cord segmented: conus not read")
    if not ref_ok:
        evidence.append("posterior elements of L2-L4 not segmented: spinous step not read")
    if all(t is None for t in transverse):
        evidence.append("no transverse processes at L2-L4: transverse-process drop not read")
    if len(scores) < 2 or (tip is None and not ref_ok and all(t is None for t in transverse)):
        return Enumeration(evidence=evidence or ["one count possible in this field of view"])
    keys = list(scores)
    vals = np.array([scores[k] for k in keys])
    post = np.exp(vals - vals.max())
    post /= post.sum()
    posterior = {k: round(float(p), 4) for k, p in zip(keys, post, strict=True)}
    best = keys[int(np.argmax(post))]
    if best != 5 and posterior[best] < MIN_POSTERIOR_TRANSITIONAL:
        best = 5
    return Enumeration(best, posterior.get(best, 0.0), posterior, evidence)


def _count_in_view(n_lumbar: int, n_mobile: int) -> bool:
    """Can the field of view weigh `n_lumbar`? Its L1 is in view (a top vertebra read as L1 is
    weighed against it being T12 by the conus and the vertebra's own posterior elements), or
    it lies one vertebra above the top of the view, where only the conus can place it (its
    height extrapolated by one vertebral spacing). Without this, four vertebrae in view were
    named L2..L5 unflagged whatever the conus said (validation: every 4-lumbar spine cut at
    T12-L1 named wrong without the uncertain flag)."""
    return n_mobile >= n_lumbar - 1


def _kind_loglik(
    rel: list[float | None], n_lumbar: int, calibration: dict[str, float], sign: str
) -> float:
    """Log-likelihood of one sign ("reach" in mm, "transverse" as a log volume ratio) read on the
    vertebrae above L4 relative to L2..L4, each lumbar below the hypothesised L1 and thoracic
    above it; unread vertebrae add nothing."""
    unit = "_mm" if sign == "reach" else ""
    spread = OUTLIER_RANGE_MM if sign == "reach" else OUTLIER_RANGE_LOG
    total = 0.0
    for j in range(4, min(len(rel), 7)):
        x = rel[j]
        if x is None:
            continue
        expected = calibration[f"{sign}_{'lumbar' if j < n_lumbar else 'thoracic'}{unit}"]
        total += _robust_loglik(x - expected, calibration[f"{sign}_sd{unit}"], spread)
    return total


def _robust_loglik(x: float, sd: float, spread: float = OUTLIER_RANGE_MM) -> float:
    """Gaussian log-likelihood with an outlier floor: one failed measurement (a cord piece
    missed, a spinous process merged with soft tissue) must not decide the count alone."""
    gauss = np.exp(-0.5 * (x / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
    return float(np.log((1 - OUTLIER_SHARE) * gauss + OUTLIER_SHARE / spread))


def _spine_parts(
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
    mobile, _discs, _sacrum, axis = _spine_parts(generic, affine, voxel_ml)
    return mobile, axis


def anatomy_from_generic(
    generic: np.ndarray,
    series: Series,
    detail: str = "",
    enumerate_count: bool = True,
    calibration: Mapping[str, float] | None = None,
) -> Anatomy:
    """Generic class map on `series`' grid -> Anatomy with named vertebrae and discs.

    `enumerate_count` weighs 4 / 5 / 6 lumbar vertebrae on the conus tip and the spinous step
    (estimate_lumbar_count) with the `calibration` of the weights that made `generic` (their
    enumeration.json, reporter.anatomy.enumeration_file); uncalibrated weights (None) keep five
    lumbar vertebrae at low confidence. Names are marked
    uncertain where the evidence leans towards a count it does not prove.
    """
    affine = np.asarray(series.affine, dtype=float)
    voxel_ml = float(np.prod(series.spacing)) / 1000.0
    mobile, discs, sacrum, axis = _spine_parts(generic, affine, voxel_ml)
    sacrum, discs = carve_lumbosacral_disc(
        sacrum, mobile[0] if mobile else None, discs, affine, axis
    )
    enum = Enumeration()
    if sacrum is not None and enumerate_count and calibration is not None:
        enum = estimate_lumbar_count(mobile, generic, affine, axis, calibration)
    n_lumbar, confidence = enum.n_lumbar, enum.confidence
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
    if enum.posterior is not None and confidence < UNCERTAIN_BELOW:
        # The count is the best call but not a safe one: level names may be off by one.
        naming.naming_uncertain = True
        leaning = ", ".join(f"{k} lumbar {p:.3f}" for k, p in sorted(enum.posterior.items()))
        naming.convention += f"; lumbar count uncertain ({leaning})"
    merged = merged_body(mobile, affine, axis)
    if merged is not None:
        naming.naming_uncertain = True
        naming.convention += (
            f"; vertebra {merged + 1} above the sacrum is {MERGED_HEIGHT_RATIO:g}+ times the"
            " median body height (two bodies merged?)"
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


def body_height_mm(v: Instance, affine: np.ndarray, axis: np.ndarray) -> float:
    """Extent of a vertebral body along the spine axis, 5th-95th percentile."""
    along = (np.argwhere(v.mask) @ affine[:3, :3].T) @ axis
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
