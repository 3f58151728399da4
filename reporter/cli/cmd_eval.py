"""`spine-report eval`: a benchmark or labeled data through the pipeline -> metrics.json."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reporter.cli.app import app, err_console, guarded, out_console


@app.command("eval")
@guarded
def eval_command(
    out: Annotated[Path, typer.Option("--out", help="Folder for metrics.json, summary, plots.")],
    benchmark: Annotated[
        str | None,
        typer.Option("--benchmark", help="Named phantom benchmark (default phantom-v1)."),
    ] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="A labeled dataset folder instead of a benchmark.")
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="Format of --data: phantom|rsna2024|spider|lumbar3d, or a 2-D set read through "
            "the 2-D image path: lumbar3d-2d (a lumbar3d folder, mid-sagittal slices), sudirman, "
            "spider-slices (reporter.datasets).",
        ),
    ] = "phantom",
    model: Annotated[
        str | None, typer.Option("--model", help="Model folder (default: the embedded one).")
    ] = None,
    adapter: Annotated[str | None, typer.Option("--adapter", help="LoRA adapter folder.")] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="Evaluate a stratified subset of N studies."),
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Worker processes (benchmarks only).")
    ] = 1,
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            help="With --data: only the patients of this split (train|val|test; "
            "reporter.datasets.splits). Held-out numbers are the test split.",
        ),
    ] = None,
    no_injected: Annotated[
        bool,
        typer.Option("--no-injected", help="Skip the checker-alone run with planted errors."),
    ] = False,
    anatomy: Annotated[
        str,
        typer.Option(
            "--anatomy",
            help="segmenter (default, as for users) or truth (the cases' own label maps).",
        ),
    ] = "segmenter",
    injected_anatomy: Annotated[
        str,
        typer.Option(
            "--injected-anatomy",
            help="Anatomy for the planted-error check: truth (label maps) or pipeline.",
        ),
    ] = "truth",
    injected_every: Annotated[
        int,
        typer.Option("--injected-every", min=1, help="Planted-error check on every n-th study."),
    ] = 1,
    policy: Annotated[
        str | None,
        typer.Option(
            "--policy",
            help="Report policy: bands, contradicted-only or posterior (default: "
            "reporter/grounding/evidence_policy.json's default_policy).",
        ),
    ] = None,
) -> None:
    """Evaluate the pipeline; writes metrics.json, studies.jsonl, summary.md and plots/ to OUT."""
    from reporter.errors import UsageError
    from reporter.evaluation import checker_block
    from reporter.evaluation.harness import DATA_FORMATS, EvalConfig, run_benchmark, run_dataset
    from reporter.evaluation.summary import (
        results_table,
        structures_table,
        target_note,
        tradeoff_section,
    )
    from reporter.grounding.policy import check_policy

    if data is not None and benchmark is not None:
        raise UsageError("give --benchmark or --data, not both")
    if fmt not in DATA_FORMATS:
        raise UsageError(f"unknown --format {fmt!r}; expected one of {', '.join(DATA_FORMATS)}")
    if split is not None and (data is None or split not in ("train", "val", "test")):
        raise UsageError("--split takes train, val or test, and only with --data")
    if anatomy not in ("segmenter", "truth"):
        raise UsageError(f"--anatomy must be segmenter or truth, not {anatomy!r}")
    if injected_anatomy not in ("truth", "pipeline"):
        raise UsageError(f"--injected-anatomy must be truth or pipeline, not {injected_anatomy!r}")
    config = EvalConfig(
        model=model,
        adapter=adapter,
        anatomy=anatomy,
        injected=not no_injected,
        injected_anatomy=injected_anatomy,
        injected_every=injected_every,
        policy=check_policy(policy) if policy else None,
    )

    def progress(done: int, total: int, rec: object) -> None:
        err = getattr(rec, "error", None)
        tail = f"  FAILED: {err}" if err else ""
        err_console.print(
            f"[{done}/{total}] {getattr(rec, 'case_id', '')}{tail}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )

    if data is not None:

        def warn(line: str) -> None:
            err_console.print(f"warning: {line}", markup=False, highlight=False, soft_wrap=True)

        result = run_dataset(
            data, fmt, out, config, limit=limit, progress=progress, warn=warn, split=split
        )
    else:
        result = run_benchmark(
            benchmark or "phantom-v1", out, config, limit=limit, workers=workers, progress=progress
        )
    out_console.print(results_table(result.metrics), markup=False, highlight=False)
    out_console.print(structures_table(result.metrics), markup=False, highlight=False)
    out_console.print(target_note(result.metrics), markup=False, highlight=False)
    for line in tradeoff_section(result.metrics):
        out_console.print(line, markup=False, highlight=False)
    for line in checker_block.table(result.metrics):
        out_console.print(line, markup=False, highlight=False, soft_wrap=True)
    out_console.print(
        f"wrote {result.out_dir / 'metrics.json'} ({result.metrics['n_studies']} studies, "
        f"{result.wall_s:.0f} s)",
        markup=False,
        highlight=False,
    )
