"""The direct native pixel reader gives exactly what pydicom's decoder gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factory import SeriesSpec, series_datasets, write_datasets

from reporter.ingest import load_study


@pytest.mark.parametrize(
    ("bits", "stored", "signed", "syntax"),
    [
        (16, 16, False, pydicom.uid.ExplicitVRLittleEndian),
        (16, 12, False, pydicom.uid.ExplicitVRLittleEndian),  # junk above bit 11 is masked
        (16, 12, True, pydicom.uid.ExplicitVRLittleEndian),  # sign-extended from bit 11
        (16, 16, True, pydicom.uid.ImplicitVRLittleEndian),
        (8, 8, False, pydicom.uid.ExplicitVRLittleEndian),
        (8, 7, True, pydicom.uid.ImplicitVRLittleEndian),
        (32, 32, False, pydicom.uid.ExplicitVRLittleEndian),
        (32, 20, True, pydicom.uid.ExplicitVRLittleEndian),
        (16, 12, True, pydicom.uid.ExplicitVRBigEndian),  # pydicom's path, for comparison
        (16, 16, False, pydicom.uid.DeflatedExplicitVRLittleEndian),
    ],
)
def test_native_pixels_match_pydicom_bit_for_bit(
    tmp_path: Path, bits: int, stored: int, signed: bool, syntax: str
) -> None:
    rng = np.random.default_rng(bits + stored + signed)
    datasets = series_datasets(SeriesSpec("sagittal", n_slices=3, rows=7, cols=9))
    for ds in datasets:
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, stored, stored - 1
        ds.PixelRepresentation = int(signed)
        raw = rng.integers(0, 2**bits, size=(7, 9), dtype=np.uint64).astype(f"<u{bits // 8}")
        if syntax == pydicom.uid.ExplicitVRBigEndian:
            ds.PixelData = raw.astype(f">u{bits // 8}").tobytes()
        else:
            ds.PixelData = raw.tobytes()
        ds.file_meta.TransferSyntaxUID = syntax
    paths = write_datasets(datasets, tmp_path)
    series = load_study(tmp_path).series[0]
    expected = [pydicom.dcmread(p).pixel_array.astype(np.float32) for p in paths]
    # slices are sorted along the normal: compare by SOP Instance UID
    by_uid = {pydicom.dcmread(p).SOPInstanceUID: e for p, e in zip(paths, expected, strict=True)}
    for k, uid in enumerate(series.sop_instance_uids):
        np.testing.assert_array_equal(series.pixels[k], by_uid[uid])


def test_odd_length_8_bit_data_with_padding_is_read(tmp_path: Path) -> None:
    datasets = series_datasets(SeriesSpec("sagittal", n_slices=2, rows=3, cols=5))
    for ds in datasets:
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit = 7
        ds.PixelData = bytes(range(15)) + b"\x00"  # even length on disk, 15 pixels
    write_datasets(datasets, tmp_path)
    series = load_study(tmp_path).series[0]
    np.testing.assert_array_equal(series.pixels[0].ravel(), np.arange(15, dtype=np.float32))


def test_rle_compressed_enhanced_mr_decodes_every_frame(tmp_path: Path) -> None:
    from dicom_factory import SLICE_CODE, enhanced_dataset

    ds = enhanced_dataset([SeriesSpec("sagittal", "T2", n_slices=5, rows=16, cols=16)])
    ds.compress(pydicom.uid.RLELossless)
    write_datasets([ds], tmp_path)
    series = load_study(tmp_path).series[0]
    np.testing.assert_array_equal(series.pixels[:, 0, 0], np.arange(5) * SLICE_CODE)


def test_jpeg_baseline_mr_decodes_close_to_the_original(tmp_path: Path) -> None:
    gdcm = pytest.importorskip("gdcm")
    datasets = series_datasets(SeriesSpec("sagittal", n_slices=1, rows=64, cols=64))
    ds = datasets[0]
    j, i = np.mgrid[0:64, 0:64]
    original = (128 + 60 * np.sin(j / 6.0) * np.cos(i / 9.0)).astype(np.uint8)
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelData = original.tobytes()
    src = write_datasets(datasets, tmp_path / "src")[0]
    reader = gdcm.ImageReader()
    reader.SetFileName(str(src))
    assert reader.Read()
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGBaselineProcess1))
    change.SetInput(reader.GetImage())
    assert change.Change()
    writer = gdcm.ImageWriter()
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    (tmp_path / "jpeg").mkdir()
    writer.SetFileName(str(tmp_path / "jpeg" / "a.dcm"))
    assert writer.Write()
    series = load_study(tmp_path / "jpeg").series[0]
    assert series.transfer_syntax_uid == pydicom.uid.JPEGBaseline8Bit
    assert np.abs(series.pixels[0] - original).mean() < 2.0  # lossy, but close
