"""Phantom engine benchmarks: speed (CPU seconds per standard study) and prior distributions.

    python eval/bench_synth.py speed --n 20 [--site site-a] [--write]
    python eval/bench_synth.py priors --priors balanced --n 1000 [--workers 2]

Speed is CPU time of this process per study (`time.process_time`), i.e. per core, so it does not
depend on how busy a shared machine is; wall time is printed beside it.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from reporter.schema import LEVEL_FIELDS, field_values


def speed(n: int, site: str, write: bool, start: int) -> None:
    from reporter.synth import generate_study, write_study

    generate_study(start - 1, site=site)  # warm imports and caches
    cpu, wall = [], []
    tmp = Path(tempfile.mkdtemp(prefix="bench_synth_"))
    try:
        for seed in range(start, start + n):
            c0, w0 = time.process_time(), time.perf_counter()
            ph = generate_study(seed, site=site)
            if write:
                write_study(ph, tmp / str(seed))
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cpu.sort()
    mean = sum(cpu) / n
    print(f"site={site} n={n} write={write}")
    print(f"cpu s/study: mean {mean:.3f} median {cpu[n // 2]:.3f} max {cpu[-1]:.3f}")
    print(f"studies per second per core: {1.0 / mean:.2f}")
    print(f"wall s/study (shared machine): mean {sum(wall) / n:.3f}")


def _counts(args: tuple[int, int, str]) -> dict[str, Any]:
    from reporter.synth import generate_study

    start, stop, priors = args
    c: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for seed in range(start, stop):
        ph = generate_study(seed, priors=priors, render=False)
        c["study.transitional"][ph.findings.study.transitional.value] += 1
        c["study.lumbar_vertebrae"][ph.findings.study.lumbar_vertebrae] += 1
        c["study.alignment"][ph.findings.study.alignment.value] += 1
        c["study.fov"][ph.meta["fov"]] += 1
        for lf in ph.findings.levels:
            for f in LEVEL_FIELDS:
                fd = getattr(lf, f)
                if fd.assessed:
                    c[f][fd.value] += 1
                    lvl = "L5-S1" if lf.level.endswith("-S1") else lf.level
                    c[f"{f}@{lvl}"][fd.value] += 1
            if lf.herniation.assessed and lf.herniation.zone:
                c["herniation_zone"][lf.herniation.zone] += 1
    return {k: dict(v) for k, v in c.items()}


def priors_table(n: int, priors: str, workers: int, start: int) -> dict[str, Any]:
    chunks = [(a, min(a + 50, start + n), priors) for a in range(start, start + n, 50)]
    total: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for part in pool.map(_counts, chunks):
            for k, v in part.items():
                total[k].update(v)
    print(f"priors={priors} studies={n} (ground truth measured from the drawn geometry)")
    print(f"{'field':28s} {'levels':>6s}  value: share")
    worst = 1.0
    for f in LEVEL_FIELDS:
        c = total[f]
        tot = sum(c.values())
        shares = {v: c.get(v, 0) / tot for v in field_values(f)}
        worst = min(worst, *shares.values())
        cells = "  ".join(f"{v}: {100 * s:.1f}%" for v, s in shares.items())
        print(f"{f:28s} {tot:6d}  {cells}")
    for k in ("herniation_zone", "study.transitional", "study.lumbar_vertebrae",
              "study.alignment", "study.fov"):  # fmt: skip
        c = total[k]
        tot = sum(c.values())
        cells = "  ".join(f"{v}: {100 * x / tot:.1f}%" for v, x in sorted(c.items(), key=str))
        print(f"{k:28s} {tot:6d}  {cells}")
    print(f"smallest share of any value of any level field: {100 * worst:.2f}%")
    return {k: dict(v) for k, v in total.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("speed")
    sp.add_argument("--n", type=int, default=20)
    sp.add_argument("--site", default="site-a")
    sp.add_argument("--write", action="store_true", help="also write DICOM, labels, SEG")
    sp.add_argument("--start", type=int, default=1_000_000)
    pp = sub.add_parser("priors")
    pp.add_argument("--priors", default="realistic")
    pp.add_argument("--n", type=int, default=1000)
    pp.add_argument("--workers", type=int, default=1)
    pp.add_argument("--start", type=int, default=1_000_000)
    pp.add_argument("--json", type=Path, help="write the counts here")
    a = ap.parse_args()
    if a.cmd == "speed":
        speed(a.n, a.site, a.write, a.start)
    else:
        counts = priors_table(a.n, a.priors, a.workers, a.start)
        if a.json:
            a.json.write_text(json.dumps(counts, indent=1, sort_keys=True, default=str))


if __name__ == "__main__":
    main()
