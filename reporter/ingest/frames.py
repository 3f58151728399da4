"""One record per image plane (a classic single-frame file, or one frame of an enhanced
multi-frame object), with the geometry and acquisition values the rest of ingest needs.

Values come from the top-level dataset for classic objects, and from the per-frame, then the
shared functional groups for enhanced MR (PS3.3 C.7.6.16), so both kinds flow through the same
stacking code.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from reporter.ingest import fastread as fast

ENHANCED_MR_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image Storage
        "1.2.840.10008.5.1.4.1.1.4.4",  # Legacy Converted Enhanced MR Image Storage
    }
)


@dataclass(slots=True)
class Frame:
    path: Path
    ds: Dataset  # the file's header (no pixel data); shared by all frames of a multi-frame object
    pixel_offset: int  # where the Pixel Data element starts in `path`; -1 when unknown
    frame: int | None  # 0-based frame index in a multi-frame object, None for single-frame files
    sop_uid: str
    study_uid: str
    series_uid: str
    modality: str
    rows: int
    cols: int
    iop: np.ndarray | None
    ipp: np.ndarray | None
    pixel_spacing: tuple[float, float] | None
    slope: float = 1.0
    intercept: float = 0.0
    image_type: tuple[str, ...] = ()
    tr: float | None = None
    te: float | None = None
    ti: float | None = None
    flip_angle: float | None = None
    acquisition_contrast: str | None = None
    sequence: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    pending_acquisition: bool = False  # tr .. sequence not read yet (see `complete`)

    @property
    def key(self) -> tuple[str, int]:
        """Identity of the image: a duplicate file has the same SOP Instance UID and frame."""
        return self.sop_uid, -1 if self.frame is None else self.frame


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        if not isinstance(value, (str, bytes)) and hasattr(value, "__len__"):
            value = value[0]  # multi-valued (e.g. InversionTimes): the first value
        f = float(value)
    except (TypeError, ValueError, IndexError):
        return None
    return f if np.isfinite(f) else None


def _vector(value: Any, n: int) -> np.ndarray | None:
    if value is None:
        return None
    try:
        arr = np.array([float(v) for v in value], dtype=float)
    except (TypeError, ValueError):
        return None
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        return None
    return arr


def _orientation(value: Any) -> np.ndarray | None:
    """IOP as 6 floats with two unit, orthogonal cosines; anything else counts as missing."""
    iop = _vector(value, 6)
    if iop is None:
        return None
    r, c = iop[:3], iop[3:]
    if abs(np.linalg.norm(r) - 1) > 1e-2 or abs(np.linalg.norm(c) - 1) > 1e-2 or abs(r @ c) > 1e-2:
        return None
    # Renormalise: scanners write cosines with 4-6 decimals.
    return np.concatenate([r / np.linalg.norm(r), c / np.linalg.norm(c)])


@functools.lru_cache(maxsize=4096)
def _orientation_text(text: str) -> np.ndarray | None:
    """IOP from its text: every slice of a stack carries the same string, so it is parsed (and
    renormalised) once. The array is shared: read-only."""
    iop = _orientation(text.split("\\")) if text else None
    if iop is not None:
        iop.flags.writeable = False
    return iop


def _spacing(value: Any) -> tuple[float, float] | None:
    v = _vector(value, 2)
    if v is None or np.any(v <= 0):
        return None
    return float(v[0]), float(v[1])


@functools.lru_cache(maxsize=4096)
def _spacing_text(text: str) -> tuple[float, float] | None:
    return _spacing(text.split("\\")) if text else None


def _str(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    return "" if value is None else str(value).strip()


def _strings(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(s.strip().upper() for s in value.split("\\"))
    try:
        return tuple(str(s).strip().upper() for s in value)
    except TypeError:
        return (str(value).strip().upper(),)


def _item(ds: Dataset, keyword: str) -> Dataset | None:
    seq = ds.get(keyword)
    try:
        return seq[0] if seq else None
    except (TypeError, IndexError):
        return None


class _Groups:
    """Look an attribute up in a frame's functional group sequence, then the shared one."""

    def __init__(self, ds: Dataset, frame: int) -> None:
        per_frame = ds.get("PerFrameFunctionalGroupsSequence")
        self._per = per_frame[frame] if per_frame is not None and frame < len(per_frame) else None
        self._shared = _item(ds, "SharedFunctionalGroupsSequence")

    def get(self, group: str, keyword: str) -> Any:
        for container in (self._per, self._shared):
            if container is None:
                continue
            item = _item(container, group)
            if item is not None and keyword in item:
                return item.get(keyword)
        return None


def frames_of(ds: Dataset, path: Path, pixel_offset: int = -1) -> list[Frame]:
    """The image planes held by one dataset. Raises on values that cannot be read.

    For classic single-frame files only the per-image values are read here (fast, from the raw
    elements); the acquisition values shared by a series are filled in by `complete` for the
    first frame of each series."""
    rows = fast.ushort(ds, fast.ROWS) or 0
    cols = fast.ushort(ds, fast.COLUMNS) or 0
    common = {
        "path": path,
        "ds": ds,
        "pixel_offset": pixel_offset,
        "sop_uid": fast.text(ds, fast.SOP_INSTANCE_UID),
        "study_uid": fast.text(ds, fast.STUDY_INSTANCE_UID),
        "series_uid": fast.text(ds, fast.SERIES_INSTANCE_UID),
        "modality": fast.text(ds, fast.MODALITY).upper(),
        "rows": rows,
        "cols": cols,
        "image_type": _strings(fast.text(ds, fast.IMAGE_TYPE)),
    }
    sop_class = fast.text(ds, fast.SOP_CLASS_UID)
    if sop_class in ENHANCED_MR_SOP_CLASSES or "PerFrameFunctionalGroupsSequence" in ds:
        return _enhanced_frames(ds, {**common, "sequence": _strings(ds.get("ScanningSequence"))})
    slope = _float(fast.numbers(ds, fast.RESCALE_SLOPE))
    return [
        Frame(
            frame=None,
            iop=_orientation_text(fast.text(ds, fast.IMAGE_ORIENTATION)),
            ipp=_vector(fast.numbers(ds, fast.IMAGE_POSITION), 3),
            pixel_spacing=_spacing_text(fast.text(ds, fast.PIXEL_SPACING)),
            slope=1.0 if slope is None or slope == 0 else slope,
            intercept=_float(fast.numbers(ds, fast.RESCALE_INTERCEPT)) or 0.0,
            pending_acquisition=True,
            **common,
        )
    ]


def complete(frame: Frame) -> Frame:
    """Fill the series-level acquisition values of a classic frame from its dataset."""
    if frame.pending_acquisition:
        ds = frame.ds
        frame.tr = _float(ds.get("RepetitionTime"))
        frame.te = _float(ds.get("EchoTime"))
        frame.ti = _float(ds.get("InversionTime"))
        frame.flip_angle = _float(ds.get("FlipAngle"))
        frame.sequence = _strings(ds.get("ScanningSequence"))
        frame.pending_acquisition = False
    return frame


def _enhanced_frames(ds: Dataset, common: dict[str, Any]) -> list[Frame]:
    n = int(ds.get("NumberOfFrames") or 1)
    # Contrast and timing are often top-level in enhanced MR (Multi-frame Functional Groups
    # module plus MR Image module); fall back to them when no functional group carries them.
    contrast = _str(ds, "AcquisitionContrast") or None
    frames = []
    for k in range(n):
        g = _Groups(ds, k)
        slope = _float(g.get("PixelValueTransformationSequence", "RescaleSlope"))
        inversion = _strings(g.get("MRModifierSequence", "InversionRecovery"))
        ti = _float(g.get("MRModifierSequence", "InversionTimes"))
        if ti is None:
            ti = _float(ds.get("InversionTime"))
        sequence = common["sequence"] or (("IR",) if inversion == ("YES",) else ())
        frame_type = _strings(g.get("MRImageFrameTypeSequence", "FrameType"))
        frames.append(
            Frame(
                frame=k,
                iop=_orientation(g.get("PlaneOrientationSequence", "ImageOrientationPatient")),
                ipp=_vector(g.get("PlanePositionSequence", "ImagePositionPatient"), 3),
                pixel_spacing=_spacing(g.get("PixelMeasuresSequence", "PixelSpacing")),
                slope=slope if slope else 1.0,
                intercept=_float(g.get("PixelValueTransformationSequence", "RescaleIntercept"))
                or 0.0,
                tr=_float(g.get("MRTimingAndRelatedParametersSequence", "RepetitionTime"))
                or _float(ds.get("RepetitionTime")),
                te=_float(g.get("MREchoSequence", "EffectiveEchoTime"))
                or _float(ds.get("EchoTime")),
                ti=ti,
                flip_angle=_float(g.get("MRTimingAndRelatedParametersSequence", "FlipAngle")),
                acquisition_contrast=contrast,
                extra={"slice_thickness": _float(g.get("PixelMeasuresSequence", "SliceThickness"))},
                **{
                    **common,
                    "image_type": frame_type or common["image_type"],
                    "sequence": sequence,
                },
            )
        )
    return frames
