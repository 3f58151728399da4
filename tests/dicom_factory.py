"""Small, exact DICOM MR series for tests, written with pydicom (usable by every area's tests).

Geometry is known exactly (so tests can compare an ingested affine with the truth), pixel values
encode the physical slice order (slice k of a stack, counted along the slice normal, has
`pixel[0, 0] == k * SLICE_CODE`), and files can get random names and be written in any order.

    from dicom_factory import SeriesSpec, write_study  # tests/ is on sys.path under pytest
    paths = write_study(tmp_path, [SeriesSpec("sagittal", weighting="T2"), SeriesSpec("axial")])
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)

ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
SLICE_CODE = 100

# Typical 1.5 T lumbar protocol values (ms): TR, TE, TI, ScanningSequence.
ACQUISITION: dict[str, tuple[float, float, float | None, str]] = {
    "T1": (550.0, 12.0, None, "SE"),
    "T2": (3500.0, 100.0, None, "SE"),
    "STIR": (4000.0, 60.0, 160.0, "IR\\SE"),
    "PD": (2500.0, 20.0, None, "SE"),
}


def orientation(plane: str, angle_deg: float = 0.0) -> np.ndarray:
    """IOP (row cosine, column cosine) of a plane; `angle_deg` tilts it about left-right."""
    if plane == "sagittal":
        row, col = np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, -1.0])
    elif plane == "axial":
        row, col = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    elif plane == "coronal":
        row, col = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, -1.0])
    else:
        raise ValueError(f"Argument 'plane' must be sagittal, axial or coronal, not {plane!r}.")
    a = math.radians(angle_deg)
    rot = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    return np.concatenate([rot @ row, rot @ col])


@dataclass
class SeriesSpec:
    plane: str = "sagittal"
    weighting: str = "T2"
    n_slices: int = 5
    rows: int = 32
    cols: int = 32
    pixel_spacing: tuple[float, float] = (0.75, 0.8)
    slice_step: float = 4.0
    center: tuple[float, float, float] = (0.0, 10.0, -50.0)
    angle_deg: float = 0.0
    description: str = ""
    series_number: int = 1
    series_uid: str = field(default_factory=generate_uid)
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "M", "ND")
    rescale: tuple[float, float] | None = None  # slope, intercept
    vendor: str = "Factory Medical"
    field_strength: float = 1.5
    acquisition: tuple[float, float, float | None, str] | None = None  # overrides `weighting`

    def normal(self) -> np.ndarray:
        iop = orientation(self.plane, self.angle_deg)
        return np.cross(iop[:3], iop[3:])

    def positions(self) -> np.ndarray:
        """IPP of each slice, in physical order along the normal."""
        iop = orientation(self.plane, self.angle_deg)
        rs, cs = self.pixel_spacing
        corner = (
            np.array(self.center)
            - (self.rows - 1) / 2 * rs * iop[3:]
            - (self.cols - 1) / 2 * cs * iop[:3]
        )
        offsets = (np.arange(self.n_slices) - (self.n_slices - 1) / 2) * self.slice_step
        return corner + offsets[:, None] * self.normal()


def slice_pixels(k: int, rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """uint16 image whose [0, 0] is k * SLICE_CODE and whose rest varies with position."""
    j, i = np.mgrid[0:rows, 0:cols]
    arr = (k * SLICE_CODE + (j * 3 + i * 7 + seed) % 97).astype(np.uint16)
    arr[0, 0] = k * SLICE_CODE
    return arr


@dataclass
class StudyInfo:
    study_uid: str = field(default_factory=generate_uid)
    frame_of_reference_uid: str = field(default_factory=generate_uid)
    patient_sex: str = "F"
    patient_age: str = "054Y"


def _base(spec: SeriesSpec, study: StudyInfo, sop_class: str) -> Dataset:
    tr, te, ti, seq = spec.acquisition or ACQUISITION[spec.weighting]
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.StudyInstanceUID = study.study_uid
    ds.SeriesInstanceUID = spec.series_uid
    ds.FrameOfReferenceUID = study.frame_of_reference_uid
    ds.Modality = "MR"
    ds.Manufacturer = spec.vendor
    ds.ManufacturerModelName = "Phantom 1"
    ds.MagneticFieldStrength = spec.field_strength
    ds.PatientName = "Factory^Phantom"
    ds.PatientID = "FACTORY-0001"
    ds.PatientSex = study.patient_sex
    ds.PatientAge = study.patient_age
    ds.StudyDate = "20260101"
    ds.AccessionNumber = "ACC0001"
    ds.SeriesNumber = spec.series_number
    ds.SeriesDescription = spec.description or f"{spec.plane[:3].upper()} {spec.weighting}"
    ds.ImageType = list(spec.image_type)
    ds.ScanningSequence = seq.split("\\") if "\\" in seq else seq
    ds.SequenceVariant = "SK"
    ds.RepetitionTime = tr
    ds.EchoTime = te
    if ti is not None:
        ds.InversionTime = ti
    ds.SliceThickness = min(spec.slice_step, 4.0)
    ds.SpacingBetweenSlices = spec.slice_step
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    return ds


def _ds_string(v: float) -> str:
    return f"{v:.6f}".rstrip("0").rstrip(".") if abs(v) < 1e9 else str(v)


def series_datasets(spec: SeriesSpec, study: StudyInfo | None = None) -> list[Dataset]:
    """One classic MR Image Storage dataset per slice, in physical order (not yet written)."""
    study = study or StudyInfo()
    iop = orientation(spec.plane, spec.angle_deg)
    out = []
    for k, ipp in enumerate(spec.positions()):
        ds = _base(spec, study, MRImageStorage)
        ds.SOPInstanceUID = generate_uid()
        ds.InstanceNumber = k + 1
        ds.ImageOrientationPatient = [_ds_string(v) for v in iop]
        ds.ImagePositionPatient = [_ds_string(v) for v in ipp]
        ds.SliceLocation = _ds_string(float(ipp @ spec.normal()))
        ds.PixelSpacing = [_ds_string(v) for v in spec.pixel_spacing]
        ds.Rows, ds.Columns = spec.rows, spec.cols
        if spec.rescale is not None:
            ds.RescaleSlope, ds.RescaleIntercept = spec.rescale
        ds.PixelData = slice_pixels(k, spec.rows, spec.cols).tobytes()
        _meta(ds)
        out.append(ds)
    return out


def enhanced_dataset(
    specs: Sequence[SeriesSpec], study: StudyInfo | None = None, shuffle_seed: int | None = 0
) -> Dataset:
    """One Enhanced MR object holding the slices of `specs` (blocks of one series) as frames,
    in shuffled frame order. All specs must share matrix and series UID."""
    study = study or StudyInfo()
    spec0 = specs[0]
    ds = _base(spec0, study, ENHANCED_MR)
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceNumber = 1
    ds.AcquisitionContrast = spec0.weighting if spec0.weighting in ("T1", "T2", "STIR") else "MIXED"
    ds.Rows, ds.Columns = spec0.rows, spec0.cols
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [_ds_string(v) for v in spec0.pixel_spacing]
    measures.SliceThickness = min(spec0.slice_step, 4.0)
    shared.PixelMeasuresSequence = DicomSequence([measures])
    timing = Dataset()
    timing.RepetitionTime = ds.RepetitionTime
    timing.FlipAngle = 90
    shared.MRTimingAndRelatedParametersSequence = DicomSequence([timing])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    frames = []
    for spec in specs:
        iop = orientation(spec.plane, spec.angle_deg)
        for k, ipp in enumerate(spec.positions()):
            frames.append((spec, k, iop, ipp))
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(frames)
    per_frame = []
    pixels = []
    for spec, k, iop, ipp in frames:
        item = Dataset()
        pos = Dataset()
        pos.ImagePositionPatient = [_ds_string(v) for v in ipp]
        item.PlanePositionSequence = DicomSequence([pos])
        ori = Dataset()
        ori.ImageOrientationPatient = [_ds_string(v) for v in iop]
        item.PlaneOrientationSequence = DicomSequence([ori])
        echo = Dataset()
        echo.EffectiveEchoTime = ds.EchoTime
        item.MREchoSequence = DicomSequence([echo])
        if spec.rescale is not None:
            pvt = Dataset()
            pvt.RescaleSlope, pvt.RescaleIntercept = spec.rescale
            pvt.RescaleType = "US"
            item.PixelValueTransformationSequence = DicomSequence([pvt])
        per_frame.append(item)
        pixels.append(slice_pixels(k, spec.rows, spec.cols))
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    ds.NumberOfFrames = len(frames)
    ds.PixelData = np.stack(pixels).tobytes()
    _meta(ds)
    return ds


def _meta(ds: Dataset) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta


def write_datasets(
    datasets: Sequence[Dataset],
    out_dir: Path,
    *,
    random_names: bool = False,
    seed: int = 0,
    subfolders: bool = False,
) -> list[Path]:
    """Write `datasets` under `out_dir` (random names and nested folders if asked)."""
    rng = random.Random(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    order = list(range(len(datasets)))
    if random_names:
        rng.shuffle(order)
    paths = []
    for n, idx in enumerate(order):
        folder = out_dir / f"d{rng.randrange(3)}" if subfolders else out_dir
        folder.mkdir(parents=True, exist_ok=True)
        name = uuid.UUID(int=rng.getrandbits(128)).hex if random_names else f"IM{n:05d}.dcm"
        path = folder / name
        pydicom.dcmwrite(path, datasets[idx], enforce_file_format=True)
        paths.append(path)
    return paths


def write_series(
    spec: SeriesSpec, out_dir: Path, study: StudyInfo | None = None, **kwargs: object
) -> list[Path]:
    return write_datasets(series_datasets(spec, study), out_dir, **kwargs)  # type: ignore[arg-type]


def write_study(
    out_dir: Path, specs: Sequence[SeriesSpec], study: StudyInfo | None = None, **kwargs: object
) -> list[Path]:
    """Every series of `specs` in one study, each in its own subfolder of `out_dir`."""
    study = study or StudyInfo()
    paths: list[Path] = []
    for n, spec in enumerate(specs):
        paths += write_series(spec, out_dir / f"series{n:02d}", study, **kwargs)
    return paths


def lumbar_specs(
    matrix: int = 32, n_sag: int = 15, n_axial_blocks: int = 3, n_per_block: int = 4
) -> list[SeriesSpec]:
    """A routine lumbar protocol: sagittal T1 + T2, and angled axial T2 blocks in one series."""
    sag_spacing = (300.0 / matrix, 300.0 / matrix)
    ax_spacing = (180.0 / matrix, 180.0 / matrix)
    specs = [
        SeriesSpec("sagittal", "T1", n_sag, matrix, matrix, sag_spacing, 4.0,
                   description="t1_tse_sag", series_number=2),
        SeriesSpec("sagittal", "T2", n_sag, matrix, matrix, sag_spacing, 4.0,
                   description="t2_tse_sag", series_number=3),
    ]  # fmt: skip
    axial_uid = generate_uid()
    for b in range(n_axial_blocks):
        specs.append(
            SeriesSpec("axial", "T2", n_per_block, matrix, matrix, ax_spacing, 4.0,
                       center=(0.0, 30.0, -20.0 - 40.0 * b), angle_deg=-10.0 + 12.0 * b,
                       description="t2_tse_tra", series_number=4, series_uid=axial_uid)
        )  # fmt: skip
    return specs
