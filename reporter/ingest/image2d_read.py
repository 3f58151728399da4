"""Reading a single 2-D image (PNG/JPEG/TIFF/BMP, or a single-frame DICOM file) into pixels and
the few header values the 2-D path uses, with every check that needs no network.

Kept apart from reporter.ingest.image2d, which imports torch for its orientation and disc
networks (seconds, ~1 GB): a file that is not a usable image is refused here before any of that
is loaded.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reporter.errors import InputDataError, InputMissingError
from reporter.quiet import native_stderr_quiet

IMAGE2D_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
# No MR image (nor a screenshot of one) is larger than this a side; a bigger one is refused.
MAX_IMAGE_SIDE = 8192


@dataclass
class Image2D:
    """The pixels of one 2-D image (float32, as stored), what kind of file held them, its sha256,
    and header values of a DICOM file (study / series / SOP UIDs, description, vendor,
    modality, pixel_spacing_mm when the header has a usable one)."""

    pixels: np.ndarray
    kind: str
    digest: str
    header: dict[str, Any] = field(default_factory=dict)


def check_size(name: str, rows: int, cols: int) -> None:
    """Refuse an image larger than any MR image before a byte of it is decoded (a 20000 x 20000
    PNG is a few hundred kB on disk and 1.6 GB as float32)."""
    if rows <= 0 or cols <= 0:
        raise InputDataError(f"{name}: image size {cols} x {rows} pixels is empty")
    if max(rows, cols) > MAX_IMAGE_SIDE:
        raise InputDataError(
            f"{name}: {cols} x {rows} pixels is larger than any MR image "
            f"(at most {MAX_IMAGE_SIDE} pixels a side)"
        )


def read_raster(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow's own bomb guard warns below its error limit; ours refuses first.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            check_size(path.name, im.height, im.width)
            if getattr(im, "n_frames", 1) > 1:
                raise InputDataError(f"{path.name}: has {im.n_frames} frames; expected one image")
            if im.mode in ("I;16", "I;16B", "I", "F"):
                arr = np.asarray(im, dtype=np.float32)
            else:
                arr = np.asarray(im.convert("L"), dtype=np.float32)
    except Image.DecompressionBombError:
        raise InputDataError(f"{path.name}: too many pixels for an MR image") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        # Pillow raises SyntaxError / ValueError for some malformed headers.
        raise InputDataError(f"{path.name}: not a readable image ({type(exc).__name__})") from None
    return arr


def _value(ds: Any, keyword: str) -> Any:
    """A header value, None when absent or damaged (pydicom converts values when first read, so
    a damaged one raises there, with any exception type)."""
    try:
        return ds.get(keyword)
    except Exception:
        return None


def _number(value: Any) -> float | None:
    """A finite number from a DS / IS / US value (the first of several), else None: the rule of
    the volume path (reporter.ingest.frames)."""
    if value is None or value == "":
        return None
    try:
        if not isinstance(value, (str, bytes)) and hasattr(value, "__len__"):
            value = value[0]
        f = float(value)
    except (TypeError, ValueError, IndexError):
        return None
    return f if math.isfinite(f) else None


def _text(ds: Any, keyword: str) -> str:
    value = _value(ds, keyword)
    return "" if value is None else str(value)


def read_dicom(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    import pydicom
    from pydicom.errors import InvalidDicomError

    from reporter.ingest.dicom import is_deflate_bomb

    if is_deflate_bomb(path):
        raise InputDataError(f"{path.name}: a deflated DICOM file that inflates beyond any image")
    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError) as exc:
        raise InputDataError(f"{path.name}: not a readable DICOM file ({exc})") from None
    except Exception as exc:  # a damaged header: pydicom raises many types (messages quote values)
        raise InputDataError(
            f"{path.name}: not a readable DICOM file ({type(exc).__name__})"
        ) from None
    frames = _number(_value(ds, "NumberOfFrames"))
    if frames is not None and frames > 1:
        raise InputDataError(
            f"{path.name}: a multi-frame DICOM object is a volume, not a single 2-D image"
        )
    rows, cols = _number(_value(ds, "Rows")), _number(_value(ds, "Columns"))
    check_size(path.name, int(rows or 0), int(cols or 0))
    try:
        with native_stderr_quiet():  # GDCM and OpenJPEG print on damaged streams
            arr = ds.pixel_array.astype(np.float32)
    except Exception as exc:  # pydicom raises several types for missing decoders / bad data
        raise InputDataError(
            f"{path.name}: pixel data cannot be decoded ({type(exc).__name__})"
        ) from None
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = arr[..., :3].mean(-1)
    if arr.ndim != 2:
        raise InputDataError(f"{path.name}: expected one 2-D image, got shape {arr.shape}")
    slope = _number(_value(ds, "RescaleSlope"))
    intercept = _number(_value(ds, "RescaleIntercept"))
    arr = arr * (slope or 1.0) + (intercept or 0.0)
    if _text(ds, "PhotometricInterpretation").strip() == "MONOCHROME1":
        arr = arr.max() - arr
    info: dict[str, Any] = {
        "study_uid": _text(ds, "StudyInstanceUID"),
        "series_uid": _text(ds, "SeriesInstanceUID"),
        "sop_instance_uid": _text(ds, "SOPInstanceUID"),
        "description": _text(ds, "SeriesDescription"),
        "vendor": _text(ds, "Manufacturer"),
        "modality": _text(ds, "Modality"),
    }
    spacing = _value(ds, "PixelSpacing") or _value(ds, "ImagerPixelSpacing")
    try:
        pair = [_number(v) for v in spacing] if spacing is not None else []
    except TypeError:  # a single value
        pair = []
    if len(pair) == 2 and all(v is not None and v > 0 for v in pair):
        info["pixel_spacing_mm"] = (float(pair[0]), float(pair[1]))  # type: ignore[arg-type]
    if info["modality"] and info["modality"] != "MR":
        raise InputDataError(f"{path.name}: modality {info['modality']}, not MR")
    return arr, info


def is_dicom(path: Path) -> bool:
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    with path.open("rb") as fh:
        head = fh.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def read_image2d(path: Path | str) -> Image2D:
    """The pixels of a 2-D image file, refused (InputDataError, exit 65) when the file is not a
    usable image: unreadable, too large, several frames, too small, blank or not finite."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputMissingError(f"no such image file: {p}")
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    info: dict[str, Any] = {}
    if is_dicom(p):
        img, info = read_dicom(p)
        kind = "single-frame DICOM"
    elif p.suffix.lower() in IMAGE2D_SUFFIXES:
        img = read_raster(p)
        kind = f"{p.suffix.lower().lstrip('.').upper()} image"
    else:
        raise InputDataError(f"{p.name}: not a 2-D image this tool reads ({IMAGE2D_SUFFIXES})")
    if min(img.shape) < 32 or not np.isfinite(img).all() or float(img.max() - img.min()) <= 0:
        raise InputDataError(f"{p.name}: the image is too small, blank or not finite")
    return Image2D(pixels=img, kind=kind, digest=digest, header=info)
