"""Robustness: seeded random corruptions of valid files (bytes flipped, files truncated, tags
removed). Every outcome is a Study or our documented clean error; never another exception and
never a hang."""

from __future__ import annotations

import random
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from dicom_factory import SeriesSpec, StudyInfo, series_datasets, write_datasets

from reporter.errors import ReporterError
from reporter.ingest import load_study

N_CASES = 500
SECONDS_PER_CASE = 10


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corrupt")
    info = StudyInfo()
    sag = series_datasets(SeriesSpec("sagittal", "T2", n_slices=4, rows=16, cols=16), info)
    write_datasets(sag, root / "sag")
    axial = series_datasets(SeriesSpec("axial", "T2", n_slices=3, rows=16, cols=16), info)
    for ds in axial:
        ds.compress(pydicom.uid.RLELossless)  # a compressed stream to corrupt as well
    write_datasets(axial, root / "ax")
    return root


def _corrupt(data: bytes, rng: random.Random) -> bytes:
    kind = rng.choice(("flip", "flip", "truncate", "remove_tag", "zero_run"))
    if kind == "flip":
        out = bytearray(data)
        for _ in range(rng.randint(1, 16)):
            # bias toward the header, where a flip changes structure rather than one pixel
            pos = (
                rng.randrange(min(len(out), 900)) if rng.random() < 0.7 else rng.randrange(len(out))
            )
            out[pos] ^= 1 << rng.randrange(8)
        return bytes(out)
    if kind == "truncate":
        return data[: rng.randrange(len(data))]
    if kind == "zero_run":
        start = rng.randrange(len(data))
        return data[:start] + b"\x00" * rng.randint(1, 64) + data[start + 64 :]
    ds = pydicom.dcmread(_BytesPath(data))
    for _ in range(rng.randint(1, 3)):
        tags = [e.tag for e in ds]
        if tags:
            del ds[rng.choice(tags)]
    import io

    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=False)
    return buffer.getvalue()


class _BytesPath:
    """File-like wrapper so pydicom reads bytes."""

    def __new__(cls, data: bytes):  # type: ignore[misc]
        import io

        return io.BytesIO(data)


class _Hang(Exception):
    pass


def _alarm(_signum: int, _frame: object) -> None:
    raise _Hang


@pytest.fixture
def hang_guard() -> Iterator[None]:
    previous = signal.signal(signal.SIGALRM, _alarm)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.slow
def test_random_corruptions_end_in_a_study_or_a_clean_error(
    study_dir: Path, hang_guard: None, capfd: pytest.CaptureFixture[str]
) -> None:
    files = sorted(p for p in study_dir.rglob("*") if p.is_file())
    originals = {p: p.read_bytes() for p in files}
    outcomes: Counter[str] = Counter()
    failures = []
    for seed in range(N_CASES):
        rng = random.Random(seed)
        victims = rng.sample(files, k=rng.choice((1, 1, 1, 2, 3)))
        for victim in victims:
            victim.write_bytes(_corrupt(originals[victim], rng))
        signal.alarm(SECONDS_PER_CASE)
        try:
            study = load_study(study_dir)
            outcomes["study"] += 1
            outcomes["study_with_set_aside"] += bool(study.set_aside)
        except ReporterError:
            outcomes["clean_error"] += 1
        except _Hang:
            failures.append((seed, "hang"))
        except Exception as exc:  # the thing this test exists to catch
            failures.append((seed, f"{type(exc).__name__}: {exc}"))
        finally:
            signal.alarm(0)
            for victim in victims:
                victim.write_bytes(originals[victim])
    assert not failures, failures[:10]
    # A damaged RLE stream once made a Rust decoder print its panic trace to stderr.
    assert "panicked" not in capfd.readouterr().err
    assert outcomes["study"] + outcomes["clean_error"] == N_CASES
    # the corruptions were strong enough to exercise both outcomes and the set-aside path
    assert outcomes["study"] > 0 and outcomes["clean_error"] > 0, outcomes
    assert outcomes["study_with_set_aside"] > 0, outcomes
