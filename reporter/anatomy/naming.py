"""Level naming: order structures along the spine, find the sacrum, name from the sacrum upward.

Three ways a label map reaches us:
- names given by the source (our convention, TotalSpineSeg, a JSON map): the names are kept,
  and checked for order along the spine (an L3 below L4 makes the naming uncertain);
- vertebrae and discs numbered from the caudal end (SPIDER): resolved here from the lumbosacral
  junction upward;
- anonymous instances (a semantic segmenter's vertebra / disc / sacrum classes): ordered along
  the spine and named from the sacrum upward (`name_instances`).

Enumeration: the number of lumbar-type vertebrae (4, 5 or 6) comes from the names (an L6 label,
an L4-S1 disc) or from the caller (`n_lumbar`, e.g. a segmenter that tells lumbar- from thoracic-
type vertebrae). 4 or 6 is transitional anatomy; the convention used is recorded: with six,
the extra mobile vertebra is L6 (discs L5-L6, L6-S1); with four, the lumbosacral disc is L4-S1.
Without a sacrum in the field of view the names are counted from elsewhere and marked uncertain.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from reporter.anatomy.importers import ORDINAL_DISC_BASE, ORDINAL_VERTEBRA_BASE
from reporter.contracts import labels as L
from reporter.contracts.findings import LEVELS, VERTEBRAE, Transitional, level_name
from reporter.masks import voxels

SACRUM = "S1"
CONVENTION_SACRUM = "counted from the sacrum upward"
CONVENTION_L6 = "six lumbar-type vertebrae: counted from the sacrum upward, the extra one named L6"
CONVENTION_L4 = "four lumbar-type vertebrae: counted from the sacrum upward, lumbosacral disc L4-S1"


@dataclass
class Naming:
    """What naming concluded, for `Anatomy`'s fields."""

    vertebrae: list[str] = field(default_factory=list)  # present, cranio-caudal
    levels: list[str] = field(default_factory=list)  # disc levels present, cranio-caudal
    lumbar_vertebrae: int | None = None
    transitional: Transitional = "none"
    naming_uncertain: bool = False
    convention: str = CONVENTION_SACRUM
    confidence: float = 1.0
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def lumbar_sequence(n_lumbar: int) -> list[str]:
    """Vertebra names cranio-caudal for `n_lumbar` lumbar-type vertebrae: T9 ... L{n}, S1."""
    return [*VERTEBRAE[:4], *(f"L{i}" for i in range(1, n_lumbar + 1)), SACRUM]


def transitional_for(n_lumbar: int | None) -> Transitional:
    return {4: "sacralized_L5", 6: "L6"}.get(n_lumbar or 5, "none")  # type: ignore[return-value]


def convention_for(n_lumbar: int | None) -> str:
    return {4: CONVENTION_L4, 6: CONVENTION_L6}.get(n_lumbar or 5, CONVENTION_SACRUM)


def centroids(labels: np.ndarray, affine: np.ndarray) -> dict[int, tuple[np.ndarray, int]]:
    """Label value -> (centroid in LPS mm, voxel count), background excluded."""
    values = np.unique(labels)
    values = values[values != 0]
    if values.size == 0:
        return {}
    idx = np.searchsorted(values, labels.ravel())
    idx_ok = (labels.ravel() != 0) & (idx < values.size)
    counts = np.bincount(idx[idx_ok], minlength=values.size)
    coords = np.indices(labels.shape).reshape(3, -1)[:, idx_ok]
    sums = np.stack(
        [np.bincount(idx[idx_ok], weights=coords[a], minlength=values.size) for a in range(3)], 1
    )
    means = sums / np.maximum(counts, 1)[:, None]
    lps = means @ affine[:3, :3].T + affine[:3, 3]
    return {int(v): (lps[n], int(counts[n])) for n, v in enumerate(values)}


def spine_axis(points: list[np.ndarray]) -> np.ndarray:
    """Unit vector along the spine pointing cranially (LPS +z is superior)."""
    pts = np.asarray(points, dtype=float).reshape(-1, 3)
    pts = pts[np.isfinite(pts).all(axis=1)]  # an SVD of a NaN never converges
    if len(pts) >= 2 and np.ptp(pts, axis=0).max() > 0:
        _, _, vt = np.linalg.svd(pts - pts.mean(0), full_matrices=False)
        axis = vt[0]
    else:
        axis = np.array([0.0, 0.0, 1.0])
    return axis if axis[2] >= 0 else -axis


def _cranio_caudal(items: dict[int, np.ndarray], axis: np.ndarray) -> list[int]:
    return sorted(items, key=lambda v: -float(items[v] @ axis))


def resolve_ordinals(labels: np.ndarray, n_lumbar: int = 5) -> np.ndarray:
    """Replace SPIDER-style placeholders (n-th vertebra / disc from the caudal end) with names."""
    seq = lumbar_sequence(n_lumbar)[:-1][::-1]  # L{n}, ..., L1, T12, ... caudal-up, mobile only
    out = labels.copy()
    for value in np.unique(labels):
        v = int(value)
        if ORDINAL_VERTEBRA_BASE < v < ORDINAL_DISC_BASE:
            n = v - ORDINAL_VERTEBRA_BASE
            out[labels == v] = L.vertebra_label(seq[n - 1]) if n <= len(seq) else 0
        elif v > ORDINAL_DISC_BASE:
            n = v - ORDINAL_DISC_BASE
            below = SACRUM if n == 1 else (seq[n - 2] if n - 2 < len(seq) else None)
            above = seq[n - 1] if n - 1 < len(seq) else None
            ok = below is not None and above is not None
            out[labels == v] = L.disc_label(level_name(above, below)) if ok else 0  # type: ignore[arg-type]
    return out


def name_labels(
    labels: np.ndarray,
    affine: np.ndarray,
    names_from: str = "names given by the label map",
) -> Naming:
    """Check and summarize a label map whose vertebrae and discs are already named.

    Names are kept; they are checked against their order along the spine. Enumeration comes
    from the names (L6 present -> 6; L4-S1 disc or S1 directly below L4 -> 4).
    """
    cents = centroids(labels, affine)
    verts = {v: c for v, (c, _) in cents.items() if L.is_vertebra(v)}
    discs = {v: c for v, (c, _) in cents.items() if L.is_disc(v)}
    naming = Naming(convention=names_from)
    if not verts and not discs:
        naming.naming_uncertain = True
        naming.confidence = 0.0
        naming.notes.append("no vertebra or disc in the label map")
        return naming
    axis = spine_axis(list(verts.values()) + list(discs.values()))
    order = _cranio_caudal(verts, axis)
    names = [L.label_name(v) for v in order]
    ranks = [VERTEBRAE.index(n) for n in names]
    if ranks != sorted(ranks):
        naming.naming_uncertain = True
        naming.confidence = 0.3
        naming.notes.append(f"vertebra names out of order along the spine: {', '.join(names)}")
    # A disc must lie between the vertebrae it is named after, when both are present.
    for dv, pos in discs.items():
        upper, lower = L.label_name(dv).split("-")
        up = verts.get(L.vertebra_label(upper))
        lo = verts.get(L.vertebra_label(lower))
        if up is not None and lo is not None and not (up @ axis > pos @ axis > lo @ axis):
            naming.naming_uncertain = True
            naming.confidence = min(naming.confidence, 0.3)
            naming.notes.append(f"disc {L.label_name(dv)} is not between {upper} and {lower}")
    naming.vertebrae = sorted(names, key=VERTEBRAE.index)
    disc_names = {L.label_name(v) for v in discs}
    n_lumbar = _lumbar_count(set(names), disc_names)
    naming.lumbar_vertebrae = n_lumbar
    naming.transitional = transitional_for(n_lumbar)
    if n_lumbar in (4, 6):
        naming.convention = f"{names_from}; {convention_for(n_lumbar)}"
    # A disc space exists between two adjacent named vertebrae even where the disc is unlabelled.
    implied = {
        level_name(a, b)
        for a, b in itertools.pairwise(naming.vertebrae)
        if level_name(a, b) in LEVELS and _adjacent(a, b, n_lumbar)
    }
    naming.levels = sorted(disc_names | implied, key=LEVELS.index)
    expected = lumbar_sequence(n_lumbar or 5)[3:]  # T12 .. S1
    naming.missing = [n for n in expected if n not in names]
    if SACRUM not in names and not any(d.endswith("-S1") for d in disc_names):
        naming.notes.append("sacrum not in the label map; names are those given by the source")
    return naming


def _adjacent(upper: str, lower: str, n_lumbar: int | None) -> bool:
    seq = lumbar_sequence(n_lumbar or 5)
    return upper in seq and lower in seq and seq.index(lower) == seq.index(upper) + 1


def _lumbar_count(vertebrae: set[str], discs: set[str]) -> int | None:
    if "L6" in vertebrae or discs & {"L5-L6", "L6-S1"}:
        return 6
    if "L4-S1" in discs:
        return 4
    if "L5" in vertebrae or discs & {"L4-L5", "L5-S1"}:
        return 5
    return None


def name_instances(
    vertebra_masks: list[np.ndarray],
    disc_masks: list[np.ndarray],
    sacrum_mask: np.ndarray | None,
    affine: np.ndarray,
    n_lumbar: int = 5,
) -> tuple[np.ndarray, Naming]:
    """Name anonymous vertebra / disc instances from the sacrum upward.

    `n_lumbar` is the number of lumbar-type vertebrae the caller established (5 unless it
    can tell lumbar- from thoracic-type vertebrae). Returns the label map in our convention
    (on the masks' grid) and the naming. Without a sacrum the lowest vertebra is taken as
    L{n_lumbar} and `naming_uncertain` is set.
    """
    shape = (vertebra_masks or disc_masks or [sacrum_mask])[0].shape  # type: ignore[index]
    out = np.zeros(shape, dtype=np.int16)
    cents = {}
    # An empty mask has no centroid and names nothing: it is left out.
    for n, m in enumerate(vertebra_masks):
        if m.any():
            cents[("v", n)] = _mask_centroid(m, affine)
    for n, m in enumerate(disc_masks):
        if m.any():
            cents[("d", n)] = _mask_centroid(m, affine)
    sacrum_ok = sacrum_mask is not None and bool(sacrum_mask.any())
    if sacrum_ok:
        cents[("s", 0)] = _mask_centroid(sacrum_mask, affine)  # type: ignore[arg-type]
    axis = spine_axis(list(cents.values()))
    # Only vertebrae above the sacrum are mobile; anything at or below it is sacral.
    sacral_height = float(cents[("s", 0)] @ axis) if sacrum_ok else -np.inf
    mobile = [k for k in cents if k[0] == "v" and float(cents[k] @ axis) > sacral_height]
    mobile.sort(key=lambda k: float(cents[k] @ axis))  # caudal first
    seq = lumbar_sequence(n_lumbar)[:-1][::-1]
    naming = Naming(
        lumbar_vertebrae=n_lumbar,
        transitional=transitional_for(n_lumbar),
        convention=convention_for(n_lumbar),
        naming_uncertain=not sacrum_ok,
        confidence=1.0 if sacrum_ok else 0.4,
    )
    if not sacrum_ok:
        naming.convention = "sacrum not in view: lowest vertebra assumed to be the lowest lumbar"
        naming.notes.append("sacrum outside the field of view; level names are uncertain")
    heights: list[tuple[float, str]] = []
    if sacrum_ok:
        out[sacrum_mask.astype(bool)] = L.vertebra_label(SACRUM)  # type: ignore[union-attr]
        heights.append((sacral_height, SACRUM))
    for k, name in zip(mobile, seq, strict=False):
        out[vertebra_masks[k[1]].astype(bool)] = L.vertebra_label(name)
        heights.append((float(cents[k] @ axis), name))
    heights.sort()
    # Each disc takes the level between the named vertebrae it sits between.
    seq_all = lumbar_sequence(n_lumbar)
    for k in (k for k in cents if k[0] == "d"):
        h = float(cents[k] @ axis)
        below = [n for hh, n in heights if hh < h]
        above = [n for hh, n in heights if hh > h]
        if below and above and level_name(above[0], below[-1]) in LEVELS:
            out[disc_masks[k[1]].astype(bool)] = L.disc_label(level_name(above[0], below[-1]))
            continue
        # Centroid heights fail where the field of view cuts the sacrum to a sliver whose
        # centroid lies level with the lumbosacral disc: name the disc from the two
        # structures it touches instead, when they are neighbours in the sequence.
        pair = _touching_pair(disc_masks[k[1]].astype(bool), out, affine)
        if pair is not None and all(n in seq_all for n in pair):
            upper, lower = sorted(pair, key=seq_all.index)
            if seq_all.index(lower) == seq_all.index(upper) + 1:
                out[disc_masks[k[1]].astype(bool)] = L.disc_label(level_name(upper, lower))
    summary = name_labels(out, affine, naming.convention)
    naming.vertebrae, naming.levels, naming.missing = (
        summary.vertebrae,
        summary.levels,
        summary.missing,
    )
    naming.notes += summary.notes
    return out, naming


CONTACT_MM = 4.0  # a disc touches the vertebrae within this distance of its surface


def _touching_pair(
    disc: np.ndarray, named: np.ndarray, affine: np.ndarray
) -> tuple[str, str] | None:
    """The two named vertebrae with the most voxels within CONTACT_MM of the disc."""
    from scipy import ndimage

    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    reach = np.ceil(CONTACT_MM / spacing).astype(int) + 1
    idx = voxels(disc)
    lo = np.maximum(idx.min(0) - reach, 0)
    hi = np.minimum(idx.max(0) + reach + 1, disc.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    dist = ndimage.distance_transform_edt(~disc[box], sampling=spacing)
    near = named[box][dist <= CONTACT_MM]
    near = near[(near >= L.VERTEBRA_BASE) & (near < L.VERTEBRA_BASE + len(VERTEBRAE))]
    values, counts = np.unique(near, return_counts=True)
    if len(values) < 2:
        return None
    top = values[np.argsort(counts)[::-1][:2]]
    return L.label_name(int(top[0])), L.label_name(int(top[1]))


def _mask_centroid(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    idx = voxels(mask).mean(0)
    return idx @ affine[:3, :3].T + affine[:3, 3]
