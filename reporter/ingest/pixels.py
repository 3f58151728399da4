"""Pixel decoding through pydicom's decoder plugins, with size limits checked first.

A corrupt header can claim a matrix of 65535 x 65535 or millions of frames; decoding that would
exhaust memory (or take minutes) before failing, so the claim is checked against sane limits
and, for native (uncompressed) data, against the bytes actually present.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset

MAX_MATRIX = 4096
MAX_VOXELS = 1 << 27  # 128 Mi voxels (512 MiB as float32) per object


class PixelDataError(ValueError):
    """Pixel data missing, truncated, oversized or undecodable; the message says which."""


def decode(ds: Dataset) -> np.ndarray:
    """The stored values of every frame, shape (frames, rows, cols), before rescaling."""
    if "PixelData" not in ds:
        raise PixelDataError("no pixel data")
    rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    try:
        n_frames = int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError) as exc:
        raise PixelDataError(f"NumberOfFrames is not a number ({exc})") from None
    samples = int(ds.get("SamplesPerPixel") or 1)
    if not (0 < rows <= MAX_MATRIX and 0 < cols <= MAX_MATRIX):
        raise PixelDataError(f"matrix {rows} x {cols} outside 1..{MAX_MATRIX}")
    if n_frames <= 0 or rows * cols * n_frames > MAX_VOXELS:
        raise PixelDataError(f"{n_frames} frames of {rows} x {cols} is beyond the size limit")
    if samples != 1:
        raise PixelDataError(f"{samples} samples per pixel (colour) is not an MR magnitude image")
    tsyntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if tsyntax is not None and not tsyntax.is_compressed:
        bits = int(ds.get("BitsAllocated") or 0)
        if bits not in (8, 16, 32):
            raise PixelDataError(f"BitsAllocated {bits} is not supported")
        expected = rows * cols * n_frames * bits // 8
        if len(ds.PixelData) < expected:
            raise PixelDataError(
                f"pixel data truncated ({len(ds.PixelData)} of {expected} bytes present)"
            )
    try:
        arr = ds.pixel_array
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:
        # Decoder plugins raise many types, and the Rust ones (pylibjpeg-rle, via pyo3) raise
        # PanicException, a BaseException, on damaged streams; all mean "cannot decode".
        raise PixelDataError(f"pixel data could not be decoded ({_first_line(exc)})") from None
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.shape != (n_frames, rows, cols):
        raise PixelDataError(f"decoded shape {arr.shape} does not match the header")
    return arr


def _first_line(exc: BaseException) -> str:
    """The exception on one line (pydicom lists each plugin's failure on its own line)."""
    text = " ".join(line.strip() for line in str(exc).strip().splitlines()[:3])
    return f"{type(exc).__name__}: {text[:300]}"
