"""A small lumbar study built in memory, for the report tests (renderers, SR, SEG).

Headers are pydicom-made MR Image Storage datasets without pixel data (what ingest keeps); the
label map draws L1..S1 bodies, the discs between them, the canal behind them and a foramen on
each side, in the package's label convention. Deliberately tiny so each test runs in well under
a second; the phantom engine's studies are used where realism matters.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from reporter.contracts import labels as L
from reporter.contracts.anatomy import Anatomy
from reporter.contracts.findings import LEVEL_FIELDS, TYPICAL_NORMAL, StudyFindings, lumbar_levels
from reporter.contracts.study import Series, Study
from reporter.contracts.verdicts import Measurement, Verdict

N_SLICES, ROWS, COLS = 9, 160, 112
ROW_MM, COL_MM, SLICE_MM = 1.25, 1.25, 4.0
VERTEBRAE = ["L1", "L2", "L3", "L4", "L5", "S1"]


def _header(i: int, uids: dict[str, str], ipp: list[float]) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = uids[f"sop{i}"]
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = uids["study"]
    ds.SeriesInstanceUID = uids["series"]
    ds.FrameOfReferenceUID = uids["for"]
    ds.Modality = "MR"
    ds.PatientName = "Phantom^Report"
    ds.PatientID = "PHANTOM-0001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.StudyDate = "20260101"
    ds.StudyTime = "101500"
    ds.AccessionNumber = "ACC0001"
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.SeriesNumber = 3
    ds.InstanceNumber = i + 1
    ds.SeriesDescription = "SAG T2 TSE"
    ds.Manufacturer = "PhantomWorks"
    ds.ManufacturerModelName = "Virtual 1.5T"
    ds.MagneticFieldStrength = 1.5
    ds.RepetitionTime = 3500.0
    ds.EchoTime = 100.0
    ds.SliceThickness = SLICE_MM
    ds.PixelSpacing = [ROW_MM, COL_MM]
    # Sagittal: columns run posterior (+y), rows run inferior (-z); slices step left (+x).
    ds.ImageOrientationPatient = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]
    ds.ImagePositionPatient = ipp
    ds.Rows, ds.Columns = ROWS, COLS
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.ScanningSequence, ds.SequenceVariant = "SE", "SK"
    ds.ScanOptions, ds.MRAcquisitionType = "", "2D"
    ds.PositionReferenceIndicator = ""
    ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
    return ds


def make_study() -> tuple[Study, Anatomy]:
    """The study (one sag T2 series) and its ground-truth anatomy on the same grid."""
    uids = {k: generate_uid() for k in ("study", "series", "for")}
    uids |= {f"sop{i}": generate_uid() for i in range(N_SLICES)}
    origin = np.array([-SLICE_MM * (N_SLICES - 1) / 2, -70.0, 100.0])
    affine = np.eye(4)
    affine[:3, 0] = [SLICE_MM, 0, 0]
    affine[:3, 1] = [0, 0, -ROW_MM]
    affine[:3, 2] = [0, COL_MM, 0]
    affine[:3, 3] = origin
    headers = [
        _header(i, uids, [float(v) for v in origin + i * affine[:3, 0]]) for i in range(N_SLICES)
    ]

    lab = np.zeros((N_SLICES, ROWS, COLS), dtype=np.int16)
    pix = np.random.default_rng(0).normal(60, 8, size=lab.shape).astype(np.float32)
    body_h, disc_h, top = 18, 8, 10
    levels = lumbar_levels(5, include_t12=False)
    r = top
    for v_i, v in enumerate(VERTEBRAE):
        lab[1:-1, r : r + body_h, 20:60] = L.vertebra_label(v)
        pix[1:-1, r : r + body_h, 20:60] = 220
        r += body_h
        if v_i < len(levels):
            lab[2:-2, r : r + disc_h, 22:58] = L.disc_label(levels[v_i])
            pix[2:-2, r : r + disc_h, 22:58] = 300
            # Foramina sit in the lateral slices behind the disc.
            lab[1, r - 4 : r + disc_h + 4, 62:72] = L.FORAMEN_LEFT
            lab[-2, r - 4 : r + disc_h + 4, 62:72] = L.FORAMEN_RIGHT
            r += disc_h
    lab[3:-3, top : r - body_h, 62:74] = L.CANAL
    pix[3:-3, top : r - body_h, 62:74] = 400
    series = Series(
        series_uid=uids["series"],
        study_uid=uids["study"],
        frame_of_reference_uid=uids["for"],
        series_number=3,
        description="SAG T2 TSE",
        plane="sagittal",
        weighting="T2",
        role="sag_t2",
        vendor="PhantomWorks",
        model_name="Virtual 1.5T",
        field_strength=1.5,
        repetition_time=3500.0,
        echo_time=100.0,
        slice_thickness=SLICE_MM,
        pixels=pix,
        affine=affine,
        sop_class_uid=MRImageStorage,
        sop_instance_uids=[uids[f"sop{i}"] for i in range(N_SLICES)],
        headers=headers,
    )
    study = Study(
        study_uid=uids["study"],
        source="memory",
        patient_sex="F",
        patient_age=56.0,
        study_date="20260101",
        series=[series],
    )
    anatomy = Anatomy(
        reference_series_uid=uids["series"],
        labels=lab,
        affine=affine,
        source="ground_truth",
        vertebrae=VERTEBRAE,
        levels=levels,
        lumbar_vertebrae=5,
    )
    return study, anatomy


NORMAL: dict[str, Any] = TYPICAL_NORMAL


def make_findings(
    overrides: dict[str, dict[str, Any]] | None = None, probability: float | None = 0.9
) -> StudyFindings:
    """L1-L2..L5-S1 normal except `overrides` {level: {field: value or finding dict}};
    T12-L1 is not assessable (outside the field of view)."""
    overrides = overrides or {}
    levels: list[dict[str, Any]] = [
        {"level": "T12-L1", **{f: {"not_assessable": "outside the field of view"} for f in NORMAL}}
    ]
    for level in lumbar_levels(5, include_t12=False):
        entry: dict[str, Any] = {"level": level}
        for f in LEVEL_FIELDS:
            v = overrides.get(level, {}).get(f, NORMAL[f])
            finding = dict(v) if isinstance(v, dict) else {"value": v}
            if probability is not None and "value" in finding:
                finding.setdefault("probability", probability)
            entry[f] = finding
        levels.append(entry)
    return StudyFindings.model_validate(
        {
            "study": {
                "lumbar_vertebrae": 5,
                "transitional": {"value": "none", "probability": probability},
                "alignment": {"value": "normal", "probability": probability},
            },
            "levels": levels,
        }
    )


def canal_measurement(study: Study, anatomy: Anatomy, level: str, ap_mm: float) -> Measurement:
    """A canal AP measurement placed at the canal behind `level`'s disc on the middle slice."""
    series = study.series[0]
    k = N_SLICES // 2
    rows = np.nonzero((anatomy.labels[k] == L.disc_label(level)).any(axis=1))[0]
    j = float(rows.mean())
    i = 68.0
    lps = series.index_to_lps(np.array([k, j, i]))
    return Measurement(
        name="canal_ap_mm",
        value=ap_mm,
        unit="mm",
        level=level,
        series_uid=series.series_uid,
        slice_index=k,
        position_lps=[float(x) for x in lps],
        method="AP width of the canal label at the disc's mid-height",
    )


def unverifiable(v: Verdict, reason: str) -> Verdict:
    """The same claim judged unverifiable for `reason`, without evidence."""
    return Verdict(
        level=v.level, field=v.field, claimed=v.claimed, verdict="unverifiable", reason=reason,
        rule=v.field,
    )  # fmt: skip


def make_verdicts(
    findings: StudyFindings, study: Study, anatomy: Anatomy, contradicted: set[tuple[str, str]]
) -> list[Verdict]:
    """One verdict per assessed statement: supported, except `contradicted` (level, field) pairs;
    canal statements carry a canal AP measurement as evidence."""
    out: list[Verdict] = []
    for lf in findings.levels:
        for f in LEVEL_FIELDS:
            finding = getattr(lf, f)
            if not finding.assessed:
                continue
            evidence = []
            if f == "canal_stenosis":
                ap = {"none": 14.0, "mild": 11.0, "moderate": 8.5, "severe": 6.0}[finding.value]
                if (lf.level, f) in contradicted:
                    ap = 15.0
                evidence = [canal_measurement(study, anatomy, lf.level, ap)]
            bad = (lf.level, f) in contradicted
            out.append(
                Verdict(
                    level=lf.level,
                    field=f,
                    claimed=finding.value,
                    verdict="contradicted" if bad else "supported",
                    reason=(
                        "the measurement allows none of the claimed grade"
                        if bad
                        else "the measurement agrees with the claimed grade"
                    ),
                    rule=f,
                    evidence=evidence,
                )
            )
    return out


def write_study_dicom(study: Study, folder: Path) -> Path:
    """Write the factory study as DICOM files (headers + 16-bit pixels) that ingest can read."""
    folder.mkdir(parents=True, exist_ok=True)
    for s in study.series:
        for k, header in enumerate(s.headers):
            ds = copy.deepcopy(header)
            ds.PixelData = np.clip(s.pixels[k], 0, 65535).astype(np.uint16).tobytes()
            ds.save_as(folder / f"{s.series_number or 0:03d}_{k:03d}.dcm", enforce_file_format=True)
    return folder


def severe_canal_report(study: Study, anatomy: Anatomy) -> tuple[Any, list[Any]]:
    """A report of `study` with one positive statement (severe canal stenosis at L1-L2) and the
    checker's verdicts on the factory's measurements: what the renderer tests need."""
    from reporter.pipeline import assemble_report
    from reporter.render.provenance import now_iso

    findings = make_findings({"L1-L2": {"canal_stenosis": "severe"}})
    verdicts = make_verdicts(findings, study, anatomy, set())
    measurements = [m for v in verdicts for m in v.evidence]
    return assemble_report(
        study, anatomy, findings, verdicts, measurements, {"model_name": "t"}, None, now_iso()
    )
