"""`--deidentify`: outputs under the DICOM PS3.15 Annex E Basic Application Level Confidentiality
Profile, with the options in OPTIONS (README: "De-identified outputs").

The action for each attribute (remove, empty, dummy, keep) is the standard's Table E.1-1 as
dicom-anonymizer (KitwareMedical) extracts it from the standard (its `dicomfields_2026c` table),
applied by its `anonymize_dataset`; the options are override rules on that table:

- Retain UIDs (113110): every UID is kept, so the SR and SEG reference the source images by their
  own UIDs (and provenance.json names the study); nothing needs re-mapping consistently.
- Retain Patient Characteristics (113108): age, sex, size and weight are kept (the report states
  age and sex); the other characteristics the option would keep (ethnic group, smoking and
  pregnancy status) are removed all the same.
- Clean Structured Content (113104): the SR content tree is made here from coded values,
  measurements and UIDs; no text of the input enters it, so it is kept as made.
- Clean Descriptors (113105): descriptions this program writes itself (the SR's series
  description, the SEG's content label) are fixed texts and kept; every description that comes
  from the input (series, study, protocol) is removed.

Dates and times are not retained (no temporal option): Type 2 ones are emptied, the few a
written object needs (its content date and time) get the dummy values of dicom-anonymizer.

`deidentify_study` makes the de-identified view of a study that every writer then reads: clean
copies of the source headers (the SEG and SR copy their patient and study modules from them),
no study date, accession hash or series descriptions, and the free text of limitations and
notes scrubbed of every value the profile removed. `deidentify_output` passes a finished SR or
SEG through the same profile and marks it (PatientIdentityRemoved YES, DeidentificationMethod and
its code sequence), as PS3.3 C.7.1.1 asks of a de-identified object.
"""

from __future__ import annotations

import contextlib
import copy
import io
import warnings
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sr.codedict import codes
from pydicom.tag import Tag

from reporter.contracts.study import Study
from reporter.errors import InputDataError

# dicom-anonymizer's extraction of PS3.15 Table E.1-1 that is applied (the newest it ships).
TABLE_RELEASE = "dicomfields_2026c"

PROFILE = codes.DCM.BasicApplicationConfidentialityProfile
OPTIONS = (
    codes.DCM.RetainUidsOption,
    codes.DCM.RetainPatientCharacteristicsOption,
    codes.DCM.CleanStructuredContentOption,
    codes.DCM.CleanDescriptorsOption,
)
# DeidentificationMethod (LO, 64 characters a value): one value per profile / option.
METHOD = (
    "PS3.15 Annex E Basic Profile (spine-reporter)",
    "Retain UIDs Option",
    "Retain Patient Characteristics Option",
    "Clean Structured Content Option",
    "Clean Descriptors Option",
)

# Said in the technique section of report.txt / .html.
DEIDENTIFIED_NOTE = (
    "de-identified outputs: DICOM PS3.15 Annex E basic profile with the Retain UIDs, Retain "
    "Patient Characteristics, Clean Structured Content and Clean Descriptors options"
)
RETAINED_CHARACTERISTICS = ("PatientAge", "PatientSex", "PatientSize", "PatientWeight")
# Made by our writers from fixed texts (Clean Descriptors) or by us (Clean Structured Content).
RETAINED_OUTPUT = ("ContentSequence", "SeriesDescription")
REMOVED = "[removed]"
# Shorter removed values are not scrubbed from free text: "1" (a StudyID) would mangle numbers.
MIN_SCRUB_LENGTH = 4
DUMMY_TEMPORAL = {"DA": "19000101", "TM": "000000", "DT": "19000101000000"}
_TEXT_VRS = ("AE", "AS", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UT")


def _keep(dataset: Dataset, tag: Any) -> None:
    """K: the attribute is left as it is."""


def _zero_length(dataset: Dataset, tag: Any) -> None:
    """Z: a zero-length value."""
    element = dataset.get(tag)
    if element is not None:
        element.value = ""


def _remove(dataset: Dataset, tag: Any) -> None:
    """X (dicom-anonymizer writes a dummy date in place of removing a date)."""
    if tag in dataset:
        del dataset[tag]


def _dummy(dataset: Dataset, tag: Any) -> None:
    """D for a date or time: a dummy value that validators accept (dicom-anonymizer's dummy date,
    00010101, is not a valid DA for dciodvfy)."""
    element = dataset.get(tag)
    if element is not None:
        element.value = DUMMY_TEMPORAL[element.VR]


@cache
def _tables() -> dict[str, list[tuple[int, ...]]]:
    from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector

    return dicom_anonymization_database_selector(TABLE_RELEASE)


def _vr(tag: tuple[int, ...]) -> str:
    try:
        return str(dictionary_VR(Tag(tag[0], tag[1])))
    except (KeyError, ValueError):
        return ""


@cache
def _overrides(output: bool) -> dict[tuple[int, ...], Callable[[Dataset, Any], None]]:
    """The options as rules over the standard table (see the module docstring), and dates and
    times done as the table says: Z and X/Z zero length; X, X/D and X/Z/D removed (none of them
    is Type 1 in an MR image, a SEG or an SR); D and Z/D a valid dummy (Content Date and Time
    are Type 1 in a SEG and an SR)."""
    tables = _tables()
    rules: dict[tuple[int, ...], Callable[[Dataset, Any], None]] = {}
    by_action = (
        (("Z_TAGS", "X_Z_TAGS"), _zero_length),
        (("X_TAGS", "X_D_TAGS", "X_Z_D_TAGS"), _remove),
        (("D_TAGS", "Z_D_TAGS"), _dummy),
    )
    for names, rule in by_action:
        for name in names:
            for tag in tables[name]:
                if len(tag) == 2 and _vr(tag) in DUMMY_TEMPORAL:
                    rules[tag] = rule
    for tag in (*tables["U_TAGS"], *tables["X_Z_U_STAR_TAGS"]):  # Retain UIDs
        rules[tag] = _keep
    keywords = RETAINED_CHARACTERISTICS + (RETAINED_OUTPUT if output else ())
    for keyword in keywords:
        t = Tag(keyword)
        rules[(t.group, t.element)] = _keep
    return rules


def _apply_profile(ds: Dataset, output: bool) -> None:
    from dicomanonymizer.simpledicomanonymizer import anonymize_dataset, initialize_actions

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        # The library prints a tag it cannot read to stdout; stdout is for our results.
        warnings.simplefilter("ignore")
        anonymize_dataset(
            ds,
            extra_anonymization_rules=_overrides(output),
            delete_private_tags=True,
            base_rules_gen=lambda: initialize_actions(TABLE_RELEASE),
        )


def _mark(ds: Dataset) -> None:
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = list(METHOD)
    items = []
    for code in (PROFILE, *OPTIONS):
        item = Dataset()
        item.CodeValue = code.value
        item.CodingSchemeDesignator = code.scheme_designator
        item.CodeMeaning = code.meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = items


def _removed_values(original: Dataset, clean: Dataset) -> set[str]:
    """Text values of `original`'s top level that the profile removed or changed."""
    out: set[str] = set()
    for elem in original:
        try:
            if elem.VR not in _TEXT_VRS or elem.value in (None, ""):
                continue
            kept = clean.get(elem.tag)
            if kept is not None and kept.value == elem.value:
                continue
            values = elem.value if isinstance(elem.value, (list, MultiValue)) else [elem.value]
        except Exception:  # a value pydicom cannot convert: it is gone from the copy anyway
            continue
        for v in values:
            text = str(v).strip()
            out.add(text)
            if elem.VR == "PN":  # a name is also written without its '^' separators
                out.update(p.strip() for p in text.replace("=", "^").split("^"))
                out.add(" ".join(p for p in text.split("^") if p))
    return {v for v in out if len(v) >= MIN_SCRUB_LENGTH}


def scrub(text: str, values: Iterable[str]) -> str:
    """`text` with each of `values` (longest first) replaced by '[removed]'."""
    for v in sorted(values, key=len, reverse=True):
        if v in text:
            text = text.replace(v, REMOVED)
    return text


def deidentify_header(ds: Dataset) -> tuple[Dataset, set[str]]:
    """A de-identified copy of a (pixel-free) source header, and the text values removed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clean = copy.deepcopy(ds)
        with contextlib.suppress(Exception):  # decode with the source's charset first
            clean.decode()
    original = copy.deepcopy(clean)
    _apply_profile(clean, output=False)
    _mark(clean)
    return clean, _removed_values(original, clean)


def _burned_in(ds: Dataset) -> bool:
    try:
        return str(ds.get("BurnedInAnnotation", "") or "").strip().upper() == "YES"
    except Exception:
        return False


def deidentify_study(study: Study) -> Study:
    """The de-identified view of `study` that the writers read (module docstring); the study
    itself is not changed and the pixels are shared.

    Raises InputDataError when a source image declares burned-in annotation: the key images of
    report.html are crops of the source pixels, and this program does not clean pixel data."""
    clean_of: dict[int, Dataset] = {}
    removed: set[str] = set()
    series = []
    for s in study.series:
        headers = []
        for h in s.headers:
            if id(h) not in clean_of:
                if _burned_in(h):
                    raise InputDataError(
                        f"series {s.series_uid} declares burned-in annotation "
                        "(BurnedInAnnotation YES): its pixels may show patient data, which "
                        "--deidentify does not clean"
                    )
                clean_of[id(h)], values = deidentify_header(h)
                removed |= values
            headers.append(clean_of[id(h)])  # frames of one object keep sharing one header
        series.append(s.model_copy(update={"headers": headers, "description": ""}))
    removed |= {s.description.strip() for s in study.series if s.description}
    removed |= {a.description.strip() for a in study.set_aside if a.description}
    removed = {v for v in removed if len(v) >= MIN_SCRUB_LENGTH}
    return study.model_copy(
        update={
            "series": series,
            "source": "",
            "accession_hash": None,
            "study_date": None,
            "set_aside": [
                a.model_copy(update={"description": "", "reason": scrub(a.reason, removed)})
                for a in study.set_aside
            ],
            "warnings": [scrub(w, removed) for w in study.warnings],
            "limitations": [scrub(x, removed) for x in study.limitations],
        }
    )


def deidentify_output(ds: Dataset) -> Dataset:
    """A written SR or SEG through the profile (in place), marked as de-identified."""
    _apply_profile(ds, output=True)
    _mark(ds)
    return ds
