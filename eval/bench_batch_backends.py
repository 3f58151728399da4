"""Benchmark: the same worklist through `spine-report batch` on the local and the Ray backend.

    python eval/bench_batch_backends.py [--n 20] [--seed 620000] [--workers 2]
                                        [--address HEAD:6379] [--phantom-seg] [--model M]
                                        [--work runs/bench_batch_backends] [--json]

`--n` phantom studies (`spine-report synth --site site-a`, seeds `--seed`.. in the unassigned
range, so never a training or evaluation phantom; this measures dispatch, not accuracy) are
made once, then the same worklist is run twice, each into a fresh output folder:

    spine-report batch WL --workers W                      (local worker processes)
    spine-report batch WL --workers W --backend ray        (Ray actors; --address: a cluster,
                                                            else a private local Ray)

Checks: the same exit code; the same manifest rows aside from `seconds`, `finished_at` and
`worker_pid` (and the output folder's own path); the same findings.json for every item; and the
same other outputs once timestamps and UIDs are taken out (DICOM elements of VR UI / DA / TM /
DT, ISO timestamps in text, provenance.json's values). Throughput is items done / wall time of
the whole command, start-up (Ray start, model load per worker) included. Numbers depend on the
machine and its load: the CPU count and 1-minute load average are printed beside them.
Exit status 0 when every check holds, 1 when one does not.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SEED0 = 620_000
RUN_FIELDS = ("seconds", "finished_at", "worker_pid")
VOLATILE_VR = {"UI", "DA", "TM", "DT"}
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?")
CLI = [sys.executable, "-c", "from reporter.cli import main; main()"]


def make_studies(work: Path, n: int, seed: int) -> list[Path]:
    """`n` phantom study folders (made once; a re-run with the same seeds reuses them)."""
    folder = (work / f"studies-{seed}-{n}").resolve()  # the worklist names studies absolutely
    done = folder / ".complete"
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        cmd = [*CLI, "synth", "--out", str(folder), "--n", str(n), "--site", "site-a"]
        cmd += ["--seed", str(seed), "--workers", "2"]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.exit(f"synth failed ({proc.returncode}): {proc.stderr[-2000:]}")
        (folder / "studies.txt").write_text(proc.stdout)
        done.touch()
    return [folder / Path(line).name for line in (folder / "studies.txt").read_text().split()]


def write_worklist(work: Path, studies: list[Path], phantom_seg: bool) -> Path:
    rows = ["study,accession,priority,indication,seg"]
    for i, s in enumerate(studies):
        rows.append(f"{s / 'dicom'},BENCH{i:04d},routine,,{s / 'seg.dcm' if phantom_seg else ''}")
    wl = work / "worklist.csv"
    wl.write_text("\n".join(rows) + "\n")
    return wl


def run_backend(
    wl: Path, out: Path, backend: str, workers: int, model: str | None, address: str | None
) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [*CLI, "batch", str(wl), "--out", str(out), "--workers", str(workers)]
    if backend == "ray":
        cmd += ["--backend", "ray"] + (["--address", address] if address else [])
    if model:
        cmd += ["--model", model]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    manifest = _read_manifest(out)
    done = sum(1 for m in manifest if m["status"] == "done")
    seconds = [float(m["seconds"]) for m in manifest if m["status"] == "done"]
    return {
        "exit_code": proc.returncode,
        "wall_s": round(wall, 1),
        "done": done,
        "failed": sum(1 for m in manifest if m["status"] in ("failed", "timeout")),
        "studies_per_min": round(done / wall * 60, 2) if wall else 0.0,
        "median_item_s": round(statistics.median(seconds), 2) if seconds else None,
        "workers_seen": len({m["worker_pid"] for m in manifest if m["worker_pid"]}),
        "stderr_tail": proc.stderr.strip().splitlines()[-1:] if proc.returncode else [],
    }


def _read_manifest(out: Path) -> list[dict[str, str]]:
    path = out / "manifest.csv"
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def comparable_manifest(out: Path) -> list[dict[str, str]]:
    rows = _read_manifest(out)
    for m in rows:
        for k in RUN_FIELDS:
            m.pop(k, None)
        m["out_dir"] = Path(m["out_dir"]).name if m["out_dir"] else ""
    return rows


def _dicom_content(path: Path) -> dict[str, Any]:
    import pydicom

    ds = pydicom.dcmread(path)

    def drop_volatile(dataset: Any, elem: Any) -> None:
        if elem.VR in VOLATILE_VR:
            del dataset[elem.tag]

    ds.walk(drop_volatile)
    return ds.to_json_dict()


def comparable_reports(out: Path) -> dict[str, Any]:
    """Every report folder's files, timestamps and UIDs taken out (findings.json as it is)."""
    found: dict[str, Any] = {}
    for folder in sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(folder.iterdir()):
            key = f"{folder.name}/{f.name}"
            if f.suffix == ".dcm":
                found[key] = _dicom_content(f)
            elif f.name == "provenance.json":
                found[key] = sorted(json.loads(f.read_text()))  # times and UIDs: keys only
            elif f.name == "findings.json":
                found[key] = json.loads(f.read_text())
            else:
                found[key] = TIMESTAMP.sub("<time>", f.read_text(errors="replace"))
    return found


def code_versions(out: Path) -> list[str]:
    """The code versions the reports state (the git commit is part of them: a commit landing in
    a shared checkout between the two runs changes every report's provenance line)."""
    return sorted(
        {json.loads(f.read_text()).get("code_version", "") for f in out.glob("*/provenance.json")}
    )


def compare(local_out: Path, ray_out: Path, codes: tuple[int, int]) -> dict[str, Any]:
    a, b = comparable_reports(local_out), comparable_reports(ray_out)
    findings = [k for k in a if k.endswith("/findings.json")]
    differing = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    versions = {"local": code_versions(local_out), "ray": code_versions(ray_out)}
    return {
        "code_versions": versions,
        "same_code": versions["local"] == versions["ray"] and len(versions["local"]) == 1,
        "exit_code": codes[0] == codes[1],
        "manifest": comparable_manifest(local_out) == comparable_manifest(ray_out),
        "findings": bool(findings) and not [k for k in differing if k.endswith("findings.json")],
        "reports": not differing,
        "n_reports": len(findings),
        "differing_files": differing[:20],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=20, help="phantom studies (default 20)")
    ap.add_argument("--seed", type=int, default=SEED0, help=f"first seed (default {SEED0})")
    ap.add_argument("--workers", type=int, default=2, help="workers of each backend (default 2)")
    ap.add_argument("--address", default=None, help="a Ray cluster (default: a private local Ray)")
    ap.add_argument("--model", default=None, help="model folder (default: the embedded model)")
    ap.add_argument(
        "--phantom-seg",
        action="store_true",
        help="import each phantom's seg.dcm instead of running the segmenter",
    )
    ap.add_argument("--work", type=Path, default=Path("runs/bench_batch_backends"))
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()[0]

    t = time.perf_counter()
    studies = make_studies(args.work, args.n, args.seed)
    synth_s = time.perf_counter() - t
    wl = write_worklist(args.work, studies, args.phantom_seg)
    results = {}
    for backend in ("local", "ray"):
        out = args.work / f"out-{backend}"
        results[backend] = run_backend(wl, out, backend, args.workers, args.model, args.address)
    checks = compare(
        args.work / "out-local",
        args.work / "out-ray",
        (results["local"]["exit_code"], results["ray"]["exit_code"]),
    )
    ok = all(checks[k] for k in ("exit_code", "manifest", "findings", "reports"))
    summary = {
        "n": args.n,
        "seed": args.seed,
        "workers": args.workers,
        "ray_address": args.address or "private local Ray",
        "anatomy": "phantom seg.dcm imported" if args.phantom_seg else "built-in segmenter",
        "model": args.model or "embedded default",
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_start": round(load_start, 1),
            "load_avg_end": round(os.getloadavg()[0], 1),
        },
        "synth_s": round(synth_s, 1),
        "backends": results,
        "identical": checks,
        "ok": ok,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        m = summary["machine"]
        print(
            f"machine: {m['cpus']} CPUs, load average {m['load_avg_start']} at the start, "
            f"{m['load_avg_end']} at the end"
        )
        print(
            f"{args.n} phantom studies (site-a, seeds {args.seed}..{args.seed + args.n - 1}), "
            f"{summary['anatomy']}, model: {summary['model']}; ready in {synth_s:.0f} s"
        )
        for backend, r in results.items():
            label = f"{backend} ({args.workers} workers"
            label += f", {summary['ray_address']})" if backend == "ray" else ")"
            print(
                f"  {label}: exit {r['exit_code']}, {r['done']}/{args.n} done, "
                f"{r['failed']} failed, in {r['wall_s']:.0f} s -> "
                f"{r['studies_per_min']:.1f} studies/min "
                f"(median {r['median_item_s']} s per item, {r['workers_seen']} workers seen)"
            )
            for line in r["stderr_tail"]:
                print(f"    stderr: {line}")
        print(
            f"identical: exit code {checks['exit_code']}, manifest {checks['manifest']}, "
            f"findings.json {checks['findings']} ({checks['n_reports']} reports), "
            f"all outputs without timestamps/UIDs {checks['reports']}"
        )
        for k in checks["differing_files"]:
            print(f"  differs: {k}")
        if not checks["same_code"]:
            print(f"  note: the runs' code versions differ: {checks['code_versions']}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
