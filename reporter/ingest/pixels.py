"""Pixel data: read from the file where the header parse stopped, decoded, size-checked first.

Ingest parses each header with `stop_before_pixels` and remembers where the Pixel Data element
starts. Uncompressed little-endian data (most MR) is then read straight into a reusable buffer
with one `readinto`, so no per-file bytes object is allocated and pixels of series that are set
aside are never read at all. Everything else (compressed, big endian, deflated) is re-read in
full and decoded by pydicom's decoder plugins (docs/ingest.md lists which handles what).

A corrupt header can claim a matrix of 65535 x 65535 or millions of frames; decoding that would
exhaust memory (or take minutes) before failing, so the claim is checked against sane limits
and, for native data, against the bytes actually present.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels import pixel_array
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

from reporter.ingest import fastread as fast
from reporter.quiet import native_stderr_quiet

MAX_MATRIX = 4096
MAX_VOXELS = 1 << 27  # 128 Mi voxels (512 MiB as float32) per object
PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010) little endian
UNDEFINED_LENGTH = 0xFFFFFFFF
# Explicit VR elements with a 2-byte reserved field and a 4-byte length.
_LONG_VRS = {b"OB", b"OW", b"OD", b"OF", b"OL", b"OV", b"UN"}


class PixelDataError(ValueError):
    """Pixel data missing, truncated, oversized or undecodable; the message says which."""


def _geometry(ds: Dataset) -> tuple[int, int, int]:
    rows, cols = fast.ushort(ds, fast.ROWS) or 0, fast.ushort(ds, fast.COLUMNS) or 0
    frames_text = fast.text(ds, fast.NUMBER_OF_FRAMES)
    try:
        n_frames = int(frames_text) if frames_text else 1
    except ValueError:
        raise PixelDataError(f"NumberOfFrames {frames_text!r} is not a number") from None
    samples = fast.ushort(ds, fast.SAMPLES_PER_PIXEL) or 1
    if not (0 < rows <= MAX_MATRIX and 0 < cols <= MAX_MATRIX):
        raise PixelDataError(f"matrix {rows} x {cols} outside 1..{MAX_MATRIX}")
    if n_frames <= 0 or rows * cols * n_frames > MAX_VOXELS:
        raise PixelDataError(f"{n_frames} frames of {rows} x {cols} is beyond the size limit")
    if samples != 1:
        raise PixelDataError(f"{samples} samples per pixel (colour) is not an MR magnitude image")
    return rows, cols, n_frames


def read_pixels(
    ds: Dataset, path: Path, offset: int, staging: dict[tuple[str, int], np.ndarray] | None = None
) -> np.ndarray:
    """The stored values of every frame, shape (frames, rows, cols), before rescaling.

    `offset` is where the Pixel Data element starts in `path` (-1: unknown, e.g. deflated).
    With `staging`, native single-frame data is read into a buffer reused across calls: the
    result is then only valid until the next call with the same `staging`.
    """
    rows, cols, n_frames = _geometry(ds)
    tsyntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if offset >= 0 and tsyntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        native = _read_native(ds, path, offset, tsyntax == ExplicitVRLittleEndian,
                              (n_frames, rows, cols), staging)  # fmt: skip
        if native is not None:
            return native
    return _read_with_pydicom(path, (n_frames, rows, cols))


def _native_dtype(ds: Dataset) -> tuple[np.dtype, int, bool] | None:
    bits = fast.ushort(ds, fast.BITS_ALLOCATED) or 0
    stored = fast.ushort(ds, fast.BITS_STORED) or bits
    high = fast.ushort(ds, fast.HIGH_BIT)
    if bits not in (8, 16, 32) or not 0 < stored <= bits:
        return None
    if high is not None and high != stored - 1:
        return None
    signed = fast.ushort(ds, fast.PIXEL_REPRESENTATION) == 1
    return np.dtype(f"<u{bits // 8}"), stored, signed


def _read_native(
    ds: Dataset,
    path: Path,
    offset: int,
    explicit: bool,
    shape: tuple[int, int, int],
    staging: dict[tuple[str, int], np.ndarray] | None,
) -> np.ndarray | None:
    """Native little-endian data with the bit handling of pydicom's native decoder (unsigned
    values masked, signed values sign-extended to BitsStored); None when not applicable."""
    spec = _native_dtype(ds)
    if spec is None:
        return None
    dtype, stored, signed = spec
    n = shape[0] * shape[1] * shape[2]
    expected = n * dtype.itemsize
    try:
        with path.open("rb", buffering=0) as fh:
            fh.seek(offset)
            head = fh.read(8)
            if len(head) < 8 or head[:4] != PIXEL_DATA_TAG:
                raise PixelDataError("pixel data element not found where the header ended")
            if explicit and head[4:6] in _LONG_VRS:
                extra = fh.read(4)
                length = struct.unpack("<I", extra)[0] if len(extra) == 4 else 0
            elif explicit:
                length = struct.unpack("<H", head[6:8])[0]
            else:
                length = struct.unpack("<I", head[4:8])[0]
            if length == UNDEFINED_LENGTH:
                return None  # encapsulated despite a native transfer syntax: let pydicom judge
            if length < expected:
                raise PixelDataError(f"pixel data truncated ({length} of {expected} bytes present)")
            key = (dtype.str, n)
            if staging is not None and shape[0] == 1:
                buffer = staging.get(key)
                if buffer is None:
                    buffer = staging[key] = np.empty(n, dtype=dtype)
            else:
                buffer = np.empty(n, dtype=dtype)
            got = fh.readinto(buffer)
    except OSError as exc:
        raise PixelDataError(f"pixel data could not be read ({exc})") from None
    if got != expected:
        raise PixelDataError(f"pixel data truncated ({got} of {expected} bytes present)")
    bits = dtype.itemsize * 8
    if stored < bits:
        if signed:
            shift = bits - stored
            np.left_shift(buffer, shift, out=buffer)
            signed_view = buffer.view(f"<i{dtype.itemsize}")
            np.right_shift(signed_view, shift, out=signed_view)
            return signed_view.reshape(shape)
        np.bitwise_and(buffer, dtype.type((1 << stored) - 1), out=buffer)
    elif signed:
        return buffer.view(f"<i{dtype.itemsize}").reshape(shape)
    return buffer.reshape(shape)


def _read_with_pydicom(path: Path, shape: tuple[int, int, int]) -> np.ndarray:
    try:
        full = pydicom.dcmread(path)
    except Exception as exc:
        raise PixelDataError(f"file could not be re-read for its pixels ({exc})") from None
    if "PixelData" not in full:
        raise PixelDataError("no pixel data")
    tsyntax = getattr(getattr(full, "file_meta", None), "TransferSyntaxUID", None)
    if tsyntax is not None and not tsyntax.is_compressed:
        bits = int(full.get("BitsAllocated") or 0)
        if bits not in (8, 16, 32):
            raise PixelDataError(f"BitsAllocated {bits} is not supported")
        expected = shape[0] * shape[1] * shape[2] * bits // 8
        if len(full.PixelData) < expected:
            raise PixelDataError(
                f"pixel data truncated ({len(full.PixelData)} of {expected} bytes present)"
            )
    try:
        if tsyntax == RLELossless:
            # pydicom's own numpy RLE decoder: pylibjpeg-rle (Rust) prints a panic trace to
            # stderr on a damaged stream before raising, which a user would read as a crash.
            arr = pixel_array(full, decoding_plugin="pydicom")
        else:
            with native_stderr_quiet():  # GDCM and OpenJPEG print on damaged streams
                arr = full.pixel_array
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:
        # Decoder plugins raise many types, and the Rust ones (pylibjpeg-rle, via pyo3) raise
        # PanicException, a BaseException, on damaged streams; all mean "cannot decode".
        raise PixelDataError(f"pixel data could not be decoded ({_first_line(exc)})") from None
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.shape != shape:
        raise PixelDataError(f"decoded shape {arr.shape} does not match the header {shape}")
    return arr


def _first_line(exc: BaseException) -> str:
    """The exception on one line (pydicom lists each plugin's failure on its own line)."""
    text = " ".join(line.strip() for line in str(exc).strip().splitlines()[:3])
    return f"{type(exc).__name__}: {text[:300]}"
