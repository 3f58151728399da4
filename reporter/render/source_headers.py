"""The source header a DICOM SEG / SR copies its patient and study modules from, made writable.

highdicom builds the Patient and General Study modules of a derived object from one source
image, reading the Type 2 attributes as plain attributes and validating them. Real exports break
that in ordinary ways: a de-identified study has no PatientBirthDate, PatientID or
AccessionNumber; a legal multi-byte character set starts with an empty value
(`['', 'ISO 2022 IR 87']`), which highdicom's enumeration rejects; an unknown one cannot be
written back; a date typed by hand (`17/04/1923`) is not a DICOM DA. None of these make the
images unusable, so none may stop a report.

`writer_source` returns a copy of a header (the study's own headers are never changed) with:
every text value decoded with the source's character set and the copy re-labelled UTF-8
(`ISO_IR 192`, which can hold any decoded text); each Type 2 patient / study attribute present,
empty when missing; a DA, TM or DT value that does not parse emptied (Type 2: empty is legal);
PatientSex outside M / F / O emptied. Values are copied, never logged.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from collections.abc import Iterator

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import DA, DT, TM

# What the written objects declare: UTF-8 represents any text decoded from any source charset.
OUTPUT_CHARACTER_SET = "ISO_IR 192"

# Type 2 attributes of the Patient and General Study modules that highdicom reads as attributes.
TYPE2_PATIENT_STUDY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
)
_PARSERS = {"DA": DA, "TM": TM, "DT": DT}
_SEXES = ("M", "F", "O")


@contextlib.contextmanager
def quiet_writers() -> Iterator[None]:
    """Silence library warnings and log records while SEG / SR objects are built: highdicom
    quotes header values (a PatientName without '^', for one) in them, and a patient's name must
    never reach stderr."""
    logger = logging.getLogger("highdicom")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _valid_temporal(vr: str, value: object) -> bool:
    if value in (None, ""):
        return True
    values = list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
    try:
        for v in values:
            _PARSERS[vr](str(v))
    except (ValueError, TypeError, OverflowError):
        return False
    return True


def writer_source(ds: Dataset) -> Dataset:
    """A copy of `ds` whose patient and study modules highdicom can copy (see the module doc)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown charsets decode with the default, quietly
        out = copy.deepcopy(ds)
        # Decode every text value with the source's character set before the label changes.
        with contextlib.suppress(Exception):  # undecodable: keep what decoded, relabel anyway
            out.decode()
        out.SpecificCharacterSet = OUTPUT_CHARACTER_SET
        for keyword in TYPE2_PATIENT_STUDY:
            try:
                present = keyword in out and out[keyword].value is not None
            except Exception:  # a damaged raw value
                present = False
            if not present:
                setattr(out, keyword, "")
        for tag in list(out.keys()):  # top level: the patient / study modules live there
            try:
                elem = out[tag]
            except Exception:  # a value pydicom cannot convert: the copy goes without it
                del out[tag]
                continue
            if elem.VR in _PARSERS:
                try:
                    ok = _valid_temporal(elem.VR, elem.value)
                except Exception:
                    ok = False
                if not ok:
                    elem.value = ""
        if str(out.get("PatientSex", "") or "").strip().upper() not in _SEXES:
            out.PatientSex = ""
        else:
            out.PatientSex = str(out.PatientSex).strip().upper()
    return out
