"""The Ray backend of `spine-report batch`: worklist items reported by Ray actors on a cluster.

Only how items reach workers changes (`reporter.worklist.Dispatch`). Each actor is a batch worker
like a local process: it loads the model once (`_worker_start`) and reports one item at a time
with `_run_item` into the same `--out` folder; the driver (this process) reads the worklist,
skips what is done, writes the manifest and records every answer exactly as the local backend
does. So resume, staging and exactly-once hold unchanged, and the reports are the same bytes
(timestamps and UIDs aside).

What a cluster must provide: spine-reporter (same version, same weights) installed on every
node, and `--out` and the worklist's study paths on a filesystem every node sees at the same
path (DICOMweb rows are pulled by the actor itself). An actor checks both before it takes work.

Ray is an optional extra (`pip install -e ".[ray]"`); without it, or when the cluster cannot be
reached, the batch stops before any work with `RayUnavailableError` (exit 69).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reporter.errors import ServiceUnavailableError, UsageError
from reporter.worklist import (
    MANIFEST,
    BatchFatalError,
    Record,
    WorkItem,
    _run_item,
    _worker_start,
    discard_staging,
    worker_fatal,
)

INSTALL_HINT = 'pip install "spine-reporter[ray]" (from a checkout: pip install -e ".[ray]")'


class RayUnavailableError(ServiceUnavailableError):
    """Ray is not installed, the cluster cannot be reached, or its nodes cannot run the batch."""


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayUnavailableError(
            f"--backend ray needs the optional Ray extra, which is not installed: {INSTALL_HINT}"
        ) from None
    return ray


class BatchActor:
    """One batch worker on a Ray node (made a Ray actor by `RayDispatch`)."""

    def __init__(self, model: str | None, adapter: str | None, out: str) -> None:
        self.model, self.adapter, self.out = model, adapter, Path(out)
        self.hello = _worker_start(model, adapter)
        if self.hello["type"] == "ready" and not (self.out / MANIFEST).is_file():
            # The driver wrote the manifest before starting actors: a node that cannot see it
            # would write its reports where nobody looks.
            self.hello = {
                "type": "fatal",
                "error": f"a Ray node cannot see the output folder {out} (--out must be on a "
                "filesystem every node mounts at the same path)",
                "code": RayUnavailableError.exit_code,
            }

    def ready(self) -> dict[str, Any]:
        import ray

        return {**self.hello, "node": ray.get_runtime_context().get_node_id()}

    def run(self, item: dict[str, Any]) -> dict[str, Any]:
        return _run_item(WorkItem(**item), self.model, self.adapter, self.out)


@dataclass
class _Slot:
    actor: Any
    call: Any  # the ObjectRef awaited: ready() while loading, then run(item)
    ready: bool = False
    pid: int | None = None
    item: WorkItem | None = None
    started: float = 0.0


@dataclass
class RayDispatch:
    """Dispatch worklist items to Ray actors (`reporter.worklist.Dispatch`).

    `address`: a running cluster ("HEAD:6379", "auto", "ray://HEAD:10001"); None starts a
    private Ray on this machine for the batch (or joins the one `RAY_ADDRESS` names). A Ray
    already initialised in this process is used as it is. Each actor takes one CPU; `workers`
    None: one actor per CPU of the cluster."""

    address: str | None = None
    ray_init: dict[str, Any] = field(default_factory=dict)  # extra ray.init() arguments

    def __post_init__(self) -> None:
        if self.address is not None:
            _use_token_if_any()  # before Ray is imported: it reads the mode once
        _import_ray()  # fail before the worklist is read, not after
        _probe(self.address)

    def __call__(
        self,
        todo: list[WorkItem],
        out: Path,
        workers: int | None,
        timeout_s: float,
        model: str | None,
        adapter: str | None,
        record: Record,
    ) -> None:
        ray = _import_ray()
        started_here = self._connect(ray)
        try:
            _run_on_ray(ray, todo, out, workers, timeout_s, model, adapter, record)
        finally:
            if started_here:
                ray.shutdown()

    def _connect(self, ray: Any) -> bool:
        """Join (or start) the cluster; True when this call initialised Ray here."""
        if ray.is_initialized():
            return False
        _probe(self.address)
        try:
            ray.init(
                address=self.address,
                include_dashboard=False,
                log_to_driver=False,  # the actors' stderr is library chatter; answers come back
                logging_level=logging.ERROR,  # stderr is for our one-line diagnostics
                namespace="spine-reporter",
                **self.ray_init,
            )
        except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
            where = self.address or "a local Ray"
            hint = (
                " (a cluster with token authentication needs its token on this machine: "
                "~/.ray/auth_token or RAY_AUTH_TOKEN)"
                if self.address
                else ""
            )
            raise RayUnavailableError(
                f"cannot connect to the Ray cluster at {where}: {type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:300]}{hint}"
            ) from None
        return True


def _probe(address: str | None, timeout_s: float = 10.0) -> None:
    """Fail fast on a cluster address nothing listens on: ray.init retries for many minutes."""
    if address is None or address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--address {address!r} is not HOST:PORT (e.g. HEAD:6379)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise RayUnavailableError(
            f"cannot connect to the Ray cluster at {address}: {exc.strerror or exc} "
            "(is `ray start --head` running there?)"
        ) from None


def _use_token_if_any() -> None:
    """`ray start --head` turns token authentication on when a token exists (~/.ray/auth_token,
    RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH), but a driver joining it by address does not use the
    token unless RAY_AUTH_MODE=token (Ray 2.5x): the join then fails as "Failed to connect".
    Token mode also joins a cluster without authentication, so it is set when a token exists
    and the user has not chosen a mode. Only before Ray is imported: Ray reads the mode once, and
    a mode its own processes see but this one does not breaks a later local ray.init()."""
    if os.environ.get("RAY_AUTH_MODE") is not None or "ray" in sys.modules:
        return
    token_file = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or Path(token_file).is_file():
        os.environ["RAY_AUTH_MODE"] = "token"


def _run_on_ray(
    ray: Any,
    todo: list[WorkItem],
    out: Path,
    workers: int | None,
    timeout_s: float,
    model: str | None,
    adapter: str | None,
    record: Record,
) -> None:
    from reporter.render.provenance import code_version

    here = code_version()
    if workers is None:
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}")
    # max_restarts=0: a dead actor stays dead and its item is recorded, as a dead process is.
    actor_class = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(BatchActor)
    queue = list(todo)

    def spawn() -> _Slot:
        actor = actor_class.remote(model, adapter, str(out))
        return _Slot(actor=actor, call=actor.ready.remote())

    pool: list[_Slot | None] = [spawn() for _ in range(min(workers, len(todo)))]
    crashes_before_ready = 0
    model_seen: dict[str, str] | None = None

    def replace(i: int, status: str, reason: str) -> None:
        """Kill actor i (and its half-made output), start a fresh one, record its item."""
        slot = pool[i]
        assert slot is not None
        ray.kill(slot.actor, no_restart=True)
        if slot.item is not None:
            discard_staging(out, slot.item)
        pool[i] = spawn() if queue else None
        if slot.item is not None:
            record(slot.item, {"status": status, "reason": reason})

    def check_same_build(msg: dict[str, Any]) -> None:
        """Every node must run this code and these weights, or reports would differ by node."""
        nonlocal model_seen
        if msg.get("version") != here:
            raise RayUnavailableError(
                f"a Ray node runs spine-reporter {msg.get('version')}, this machine {here}: "
                "install the same version on every node"
            )
        if model_seen is None:
            model_seen = msg.get("model")
        elif msg.get("model") != model_seen:
            raise RayUnavailableError(
                "the Ray nodes load different model weights (their sha256 differ): install the "
                "same weights on every node"
            )

    try:
        while queue or any(s is not None and s.item is not None for s in pool):
            live = [s for s in pool if s is not None]
            if not live:
                break
            for slot in live:
                if slot.ready and slot.item is None and queue:
                    slot.item, slot.started = queue.pop(0), time.monotonic()
                    slot.call = slot.actor.run.remote(asdict(slot.item))
            waiting = {slot.call: slot for slot in live if not slot.ready or slot.item}
            done, _ = ray.wait(list(waiting), num_returns=1, timeout=0.5)
            for i, slot in enumerate(pool):
                if slot is None:
                    continue
                if slot.call in done:
                    try:
                        msg = ray.get(slot.call)
                    except ray.exceptions.RayError as exc:  # the actor died (OOM, node lost)
                        msg = {"type": "died", "why": type(exc).__name__}
                    if msg["type"] == "ready":
                        check_same_build(msg)
                        slot.ready, slot.pid = True, msg["pid"]
                    elif msg["type"] == "fatal":
                        if msg.get("code") == RayUnavailableError.exit_code:
                            raise RayUnavailableError(msg["error"])
                        raise worker_fatal(msg)
                    elif msg["type"] == "result" and slot.item is not None:
                        item, slot.item = slot.item, None
                        record(item, msg, worker_pid=slot.pid)
                    elif msg["type"] == "died":
                        if not slot.ready:
                            crashes_before_ready += 1
                            if crashes_before_ready > 3:
                                raise BatchFatalError(
                                    "Ray workers keep dying before loading the model "
                                    f"({msg['why']})"
                                )
                        replace(i, "failed", f"the Ray worker died ({msg['why']})")
                elif slot.item is not None and time.monotonic() - slot.started > timeout_s:
                    # Killing the actor is the only way to stop a stuck computation.
                    replace(i, "timeout", f"exceeded the per-study timeout of {timeout_s:g} s")
    finally:
        for slot in pool:
            if slot is not None:
                ray.kill(slot.actor, no_restart=True)
