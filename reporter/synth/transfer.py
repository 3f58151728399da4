"""Transfer syntaxes for written phantoms: uncompressed and lossless compressed, as sites vary."""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from reporter.contracts.study import Series

UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian)


def available_transfer_syntaxes() -> list[str]:
    """Transfer syntaxes this installation can write (compressed ones need an encoder plugin)."""
    out = [str(u) for u in UNCOMPRESSED]
    try:
        from pydicom.pixels import get_encoder
    except ImportError:
        return out
    for u in (RLELossless, JPEGLSLossless, JPEG2000Lossless):
        try:
            if get_encoder(u).is_available:
                out.append(str(u))
        except (NotImplementedError, ValueError):
            continue
    return out


def choose_transfer_syntax(meta: dict[str, Any], series: Series) -> str:
    """Deterministic per study and series: most series explicit little endian, the rest spread
    over the other available syntaxes (a fixed function of the seed, never of the clock)."""
    opts = available_transfer_syntaxes()
    h = (int(meta.get("seed", 0)) * 7 + (series.series_number or 0) * 3) % 10
    if h < 5 or len(opts) == 1:
        return str(ExplicitVRLittleEndian)
    return opts[h % len(opts)]


def encode(ds: Dataset, transfer_syntax: str) -> None:
    """Re-encode `ds` (explicit little endian pixel data) into `transfer_syntax` in place."""
    if transfer_syntax in (str(ExplicitVRLittleEndian),):
        return
    if transfer_syntax in (str(ImplicitVRLittleEndian), str(DeflatedExplicitVRLittleEndian)):
        ds.file_meta.TransferSyntaxUID = transfer_syntax
        return
    arr = ds.pixel_array
    # Keep the SOP Instance UID: the phantom's UIDs are fixed by its seed.
    ds.compress(transfer_syntax, arr, generate_instance_uid=False)
