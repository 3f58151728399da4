"""Files that ship with the package (prompts, templates, weights), found without the CWD."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_PKG = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """`prompts` or `templates`: inside the wheel they sit in the package; in a source checkout
    (editable install) they sit at the repository top, beside the package."""
    packaged = resources.files("reporter") / name
    if packaged.is_dir():
        return Path(str(packaged))
    source = _PKG.parent / name
    if source.is_dir():
        return source
    raise FileNotFoundError(f"the package resource folder {name!r} is missing from this install")


def weights_dir() -> Path:
    return _PKG / "weights"
