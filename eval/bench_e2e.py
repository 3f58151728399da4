"""Benchmark: end-to-end reporting latency, peak memory and batch throughput.

    python eval/bench_e2e.py [--runs 10] [--n-batch 50] [--workers 1 2] [--work runs/bench_e2e]
                             [--model M] [--phantom-seg] [--json] [--skip-cold-demo]

0. Cold demo: `spine-report demo` in a fresh process (it synthesises the demo phantom, imports
   the libraries, loads the models and reports the study); wall time of the whole command and
   the process's peak RSS.
1. Latency: the demo study (phantom seed 500_000, the one `spine-report demo` makes) is written as
   DICOM and reported `--runs` times by `reporter.report_study` in a fresh child process (ingest
   from disk, anatomy, VLM, grounding, every output written). The first run also loads the model
   and imports the libraries and is reported apart (cold); median and p95 are over the warm runs.
   Peak memory is the child's peak RSS (getrusage ru_maxrss), so it covers model, study and
   renderers together.
2. Throughput: `--n-batch` phantom studies (seeds 600_000.., outside every training or evaluation
   range; this measures speed, not accuracy) are written once, then `spine-report batch` runs on
   them with each `--workers` count into a fresh output folder; studies per minute = items / wall
   time of the whole command, worker start-up (model load) included. The worklist names each
   study relative to its own folder (as `spine-report batch` reads it). Peak memory per worker
   is the largest peak RSS of any process of the batch (the batch and its workers, from
   wait4): the workers hold the models, so it is a worker's.

`--json` prints one JSON object on stdout (the human-readable lines go to stderr):
{"cold_demo_s", "warm_median_s", "warm_p95_s", "stages_s": {stage: median s},
 "batch_per_min": {"1": ..., "2": ...}, "peak_rss_mb", "peak_rss_mb_per_worker": {"1": ...},
 "cold_first_report_s", "cold_demo_peak_rss_mb", "cpus", "load_avg_start", "load_avg_end", ...}

By default the pipeline runs exactly as a user's would: the built-in segmenter and the embedded
default model. `--phantom-seg` imports each phantom's own seg.dcm instead of running the segmenter
and `--model` names another model folder, for when those weights are not built yet; the printed
header says which was used. Numbers depend on the machine and its load: the script prints the
CPU count and the 1-minute load average next to them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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
print(json.dumps({"times": times, "stages": stages, "peak_rss_mb": peak_kb / 1024,
                  "code": str(Path(reporter.__file__).resolve().parent.parent)}))
"""


def _log(*args: Any) -> None:
    """Progress and the human-readable summary: stderr when stdout carries the JSON."""
    print(*args, file=_LOG, flush=True)


_LOG = sys.stdout


def _run_measured(cmd: list[str], cwd: Path | None = None) -> tuple[int, float, float, str]:
    """Run `cmd`; its exit code, wall seconds, peak RSS in MB (the largest of the process and
    its waited-for descendants, from wait4) and the tail of its output."""
    with tempfile.TemporaryFile() as log:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=_ENV, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        tail = log.read().decode("utf-8", "replace")[-3000:]
    return proc.returncode, wall, usage.ru_maxrss / 1024, tail


# -P: a child started with -c would put its working folder first on sys.path and import the
# reporter found there, not the tree being measured; _ENV names that tree (set in main()).
_CLI = [sys.executable, "-P", "-c", "from reporter.cli import main; main()"]
_ENV: dict[str, str] | None = None


def _measure_tree(code: Path | None) -> None:
    """Make every child import `reporter` from `code`, the tree this script imports."""
    global _ENV
    if code is None:
        return
    rest = os.environ.get("PYTHONPATH", "")
    _ENV = {**os.environ, "PYTHONPATH": str(code) + (os.pathsep + rest if rest else "")}


def cold_demo(work: Path) -> dict[str, float]:
    """`spine-report demo` in a fresh process, as a new user runs it first."""
    out = work / "cold_demo"
    shutil.rmtree(out, ignore_errors=True)
    code, wall, rss, tail = _run_measured([*_CLI, "demo", "--out", str(out)])
    if code != 0:
        sys.exit(f"spine-report demo failed (exit {code}):\n{tail}")
    return {"cold_demo_s": wall, "cold_demo_peak_rss_mb": rss}


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
            "-P",
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
        env=_ENV,
    )
    if proc.returncode != 0:
        sys.exit(f"latency run failed:\n{proc.stderr[-3000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    if _ENV is not None and res["code"] != _ENV["PYTHONPATH"].split(os.pathsep)[0]:
        sys.exit(f"the latency child imported reporter from {res['code']}, not the measured tree")
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
    wl = work / "worklist.csv"
    rows = ["study,accession,priority,indication,seg"]
    t = time.perf_counter()
    for i in range(n):
        d = _write_phantom(BATCH_SEED0 + i, studies / f"p{i:03d}")
        # Relative to the worklist's own folder: that is how `spine-report batch` reads a row.
        rel = d.relative_to(wl.parent)
        rows.append(f"{rel / 'dicom'},,routine,,{rel / 'seg.dcm' if phantom_seg else ''}")
    _log(f"  ({n} phantom studies ready in {time.perf_counter() - t:.0f} s)")
    wl.write_text("\n".join(rows) + "\n")
    out: dict[int, dict[str, float]] = {}
    for w in workers:
        dest = work / f"batch_out_w{w}"
        shutil.rmtree(dest, ignore_errors=True)
        cmd = [*_CLI, "batch", str(wl), "--out", str(dest), "--workers", str(w)]
        if model:
            cmd += ["--model", model]
        code, wall, rss, tail = _run_measured(cmd)
        manifest_path = dest / "manifest.csv"
        manifest = manifest_path.read_text().splitlines()[1:] if manifest_path.exists() else []
        done = sum(1 for line in manifest if ",done," in line)
        if code != 0 or done != n:
            print(
                f"batch with {w} worker(s): exit {code}, {done}/{n} done:\n{tail}", file=sys.stderr
            )
        out[w] = {
            "wall_s": wall,
            "done": done,
            "studies_per_min": done / wall * 60,
            "peak_rss_mb": rss,
            "exit_code": code,
        }
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
    ap.add_argument("--skip-cold-demo", action="store_true")
    ap.add_argument(
        "--json", action="store_true", help="print one JSON object on stdout (the rest on stderr)"
    )
    args = ap.parse_args()
    global _LOG
    if args.json:
        _LOG = sys.stderr
    args.work.mkdir(parents=True, exist_ok=True)
    # Which code is measured (PYTHONPATH may name another tree than the editable install).
    spec = importlib.util.find_spec("reporter")
    code = Path(spec.origin).resolve().parent.parent if spec and spec.origin else None
    _measure_tree(code)
    result: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        "code": str(code),
    }
    _log(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    _log(f"code: {result['code']}")
    _log(
        f"model: {args.model or 'embedded default'}; anatomy: "
        f"{'phantom seg.dcm imported' if args.phantom_seg else 'built-in segmenter'}"
    )
    if not args.skip_cold_demo:
        demo = cold_demo(args.work)
        result.update(demo)
        _log(
            f"cold demo (fresh `spine-report demo`): {demo['cold_demo_s']:.2f} s, "
            f"peak RSS {demo['cold_demo_peak_rss_mb']:.0f} MB "
            f"(load average {os.getloadavg()[0]:.1f})"
        )
    if not args.skip_latency:
        lat = latency(args.work, args.runs, args.model, args.phantom_seg)
        stages = {k[6:-2]: round(v, 3) for k, v in lat.items() if k.startswith("stage_")}
        result.update(
            {
                "warm_median_s": lat["median_s"],
                "warm_p95_s": lat["p95_s"],
                "stages_s": stages,
                "peak_rss_mb": lat["peak_rss_mb"],
                "cold_first_report_s": lat["cold_s"],
                "n_warm": lat["n_warm"],
            }
        )
        _log(
            f"latency (demo study, seed {DEMO_SEED}): cold {lat['cold_s']:.2f} s; "
            f"warm median {lat['median_s']:.2f} s, p95 {lat['p95_s']:.2f} s "
            f"over {lat['n_warm']} runs; peak RSS {lat['peak_rss_mb']:.0f} MB "
            f"(load average {os.getloadavg()[0]:.1f})"
        )
        _log(f"  median per stage (s): {stages}")
    if not args.skip_batch:
        thr = throughput(args.work, args.n_batch, args.workers, args.model, args.phantom_seg)
        result["batch_per_min"] = {str(w): r["studies_per_min"] for w, r in thr.items()}
        result["peak_rss_mb_per_worker"] = {str(w): r["peak_rss_mb"] for w, r in thr.items()}
        result["batch_done"] = {str(w): r["done"] for w, r in thr.items()}
        result["n_batch"] = args.n_batch
        for w, r in thr.items():
            _log(
                f"batch, {w} worker(s): {r['done']}/{args.n_batch} done in {r['wall_s']:.0f} s "
                f"-> {r['studies_per_min']:.1f} studies/min; peak RSS of a process "
                f"{r['peak_rss_mb']:.0f} MB (load average {os.getloadavg()[0]:.1f})"
            )
    result["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    _log(f"load average at the end: {os.getloadavg()[0]:.1f}")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
