"""What the built-in segmenter sees: sagittal slices on a fixed mm grid, its generic classes, and
the training sources (phantoms, real lumbar3d volumes) reduced to one `SliceStack` shape.

The network never sees level names: vertebrae and discs are generic classes and the names are
assigned afterwards by ordering along the spine (see reporter.anatomy.segmenter). That keeps the
network's job local (what tissue is this pixel) and leaves counting to code that can say when
it is unsure.

Canonical slice orientation: rows run superior -> inferior, columns anterior -> posterior, in
`SPACING_MM` steps. Every source is brought into it from its affine, so a series stored with
another in-plane orientation is segmented the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from reporter.contracts import labels as lab
from reporter.errors import InputDataError, InputMissingError
from reporter.geometry import nifti_to_lps_affine

SPACING_MM = 1.0
# 2.5-D input: the neighbour slices the segmenter sees on either side are this far away (or the
# adjacent slice when slices are thicker), so a thin-slice volume and a 4 mm sagittal series
# give the network neighbours at a similar distance.
CONTEXT_MM = 4.0

# Generic classes predicted by the network.
BACKGROUND = 0
VERTEBRA = 1  # vertebral body above the sacrum (T9 ... L6)
SACRUM = 2  # S1 / sacrum: found separately because naming counts from it
DISC = 3
CANAL = 4
CORD = 5
FORAMEN = 6  # perineural foraminal fat; the side comes from the slice position
ROOT = 7
POSTERIOR = 8
CLASS_NAMES: tuple[str, ...] = (
    "background",
    "vertebra",
    "sacrum",
    "disc",
    "canal",
    "cord",
    "foramen",
    "root",
    "posterior_elements",
)
N_CLASSES = len(CLASS_NAMES)
ALL_CLASSES: frozenset[int] = frozenset(range(1, N_CLASSES))


def _generic_lut() -> np.ndarray:
    lut = np.zeros(max(lab.ALL_LABELS) + 1, dtype=np.uint8)
    lut[lab.CANAL] = CANAL
    lut[lab.CORD] = CORD
    lut[[lab.FORAMEN_LEFT, lab.FORAMEN_RIGHT]] = FORAMEN
    lut[[lab.ROOT_LEFT, lab.ROOT_RIGHT]] = ROOT
    lut[lab.POSTERIOR_ELEMENTS] = POSTERIOR
    for value in lab.ALL_LABELS:
        if lab.is_vertebra(value):
            lut[value] = SACRUM if lab.label_name(value) == "S1" else VERTEBRA
        elif lab.is_disc(value):
            lut[value] = DISC
    return lut


_LUT = _generic_lut()


def to_generic(labels: np.ndarray) -> np.ndarray:
    """Our label convention (reporter.contracts.labels) -> the segmenter's generic classes."""
    values = np.asarray(labels).astype(np.int64)
    out = np.zeros(values.shape, dtype=np.uint8)
    known = (values >= 0) & (values < len(_LUT))
    out[known] = _LUT[values[known]]
    return out


def slice_spacing_mm(affine: np.ndarray) -> float:
    """Distance between slice centres of a (slice, row, col) series: the slice axis's length."""
    return float(np.linalg.norm(np.asarray(affine, dtype=float)[:3, 0]))


def context_offset(slice_mm: float) -> int:
    """Slices between the centre slice and each neighbour of the 2.5-D input."""
    if not np.isfinite(slice_mm) or slice_mm <= 0:
        return 1
    return max(1, round(CONTEXT_MM / slice_mm))


def context_indices(n: int, k: int, n_side: int, offset: int) -> list[int]:
    """Slice indices of the input channels for slice k: k - n_side*offset .. k + n_side*offset,
    clamped at the ends of the series (the edge slice stands in for a missing neighbour)."""
    return [min(n - 1, max(0, k + j * offset)) for j in range(-n_side, n_side + 1)]


def with_context(volume: np.ndarray, n_side: int, offset: int) -> np.ndarray:
    """(n, H, W) -> (n, 2*n_side+1, H, W): every slice with its neighbours as channels."""
    if n_side == 0:
        return volume[:, None]
    n = len(volume)
    return np.stack([volume[context_indices(n, k, n_side, offset)] for k in range(n)])


def normalize_intensity(pixels: np.ndarray) -> np.ndarray:
    """Per-series scaling: 1st..99th percentile of the non-zero voxels to 0..1 (clipped at 2).

    Per series, not per slice, so lateral slices keep their darker look relative to the middle.
    """
    data = np.asarray(pixels, dtype=np.float32)
    body = data[data > 0]
    if body.size < 16:
        body = data.ravel()
    lo, hi = np.percentile(body, [1.0, 99.0])
    scale = float(hi - lo) if hi > lo else 1.0
    return np.clip((data - lo) / scale, 0.0, 2.0).astype(np.float32)


@dataclass(frozen=True)
class CanonicalFrame:
    """How a (slice, row, col) series maps onto canonical slices and back."""

    native_shape: tuple[int, int, int]
    transpose: bool  # swap row and column so rows become the superior-inferior axis
    flip_rows: bool  # after the transpose: flip so rows run superior -> inferior
    flip_cols: bool  # ... and columns anterior -> posterior
    canonical_shape: tuple[int, int]  # (H, W) on the SPACING_MM grid

    def to_canonical(self, volume: torch.Tensor, mode: str) -> torch.Tensor:
        """(n, C, rows, cols) native -> (n, C, H, W) canonical."""
        x = volume
        if self.transpose:
            x = x.transpose(2, 3)
        dims = [d for d, f in ((2, self.flip_rows), (3, self.flip_cols)) if f]
        if dims:
            x = torch.flip(x, dims)
        return _resize(x, self.canonical_shape, mode)

    def to_native(self, volume: torch.Tensor, mode: str) -> torch.Tensor:
        """(n, C, H, W) canonical -> (n, C, rows, cols) native."""
        rows, cols = self.native_shape[1:]
        size = (cols, rows) if self.transpose else (rows, cols)
        x = _resize(volume, size, mode)
        dims = [d for d, f in ((2, self.flip_rows), (3, self.flip_cols)) if f]
        if dims:
            x = torch.flip(x, dims)
        if self.transpose:
            x = x.transpose(2, 3)
        return x


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if mode == "nearest":
        return F.interpolate(x.float(), size=size, mode="nearest-exact").to(x.dtype)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def canonical_frame(
    shape: tuple[int, int, int], affine: np.ndarray, spacing_mm: float = SPACING_MM
) -> CanonicalFrame:
    """Orientation from the affine: the in-plane axis closer to patient S-I becomes the rows.

    LPS: +z is superior, +y posterior. Raises InputDataError for a series whose slices do not
    contain the superior-inferior axis (an axial series handed to a sagittal model).
    """
    aff = np.asarray(affine, dtype=float)
    row_dir, col_dir = aff[:3, 1], aff[:3, 2]
    row_mm, col_mm = float(np.linalg.norm(row_dir)), float(np.linalg.norm(col_dir))
    if row_mm == 0 or col_mm == 0:
        raise InputDataError("the series affine has a zero in-plane pixel spacing")
    row_u, col_u = row_dir / row_mm, col_dir / col_mm
    transpose = abs(col_u[2]) > abs(row_u[2])
    vert, horiz = (col_u, row_u) if transpose else (row_u, col_u)
    if abs(vert[2]) < 0.5:
        raise InputDataError(
            "the series is not sagittal enough for the segmenter "
            "(no in-plane superior-inferior axis)"
        )
    vert_mm, horiz_mm = (col_mm, row_mm) if transpose else (row_mm, col_mm)
    n_vert = shape[2] if transpose else shape[1]
    n_horiz = shape[1] if transpose else shape[2]
    height = max(8, round(n_vert * vert_mm / spacing_mm))
    width = max(8, round(n_horiz * horiz_mm / spacing_mm))
    return CanonicalFrame(
        native_shape=(int(shape[0]), int(shape[1]), int(shape[2])),
        transpose=bool(transpose),
        flip_rows=bool(vert[2] > 0),  # rows must go towards -z (inferior)
        flip_cols=bool(horiz[1] < 0),  # columns must go towards +y (posterior)
        canonical_shape=(height, width),
    )


@dataclass
class SliceStack:
    """Canonical slices of one series with generic labels, ready for sampling.

    `annotated`: the generic classes this source labels; the others are unknown, not absent
    (a real volume with vertebral body masks says nothing about discs). `valid_rows`: rows where
    the annotated classes are complete (a vb3 volume labels L1..L5 but not T12 or the sacrum).
    `tissue`: the full label map in our convention, for label-driven intensity randomization.
    """

    name: str
    image: np.ndarray  # (n, H, W) float32, normalized
    labels: np.ndarray  # (n, H, W) uint8 generic
    annotated: frozenset[int] = ALL_CLASSES
    valid_rows: tuple[int, int] | None = None
    tissue: np.ndarray | None = None  # (n, H, W) int16 our convention
    slice_weights: np.ndarray = field(default_factory=lambda: np.zeros(0))
    slice_mm: float = 4.0  # distance between slices, for the 2.5-D neighbours

    def __post_init__(self) -> None:
        if self.slice_weights.size == 0:
            # Slices with labelled spine structures are drawn more often than lateral ones.
            fg = (self.labels > 0).reshape(len(self.labels), -1).mean(axis=1)
            w = 0.15 + (fg > 0.002).astype(np.float64)
            self.slice_weights = w / w.sum()


def stack_from_series(
    name: str,
    pixels: np.ndarray,
    affine: np.ndarray,
    labels: np.ndarray,
    annotated: frozenset[int] = ALL_CLASSES,
    keep_tissue: bool = True,
) -> SliceStack:
    """A series (pixels + our-convention labels on its grid) -> a canonical SliceStack."""
    frame = canonical_frame(pixels.shape, affine)
    img = torch.from_numpy(normalize_intensity(pixels))[:, None]
    lbl = torch.from_numpy(np.asarray(labels).astype(np.int16))[:, None]
    img_c = frame.to_canonical(img, "bilinear")[:, 0].numpy()
    tissue = frame.to_canonical(lbl, "nearest")[:, 0].numpy().astype(np.int16)
    return SliceStack(
        name=name,
        image=np.ascontiguousarray(img_c, dtype=np.float32),
        labels=to_generic(tissue),
        annotated=annotated,
        tissue=tissue if keep_tissue else None,
        slice_mm=slice_spacing_mm(affine),
    )


def phantom_stacks(phantom: object) -> list[SliceStack]:
    """The sagittal T2 and T1 series of a reporter.synth Phantom with their ground-truth labels."""
    study = phantom.study  # type: ignore[attr-defined]
    anatomy = phantom.anatomy  # type: ignore[attr-defined]
    seed = getattr(phantom, "meta", {}).get("seed", "?")
    out: list[SliceStack] = []
    for role in ("sag_t2", "sag_t1"):
        series = study.get(role)
        if series is None:
            continue
        if series.series_uid == anatomy.reference_series_uid:
            labels = anatomy.labels
        else:
            labels = anatomy.extra_labels.get(f"{series.series_uid}#{series.stack_index}")
        if labels is None or labels.shape != series.pixels.shape:
            continue
        out.append(
            stack_from_series(f"phantom-{seed}-{role}", series.pixels, series.affine, labels)
        )
    return out


# --- real lumbar3d volumes -----------------------------------------------------------------

# The patient-level split, fixed here so that every run holds out the same people. Each file
# is one person (MyoSegmenTUM volunteers vb3_*, Menezes-Reis adults ivd_*).
LUMBAR3D_HELDOUT: tuple[str, ...] = ("vb3_08", "vb3_09", "vb3_10", "ivd_25")


@dataclass
class RealVolume:
    name: str
    stack: SliceStack
    structure: str  # "vertebra" or "disc"
    heldout: bool
    pixels: np.ndarray  # the series as stored (slice, row, col), for inference
    affine: np.ndarray


def lumbar3d_names(folder: Path) -> list[str]:
    return sorted(p.name[: -len("_seg.nii.gz")] for p in folder.glob("*_seg.nii.gz"))


def lumbar3d_series(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A lumbar3d NIfTI -> (pixels (slice, row, col) sagittal, LPS affine) in our convention.

    The files store (S->I, A->P, L-R); our series keep the slice axis first, so the L-R axis
    moves to the front.
    """
    import nibabel as nib

    img = nib.load(str(path))
    data = np.asarray(img.dataobj, dtype=np.float32)
    if data.ndim != 3:
        raise InputDataError(f"{path.name}: expected a 3-D volume, got shape {data.shape}")
    lps = nifti_to_lps_affine(img.affine)
    pixels = np.transpose(data, (2, 0, 1))
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1], affine[:3, 2] = lps[:3, 2], lps[:3, 0], lps[:3, 1]
    affine[:3, 3] = lps[:3, 3]
    return np.ascontiguousarray(pixels), affine


def load_lumbar3d(folder: Path, name: str) -> RealVolume:
    """One lumbar3d volume with its mask, translated to generic classes via its JSON map."""
    vol_path = folder / f"{name}.nii.gz"
    seg_path = folder / f"{name}_seg.nii.gz"
    map_path = folder / f"{name}_seg.json"
    for p in (vol_path, seg_path, map_path):
        if not p.is_file():
            raise InputMissingError(f"lumbar3d file missing: {p}")
    names = json.loads(map_path.read_text())["labels"]
    pixels, affine = lumbar3d_series(vol_path)
    seg, _ = lumbar3d_series(seg_path)
    seg = seg.astype(np.int16)
    ours = np.zeros(seg.shape, dtype=np.int16)
    kinds = set()
    for value, struct in names.items():
        if "-" in struct:
            ours[seg == int(value)] = lab.disc_label(struct)
            kinds.add(DISC)
        else:
            ours[seg == int(value)] = lab.vertebra_label(struct)
            kinds.add(SACRUM if struct == "S1" else VERTEBRA)
    stack = stack_from_series(name, pixels, affine, ours, frozenset(kinds), keep_tissue=False)
    rows = np.nonzero(stack.labels.any(axis=(0, 2)))[0]
    # Only the rows spanned by the labelled structures are complete: above the top one and
    # below the bottom one lie unlabelled vertebrae / discs (T12, sacrum, T12-L1).
    stack.valid_rows = (int(rows[0]), int(rows[-1]) + 1) if rows.size else None
    structure = "disc" if DISC in kinds else "vertebra"
    return RealVolume(name, stack, structure, name in LUMBAR3D_HELDOUT, pixels, affine)


def load_lumbar3d_folder(folder: Path) -> list[RealVolume]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputMissingError(f"lumbar3d folder not found: {folder}")
    names = lumbar3d_names(folder)
    if not names:
        raise InputDataError(f"no *_seg.nii.gz label maps in {folder}")
    return [load_lumbar3d(folder, n) for n in names]
