"""The shipped SPIDER LoRA adapter: small, in peft's format, with a model card that states the
data, its licence and attribution, and held-out metrics."""

from __future__ import annotations

import json

from reporter.resources import weights_dir

ADAPTER = weights_dir() / "adapters" / "spider"


def test_spider_adapter_is_small_peft_format_with_a_model_card() -> None:
    files = {p.name for p in ADAPTER.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "MODEL_CARD.md"} <= files
    total = sum(p.stat().st_size for p in ADAPTER.iterdir())
    assert total <= 10 * 1024 * 1024
    config = json.loads((ADAPTER / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA"
    card = (ADAPTER / "MODEL_CARD.md").read_text()
    for needed in ("CC BY 4.0", "van der Graaf", "Scientific Data", "balanced accuracy", "test"):
        assert needed in card
