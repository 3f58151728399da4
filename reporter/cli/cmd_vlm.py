"""`spine-report train` and `spine-report finetune`: the VLM's training commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reporter.cli.app import app, err_console, guarded, out_console
from reporter.errors import UsageError

TRAIN_SEED_START = 0
VAL_SEED_START = 100_000
FINETUNE_SEED_START = 200_000


def _views_of(dirs: list[Path], cache: Path) -> list[Path]:
    """Shard folders for `dirs`: used as they are when they hold shards, else cached once."""
    from reporter.training.vlm_data import SHARD_GLOB, cache_folder
    from reporter.vlm.config import ViewConfig

    out = []
    for d in dirs:
        if not d.exists():
            raise UsageError(f"data folder {d} does not exist")
        if any(d.glob(SHARD_GLOB)):
            out.append(d)
            continue
        target = cache / d.name
        if not any(target.glob(SHARD_GLOB)):
            err_console.print(f"caching views of {d} -> {target}")
            cache_folder(target, d, ViewConfig())
        out.append(target)
    return out


def _phantom_shards(
    target: Path,
    n: int,
    start: int,
    sites: list[str],
    workers: int,
    priors: tuple[str, ...] = ("realistic",),
    time_limit_s: float | None = None,
    shard_size: int = 16,
) -> Path:
    from rich.progress import Progress

    from reporter.training.vlm_data import cache_phantoms
    from reporter.vlm.config import ViewConfig

    with Progress(console=err_console, transient=True) as progress:
        task = progress.add_task(f"phantoms -> {target.name}", total=n)
        _done, errors = cache_phantoms(
            target, list(range(start, start + n)), sites, ViewConfig(), workers=workers,
            progress=lambda k: progress.advance(task, k), priors=priors,
            time_limit_s=time_limit_s, shard_size=shard_size,
        )  # fmt: skip
    for e in errors[:5]:
        err_console.print(f"skipped phantom {e}", markup=False)
    return target


@app.command("train")
@guarded
def train_cmd(
    out: Annotated[Path, typer.Option("--out", help="Model folder to write (resumes if present).")],
    data: Annotated[
        list[Path] | None,
        typer.Option("--data", help="Study folders with ground truth, or cached view shards."),
    ] = None,
    phantoms: Annotated[
        int, typer.Option(help="Also generate this many training phantoms (seeds 0..N-1).")
    ] = 0,
    val_phantoms: Annotated[
        int, typer.Option(help="Validation phantoms for calibration (seeds 100000..).")
    ] = 0,
    val: Annotated[list[Path] | None, typer.Option(help="Validation folders / shards.")] = None,
    sites: Annotated[str, typer.Option(help="Comma-separated phantom sites.")] = "site-a,site-b",
    priors: Annotated[
        str, typer.Option(help="Phantom priors cycled over training shards (comma-separated).")
    ] = "realistic,realistic,balanced",
    shard_size: Annotated[
        int, typer.Option(help="Phantoms per cached shard (sites and priors cycle by shard).")
    ] = 16,
    generate_seconds: Annotated[
        float | None, typer.Option(help="Stop generating training phantoms after this long.")
    ] = None,
    cache: Annotated[Path | None, typer.Option(help="Where cached views go.")] = None,
    workers: Annotated[int, typer.Option(help="Processes for phantom generation.")] = 1,
    loader_workers: Annotated[int, typer.Option(help="Processes that build batches.")] = 0,
    steps: Annotated[int, typer.Option(help="Optimizer steps.")] = 3000,
    batch: Annotated[int, typer.Option(help="Studies per batch.")] = 16,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 1e-3,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    time_limit: Annotated[float | None, typer.Option(help="Stop and save after seconds.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of initialisation and batch order.")] = 0,
    resume: Annotated[bool, typer.Option(help="Resume from OUT/checkpoint.")] = True,
    reload_every: Annotated[
        int, typer.Option(help="Re-read --data every N steps if shards were added.")
    ] = 0,
    checkpoint_every: Annotated[int, typer.Option(help="Checkpoint every N steps.")] = 250,
    init: Annotated[
        Path | None,
        typer.Option(help="Start from this model folder's weights (continue on more data)."),
    ] = None,
    vision_steps: Annotated[
        int,
        typer.Option(help="First train the vision tower through the grade heads for N steps."),
    ] = 600,
    aux_weight: Annotated[
        float,
        typer.Option(help="Weight of the grade heads' loss beside the decoder's (0 = off)."),
    ] = 0.5,
    balance_heads: Annotated[
        bool,
        typer.Option(help="Class-weight the grade heads by the training grades' frequencies."),
    ] = False,
    geometric_augment: Annotated[
        bool,
        typer.Option(
            help="Also rotate, scale and shift level crops and add a bias field (for real data)."
        ),
    ] = False,
) -> None:
    """Train the VLM from scratch on phantoms (and/or folders with ground truth)."""
    from dataclasses import asdict

    import torch

    from reporter.training.vlm_batches import Augment
    from reporter.training.vlm_train import TrainConfig, train

    if torch.get_num_threads() > 4 and device != "cuda":
        torch.set_num_threads(4)
    cache_dir = cache or out / "cache"
    site_list = [s.strip() for s in sites.split(",") if s.strip()]
    train_dirs = _views_of(list(data or []), cache_dir)
    if phantoms:
        prior_list = tuple(p.strip() for p in priors.split(",") if p.strip())
        target = cache_dir / "train"
        train_dirs.append(
            _phantom_shards(
                target,
                phantoms,
                TRAIN_SEED_START,
                site_list,
                workers,
                prior_list,
                generate_seconds,
                shard_size,
            )
        )
    if not train_dirs:
        raise UsageError("give --data folders and/or --phantoms N")
    val_dirs = _views_of(list(val or []), cache_dir)
    if val_phantoms:
        val_dirs.append(
            _phantom_shards(cache_dir / "val", val_phantoms, VAL_SEED_START, site_list, workers)
        )
    cfg = TrainConfig(
        steps=steps, batch_studies=batch, lr=lr, device=device, workers=loader_workers,
        time_limit_s=time_limit, seed=seed, reload_every=reload_every,
        checkpoint_every=checkpoint_every, vision_steps=vision_steps, aux_weight=aux_weight,
        balance_heads=balance_heads,
        augment=asdict(Augment.real() if geometric_augment else Augment()),
    )  # fmt: skip
    summary = train(train_dirs, out, cfg, val_dirs=val_dirs or None, resume=resume, init=init)
    out_console.print(
        f"model written to {out} ({summary['steps_done']} steps, "
        f"loss {summary['final_loss_ema']:.4f}, {summary['seconds']} s on {summary['device']})"
    )


@app.command("finetune")
@guarded
def finetune_cmd(
    base: Annotated[Path | None, typer.Option("--base", help="Base model folder.")] = None,
    data: Annotated[
        list[Path] | None, typer.Option("--data", help="Studies of the new site (or shards).")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Adapter folder to write.")] = Path("adapter"),
    phantoms: Annotated[
        int, typer.Option(help="Generate this many phantoms of --site (seeds 200000..).")
    ] = 0,
    site: Annotated[str, typer.Option(help="Site of generated phantoms.")] = "site-c",
    steps: Annotated[int, typer.Option(help="Optimizer steps.")] = 300,
    batch: Annotated[int, typer.Option(help="Studies per batch.")] = 8,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 2e-3,
    rank: Annotated[int, typer.Option(help="LoRA rank.")] = 8,
    vision: Annotated[bool, typer.Option(help="Adapt the vision tower too.")] = True,
    merge_into: Annotated[
        Path | None, typer.Option(help="Also write base + adapter merged as a model folder.")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    workers: Annotated[int, typer.Option(help="Processes for phantom generation.")] = 1,
) -> None:
    """Adapt a model to a new site with LoRA; writes adapter_config.json + safetensors."""
    from rich.progress import Progress

    from reporter.training.vlm_finetune import finetune
    from reporter.vlm.adapters import apply_adapter
    from reporter.vlm.inference import load_model, save_model

    dirs = _views_of(list(data or []), out.parent / f"{out.name}-cache")
    if phantoms:
        target = out.parent / f"{out.name}-cache" / "phantoms"
        dirs.append(_phantom_shards(target, phantoms, FINETUNE_SEED_START, [site], workers))
    if not dirs:
        raise UsageError("give --data folders and/or --phantoms N")
    with Progress(console=err_console, transient=True) as progress:
        task = progress.add_task("finetune", total=steps)
        summary = finetune(
            base, dirs, out, steps=steps, batch_studies=batch, lr=lr, rank=rank, vision=vision,
            device=device, progress=lambda k, loss: progress.update(
                task, completed=k, description=f"finetune loss {loss:.4f}"
            ),
        )  # fmt: skip
    out_console.print(
        f"adapter written to {out} ({summary['adapter_bytes'] / 1e6:.2f} MB, "
        f"{summary['studies']} studies, {summary['seconds']} s)"
    )
    if merge_into is not None:
        merged = apply_adapter(load_model(base), out, merge=True)
        save_model(merged, merge_into)
        out_console.print(f"merged model written to {merge_into}")


@app.command("calibrate")
@guarded
def calibrate_cmd(
    model: Annotated[Path, typer.Option("--model", help="Model folder to calibrate in place.")],
    data: Annotated[
        list[Path] | None, typer.Option("--data", help="Validation studies (or shards).")
    ] = None,
    val_phantoms: Annotated[
        int, typer.Option(help="Generate this many validation phantoms (seeds 100000..).")
    ] = 0,
    sites: Annotated[str, typer.Option(help="Comma-separated phantom sites.")] = "site-a,site-b",
    workers: Annotated[int, typer.Option(help="Processes for phantom generation.")] = 1,
) -> None:
    """Fit temperature scaling and abstention thresholds on a validation split."""
    from reporter.training.vlm_calibration import fit_calibration
    from reporter.training.vlm_data import ShardSet
    from reporter.vlm.inference import load_model, save_model

    dirs = _views_of(list(data or []), model / "cache")
    if val_phantoms:
        site_list = [s.strip() for s in sites.split(",") if s.strip()]
        dirs.append(
            _phantom_shards(
                model / "cache" / "val", val_phantoms, VAL_SEED_START, site_list, workers
            )
        )
    if not dirs:
        raise UsageError("give --data folders and/or --val-phantoms N")
    m = load_model(model)
    m.calibration = fit_calibration(m, ShardSet.load(dirs))
    save_model(m, model)
    out_console.print(f"calibration written to {model / 'calibration.json'}")
