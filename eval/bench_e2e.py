"""Benchmark: end-to-end reporting latency, peak memory and batch throughput.

    python eval/bench_e2e.py [--runs 10] [--n-batch 50] [--workers 1 2] [--work runs/bench_e2e]
                             [--model M] [--phantom-seg]

1. Latency: the demo study (phantom seed 500_000, the one `spine-report demo` makes) is written as
   DICOM and reported `--runs` times by `reporter.report_study` in a fresh child process (ingest
   from disk, anatomy, VLM, grounding, every output written). The first run also loads the model
   and imports the libraries and is reported apart (cold); median and p95 are over the warm runs.
   Peak memory is the child's peak RSS (getrusage ru_maxrss), so it covers model, study and
   renderers together.
2. Throughput: `--n-batch` phantom studies (seeds 600_000.., outside every training or evaluation
   range; this measures speed, not accuracy) are written once, then `spine-report batch` runs on
   them with each `--workers` count into a fresh output folder; studies per minute = items / wall
   time of the whole command, worker start-up (model load) included.

By default the pipeline runs exactly as a user's would: the built-in segmenter and the embedded
default model. `--phantom-seg` imports each phantom's own seg.dcm instead of running the segmenter
and `--model` names another model folder, for when those weights are not built yet; the printed
header says which was used. Numbers depend on the machine and its load: the script prints the
CPU count and the 1-minute load average next to them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

DEMO_SEED = 500_000
BATCH_SEED0 = 600_000

_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import reporter
study_dir, out, runs, model, seg = sys.argv[1:6]
out, runs = Path(out), int(runs)
times, stages = [], []
for i in range(runs):
    t = time.perf_counter()
    rep = reporter.report_study(
        study_dir, out_dir=out / f"run{i}", model=model or None, seg=seg or None
    )
    times.append(time.perf_counter() - t)
    stages.append(rep.provenance.timings_s)
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"times": times, "stages": stages, "peak_rss_mb": peak_kb / 1024}))
"""


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def _write_phantom(seed: int, folder: Path) -> Path:
    from reporter.synth import generate_study, write_study

    if (folder / "meta.json").exists():
        return folder
    return write_study(generate_study(seed, site="site-a"), folder)


def latency(work: Path, runs: int, model: str | None, phantom_seg: bool) -> dict[str, float]:
    study = _write_phantom(DEMO_SEED, work / "demo_study")
    out = work / "latency_out"
    shutil.rmtree(out, ignore_errors=True)
    seg = str(study / "seg.dcm") if phantom_seg else ""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            str(study / "dicom"),
            str(out),
            str(runs + 1),
            model or "",
            seg,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"latency run failed:\n{proc.stderr[-3000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    warm = res["times"][1:]
    stage_names = res["stages"][-1].keys()
    stage_median = {
        k: statistics.median(s[k] for s in res["stages"][1:] if k in s) for k in stage_names
    }
    return {
        "cold_s": res["times"][0],
        "median_s": statistics.median(warm),
        "p95_s": _pct(warm, 0.95),
        "peak_rss_mb": res["peak_rss_mb"],
        "n_warm": len(warm),
        **{f"stage_{k}_s": v for k, v in stage_median.items()},
    }


def throughput(
    work: Path, n: int, workers: list[int], model: str | None, phantom_seg: bool
) -> dict[int, dict[str, float]]:
    studies = work / "batch_studies"
    rows = ["study,accession,priority,indication,seg"]
    t = time.perf_counter()
    for i in range(n):
        d = _write_phantom(BATCH_SEED0 + i, studies / f"p{i:03d}")
        rows.append(f"{d / 'dicom'},,routine,,{d / 'seg.dcm' if phantom_seg else ''}")
    print(f"  ({n} phantom studies ready in {time.perf_counter() - t:.0f} s)", flush=True)
    wl = work / "worklist.csv"
    wl.write_text("\n".join(rows) + "\n")
    out: dict[int, dict[str, float]] = {}
    for w in workers:
        dest = work / f"batch_out_w{w}"
        shutil.rmtree(dest, ignore_errors=True)
        cmd = [
            sys.executable,
            "-c",
            "from reporter.cli import main; main()",
            "batch",
            str(wl),
            "--out",
            str(dest),
            "--workers",
            str(w),
        ]
        if model:
            cmd += ["--model", model]
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t
        manifest = (dest / "manifest.csv").read_text().splitlines()[1:]
        done = sum(1 for line in manifest if ",done," in line)
        if proc.returncode != 0 or done != n:
            print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
        out[w] = {"wall_s": wall, "done": done, "studies_per_min": done / wall * 60}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=10, help="warm latency runs (after one cold run)")
    ap.add_argument("--n-batch", type=int, default=50)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--work", type=Path, default=Path("runs/bench_e2e"))
    ap.add_argument("--model", default=None, help="model folder (default: the embedded model)")
    ap.add_argument(
        "--phantom-seg",
        action="store_true",
        help="import each phantom's seg.dcm instead of running the segmenter",
    )
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--skip-batch", action="store_true")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(
        f"model: {args.model or 'embedded default'}; anatomy: "
        f"{'phantom seg.dcm imported' if args.phantom_seg else 'built-in segmenter'}"
    )
    if not args.skip_latency:
        lat = latency(args.work, args.runs, args.model, args.phantom_seg)
        print(
            f"latency (demo study, seed {DEMO_SEED}): cold {lat['cold_s']:.2f} s; "
            f"warm median {lat['median_s']:.2f} s, p95 {lat['p95_s']:.2f} s "
            f"over {lat['n_warm']} runs; peak RSS {lat['peak_rss_mb']:.0f} MB"
        )
        stages = {k[6:-2]: round(v, 2) for k, v in lat.items() if k.startswith("stage_")}
        print(f"  median per stage (s): {stages}")
    if not args.skip_batch:
        thr = throughput(args.work, args.n_batch, args.workers, args.model, args.phantom_seg)
        for w, r in thr.items():
            print(
                f"batch, {w} worker(s): {r['done']}/{args.n_batch} done in {r['wall_s']:.0f} s "
                f"-> {r['studies_per_min']:.1f} studies/min"
            )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
