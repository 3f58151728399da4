"""`spine-report batch` with fault hooks, for tests/test_batch_faults.py.

Run as a script (`python tests/batch_fault_runner.py batch WORKLIST --out OUT`): the batch's
workers are spawned, and a spawned process imports the parent's main script again (as
`__mp_main__`), so the hooks below are installed in every process of the batch.

Every call of os.replace / os.rename / os.fsync (atomic writes, moving outputs in, publishing a
report folder), every manifest write and every start of a report is an *event*, appended to the
file FAULT_EVENTS under a lock, so events are numbered across processes. Environment:

  FAULT_EVENTS          the event file of this run (required for any hook)
  FAULT_KILL_AT=N | POINT:N
                        SIGKILL at the N-th event of the run (of that point) ...
  FAULT_KILL=group|main ... of the whole batch (its process group, as a power cut would) or of
                        the batch process only (its workers are left orphaned)
  FAULT_AFTER_PUBLISH=readonly:DIR | full:DIR
                        once the first report folder is published: remount the tmpfs at DIR
                        read-only, or fill it up to 8 KiB with a ballast file
  FAULT_STANDIN=1       reporter.pipeline replaced by a stand-in that writes the six outputs
                        through the same atomic writers in ~0.1 s and loads no model (nor
                        torch), so that twenty kills cost seconds, not minutes
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import signal
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

EVENT_WIDTH = 32  # bytes per event line: the count is the file size / EVENT_WIDTH
OUTPUT_FILES = (
    "report.txt",
    "report.html",
    "findings.json",
    "seg.dcm",
    "report.sr.dcm",
    "provenance.json",
)


def standin_content(study: str, name: str) -> str:
    """What the stand-in writes in `name` for `study`: the test checks each file is whole."""
    return f"{study}\n{name}\n" + "x" * 3000 + "\nEND\n"


def _event(point: str) -> None:
    path = os.environ.get("FAULT_EVENTS")
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        line = f"{os.getpid()} {point} {time.monotonic():.2f}"
        os.write(fd, line.ljust(EVENT_WIDTH - 1)[: EVENT_WIDTH - 1].encode())
        os.write(fd, b"\n")
        n = os.fstat(fd).st_size // EVENT_WIDTH
        if ":" in os.environ.get("FAULT_KILL_AT", ""):
            with open(path, encoding="ascii") as fh:
                n = sum(1 for line in fh if line.split()[1:2] == [point])
    finally:
        os.close(fd)
    target = os.environ.get("FAULT_KILL_AT", "")
    at_point, _, count = target.rpartition(":")
    if count and n == int(count) and at_point in ("", point):
        if os.environ.get("FAULT_KILL", "group") == "group":
            os.killpg(os.getpgid(0), signal.SIGKILL)
        else:
            os.kill(int(os.environ["FAULT_MAIN_PID"]), signal.SIGKILL)


def _wrap(module: Any, name: str, point: str) -> None:
    real = getattr(module, name)

    def hooked(*args: Any, **kwargs: Any) -> Any:
        _event(point)
        return real(*args, **kwargs)

    setattr(module, name, hooked)


def _after_first_publish() -> None:
    action = os.environ.get("FAULT_AFTER_PUBLISH", "")
    if not action or os.environ.get("FAULT_DONE_ONCE"):
        return
    os.environ["FAULT_DONE_ONCE"] = "1"
    kind, _, folder = action.partition(":")
    if kind == "readonly":
        subprocess.run(["mount", "-o", "remount,ro", folder], check=True, capture_output=True)
    elif kind == "full":
        st = os.statvfs(folder)
        free = st.f_bavail * st.f_frsize
        with open(Path(folder) / "ballast", "wb") as fh:
            fh.write(b"\0" * max(0, free - 8192))


def _standin_pipeline() -> types.ModuleType:
    from reporter.render import atomic

    module = types.ModuleType("reporter.pipeline")

    def get_model(model: Any = None, adapter: Any = None) -> object:
        return object()

    def report_study(path: Any, out_dir: Any = None, **kwargs: Any) -> Any:
        with atomic.output_dir(out_dir) as out:
            _event("compute")
            time.sleep(random.uniform(0.05, 0.2))
            with atomic.staged_dir(out) as stage:
                for name in OUTPUT_FILES:
                    (stage / name).write_text(standin_content(str(path), name))
                atomic.commit_files(stage, out, list(OUTPUT_FILES))
        return types.SimpleNamespace(withheld=[], indeterminate=[])

    module.get_model = get_model  # type: ignore[attr-defined]
    module.report_study = report_study  # type: ignore[attr-defined]
    return module


def install() -> None:
    if not os.environ.get("FAULT_EVENTS"):
        return
    if os.environ.get("FAULT_STANDIN") == "1":
        sys.modules["reporter.pipeline"] = _standin_pipeline()
        if __name__ == "__mp_main__":  # a worker: it asks torch for one thread, nothing else
            torch = types.ModuleType("torch")
            torch.set_num_threads = lambda n: None  # type: ignore[attr-defined]
            sys.modules["torch"] = torch
    elif __name__ == "__mp_main__":  # a worker: the start of each report is an event
        from reporter import pipeline

        _wrap(pipeline, "report_study", "compute")
    for name, point in (("replace", "replace"), ("rename", "rename"), ("fsync", "fsync")):
        _wrap(os, name, point)
    from reporter import worklist
    from reporter.render import atomic

    _wrap(worklist, "write_manifest", "manifest")
    publish = atomic.publish_dir

    def hooked_publish(stage: Path, target: Path) -> Path:
        done = publish(stage, target)
        _event("published")
        _after_first_publish()
        return done

    atomic.publish_dir = hooked_publish  # type: ignore[assignment]


install()

if __name__ == "__main__":
    os.environ["FAULT_MAIN_PID"] = str(os.getpid())
    from reporter.cli import main

    with contextlib.suppress(KeyboardInterrupt):
        main(sys.argv[1:])
