"""Ingest speed: `reporter.load_study` against bare `pydicom.dcmread(f).pixel_array` over the
same files (target: at most 1.5x).

The study is a routine lumbar protocol written by tests/dicom_factory.py: 15 sagittal T1 +
15 sagittal T2 + 40 axial T2 (4 angled blocks of 10 in one series), 512 x 512, explicit VR
little endian, uncompressed. Both timings read warm files from the page cache; the runs are
interleaved; medians and minima are compared (the minimum is the better estimate on a shared,
noisy machine).

    python eval/bench_ingest.py [--repeats 7] [--matrix 512] [--dir DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from dicom_factory import SeriesSpec, StudyInfo, write_study

from reporter.ingest import load_study


def protocol(matrix: int) -> list[SeriesSpec]:
    sag = (300.0 / matrix, 300.0 / matrix)
    ax = (180.0 / matrix, 180.0 / matrix)
    specs = [
        SeriesSpec("sagittal", "T1", 15, matrix, matrix, sag, 4.0, series_number=2),
        SeriesSpec("sagittal", "T2", 15, matrix, matrix, sag, 4.0, series_number=3),
    ]
    uid = pydicom.uid.generate_uid()
    for b in range(4):
        specs.append(
            SeriesSpec("axial", "T2", 10, matrix, matrix, ax, 4.0, center=(0, 30, -10 - 45 * b),
                       angle_deg=-12 + 8 * b, series_number=4, series_uid=uid)
        )  # fmt: skip
    return specs


def bare(files: list[Path]) -> float:
    t0 = time.perf_counter()
    for f in files:
        pydicom.dcmread(f).pixel_array  # noqa: B018
    return time.perf_counter() - t0


def ours(root: Path) -> float:
    t0 = time.perf_counter()
    study = load_study(root)
    elapsed = time.perf_counter() - t0
    assert sum(s.shape[0] for s in study.series) == 70, [s.shape for s in study.series]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--matrix", type=int, default=512)
    parser.add_argument("--dir", type=Path, default=None, help="write the study here (kept)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.dir or Path(tmp)
        files = write_study(root, protocol(args.matrix), StudyInfo(), random_names=True)
        bare(files), ours(root)  # warm the page cache and imports
        t_bare, t_ours = [], []
        for _ in range(args.repeats):
            t_bare.append(bare(files))
            t_ours.append(ours(root))
    mb = sum(f.stat().st_size for f in files) / 1e6 if args.dir else 70 * args.matrix**2 * 2 / 1e6
    b, o = statistics.median(t_bare), statistics.median(t_ours)
    print(
        f"files: {len(files)} ({args.matrix}x{args.matrix}, ~{mb:.0f} MB), repeats: {args.repeats}"
    )
    print(f"bare dcmread().pixel_array : {b * 1000:8.1f} ms (median; min {min(t_bare) * 1000:.1f})")
    print(f"reporter.load_study        : {o * 1000:8.1f} ms (median; min {min(t_ours) * 1000:.1f})")
    print(
        f"ratio                      : {o / b:8.2f}x median, {min(t_ours) / min(t_bare):.2f}x min "
        "(target <= 1.5x)"
    )


if __name__ == "__main__":
    main()
