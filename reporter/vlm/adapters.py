"""LoRA adapters at inference: load a peft adapter folder into a model (sha256-checked).

The adapter folder is peft's own format -- adapter_config.json + adapter_model.safetensors --
plus our manifest.json with sha256s. Adapters are made by reporter.training.vlm_finetune.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, TypeVar

import torch
from peft import PeftModel

from reporter.errors import ModelFileError
from reporter.vlm import io

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


class AdaptableModel(Protocol):
    """A loaded model whose network an adapter goes into (reporter.vlm.inference.SpineVLM)."""

    net: torch.nn.Module
    adapter_sha256: str | None


M = TypeVar("M", bound=AdaptableModel)


def apply_adapter(model: M, folder: Path, merge: bool = False) -> M:
    """Load a LoRA adapter folder into `model` in place (sha256-checked); `merge` folds it into
    the base weights (peft's merge_and_unload)."""
    files = io.verify_folder(folder, (ADAPTER_CONFIG, ADAPTER_WEIGHTS))
    try:
        peft_model = PeftModel.from_pretrained(model.net, str(folder), is_trainable=False)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise ModelFileError(f"adapter {folder} does not fit this model: {exc}") from None
    if merge:
        model.net = peft_model.merge_and_unload()
    model.net.eval()
    model.adapter_sha256 = files[ADAPTER_WEIGHTS]
    return model
