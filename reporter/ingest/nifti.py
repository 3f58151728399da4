"""NIfTI input for research users: one 3-D volume (and optionally its label map) as a Study with
one sagittal series.

The volume is re-laid to the layout a sagittal DICOM series gets from ingest -- axis 0 left-right
slices, axis 1 rows running superior -> inferior, axis 2 columns running anterior -> posterior,
slice step along (column direction x row direction) as DICOM's IOP normal -- so that everything
downstream sees one convention. Only axis permutations and flips are applied (no resampling),
so the affine stays exact; a label map gets the identical permutation and flips.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid

from reporter.contracts.study import Series, Study, Weighting
from reporter.errors import InputDataError, InputMissingError
from reporter.geometry import nifti_to_lps_affine
from reporter.ingest.classify import classify_plane, weighting_hint
from reporter.ingest.pixels import MAX_VOXELS
from reporter.ingest.stacks import implausible_voxel

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


@dataclass(frozen=True)
class Reorientation:
    """Transpose `axes`, then reverse the axes flagged in `flip` (in the new order)."""

    axes: tuple[int, int, int]
    flip: tuple[bool, bool, bool]

    def apply(self, data: np.ndarray) -> np.ndarray:
        out = np.transpose(data, self.axes)
        index = tuple(slice(None, None, -1) if f else slice(None) for f in self.flip)
        return np.ascontiguousarray(out[index])

    def affine(self, affine_lps: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        out = np.eye(4)
        out[:3, :3] = affine_lps[:3, list(self.axes)]
        out[:3, 3] = affine_lps[:3, 3]
        new_shape = [shape[a] for a in self.axes]
        for k, f in enumerate(self.flip):
            if f:
                out[:3, 3] += (new_shape[k] - 1) * out[:3, k]
                out[:3, k] = -out[:3, k]
        return out


def sagittal_reorientation(affine_lps: np.ndarray) -> Reorientation:
    """Axis permutation and flips that make a volume (L-R slices, S->I rows, A->P columns)."""
    m = np.abs(affine_lps[:3, :3])
    slice_axis = int(np.argmax(m[0]))  # most left-right
    rest = [a for a in range(3) if a != slice_axis]
    row_axis = max(rest, key=lambda a: m[2, a])  # most superior-inferior
    col_axis = next(a for a in rest if a != row_axis)
    axes = (slice_axis, row_axis, col_axis)
    d = affine_lps[:3, list(axes)]
    flip_row = d[2, 1] > 0  # rows must run inferior (-z in LPS)
    flip_col = d[1, 2] < 0  # columns must run posterior (+y in LPS)
    row_dir = -d[:, 1] if flip_row else d[:, 1]
    col_dir = -d[:, 2] if flip_col else d[:, 2]
    normal = np.cross(col_dir, row_dir)  # DICOM: row cosine (along a row) x column cosine
    flip_slice = float(d[:, 0] @ normal) < 0
    return Reorientation(axes, (bool(flip_slice), bool(flip_row), bool(flip_col)))


def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    if not path.exists():
        raise InputMissingError(f"no such file: {path}")
    try:
        img = nib.load(str(path))
        shape = tuple(int(n) for n in img.header.get_data_shape())
        if math.prod(shape) > MAX_VOXELS:
            # Checked on the header, before a byte is read: a gzipped NIfTI of zeros is a few
            # MB on disk and gigabytes in memory (four times that as float32).
            raise InputDataError(
                f"{path.name}: {' x '.join(map(str, shape))} voxels is beyond the size limit "
                f"({MAX_VOXELS} voxels)"
            )
        data = np.asanyarray(img.dataobj)
        affine = np.asarray(img.affine, dtype=float)
    except InputDataError:
        raise
    except Exception as exc:
        raise InputDataError(f"{path.name} is not a readable NIfTI file ({exc})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputDataError(f"{path.name} has {data.ndim} dimensions; a 3-D volume is needed")
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise InputDataError(f"{path.name} has no usable affine")
    why = implausible_voxel(np.linalg.norm(affine[:3, :3], axis=0).tolist())
    if why is not None:
        raise InputDataError(f"{path.name}: {why}")
    return data, nifti_to_lps_affine(affine)


def _guess_weighting(path: Path, warnings: list[str]) -> Weighting:
    stem = re.sub(r"\.nii(\.gz)?$", "", path.name, flags=re.IGNORECASE)
    sidecar = path.with_name(stem + ".json")
    texts = [stem]
    if sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text())
            texts += [str(meta.get(k, "")) for k in ("SeriesDescription", "contrast", "weighting")]
        except (OSError, ValueError):
            pass
    for text in texts:
        hint = weighting_hint(text)
        if hint is not None:
            return hint
    warnings.append(f"weighting of {path.name} unknown; assumed T2 (pass weighting=...)")
    return "T2"


def load_nifti(
    path: Path | str,
    labels: Path | str | None = None,
    *,
    weighting: Weighting | None = None,
) -> tuple[Study, np.ndarray | None]:
    """A Study with one sagittal series from a NIfTI volume, and its label map on that grid."""
    path = Path(path)
    data, affine_lps = _load(path)
    reo = sagittal_reorientation(affine_lps)
    affine = reo.affine(affine_lps, data.shape)
    iop = np.concatenate([affine[:3, 2], affine[:3, 1]])
    iop /= np.repeat(np.linalg.norm(iop.reshape(2, 3), axis=1), 3)
    if classify_plane(iop) != "sagittal":
        raise InputDataError(f"{path.name}: no voxel axis runs close enough to left-right")
    warnings: list[str] = []
    weighting = weighting or _guess_weighting(path, warnings)
    role = {"T1": "sag_t1", "T2": "sag_t2", "STIR": "sag_stir"}.get(weighting, "other")
    entropy = [str(path.resolve()), str(path.stat().st_size)]
    study_uid = generate_uid(entropy_srcs=[*entropy, "study"])
    series = Series(
        series_uid=generate_uid(entropy_srcs=[*entropy, "series"]),
        study_uid=study_uid,
        description=path.name,
        plane="sagittal",
        weighting=weighting,
        role=role,  # type: ignore[arg-type]
        pixels=reo.apply(data).astype(np.float32, copy=False),
        affine=affine,
        slice_thickness=float(np.linalg.norm(affine[:3, 0])),
    )
    study = Study(study_uid=study_uid, source=str(path), series=[series], warnings=warnings)
    label_map = labels_on_series_grid(labels, series) if labels is not None else None
    return study, label_map


def labels_on_series_grid(labels: Path | str, series: Series) -> np.ndarray:
    """A NIfTI label map laid out like `series` (int16); refused when its grid differs."""
    path = Path(labels)
    data, affine_lps = _load(path)
    reo = sagittal_reorientation(affine_lps)
    out = reo.apply(data)
    affine = reo.affine(affine_lps, data.shape)
    if out.shape != series.shape or not np.allclose(affine, series.affine, atol=1e-3):
        raise InputDataError(
            f"label map {path.name} is not on the grid of the image "
            f"(shape {out.shape} vs {series.shape})"
        )
    if np.issubdtype(out.dtype, np.floating) and (
        not np.all(np.isfinite(out)) or np.any(out != np.round(out))
    ):
        raise InputDataError(f"label map {path.name} holds non-integer values")
    if out.size and (out.min() < np.iinfo(np.int16).min or out.max() > np.iinfo(np.int16).max):
        raise InputDataError(f"label map {path.name} holds values outside int16")
    return out.astype(np.int16)
