"""Real training data for the VLM: SPIDER and Sudirman patients cached as view shards.

    python -m reporter.training.real_views --real ../shared/data/real --out runs/realvlm \
        [--sets spider,sudirman] [--splits train,val,test]

Each patient goes through the users' path: the images are read by reporter.ingest.image2d (as a
user's PNG would be), the anatomy is `pipeline.study_anatomy` (DiscNet + SegNet2D on 2-D input),
and the VLM's own `build_views` cuts the views (reporter.training.vlm_data.make_example). Truth is
the dataset's own conversion to our schema: SPIDER's per-disc gradings (Pfirrmann, Modic,
herniation, narrowing, listhesis), Sudirman's Pfirrmann grades at L3-L4 .. L5-S1; every field the
truth does not grade is "unknown" (code -1) and teaches nothing.

Shards go to OUT/<set>/<split>/views-NNNNN.safetensors, `shard_size` patients each, in the
dataset's patient order; a shard already on disk is kept, so an interrupted run resumes. A patient
whose anatomy or views fail is counted in OUT/<set>/<split>/failed.json with the error's type and
message (never the patient's image), not fatal: the evaluation harness counts the same patients
as wrong, so training on fewer of them hides nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from reporter.training.vlm_data import Example, make_example, write_shard
from reporter.vlm.config import ViewConfig

SETS = {"spider": "spider", "sudirman": "sudirman_sagittal"}


def _example(case: Any, cfg: ViewConfig) -> Example:
    from reporter.pipeline import study_anatomy

    anatomy = study_anatomy(case.study)
    return make_example(case.study, anatomy, case.findings, cfg, {"case": case.case_id})


def cache_split(cases: list[Any], out: Path, cfg: ViewConfig, shard_size: int = 16) -> dict:
    """Cache `cases` (with findings) as shards in `out`; returns counts and failures."""
    out.mkdir(parents=True, exist_ok=True)
    failed_file = out / "failed.json"
    failed: dict[str, str] = json.loads(failed_file.read_text()) if failed_file.is_file() else {}
    n = 0
    for shard, start in enumerate(range(0, len(cases), shard_size)):
        path = out / f"views-{shard:05d}.safetensors"
        chunk = cases[start : start + shard_size]
        if path.is_file():
            n += sum(1 for c in chunk if c.case_id not in failed)
            continue
        examples = []
        for case in chunk:
            try:
                examples.append(_example(case, cfg))
            except Exception as exc:  # one bad patient never loses the run
                failed[case.case_id] = f"{type(exc).__name__}: {exc}"[:300]
        if examples:
            write_shard(path, examples)
        n += len(examples)
        failed_file.write_text(json.dumps(failed, indent=1, sort_keys=True) + "\n")
    return {"cached": n, "failed": len(failed)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=Path, required=True, help="../shared/data/real")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sets", default="spider,sudirman")
    ap.add_argument("--splits", default="train,val,test")
    ap.add_argument("--shard-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from reporter.datasets import open_dataset
    from reporter.quiet import quiet_libraries

    quiet_libraries()
    cfg = ViewConfig()
    for name in args.sets.split(","):
        ds = open_dataset(args.real / SETS[name], name)
        for split in args.splits.split(","):
            t0 = time.time()
            cases = [c for c in ds.split(split) if c.findings is not None]  # type: ignore[arg-type]
            counts = cache_split(cases, args.out / name / split, cfg, args.shard_size)
            print(
                f"{name}/{split}: {counts['cached']} cached, {counts['failed']} failed "
                f"of {len(cases)} ({time.time() - t0:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
