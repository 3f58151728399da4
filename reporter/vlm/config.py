"""One combined configuration for the spine VLM (LLaVA style): vision tower + projector + decoder.

The vision tower is an open_clip model built from a JSON config of ours (registered with
`open_clip.add_model_config`, created with `pretrained=None`: nothing is downloaded); any open_clip
architecture name plus a local weights file is accepted too. The decoder is a small Llama-style
transformers config by default, or any local Hugging Face folder. Everything round-trips through
plain JSON (`config.json` in a model folder).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reporter.errors import ModelFileError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEFAULT_VISION_MODEL = "spine-vit-tiny"
FORMAT_NAME = "spine-vlm"
FORMAT_VERSION = 1


def default_open_clip_config() -> dict[str, Any]:
    return json.loads((CONFIG_DIR / f"{DEFAULT_VISION_MODEL}.json").read_text())


@dataclass
class VisionConfig:
    # Name under which `open_clip_config` is registered (or a built-in open_clip architecture
    # when `open_clip_config` is None, in which case `weights` must name a local file).
    model_name: str = DEFAULT_VISION_MODEL
    open_clip_config: dict[str, Any] | None = field(default_factory=default_open_clip_config)
    weights: str | None = None  # local safetensors with the visual tower's state dict (optional)

    @property
    def image_size(self) -> int:
        if self.open_clip_config is None:
            raise ModelFileError("the vision config needs 'open_clip_config' to know its size")
        size = self.open_clip_config["vision_cfg"]["image_size"]
        return int(size if isinstance(size, int) else size[0])


@dataclass
class ProjectorConfig:
    # Patch tokens are average-pooled to a pool_grid x pool_grid grid (plus the pooled token)
    # before the MLP: few tokens per view keep the decoder sequence and CPU latency small.
    pool_grid: int = 2
    hidden_act: str = "gelu"


@dataclass
class TextConfig:
    # Either a local Hugging Face folder (`path`) or the fields of a LlamaConfig.
    path: str | None = None
    model_type: str = "llama"
    hidden_size: int = 128
    intermediate_size: int = 384
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 4
    max_position_embeddings: int = 256
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = True


@dataclass
class ViewConfig:
    """Harmonized views: one mm-per-pixel per view kind, whatever the acquisition spacing."""

    size: int = 64
    global_mm_per_px: float = 4.0
    level_mm_per_px: float = 1.0
    foramen_mm_per_px: float = 0.75
    axial_mm_per_px: float = 1.0
    # The level crop is centred this far behind the disc centre so the canal is in view.
    level_posterior_shift_mm: float = 6.0
    axial_posterior_shift_mm: float = 10.0


@dataclass
class VLMConfig:
    vision_config: VisionConfig = field(default_factory=VisionConfig)
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    text_config: TextConfig = field(default_factory=TextConfig)
    views: ViewConfig = field(default_factory=ViewConfig)
    prompt_file: str = "vlm_v1.json"
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VLMConfig:
        if data.get("format") != FORMAT_NAME:
            raise ModelFileError(
                f"config.json is not a spine VLM config (format {data.get('format')!r})"
            )
        if data.get("format_version") != FORMAT_VERSION:
            raise ModelFileError(
                f"config.json has format_version {data.get('format_version')!r}; "
                f"this code reads version {FORMAT_VERSION}"
            )
        try:
            return cls(
                vision_config=VisionConfig(**data["vision_config"]),
                projector=ProjectorConfig(**data["projector"]),
                text_config=TextConfig(**data["text_config"]),
                views=ViewConfig(**data["views"]),
                prompt_file=data["prompt_file"],
            )
        except (KeyError, TypeError) as exc:
            raise ModelFileError(f"config.json is malformed: {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> VLMConfig:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ModelFileError(f"config.json is not valid JSON: {exc}") from None
