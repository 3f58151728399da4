"""Training the spine VLM from scratch: one readable loop (nanoGPT style, minus the exec config).

data  cached view shards (reporter.training.vlm_data), from folders or generated phantoms by seed
loop  AdamW, linear warm-up then cosine decay, teacher-forced cross-entropy on value tokens
      (restricted to the values the grammar allows), gradient clipping, bf16 on a GPU
save  a resumable checkpoint every `checkpoint_every` steps (weights + optimizer state as
      safetensors, step and RNG state as JSON), the final model folder at the end, then
      temperature scaling fitted on the validation shards (reporter.training.vlm_calibration)
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from safetensors.torch import load_file, save_file

from reporter.errors import InputMissingError, UsageError
from reporter.training.vlm_batches import Augment, Batcher
from reporter.training.vlm_data import ShardSet
from reporter.training.vlm_heads import GradeHeads
from reporter.vlm import io
from reporter.vlm.config import VLMConfig
from reporter.vlm.inference import SpineVLM, load_model, new_model, save_model
from reporter.vlm.model import supervised_loss

CHECKPOINT = "checkpoint"
HEADS_FILE = "grade_heads.safetensors"


@dataclass
class TrainConfig:
    steps: int = 3000
    batch_studies: int = 16
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup: int = 150
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    seed: int = 0
    checkpoint_every: int = 250
    device: str = "auto"
    workers: int = 0  # DataLoader workers that build batches (0 = in the training process)
    augment: dict[str, Any] = field(default_factory=lambda: asdict(Augment()))
    time_limit_s: float | None = None  # stop early (and save) when the wall clock runs out
    # Re-read the data folders every this many steps when shards were added meanwhile (train
    # while a phantom-caching process is still filling them); 0 = never.
    reload_every: int = 0
    # Deep supervision (reporter.training.vlm_heads): the first `vision_steps` steps train the
    # vision tower and projector through the grade heads alone (no decoder), after which the heads'
    # loss is added to the decoder's with weight `aux_weight` (0 = heads off after stage 1).
    vision_steps: int = 0
    aux_weight: float = 0.0
    # Class-weighted grade heads (GradeHeads.balance over the training codes): real grades are
    # skewed (Sudirman: Pfirrmann 2 is 54 %, grade 1 under 2 %).
    balance_heads: bool = False


def lr_at(step: int, cfg: TrainConfig, elapsed_s: float | None = None) -> float:
    """Linear warm-up, then cosine decay over the steps -- or over the wall-clock budget when
    `time_limit_s` is set and runs out first, so a time-boxed run still ends annealed."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    if cfg.time_limit_s and elapsed_s is not None:
        progress = max(progress, elapsed_s / cfg.time_limit_s)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * cosine)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class _BatchStream(torch.utils.data.IterableDataset):
    """Endless batches of random studies; each DataLoader worker draws with its own seed."""

    def __init__(self, batcher: Batcher, batch_studies: int, seed: int) -> None:
        self.batcher = batcher
        self.batch_studies = batch_studies
        self.seed = seed

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, 0 if info is None else info.id])
        n = len(self.batcher.data)
        while True:
            perm = rng.permutation(n)
            for start in range(0, n - self.batch_studies + 1, self.batch_studies):
                yield self.batcher.batch(list(perm[start : start + self.batch_studies]), rng)


def _loader(batcher: Batcher, cfg: TrainConfig, step: int) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        _BatchStream(batcher, cfg.batch_studies, cfg.seed + step),
        batch_size=None,
        num_workers=cfg.workers,
        persistent_workers=cfg.workers > 0,
        prefetch_factor=4 if cfg.workers > 0 else None,
    )


def _count_shards(dirs: list[Path]) -> int:
    return sum(1 for d in dirs for _ in Path(d).glob("views-*.safetensors"))


def _to(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {
        k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
    }


def loss_of(
    model: SpineVLM,
    batch: dict[str, Any],
    device: torch.device,
    heads: GradeHeads | None = None,
    decoder_weight: float = 1.0,
    aux_weight: float = 0.0,
) -> torch.Tensor:
    """decoder_weight * the decoder's value-token loss + aux_weight * the grade heads' loss;
    a zero decoder weight skips the decoder's forward pass (vision stage)."""
    net = model.net
    total = torch.zeros((), device=device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        views = net.encode_views(batch["images"], batch["present"])
        if decoder_weight > 0:
            embeds = net.embed(batch["ids"], batch["view_rows"], views)
            logits = net.decoder(inputs_embeds=embeds, attention_mask=batch["attention_mask"])
    if decoder_weight > 0:
        total = total + decoder_weight * supervised_loss(
            logits.logits, batch["sup_batch"], batch["sup_pos"], batch["sup_allowed"],
            batch["sup_target"],
        )  # fmt: skip
    if heads is not None and aux_weight > 0 and len(batch["aux_rows"]):
        total = total + aux_weight * heads.loss(views, batch["aux_rows"], batch["aux_codes"])
    return total


def save_checkpoint(
    folder: Path,
    model: SpineVLM,
    opt: torch.optim.Optimizer,
    step: int,
    cfg: TrainConfig,
    heads: GradeHeads | None = None,
) -> None:
    ck = folder / CHECKPOINT
    save_model(model, ck)
    if heads is not None:
        io.save_weights(heads, ck / HEADS_FILE)
    tensors: dict[str, torch.Tensor] = {}
    for i, (_p, st) in enumerate(zip(opt.param_groups[0]["params"], _states(opt), strict=True)):
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{i}.{k}"] = v.detach().cpu().contiguous()
    save_file(tensors, str(ck / "optimizer.safetensors"))
    io.write_json(ck / "train_state.json", {"step": step, "train_config": asdict(cfg)})


def _states(opt: torch.optim.Optimizer) -> list[dict[str, Any]]:
    return [opt.state.get(p, {}) for p in opt.param_groups[0]["params"]]


def load_checkpoint(folder: Path) -> tuple[SpineVLM, int]:
    ck = folder / CHECKPOINT
    model = load_model(ck)
    state = io.read_json(ck / "train_state.json")
    return model, int(state["step"])


def restore_optimizer(folder: Path, opt: torch.optim.Optimizer) -> None:
    path = folder / CHECKPOINT / "optimizer.safetensors"
    if not path.is_file():
        return
    tensors = load_file(str(path))
    for i, p in enumerate(opt.param_groups[0]["params"]):
        prefix = f"{i}."
        st = {k[len(prefix) :]: v.to(p.device) for k, v in tensors.items() if k.startswith(prefix)}
        if st:
            opt.state[p] = st


def train(
    data_dirs: list[Path],
    out: Path,
    cfg: TrainConfig,
    model_config: VLMConfig | None = None,
    val_dirs: list[Path] | None = None,
    resume: bool = True,
    card: str | None = None,
    init: Path | None = None,
) -> dict[str, Any]:
    """Train (or resume) a model on cached shards; write the model folder `out`.

    `init`: start from that model folder's weights (a fresh optimizer and schedule), to
    continue a finished run on more data; a checkpoint in `out` still takes precedence."""
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    data = ShardSet.load(data_dirs)
    if len(data) < cfg.batch_studies:
        raise UsageError(
            f"only {len(data)} training studies; need at least batch_studies={cfg.batch_studies}"
        )
    start = 0
    if resume and (out / CHECKPOINT / io.MANIFEST).is_file():
        _same_heads_as_checkpoint(out, cfg)
        model, start = load_checkpoint(out)
    elif init is not None:
        model = load_model(init)
        model.calibration = {}  # refitted below on the validation data, if given
    else:
        model = new_model(model_config)
    net = model.net.to(device).train()
    heads = _grade_heads(net, cfg, out if start else None)
    if heads is not None and cfg.balance_heads:
        heads.balance(data.level_codes)
    named = list(net.named_parameters())
    if heads is not None:
        heads.to(device).train()
        named += [(f"grade_heads.{n}", p) for n, p in heads.named_parameters()]
    decay = [p for n, p in named if p.ndim >= 2 and "embed" not in n]
    no_decay = [p for n, p in named if not (p.ndim >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay + no_decay}], lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.0
    )
    n_decay = len(decay)
    if start:
        restore_optimizer(out, opt)
    batcher = Batcher(net, data, Augment(**cfg.augment))
    n_shards = _count_shards(data_dirs)
    stream = iter(_loader(batcher, cfg, start))
    t0 = time.time()
    ema: float | None = None
    history: list[tuple[int, float]] = []
    columns = (
        TextColumn("[bold]train[/]"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(), TimeRemainingColumn(),
    )  # fmt: skip
    # Progress on stderr, as the command line keeps stdout for results (training never imports
    # the CLI).
    err_console = Console(stderr=True)
    step = start
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task("train", total=cfg.steps, completed=start, loss=float("nan"))
        for step in range(start, cfg.steps):
            lr = lr_at(step, cfg, time.time() - t0)
            for g in opt.param_groups:
                g["lr"] = lr
            if cfg.reload_every and step % cfg.reload_every == 0 and step > start:
                fresh = _count_shards(data_dirs)
                if fresh != n_shards:
                    data, n_shards = ShardSet.load(data_dirs), fresh
                    batcher = Batcher(net, data, Augment(**cfg.augment))
                    stream = iter(_loader(batcher, cfg, step))
                    err_console.print(f"step {step}: {len(data)} training studies now")
            if step == cfg.vision_steps and step > start:
                ema = None  # the decoder's loss starts here; the vision stage's is not comparable
            batch = _to(next(stream), device)
            vision_stage = step < cfg.vision_steps
            loss = loss_of(
                model, batch, device, heads,
                decoder_weight=0.0 if vision_stage else 1.0,
                aux_weight=1.0 if vision_stage else cfg.aux_weight,
            )  # fmt: skip
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for _n, p in named], cfg.grad_clip)
            # Decoupled weight decay on matrices only (not norms, biases or embeddings), and
            # not on what this step did not train (the decoder during the vision stage).
            with torch.no_grad():
                for p in opt.param_groups[0]["params"][:n_decay]:
                    if p.grad is not None:
                        p.mul_(1.0 - lr * cfg.weight_decay)
            opt.step()
            value = float(loss.detach())
            ema = value if ema is None else 0.95 * ema + 0.05 * value
            progress.update(task, advance=1, loss=ema)
            if step % 50 == 0:
                history.append((step, ema))
            if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
                save_checkpoint(out, model, opt, step + 1, cfg, heads)
            if cfg.time_limit_s is not None and time.time() - t0 > cfg.time_limit_s:
                err_console.print(f"time limit reached at step {step + 1}; saving")
                break
    net.eval().cpu()
    summary: dict[str, Any] = {
        "steps_done": step + 1,
        "train_studies": len(data),
        "train_seeds": sorted(m["seed"] for m in data.meta if "seed" in m),
        "final_loss_ema": ema,
        "seconds": round(time.time() - t0, 1),
        "device": str(device),
        "loss_history": history,
        "init": str(init) if init is not None and start == 0 else None,
    }
    if val_dirs:
        from reporter.training.vlm_calibration import fit_calibration

        val = ShardSet.load(val_dirs)
        model.calibration = fit_calibration(model, val)
        summary["calibration_studies"] = len(val)
    save_model(model, out, card=card)
    io.write_json(out / "train_summary.json", {**summary, "train_config": asdict(cfg)})
    return summary


def _uses_heads(vision_steps: float, aux_weight: float) -> bool:
    return vision_steps > 0 or aux_weight > 0


def _same_heads_as_checkpoint(out: Path, cfg: TrainConfig) -> None:
    """The optimizer state is stored by parameter position, heads last: resuming with the grade
    heads switched on or off would pair parameters with another tensor's moments."""
    saved = io.read_json(out / CHECKPOINT / "train_state.json").get("train_config", {})
    had = _uses_heads(saved.get("vision_steps", 0), saved.get("aux_weight", 0.0))
    if had != _uses_heads(cfg.vision_steps, cfg.aux_weight):
        with_ = "with" if had else "without"
        raise UsageError(
            f"the checkpoint in {out} was trained {with_} grade heads; resume with the same "
            "--vision-steps/--aux-weight, or write to a new --out"
        )


def _grade_heads(net: Any, cfg: TrainConfig, resume_from: Path | None) -> GradeHeads | None:
    """The training-only grade heads (None when the config does not use them); restored from
    the checkpoint when resuming."""
    if not _uses_heads(cfg.vision_steps, cfg.aux_weight):
        return None
    heads = GradeHeads(net.decoder.config.hidden_size, net.tokens_per_view)
    path = None if resume_from is None else resume_from / CHECKPOINT / HEADS_FILE
    if path is not None and path.is_file():
        io.load_weights(heads, path)
    return heads


def checkpoint_exists(out: Path) -> bool:
    return (out / CHECKPOINT / io.MANIFEST).is_file()


def require_shards(dirs: list[Path]) -> None:
    for d in dirs:
        if not any(d.glob("views-*.safetensors")):
            raise InputMissingError(f"{d} holds no cached view shards")


def dump_config(cfg: TrainConfig) -> str:
    return json.dumps(asdict(cfg), indent=2, sort_keys=True)
