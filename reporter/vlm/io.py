"""Model folders on disk: safetensors + JSON + tokenizer.json, every file sha256-checked at load.

Layout of a model folder:
    config.json          the combined VLMConfig
    model.safetensors    all weights (vision tower, projector, decoder)
    tokenizer.json       the decoder's tokenizer (`tokenizers` format)
    calibration.json     per-slot temperatures and per-field abstention thresholds (optional)
    manifest.json        {"files": {name: sha256}} -- written last, checked first
    MODEL_CARD.md        data recipe, seeds, training command, metrics (optional, not hashed)
No pickle anywhere: torch.load is never called on a file of ours or a user's.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_model

from reporter.errors import ModelFileError, OutputError

MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TOKENIZER = "tokenizer.json"
CALIBRATION = "calibration.json"
HASHED = (CONFIG, WEIGHTS, TOKENIZER, CALIBRATION)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(folder: Path, names: tuple[str, ...] = HASHED) -> dict[str, str]:
    files = {n: sha256_file(folder / n) for n in names if (folder / n).is_file()}
    (folder / MANIFEST).write_text(json.dumps({"files": files}, indent=2, sort_keys=True) + "\n")
    return files


def verify_folder(folder: Path, required: tuple[str, ...]) -> dict[str, str]:
    """Check every file listed in the manifest; raise ModelFileError on any mismatch."""
    if not folder.is_dir():
        raise ModelFileError(f"model folder {folder} does not exist")
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise ModelFileError(f"{folder} has no {MANIFEST}; it is not a saved model")
    try:
        files: dict[str, str] = json.loads(manifest.read_text())["files"]
    except (json.JSONDecodeError, KeyError) as exc:
        raise ModelFileError(f"{manifest} is malformed: {exc}") from None
    for name in required:
        if name not in files:
            raise ModelFileError(f"{folder} manifest does not list {name}")
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            raise ModelFileError(f"model file {path} is missing")
        actual = sha256_file(path)
        if actual != expected:
            raise ModelFileError(
                f"model file {path} does not match its recorded sha256 "
                f"(expected {expected[:12]}..., found {actual[:12]}...)"
            )
    return files


def save_weights(
    module: torch.nn.Module, path: Path, metadata: dict[str, str] | None = None
) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # save_model handles tied weights (decoder embeddings = LM head) without duplication.
        save_model(module, str(path), metadata=metadata)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc}") from None


def load_weights(module: torch.nn.Module, path: Path) -> None:
    try:
        missing, unexpected = load_model(module, str(path), strict=False)
    except (SafetensorError, OSError) as exc:
        raise ModelFileError(f"cannot read weights {path}: {exc}") from None
    except RuntimeError as exc:  # shape mismatch: the weights belong to another config
        raise ModelFileError(f"weights {path} do not fit this model's config: {exc}") from None
    if missing or unexpected:
        raise ModelFileError(
            f"weights {path} do not fit this model's config "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ModelFileError(f"weights file {path} is missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ModelFileError(f"cannot read weights {path}: {exc}") from None


def read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ModelFileError(f"{path} is missing")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path} is not valid JSON: {exc}") from None


def write_json(path: Path, data: dict[str, Any]) -> None:
    try:
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc}") from None
