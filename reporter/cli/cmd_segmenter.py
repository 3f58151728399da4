"""Commands of this area (registered on reporter.cli.app.app): training the built-in segmenter."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reporter.cli.app import app, err_console, guarded, out_console


@app.command("train-segmenter")
@guarded
def train_segmenter(
    out: Annotated[Path, typer.Option("--out", help="Folder for checkpoints and the weights.")],
    steps: Annotated[int, typer.Option("--steps", min=1, help="Optimizer steps.")] = 3000,
    real: Annotated[
        Path | None,
        typer.Option("--real", help="A lumbar3d-style folder of real volumes to mix in."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the checkpoint in --out.")
    ] = False,
    init: Annotated[
        Path | None,
        typer.Option("--init", help="Start from these weights (a segmenter folder): fine-tuning."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of data order and init.")] = 0,
    no_phantoms: Annotated[
        bool, typer.Option("--no-phantoms", help="Train on the --real volumes alone.")
    ] = False,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="Peak learning rate.")] = 2e-3,
    threads: Annotated[int, typer.Option("--threads", min=1, help="torch CPU threads.")] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Crops per step.")] = 8,
    crop: Annotated[int, typer.Option("--crop", min=32, help="Crop side in pixels (1 mm).")] = 192,
    pool_size: Annotated[
        int, typer.Option("--pool-size", min=1, help="Phantom studies held in memory.")
    ] = 12,
    refresh_every: Annotated[
        int, typer.Option("--refresh-every", min=1, help="Steps between two new phantoms.")
    ] = 20,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
    workers: Annotated[
        int, typer.Option("--workers", min=0, help="Data-loader processes making phantoms.")
    ] = 0,
    max_minutes: Annotated[
        float | None, typer.Option("--max-minutes", help="Stop (and save) after this long.")
    ] = None,
    context_slices: Annotated[
        int | None,
        typer.Option(
            "--context-slices",
            min=0,
            help="Neighbour slices on each side as input channels (1: 2.5-D); "
            "default: those of --init, else 0. A 2-D --init is grown to fit.",
        ),
    ] = None,
) -> None:
    """Train the built-in segmenter on phantoms (and real lumbar3d volumes with --real)."""
    from reporter.errors import UsageError
    from reporter.training.segmenter_train import TrainConfig, train

    if no_phantoms and real is None:
        raise UsageError("--no-phantoms needs --real DIR")
    cfg = TrainConfig(
        steps=steps,
        seed=seed,
        lr=lr,
        threads=threads,
        batch_size=batch_size,
        crop=crop,
        pool_size=pool_size,
        refresh_every=refresh_every,
        init=str(init) if init else None,
        context_slices=context_slices,
    )
    result = train(
        out,
        cfg,
        real_dir=real,
        resume=resume,
        phantoms=not no_phantoms,
        device=device,
        workers=workers,
        max_minutes=max_minutes,
        log=lambda m: err_console.print(m, markup=False, highlight=False),
    )
    out_console.print(f"{out / 'model.safetensors'} sha256 {result['sha256']}", markup=False)
