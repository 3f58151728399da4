"""Atomic writes: a reader (or a re-run after a crash) sees the old file or the new one, never half.

Every file goes to a temporary name in the same folder (same file system, so `os.replace` is an
atomic rename), is flushed and fsynced, then renamed over the target. A set of files that belong
together (one study's outputs) is staged in a hidden folder beside the target and moved in at the
end, so a failure part-way leaves none of the new files behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from reporter.errors import OutputError

# Hidden names that staging uses; a re-run may delete leftovers of a killed run with these prefixes.
TMP_PREFIX = ".tmp-"
STAGING_PREFIX = ".staging-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    # Make the rename itself durable; not every platform lets a folder be opened, hence suppress.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` atomically; raises OutputError when the folder is not writable."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + target.name + ".", dir=target.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    try:
        # mkstemp makes the file private (0600); give it the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
        raise
    _fsync_dir(target.parent)
    return target


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def staged_dir(parent: str | os.PathLike[str]) -> Iterator[Path]:
    """A hidden scratch folder inside `parent`, removed on exit whatever happens."""
    parent = Path(parent)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=parent))
    except OSError as exc:
        raise OutputError(f"cannot write to {parent}: {exc.strerror or exc}") from exc
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@contextlib.contextmanager
def output_dir(path: str | os.PathLike[str] | None) -> Iterator[Path | None]:
    """The output folder, made and proven writable before any work is done (an unwritable
    `--out` is reported in a second, not after the whole pipeline), and removed again when this
    call made it and a failure leaves it empty: a failed run leaves nothing behind. None (no
    output wanted) yields None."""
    if path is None:
        yield None
        return
    target = Path(path)
    created = not target.exists()
    try:
        target.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=TMP_PREFIX + "probe.", dir=target)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"cannot write to {target}: {exc.strerror or exc}") from exc
    try:
        yield target
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                target.rmdir()  # only if empty: never delete what is there
        raise


def commit_files(stage: Path, target_dir: Path, names: list[str]) -> dict[str, Path]:
    """Move finished files from `stage` into `target_dir`, each by an atomic rename."""
    moved: dict[str, Path] = {}
    try:
        for name in names:
            dst = target_dir / name
            os.replace(stage / name, dst)
            moved[name] = dst
    except OSError as exc:
        raise OutputError(f"cannot write {target_dir}: {exc.strerror or exc}") from exc
    _fsync_dir(target_dir)
    return moved


def publish_dir(stage: Path, target: Path) -> Path:
    """Rename a finished folder into place; it appears whole or not at all.

    Raises FileExistsError when `target` already exists (the caller decides whether that means
    'done already' or 'replace')."""
    if target.exists():
        raise FileExistsError(str(target))
    try:
        os.rename(stage, target)
    except OSError as exc:
        if target.exists():
            raise FileExistsError(str(target)) from exc
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    _fsync_dir(target.parent)
    return target


def remove_leftovers(folder: Path) -> int:
    """Delete temporary files and staging folders a killed run left in `folder`; returns a count."""
    n = 0
    if not folder.is_dir():
        return 0
    for p in folder.iterdir():
        if p.name.startswith((TMP_PREFIX, STAGING_PREFIX)):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    p.unlink()
            n += 1
    return n
