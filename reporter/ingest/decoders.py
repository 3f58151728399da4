"""Which pixel decoder handles which transfer syntax (for `spine-report doctor` and the docs).

Read from pydicom's own decoder registry, so the answer is what decoding will actually do.
The default set is non-GPL: pylibjpeg-libjpeg (GPL-3.0) is deliberately not a dependency; JPEG
baseline / extended / lossless and JPEG-LS go through GDCM, Pillow and pyjpegls instead.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

# Licence of each pydicom plugin as installed by our dependencies.
PLUGIN_LICENCE = {
    "pydicom": "MIT (pydicom, pure Python)",
    "gdcm": "BSD-3-Clause (python-gdcm)",
    "pillow": "MIT-CMU (Pillow; JPEG 2000 via OpenJPEG)",
    "pyjpegls": "MIT (pyjpegls; CharLS BSD-3-Clause)",
    "pylibjpeg": "MIT (pylibjpeg with -openjpeg / -rle; -libjpeg would be GPL-3.0)",
}
GPL_DISTRIBUTIONS = ("pylibjpeg-libjpeg",)
VERSIONED = (
    "pydicom", "numpy", "pylibjpeg", "pylibjpeg-openjpeg", "pylibjpeg-rle", "pylibjpeg-libjpeg",
    "pyjpegls", "python-gdcm", "pillow", "nibabel", "highdicom", "pydantic", "typer", "torch",
)  # fmt: skip


def decoder_table() -> list[dict[str, Any]]:
    """One row per transfer syntax pydicom can be asked to decode."""
    from pydicom.pixels.decoders.base import _PIXEL_DATA_DECODERS
    from pydicom.uid import UID

    rows = []
    for uid, decoders in _PIXEL_DATA_DECODERS.items():
        decoder = decoders[0] if isinstance(decoders, tuple) else decoders
        native = not UID(uid).is_compressed
        plugins = ["pydicom"] if native else list(decoder.available_plugins)
        rows.append(
            {
                "transfer_syntax_uid": str(uid),
                "name": UID(uid).name,
                "available": bool(decoder.is_available),
                "plugins": plugins,
                "missing": [] if decoder.is_available else list(decoder.missing_dependencies),
            }
        )
    return rows


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for dist in VERSIONED:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def gpl_plugins_installed() -> list[str]:
    return [d for d in GPL_DISTRIBUTIONS if versions().get(d)]
