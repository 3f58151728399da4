"""Ingestion of pydicom's bundled real files: every compression of MR_small decodes equal to the
uncompressed reference, and real files from several vendors are classified sensibly."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import DeflatedExplicitVRLittleEndian

from reporter.errors import InputDataError
from reporter.ingest import load_study, scan

BUNDLED_MR_SMALL = [
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_expb.dcm",
    "MR_small_padded.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_jp2klossless.dcm",
]


def _testfile(name: str) -> Path:
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"pydicom test file {name} is not installed")
    return Path(path)


def _reference() -> np.ndarray:
    ds = pydicom.dcmread(_testfile("MR_small.dcm"))
    return ds.pixel_array.astype(np.float32)


def _only_series(folder: Path) -> np.ndarray:
    inv = scan(folder, keep_derived=True)  # MR_small is marked DERIVED\SECONDARY
    assert inv.study is not None
    assert len(inv.study.series) == 1, inv.rows
    series = inv.study.series[0]
    assert series.plane == "axial"
    assert "PixelData" not in series.headers[0]
    return series.pixels[0]


@pytest.mark.parametrize("name", BUNDLED_MR_SMALL)
def test_bundled_mr_small_decodes_equal_to_the_uncompressed_reference(
    name: str, tmp_path: Path
) -> None:
    shutil.copy(_testfile(name), tmp_path / "image")
    np.testing.assert_array_equal(_only_series(tmp_path), _reference())


def _gdcm_transcode(src: Path, dst: Path, syntax: str) -> None:
    gdcm = pytest.importorskip("gdcm")
    reader = gdcm.ImageReader()
    reader.SetFileName(str(src))
    assert reader.Read()
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(getattr(gdcm.TransferSyntax, syntax)))
    change.SetInput(reader.GetImage())
    assert change.Change()
    writer = gdcm.ImageWriter()
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    writer.SetFileName(str(dst))
    assert writer.Write()


@pytest.mark.parametrize("syntax", ["JPEGLosslessProcess14_1", "JPEGLosslessProcess14"])
def test_jpeg_lossless_mr_small_decodes_equal_to_the_reference(syntax: str, tmp_path: Path) -> None:
    _gdcm_transcode(_testfile("MR_small.dcm"), tmp_path / "image.dcm", syntax)
    assert pydicom.dcmread(tmp_path / "image.dcm").file_meta.TransferSyntaxUID.is_compressed
    np.testing.assert_array_equal(_only_series(tmp_path), _reference())


def test_deflated_mr_small_decodes_equal_to_the_reference(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_testfile("MR_small.dcm"))
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(tmp_path / "deflated", enforce_file_format=True)
    np.testing.assert_array_equal(_only_series(tmp_path), _reference())


def test_truncated_bundled_file_is_set_aside_not_raised(tmp_path: Path) -> None:
    shutil.copy(_testfile("MR_truncated.dcm"), tmp_path / "x.dcm")
    inv = scan(tmp_path, keep_derived=True)
    assert inv.refusal is not None  # nothing usable remains
    problems = [r.problem or "" for r in inv.rows]
    assert any("truncated" in p for p in problems), problems


def test_toshiba_mr_small_is_classified_axial_t2_from_tr_te(tmp_path: Path) -> None:
    shutil.copy(_testfile("MR_small.dcm"), tmp_path / "a")
    row = scan(tmp_path, keep_derived=True).rows[0]
    assert (row.plane, row.weighting, row.vendor) == ("axial", "T2", "TOSHIBA_MEC")


def test_siemens_mpr_is_set_aside_as_derived_and_reads_as_gradient_echo_t1(
    tmp_path: Path,
) -> None:
    shutil.copy(_testfile("examples_overlay.dcm"), tmp_path / "a")
    row = scan(tmp_path).rows[0]
    assert not row.usable and "derived" in (row.problem or "")
    kept = scan(tmp_path, keep_derived=True)
    assert kept.study is not None
    series = kept.study.series[0]
    assert (series.plane, series.weighting, series.vendor) == ("axial", "T1", "SIEMENS")
    reference = pydicom.dcmread(_testfile("examples_overlay.dcm")).pixel_array
    np.testing.assert_array_equal(series.pixels[0], reference.astype(np.float32))


def test_philips_fast_localizer_is_set_aside_as_localizer(tmp_path: Path) -> None:
    folder = _testfile("MR_small.dcm").parent / "dicomdirtests" / "98892003" / "MR1"
    if not folder.is_dir():
        pytest.skip("pydicom dicomdirtests are not installed")
    shutil.copy(folder / "15820", tmp_path / "localizer")
    inv = scan(tmp_path)
    assert [(r.role, r.usable, r.problem) for r in inv.rows] == [("localizer", False, "localizer")]
    assert inv.rows[0].vendor.startswith("Philips")
    with pytest.raises(InputDataError, match="no usable sagittal"):
        load_study(tmp_path)


def test_ge_ct_alone_is_refused_as_no_mr(tmp_path: Path) -> None:
    shutil.copy(_testfile("CT_small.dcm"), tmp_path / "ct")
    with pytest.raises(InputDataError, match="no MR images"):
        load_study(tmp_path)
