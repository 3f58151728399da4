"""Fuzz campaign: hostile inputs through `spine-report inspect`, `report` and `batch`.

    python eval/fuzz.py --n 300 --seed 1000 [--json] [--workers 2] [--kinds a,b] [--report-every 20]
    python eval/fuzz.py --case 1042 --keep        # one case again, its files kept

Case i uses seed S+i: a `random.Random(S+i)` draws its kind (eval/fuzz_cases.py; weighted) and
every byte of its input, so a case is reproduced from its seed alone (the base phantoms are fixed
seeds too). Each case goes through:

- `inspect TARGET` (studies, files, NIfTI, PNG), always;
- `report TARGET --out OUT` when inspect rejected it (a rejection must be as quick and clear in
  report), for the single files and PNGs that only report reads, and for a seeded 1 in
  `--report-every` of the rest (a full report runs the models: seconds, not milliseconds);
- `batch WORKLIST --out OUT --timeout T` for worklists.

Every command runs in a child process with limits, and its exit code, stderr lines, wall time
and peak RSS (wait4's rusage of that child) are recorded:

- time (LIMITS_S; `--timeout-scale` multiplies): inspect 60 s, report 300 s, batch 300 s; the
  child's process group is killed past it and the case counts as a hang;
- address space (MEM_MB, RLIMIT_AS set in the child before it runs): inspect 3 GiB, report
  6 GiB, batch 8 GiB (torch alone reserves ~4 GiB of address space);
- memory blow-up: a kill by signal, a MemoryError, or a peak RSS above RSS_LIMIT_MB: inspect
  1.5 GiB, report 3 GiB, batch 4 GiB.

`--spawn fork` (default) forks each command from a worker process that has already imported the
CLI, torch and the model (`torch.set_num_threads(1)`), so a case costs its own work only: the
address-space limit is then the worker's size plus the budget above, and the peak RSS is what
the child added to the worker's resident size at the fork. batch always runs as `--spawn exec`
does: `python -m reporter.cli` started afresh, as a user runs it (a pool worker may not start
the batch's worker processes); there a slow rejection (an input refused only after torch was
imported) shows as wall time.

A failure is: exit 70 (internal error), a hang, a memory blow-up, an exit code outside the
README's table, a traceback or any stderr line that is not one `spine-report: error|warning:`
line, or a rejection (exit 64/65/66) without exactly one error line. The goal is none.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import random
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuzz_cases import KINDS, Bases, Case, draw_kind, make_bases

# README "Exit codes" (1: batch with failed items).
EXIT_MEANING = {
    0: "ok",
    1: "batch: items failed",
    64: "usage error",
    65: "bad input data",
    66: "input missing",
    69: "unavailable",
    70: "INTERNAL ERROR",
    73: "cannot write output",
    77: "credentials refused",
}
REJECTIONS = (64, 65, 66)
LIMITS_S = {"inspect": 60.0, "report": 300.0, "batch": 300.0}
MEM_MB = {"inspect": 3072, "report": 6144, "batch": 8192}
RSS_LIMIT_MB = {"inspect": 1536, "report": 3072, "batch": 4096}


@dataclass
class Run:
    command: str
    exit: int | None  # None: killed at the time limit; negative: killed by that signal
    seconds: float
    rss_mb: float
    stderr: list[str]
    hang: bool = False


@dataclass
class CaseResult:
    seed: int
    kind: str
    note: str
    runs: list[Run] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    harness_error: str | None = None


# ------------------------------------------------------------------------------- running
class Runner:
    """Runs one CLI command in a child with limits; see the module docstring for the modes."""

    def __init__(self, spawn: str, mem_mb: dict[str, int]) -> None:
        self.spawn = spawn
        self.mem_mb = mem_mb
        self.base_vm = 0
        self.fork_base_mb = 0.0

    def warm(self) -> None:
        """Import what every command needs once, in the worker (fork mode)."""
        if self.spawn != "fork":
            return
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        import torch

        torch.set_num_threads(1)  # no OpenMP pool in the parent: forking after one is unsafe
        import reporter.cli
        import reporter.ingest
        import reporter.pipeline

        reporter.pipeline.get_model()
        self.base_vm = _vm_bytes()
        pid = os.fork()
        if pid == 0:  # a child that does nothing: the peak RSS every forked command starts from
            os._exit(0)
        self.fork_base_mb = os.wait4(pid, 0)[2].ru_maxrss / 1024

    def run(self, command: str, argv: list[str], limit_s: float, scratch: Path) -> Run:
        err_path = scratch / f".{command}.stderr"
        mem = self.mem_mb[command] << 20
        # batch starts worker processes of its own, which a daemonic pool worker may not have.
        fork = self.spawn == "fork" and command != "batch"
        # A forked child starts with much of the worker's resident memory: count what it adds.
        base_mb = self.fork_base_mb if fork else 0.0
        started = time.monotonic()
        with open(err_path, "wb") as err, open(os.devnull, "wb") as null:
            if fork:
                pid = self._fork(argv, err.fileno(), null.fileno(), self.base_vm + mem)
            else:
                pid = self._exec(argv, err.fileno(), null.fileno(), mem)
            status, usage, hang = _wait(pid, started + limit_s)
        seconds = time.monotonic() - started
        code = None if hang else os.waitstatus_to_exitcode(status)
        text = err_path.read_bytes().decode("utf-8", "replace")
        err_path.unlink()
        rss = max(0.0, usage.ru_maxrss / 1024 - base_mb)
        return Run(command, code, round(seconds, 2), round(rss, 1), text.splitlines(), hang)

    @staticmethod
    def _exec(argv: list[str], err: int, null: int, mem: int) -> int:
        def limits() -> None:
            os.setsid()
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

        return _spawn_exec([sys.executable, "-m", "reporter.cli", *argv], err, null, limits)

    @staticmethod
    def _fork(argv: list[str], err: int, null: int, mem: int) -> int:
        pid = os.fork()
        if pid:
            return pid
        code = 99
        try:
            os.setsid()
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            os.dup2(null, 0)
            os.dup2(null, 1)
            os.dup2(err, 2)
            # The worker's sys.stdout / sys.stderr may not be fds 1 and 2 (pytest swaps them for
            # its capture): the command must write where a user's terminal would be.
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            from reporter.cli import main

            try:
                main(argv)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # the harness's own child failed: visible as exit 99
            traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)


def _spawn_exec(cmd: list[str], err: int, null: int, preexec: Any) -> int:
    import subprocess

    proc = subprocess.Popen(cmd, stdin=null, stdout=null, stderr=err, preexec_fn=preexec)
    proc.returncode = 0  # wait4 reaps it below; keep Popen from warning or reaping twice
    return proc.pid


def _wait(pid: int, deadline: float) -> tuple[int, Any, bool]:
    """Wait for `pid` until `deadline`; past it kill its process group (batch has workers)."""
    delay = 0.005
    while True:
        got, status, usage = os.wait4(pid, os.WNOHANG)
        if got:
            return status, usage, False
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            return status, usage, True
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _vm_bytes() -> int:
    return _status_kb("VmSize") * 1024


# ------------------------------------------------------------------------------- judging
def judge(run: Run, rss_limit_mb: dict[str, int]) -> list[str]:
    """What is wrong with one command's outcome (empty: nothing)."""
    problems = []
    if run.hang:
        return [f"hang (killed after {run.seconds:.0f} s)"]
    code = run.exit
    memory_error = any("MemoryError" in line for line in run.stderr)
    if code is not None and code < 0:
        problems.append(f"killed by signal {-code}" + (" (memory)" if memory_error else ""))
    elif code == 70:
        problems.append("internal error")
    elif code not in EXIT_MEANING or (code == 1 and run.command != "batch"):
        problems.append(f"exit {code} is not in the README's table")
    if memory_error or run.rss_mb > rss_limit_mb[run.command]:
        problems.append(f"memory blow-up ({run.rss_mb:.0f} MB)")
    allowed = ("spine-report: error: ", "spine-report: warning: ")
    if run.command == "batch":
        allowed += ("reporting ",)
    stray = [x for x in run.stderr if x.strip() and not x.startswith(allowed)]
    if any(x.startswith("Traceback") for x in run.stderr):
        problems.append("traceback on stderr")
    elif stray:
        problems.append("stderr line that is not one error or warning line")
    errors = [x for x in run.stderr if x.startswith("spine-report: error: ")]
    if code in REJECTIONS and len(errors) != 1:
        problems.append(f"rejected with {len(errors)} error lines")
    return problems


def _line(run: Run, problems: list[str]) -> str:
    shown = next((x for x in reversed(run.stderr) if x.startswith("spine-report: error")), None)
    shown = shown or next((x for x in run.stderr if x.strip()), "")
    return f"{run.command}: exit {run.exit}: {'; '.join(problems)}: {shown[:300]}"


# ------------------------------------------------------------------------------- one case
_STATE: dict[str, Any] = {}


def _init_worker(bases: Bases, opts: dict[str, Any]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # pydicom warns and logs while cases are written; that is the harness's chatter, not the
    # product's (each command's stderr is its own file).
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    runner = Runner(opts["spawn"], opts["mem_mb"])
    runner.warm()
    _STATE.update(bases=bases, opts=opts, runner=runner)


def run_case(seed: int) -> CaseResult:
    bases: Bases = _STATE["bases"]
    opts: dict[str, Any] = _STATE["opts"]
    runner: Runner = _STATE["runner"]
    rng = random.Random(seed)
    kind = draw_kind(rng, opts["kinds"])
    share = rng.random()
    case_dir = Path(opts["cases"]) / str(seed)
    if case_dir.exists():
        shutil.rmtree(case_dir)
    case_dir.mkdir(parents=True)
    result = CaseResult(seed, kind, "")
    try:
        case: Case = KINDS[kind][0](rng, bases, case_dir)
    except Exception as exc:  # the generator's fault, not the product's: listed apart
        result.harness_error = f"{type(exc).__name__}: {exc}"[:300]
        shutil.rmtree(case_dir, ignore_errors=True)
        return result
    result.note = case.note
    target = str(case.target)
    out = str(case_dir / "out")
    if case.input == "worklist":
        commands = [("batch", ["batch", target, "--out", out, "--timeout", "60"])]
    else:
        commands = [("inspect", ["inspect", target])]
    for command, argv in commands:
        result.runs.append(runner.run(command, argv, opts["limits"][command], case_dir))
    if case.input != "worklist":
        rejected = result.runs[0].exit != 0
        if rejected or case.input in ("png", "file") or share < 1.0 / opts["report_every"]:
            run = runner.run(
                "report", ["report", target, "--out", out], opts["limits"]["report"], case_dir
            )
            result.runs.append(run)
    for run in result.runs:
        problems = judge(run, opts["rss_limit_mb"])
        if problems:
            result.failures.append(
                {"seed": seed, "kind": kind, "line": _line(run, problems), "note": case.note}
            )
    if not (opts["keep"] or (opts["keep_failures"] and result.failures)):
        shutil.rmtree(case_dir, ignore_errors=True)
    return result


# ------------------------------------------------------------------------------- the campaign
def summarise(results: list[CaseResult], seconds: float, opts: dict[str, Any]) -> dict[str, Any]:
    by_exit: Counter[str] = Counter()
    by_command: dict[str, Counter[str]] = {}
    by_kind: dict[str, Counter[str]] = {}
    peak: dict[str, float] = {}
    failures = []
    for r in sorted(results, key=lambda r: r.seed):
        if r.harness_error:
            failures.append(
                {"seed": r.seed, "kind": r.kind, "line": f"harness: {r.harness_error}", "note": ""}
            )
            continue
        last = r.runs[-1]
        outcome = "hang" if last.hang else str(last.exit)
        by_exit[outcome] += 1
        by_kind.setdefault(r.kind, Counter())[outcome] += 1
        for run in r.runs:
            by_command.setdefault(run.command, Counter())[
                "hang" if run.hang else str(run.exit)
            ] += 1
            peak[run.command] = max(peak.get(run.command, 0.0), run.rss_mb)
        failures.extend(r.failures)
    runs = [run for r in results for run in r.runs]
    return {
        "n": len(results),
        "by_exit": dict(sorted(by_exit.items())),
        "internal_errors": sum(1 for run in runs if run.exit == 70),
        "hangs": sum(1 for run in runs if run.hang),
        "memory_blowups": sum(1 for f in failures if "memory" in f["line"]),
        "peak_rss_mb": round(max(peak.values(), default=0.0), 1),
        "failures": failures,
        "by_command": {c: dict(sorted(v.items())) for c, v in sorted(by_command.items())},
        "by_kind": {k: dict(sorted(v.items())) for k, v in sorted(by_kind.items())},
        "peak_rss_mb_by_command": {k: round(v, 1) for k, v in sorted(peak.items())},
        "slowest_rejection_s": max(
            (run.seconds for run in runs if run.exit in REJECTIONS), default=0.0
        ),
        "seconds": round(seconds, 1),
        "settings": {
            k: opts[k]
            for k in (
                "seed",
                "report_every",
                "spawn",
                "workers",
                "limits",
                "mem_mb",
                "rss_limit_mb",
            )
        },
    }


def print_table(summary: dict[str, Any]) -> None:
    s = summary
    print(
        f"fuzz: {s['n']} cases (seed {s['settings']['seed']}, report every "
        f"{s['settings']['report_every']}, spawn {s['settings']['spawn']}), "
        f"{s['seconds']:.0f} s"
    )
    commands = list(s["by_command"])
    codes = sorted(
        {c for v in s["by_command"].values() for c in v} | set(s["by_exit"]),
        key=lambda c: (c == "hang", int(c) if c.lstrip("-").isdigit() else 999),
    )
    print(f"{'exit':>6}  {'meaning':<22}" + "".join(f"{c:>9}" for c in commands) + f"{'case':>9}")
    for code in codes:
        meaning = "HANG" if code == "hang" else EXIT_MEANING.get(int(code), "?")
        cells = "".join(f"{s['by_command'][c].get(code, 0):>9}" for c in commands)
        print(f"{code:>6}  {meaning:<22}{cells}{s['by_exit'].get(code, 0):>9}")
    print("(case: the last command's exit; report when it ran, else inspect; batch for worklists)")
    print(
        f"internal errors {s['internal_errors']}, hangs {s['hangs']}, memory blow-ups "
        f"{s['memory_blowups']}, peak RSS {s['peak_rss_mb']:.0f} MB "
        f"({', '.join(f'{k} {v:.0f}' for k, v in s['peak_rss_mb_by_command'].items())}), "
        f"slowest rejection {s['slowest_rejection_s']:.1f} s"
    )
    print("by kind (case outcome):")
    for kind, counts in s["by_kind"].items():
        print(f"  {kind:<20} " + ", ".join(f"{c}: {n}" for c, n in counts.items()))
    if s["failures"]:
        print(f"{len(s['failures'])} failure(s):")
        for f in s["failures"]:
            print(f"  seed {f['seed']} {f['kind']}: {f['line']}  [{f['note'][:160]}]")
    else:
        print("no failures")


def campaign(opts: dict[str, Any], progress: bool = True) -> dict[str, Any]:
    work = Path(opts["work"])
    bases = make_bases(work / "bases")
    Path(opts["cases"]).mkdir(parents=True, exist_ok=True)
    seeds = opts["seeds"]
    started = time.monotonic()
    results: list[CaseResult] = []
    ctx = mp.get_context("fork")
    with ctx.Pool(opts["workers"], _init_worker, (bases, opts), maxtasksperchild=200) as pool:
        for k, r in enumerate(pool.imap_unordered(run_case, seeds, chunksize=1), start=1):
            results.append(r)
            if progress and (k % 25 == 0 or k == len(seeds)):
                bad = sum(len(x.failures) for x in results)
                print(
                    f"fuzz: {k}/{len(seeds)} cases, {bad} failure(s), "
                    f"{time.monotonic() - started:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
    return summarise(results, time.monotonic() - started, opts)


def options(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=300, help="number of cases")
    p.add_argument("--seed", type=int, default=1000, help="case i uses seed SEED+i")
    p.add_argument("--case", type=int, action="append", help="run only this seed (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    p.add_argument(
        "--kinds", default="", help="comma-separated kinds (default: all): " + ", ".join(KINDS)
    )
    p.add_argument(
        "--report-every",
        type=int,
        default=20,
        help="full report for 1 in K cases that inspect accepts (seeded)",
    )
    p.add_argument("--spawn", choices=("fork", "exec"), default="fork")
    p.add_argument("--work", default="", help="folder for bases and cases (default: a temp one)")
    p.add_argument("--keep", action="store_true", help="keep every case's files")
    p.add_argument("--keep-failures", action="store_true", help="keep failing cases' files")
    p.add_argument("--timeout-scale", type=float, default=1.0, help="multiply the time limits")
    a = p.parse_args(argv)
    kinds = [k.strip() for k in a.kinds.split(",") if k.strip()] or list(KINDS)
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        p.error(f"unknown kinds {unknown}")
    if a.n < 1 or a.workers < 1 or a.report_every < 1:
        p.error("--n, --workers and --report-every must be at least 1")
    work = a.work or os.path.join(tempfile.gettempdir(), "spine-fuzz")
    return {
        "seed": a.case[0] if a.case else a.seed,
        "seeds": a.case or list(range(a.seed, a.seed + a.n)),
        "json": a.json,
        "workers": a.workers,
        "kinds": kinds,
        "report_every": a.report_every,
        "spawn": a.spawn,
        "work": work,
        "cases": os.path.join(work, "cases"),
        "keep": a.keep or bool(a.case),
        "keep_failures": a.keep_failures,
        "limits": {k: v * a.timeout_scale for k, v in LIMITS_S.items()},
        "mem_mb": dict(MEM_MB),
        "rss_limit_mb": dict(RSS_LIMIT_MB),
    }


def main(argv: list[str] | None = None) -> int:
    opts = options(argv)
    summary = campaign(opts)
    if opts["json"]:
        print(json.dumps(summary))
    else:
        print_table(summary)
    if opts["keep"]:
        print(f"case files kept under {opts['cases']}", file=sys.stderr)
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
