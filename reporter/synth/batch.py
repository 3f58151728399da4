"""Many phantoms at once: seeds `seed .. seed + n - 1`, optionally in worker processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reporter.synth.phantom import generate_study
from reporter.synth.storage import write_study


@dataclass(frozen=True)
class Job:
    seed: int
    site: str
    priors: str
    out: str
    fmt: str
    preview: bool


def study_dir_name(seed: int) -> str:
    return f"study_{seed:07d}"


def run_job(job: Job) -> dict[str, Any]:
    """Generate and write one study; returns what the caller needs (RSNA rows, paths)."""
    ph = generate_study(job.seed, site=job.site, priors=job.priors)
    root = Path(job.out)
    result: dict[str, Any] = {"seed": job.seed}
    if job.fmt == "rsna2024":
        from reporter.synth.rsna import rsna_rows, write_rsna_images

        write_rsna_images(ph, root)
        result["rows"] = rsna_rows(ph)
        if job.preview:
            from reporter.synth.preview import write_preview

            (root / "previews").mkdir(parents=True, exist_ok=True)
            write_preview(ph, root / "previews" / f"{study_dir_name(job.seed)}.png")
    else:
        d = write_study(ph, root / study_dir_name(job.seed), fmt="dicom")
        if job.preview:
            from reporter.synth.preview import write_preview

            write_preview(ph, d / "preview.png")
        result["path"] = str(d)
    return result


def _init_worker() -> None:
    # Each worker is one core: no nested BLAS / torch threads.
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")


def run_jobs(jobs: list[Job], workers: int, on_done: Callable[[dict[str, Any]], None]) -> None:
    """Run jobs (in order of seed when workers == 1); `on_done` is called for each result."""
    if workers <= 1:
        for job in jobs:
            on_done(run_job(job))
        return
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker) as pool:
        it: Iterator[dict[str, Any]] = pool.map(run_job, jobs, chunksize=1)
        for res in it:
            on_done(res)
