"""Site adaptation with LoRA (peft): `spine-report finetune --base MODEL --data DIR --out ADAPTER`.

LoRA matrices are injected with `peft.LoraConfig` + `get_peft_model` into the decoder's attention
and MLP projections and, by default, the vision tower's MLPs and the projector (a new site
differs first of all in how its images look). The base weights stay frozen. The adapter folder is
peft's own format -- adapter_config.json + adapter_model.safetensors -- plus our manifest.json
with sha256s, checked at load. `--adapter` at inference applies it (reporter.vlm.adapters).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from peft import LoraConfig, get_peft_model

from reporter.errors import UsageError
from reporter.training.vlm_batches import Augment, Batcher
from reporter.training.vlm_data import ShardSet
from reporter.training.vlm_train import TrainConfig as _Sched
from reporter.training.vlm_train import lr_at, pick_device
from reporter.vlm import io
from reporter.vlm.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS
from reporter.vlm.inference import load_model

DECODER_TARGETS = r"decoder\..*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
VISION_TARGETS = (
    r"visual\.transformer\.resblocks\.\d+\.mlp\.(c_fc|c_proj)"
    r"|projector\.(patch_in|pooled_in|mlp\.1)"
)


def lora_config(rank: int = 8, alpha: int = 16, vision: bool = True) -> LoraConfig:
    pattern = f"({DECODER_TARGETS})" + (f"|({VISION_TARGETS})" if vision else "")
    return LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=pattern)


def finetune(
    base: Path | None,
    data_dirs: list[Path],
    out: Path,
    steps: int = 300,
    batch_studies: int = 8,
    lr: float = 2e-3,
    rank: int = 8,
    vision: bool = True,
    device: str = "auto",
    seed: int = 0,
    progress: Any = None,
) -> dict[str, Any]:
    """Fit a LoRA adapter on the studies cached in `data_dirs`; write it to `out`."""
    torch.manual_seed(seed)
    dev = pick_device(device)
    model = load_model(base)
    data = ShardSet.load(data_dirs)
    if len(data) < 1:
        raise UsageError("fine-tuning needs at least one study")
    net = model.net
    peft_model = get_peft_model(net, lora_config(rank, 2 * rank, vision))
    net.to(dev).train()
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = _Sched(steps=steps, lr=lr, warmup=max(1, steps // 10))
    batcher = Batcher(net, data, Augment())
    rng = np.random.default_rng(seed)
    from reporter.training.vlm_train import loss_of

    t0 = time.time()
    ema = None
    bs = min(batch_studies, len(data))
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, sched)
        ids = list(rng.choice(len(data), size=bs, replace=False))
        b = {k: v.to(dev) if torch.is_tensor(v) else v for k, v in batcher.batch(ids, rng).items()}
        loss = loss_of(model, b, dev)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema = float(loss.detach()) if ema is None else 0.9 * ema + 0.1 * float(loss.detach())
        if progress is not None:
            progress(step + 1, ema)
    seconds = time.time() - t0
    net.eval().cpu()
    out.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(str(out), safe_serialization=True)
    files = io.write_manifest(out, (ADAPTER_CONFIG, ADAPTER_WEIGHTS))
    n_train = sum(p.numel() for p in params)
    return {
        "steps": steps,
        "studies": len(data),
        "seconds": round(seconds, 1),
        "final_loss_ema": ema,
        "trainable_parameters": n_train,
        "adapter_bytes": (out / ADAPTER_WEIGHTS).stat().st_size,
        "adapter_sha256": files[ADAPTER_WEIGHTS],
        "device": str(dev),
    }
