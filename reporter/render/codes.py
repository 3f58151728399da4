"""Coded concepts for the SR and SEG: standard codes where DICOM/SNOMED have one, else ours.

Our own codes use the private coding scheme designator `99SPREP` (the "99" prefix is reserved by
PS3.16 for local schemes); every object that uses them declares the scheme in its Coding Scheme
Identification Sequence.
"""

from __future__ import annotations

import hashlib
from typing import Any

from highdicom.sr import CodedConcept
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from reporter.contracts import labels as L
from reporter.contracts.findings import LEVELS, VERTEBRAE

SCHEME = "99SPREP"
SCHEME_NAME = "spine-reporter local codes"


def local(value: str, meaning: str) -> CodedConcept:
    if len(value) > 16:
        raise ValueError(f"Argument 'value' must be at most 16 characters: {value!r}.")
    return CodedConcept(value=value, scheme_designator=SCHEME, meaning=meaning)


def scheme_identification() -> Dataset:
    item = Dataset()
    item.CodingSchemeDesignator = SCHEME
    item.CodingSchemeName = SCHEME_NAME
    item.CodingSchemeResponsibleOrganization = "spine-reporter project"
    return item


def _std(code: Any) -> CodedConcept:
    return CodedConcept(
        value=code.value, scheme_designator=code.scheme_designator, meaning=code.meaning
    )


ANATOMICAL_STRUCTURE = _std(codes.SCT.AnatomicalStructure)
LUMBAR_SPINE = _std(codes.SCT.LumbarSpine)

_VERTEBRA_STD = {
    "T9": codes.SCT.T9Vertebra,
    "T10": codes.SCT.T10Vertebra,
    "T11": codes.SCT.T11Vertebra,
    "T12": codes.SCT.T12Vertebra,
    "L1": codes.SCT.L1Vertebra,
    "L2": codes.SCT.L2Vertebra,
    "L3": codes.SCT.L3Vertebra,
    "L4": codes.SCT.L4Vertebra,
    "L5": codes.SCT.L5Vertebra,
    "S1": codes.SCT.Sacrum,
}
_DISC_STD = {
    "T9-T10": codes.SCT.T9T10Disc,
    "T10-T11": codes.SCT.T10T11Disc,
    "T11-T12": codes.SCT.T11T12Disc,
    "T12-L1": codes.SCT.T12L1Disc,
    "L1-L2": codes.SCT.L1L2Disc,
    "L2-L3": codes.SCT.L2L3Disc,
    "L3-L4": codes.SCT.L3L4Disc,
    "L4-L5": codes.SCT.L4L5Disc,
    "L5-S1": codes.SCT.L5S1Disc,
}


def vertebra_code(name: str) -> CodedConcept:
    if name in _VERTEBRA_STD:
        return _std(_VERTEBRA_STD[name])
    return local(f"V-{name}", f"{name} vertebra")  # L6 has no standard code


def disc_code(level: str) -> CodedConcept:
    if level in _DISC_STD:
        return _std(_DISC_STD[level])
    # L4-S1 / L5-L6 / L6-S1 of 4- or 6-lumbar spines have no standard code.
    return local(f"D-{level}", f"{level} intervertebral disc")


def tissue_code(value: int) -> CodedConcept:
    std = {
        L.CANAL: codes.SCT.SpinalCanalStructure,
        L.CORD: codes.SCT.SpinalCord,
        L.POSTERIOR_ELEMENTS: codes.SCT.ArchOfVertebra,
        L.MUSCLE: codes.SCT.SkeletalMuscle,
    }
    if value in std:
        return _std(std[value])
    own = {
        L.FORAMEN_LEFT: ("T-FORAMEN-L", "Left intervertebral foramen"),
        L.FORAMEN_RIGHT: ("T-FORAMEN-R", "Right intervertebral foramen"),
        L.ROOT_LEFT: ("T-ROOT-L", "Left exiting spinal nerve root"),
        L.ROOT_RIGHT: ("T-ROOT-R", "Right exiting spinal nerve root"),
        L.LIGAMENTUM_FLAVUM: ("T-LIG-FLAVUM", "Ligamentum flavum"),
        L.SUBCUTANEOUS_FAT: ("T-SUBCUT-FAT", "Subcutaneous fat"),
    }
    return local(*own[value])


def label_code(value: int) -> CodedConcept:
    if L.is_vertebra(value):
        return vertebra_code(VERTEBRAE[value - L.VERTEBRA_BASE])
    if L.is_disc(value):
        return disc_code(LEVELS[value - L.DISC_BASE])
    return tissue_code(value)


# --- SR concept names and values -----------------------------------------------------------------
SEVERITY_VALUES = {
    "none": _std(codes.SCT.Absent),
    "mild": _std(codes.SCT.Mild),
    "moderate": _std(codes.SCT.Moderate),
    "severe": _std(codes.SCT.Severe),
}
PRESENT = _std(codes.SCT.Present)
ABSENT = _std(codes.SCT.Absent)

FIELD_CONCEPTS: dict[str, CodedConcept] = {
    "pfirrmann": local("F-PFIRRMANN", "Pfirrmann disc degeneration grade"),
    "disc_narrowing": local("F-DISC-NARROW", "Disc space narrowing"),
    "disc_bulging": local("F-DISC-BULGE", "Disc bulge"),
    "herniation": local("F-HERNIATION", "Disc herniation"),
    "canal_stenosis": local("F-CANAL-STEN", "Central canal stenosis"),
    "foraminal_stenosis_left": local("F-FORAMEN-L", "Left foraminal stenosis (Lee grade)"),
    "foraminal_stenosis_right": local("F-FORAMEN-R", "Right foraminal stenosis (Lee grade)"),
    "subarticular_stenosis_left": local("F-SUBART-L", "Left subarticular stenosis"),
    "subarticular_stenosis_right": local("F-SUBART-R", "Right subarticular stenosis"),
    "modic_upper": local("F-MODIC-UP", "Modic endplate change, upper endplate"),
    "modic_lower": local("F-MODIC-LO", "Modic endplate change, lower endplate"),
    "endplate_defect_upper": local("F-EPDEF-UP", "Endplate defect, upper endplate"),
    "endplate_defect_lower": local("F-EPDEF-LO", "Endplate defect, lower endplate"),
    "spondylolisthesis": local("F-LISTHESIS", "Spondylolisthesis (Meyerding grade)"),
    "herniation_zone": local("F-HERN-ZONE", "Disc herniation zone"),
    "listhesis_direction": local("F-LIST-DIR", "Spondylolisthesis direction"),
    "transitional": local("F-TRANSITIONAL", "Lumbosacral transitional anatomy"),
    "lumbar_vertebrae": local("F-N-LUMBAR", "Number of lumbar-type vertebrae"),
    "alignment": local("F-ALIGNMENT", "Lumbar alignment"),
}


def value_code(field_name: str, value: Any) -> CodedConcept:
    """The coded value of one statement (grades as codes, so SR readers can query them)."""
    if field_name in (
        "disc_narrowing",
        "canal_stenosis",
        "subarticular_stenosis_left",
        "subarticular_stenosis_right",
    ):
        return SEVERITY_VALUES[value]
    if isinstance(value, bool):
        return PRESENT if value else ABSENT
    if field_name == "pfirrmann":
        return local(f"PFIRRMANN-{value}", f"Pfirrmann grade {value}")
    if field_name.startswith("foraminal_stenosis"):
        return local(f"LEE-{value}", f"Lee foraminal grade {value}")
    if field_name.startswith("modic"):
        return ABSENT if value == 0 else local(f"MODIC-{value}", f"Modic type {value}")
    if field_name == "spondylolisthesis":
        return ABSENT if value == 0 else local(f"MEYERDING-{value}", f"Meyerding grade {value}")
    if field_name == "herniation":
        if value == "none":
            return ABSENT
        return local(f"HERN-{value.upper()}"[:16], f"Disc {value}")
    text = str(value)
    return local(f"V-{text.upper()}"[:16], text.replace("_", " "))


UNITS: dict[str, CodedConcept] = {
    "mm": _std(codes.UCUM.Millimeter),
    "mm2": _std(codes.UCUM.SquareMillimeter),
    "%": _std(codes.UCUM.Percent),
    "ratio": _std(codes.UCUM.NoUnits),
    "": _std(codes.UCUM.NoUnits),
    "1": _std(codes.UCUM.NoUnits),
}


def measurement_concept(name: str) -> CodedConcept:
    """Our measurement names (e.g. `canal_ap_mm`) as local codes; the name is the code meaning."""
    digest = hashlib.sha1(name.encode()).hexdigest()[:10].upper()
    return local(f"M-{digest}", name.replace("_", " "))
