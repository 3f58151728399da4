"""How many lumbar-type vertebrae: independent signs of where the lumbar spine starts, weighed
against the prior prevalence of four, five and six.

Nothing on a sagittal lumbar MRI marks T12 as thoracic except ribs, usually outside the field of
view, so the count of lumbar-type vertebrae is estimated from the conus medullaris: its tip
usually lies at L1 - L2 (Saifuddin et al., Spine 1998: mean lower third of L1, SD about one third
of a vertebral level), with the step down in spinous-process reach and the drop in
transverse-process volume from L1 to T12 as further signs. Four or six is called only when the
evidence sits far from where five would put it (prior prevalence of 4 / 6 lumbar vertebrae about
1.5% / 3%), and the enumeration confidence says how sure that is. In real patients the conus
varies more than in phantoms; naming from the sacrum upward with five lumbar vertebrae stays the
default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from reporter.anatomy import segmenter_data as sd
from reporter.anatomy.spine_parts import Instance
from reporter.masks import voxels

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
    heights = (voxels(cord) @ affine[:3, :3].T + affine[:3, 3]) @ axis
    return float(np.percentile(heights, 1.0))  # the caudal end, robust to a stray voxel


def spinous_reach(
    mobile: list[Instance], generic: np.ndarray, affine: np.ndarray
) -> list[float | None]:
    """Per mobile vertebra (caudal first): how far its posterior elements reach behind the
    vertebral body's posterior wall (mm, 97th percentile, within 8 mm of the midline).

    In the phantoms the spinous processes of lumbar vertebrae project further than thoracic
    ones (reporter.synth.curve), which marks the thoracolumbar junction when no rib is drawn.
    """
    post_idx = voxels(generic == sd.POSTERIOR)
    canal_idx = voxels(generic == sd.CANAL)
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
        body = voxels(v.mask) @ affine[:3, :3].T + affine[:3, 3] - v.centroid
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
    post = voxels(generic == sd.POSTERIOR) @ affine[:3, :3].T + affine[:3, 3]
    canal = voxels(generic == sd.CANAL) @ affine[:3, :3].T + affine[:3, 3]
    if len(post) == 0:
        return [0.0] * len(mobile)
    mid_x = float(canal[:, 0].mean()) if len(canal) else float(post[:, 0].mean())
    lateral = post[np.abs(post[:, 0] - mid_x) > TRANSVERSE_LATERAL_MM]
    voxel_ml = float(np.prod(np.linalg.norm(affine[:3, :3], axis=0))) / 1000.0
    out = []
    for v in mobile:
        along = (voxels(v.mask) @ affine[:3, :3].T + affine[:3, 3] - v.centroid) @ axis
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
