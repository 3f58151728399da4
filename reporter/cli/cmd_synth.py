"""`spine-report synth`: write phantom studies (reporter.synth)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from reporter.cli.app import app, err_console, guarded, out_console
from reporter.errors import UsageError


@app.command()
@guarded
def synth(
    out: Annotated[Path, typer.Option("--out", help="Output folder (created).")],
    n: Annotated[int, typer.Option("--n", help="Number of studies.")] = 1,
    site: Annotated[
        str, typer.Option("--site", help="site-a | site-b | site-c (the new site) | random.")
    ] = "site-a",
    seed: Annotated[
        int, typer.Option("--seed", help="First seed; studies use seed..seed+n-1.")
    ] = 0,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes.")] = 1,
    priors: Annotated[str, typer.Option("--priors", help="realistic | balanced.")] = "realistic",
    fmt: Annotated[str, typer.Option("--format", help="dicom | rsna2024.")] = "dicom",
    preview: Annotated[
        bool, typer.Option("--preview", help="Write a montage PNG per study.")
    ] = False,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="v1 (physics-like sites, sagittal + axial) | v2 (randomised realism, "
            "sagittal T1 + T2; --site only sets the scanner's headers and field strength).",
        ),
    ] = "v1",
    slices: Annotated[
        str,
        typer.Option("--slices", help="v2 only: stack (full sagittal stack) | mid (one slice)."),
    ] = "stack",
) -> None:
    """Generate phantom lumbar spine MRI studies with exact ground truth.

    dicom: one folder per study (dicom/, findings.json, meta.json, labels/, seg.dcm). rsna2024:
    one dataset root in the RSNA 2024 layout. The same seed always gives byte-identical files.
    """
    from reporter.synth.batch import Job, run_jobs, study_dir_name
    from reporter.synth.priors import PRIORS
    from reporter.synth.seeds import split_of
    from reporter.synth.sites import SITES
    from reporter.synth.storage import FORMATS

    if n < 1:
        raise UsageError("--n must be at least 1")
    if workers < 1:
        raise UsageError("--workers must be at least 1")
    if seed < 0:
        raise UsageError("--seed must be >= 0")
    if site not in SITES:
        raise UsageError(f"unknown --site {site!r}; expected one of {', '.join(SITES)}")
    if priors not in PRIORS:
        raise UsageError(f"unknown --priors {priors!r}; expected one of {', '.join(PRIORS)}")
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if engine not in ("v1", "v2"):
        raise UsageError(f"unknown --engine {engine!r}; expected v1 or v2")
    if engine == "v2":
        _synth_v2(out, n, site, seed, workers, priors, fmt, slices)
        return
    splits = {split_of(seed), split_of(seed + n - 1)}
    if len(splits) > 1:
        err_console.print(f"note: seeds {seed}..{seed + n - 1} span the splits {sorted(splits)}")
    jobs = [Job(s, site, priors, str(out), fmt, preview) for s in range(seed, seed + n)]
    rows: list[Any] = []

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    ) as progress:
        task = progress.add_task(f"phantoms ({site})", total=n)

        def done(res: dict[str, Any]) -> None:
            if "rows" in res:
                rows.append(res["rows"])
            progress.advance(task)

        out.mkdir(parents=True, exist_ok=True)
        run_jobs(jobs, workers, done)
    if fmt == "rsna2024":
        from reporter.synth.rsna import write_rsna_csvs

        write_rsna_csvs(out, rows)
        out_console.print(str(out), highlight=False)
    else:
        for s in range(seed, seed + n):
            out_console.print(str(out / study_dir_name(s)), highlight=False)


def _synth_v2(
    out: Path, n: int, site: str, seed: int, workers: int, priors: str, fmt: str, slices: str
) -> None:
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial

    from reporter.synth.batch import study_dir_name
    from reporter.synth.v2.batch import SLICES, run_job_v2

    if fmt != "dicom":
        raise UsageError("--engine v2 writes --format dicom only (it has no axial series)")
    if slices not in SLICES:
        raise UsageError(f"unknown --slices {slices!r}; expected one of {', '.join(SLICES)}")
    out.mkdir(parents=True, exist_ok=True)
    job = partial(run_job_v2, site=site, priors=priors, out=str(out), fmt=fmt, slices=slices)
    seeds = list(range(seed, seed + n))
    if workers <= 1:
        for s in seeds:
            job(s)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(job, seeds))
    for s in seeds:
        out_console.print(str(out / study_dir_name(s)), highlight=False)
