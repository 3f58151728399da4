"""DICOM headers (pixel-free) for phantom series, in each vendor's style; deterministic UIDs."""

from __future__ import annotations

import datetime as dt

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)

from reporter.synth.sites import SequenceProfile, SiteProfile

GAMMA_MHZ_PER_T = 42.577478


def uid(seed: int, site: str, *parts: object) -> str:
    """A UID fixed by the seed, the site and what it names (the same seed gives the same UIDs)."""
    return generate_uid(entropy_srcs=["spine-reporter-phantom", str(seed), site, *map(str, parts)])


def study_date(seed: int) -> str:
    return (dt.date(2021, 1, 4) + dt.timedelta(days=seed % 1460)).strftime("%Y%m%d")


def _ds(v: float) -> str:
    """A DS value with at most 16 characters."""
    s = f"{v:.6f}".rstrip("0").rstrip(".")
    return s if s not in ("-0", "") else "0"


def slice_headers(
    *,
    seed: int,
    site: SiteProfile,
    study_uid: str,
    series_uid: str,
    frame_uid: str,
    series_number: int,
    seq: SequenceProfile,
    affine: np.ndarray,
    shape: tuple[int, int, int],
    thickness: float,
    age: int,
    sex: str,
    first_instance: int,
    stack_index: int,
    plane: str,
    window: tuple[float, float],
) -> list[Dataset]:
    nk, rows, cols = shape
    row_cos = affine[:3, 2] / np.linalg.norm(affine[:3, 2])
    col_cos = affine[:3, 1] / np.linalg.norm(affine[:3, 1])
    normal = np.cross(row_cos, col_cos)
    spacing = float(np.linalg.norm(affine[:3, 0]))
    px_row = float(np.linalg.norm(affine[:3, 1]))
    px_col = float(np.linalg.norm(affine[:3, 2]))
    date = study_date(seed)
    out = []
    for k in range(nk):
        ipp = affine[:3, 3] + k * affine[:3, 0]
        ds = Dataset()
        inst = first_instance + k
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = uid(seed, site.name, series_uid, stack_index, k)
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"] if site.manufacturer == "SIEMENS" else [
            "ORIGINAL", "PRIMARY", "OTHER"]  # fmt: skip
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = date
        ds.StudyTime = "090000"
        ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = f"09{10 + series_number:02d}00"
        ds.AccessionNumber = f"PH{seed:010d}"
        ds.Modality = "MR"
        ds.Manufacturer = site.manufacturer
        ds.InstitutionName = site.institution
        ds.ReferringPhysicianName = ""
        ds.StationName = site.station_name
        ds.StudyDescription = {
            "SIEMENS": "LWS^Routine",
            "GE MEDICAL SYSTEMS": "MRI LUMBAR SPINE WO",
        }.get(site.manufacturer, "L-Spine")
        ds.SeriesDescription = seq.description
        ds.ManufacturerModelName = site.model_name
        ds.PatientName = f"PHANTOM^{seed}"
        ds.PatientID = f"PH{seed:010d}"
        ds.PatientBirthDate = ""
        ds.PatientSex = sex
        ds.PatientAge = f"{age:03d}Y"
        ds.BodyPartExamined = "LSPINE"
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = ["SK", "SP"]
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "2D"
        ds.SliceThickness = _ds(thickness)
        ds.RepetitionTime = _ds(seq.tr)
        ds.EchoTime = _ds(seq.te)
        ds.NumberOfAverages = "1" if site.field_strength >= 1.5 else "2"
        ds.ImagingFrequency = _ds(GAMMA_MHZ_PER_T * site.field_strength)
        ds.ImagedNucleus = "1H"
        ds.MagneticFieldStrength = _ds(site.field_strength)
        ds.SpacingBetweenSlices = _ds(spacing)
        ds.EchoTrainLength = seq.echo_train_length
        ds.SoftwareVersions = site.software_versions
        ds.ProtocolName = seq.description
        ds.FlipAngle = _ds(seq.flip_angle)
        ds.PatientPosition = "HFS"
        ds.AcquisitionMatrix = [0, cols, rows, 0] if plane == "sagittal" else [cols, 0, 0, rows]
        ds.InPlanePhaseEncodingDirection = "ROW" if plane == "sagittal" else "COL"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.StudyID = "1"
        ds.SeriesNumber = series_number
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = inst
        ds.ImagePositionPatient = [_ds(x) for x in ipp]
        ds.ImageOrientationPatient = [_ds(x) for x in (*row_cos, *col_cos)]
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = _ds(float(ipp @ normal))
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = rows
        ds.Columns = cols
        ds.PixelSpacing = [_ds(px_row), _ds(px_col)]
        ds.BitsAllocated = 16
        ds.BitsStored = 16 if site.manufacturer == "Philips" else 12
        ds.HighBit = ds.BitsStored - 1
        ds.PixelRepresentation = 0
        ds.WindowCenter = _ds(window[0])
        ds.WindowWidth = _ds(window[1])
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = _ds(site.rescale_slope)
        ds.RescaleType = "US"
        out.append(ds)
    return out


def file_meta(ds: Dataset, transfer_syntax: str = ExplicitVRLittleEndian) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "SPINEREP_010"
    return meta
