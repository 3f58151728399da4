"""Header values read straight from pydicom's raw elements.

pydicom converts an element the first time it is accessed (value parsing, validation, keyword
lookup): about as costly per element as decoding a 512 x 512 uncompressed image is per file.
Ingest reads ~a dozen per-image values from every file, so for those it parses the raw bytes
itself (string VRs are endian-free; US uses the element's own byte order) and leaves the rest
of the header to pydicom's lazy conversion. Anything unexpected falls back to pydicom.
"""

from __future__ import annotations

import math
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

SOP_CLASS_UID = 0x00080016
SOP_INSTANCE_UID = 0x00080018
IMAGE_TYPE = 0x00080008
MODALITY = 0x00080060
STUDY_INSTANCE_UID = 0x0020000D
SERIES_INSTANCE_UID = 0x0020000E
IMAGE_POSITION = 0x00200032
IMAGE_ORIENTATION = 0x00200037
ROWS = 0x00280010
COLUMNS = 0x00280011
PIXEL_SPACING = 0x00280030
RESCALE_INTERCEPT = 0x00281052
RESCALE_SLOPE = 0x00281053
SAMPLES_PER_PIXEL = 0x00280002
NUMBER_OF_FRAMES = 0x00280008
BITS_ALLOCATED = 0x00280100
BITS_STORED = 0x00280101
HIGH_BIT = 0x00280102
PIXEL_REPRESENTATION = 0x00280103
PHOTOMETRIC_INTERPRETATION = 0x00280004
SLICE_THICKNESS = 0x00180050
SPACING_BETWEEN_SLICES = 0x00180088
FRAME_OF_REFERENCE_UID = 0x00200052
# The UIDs a SEG or SR needs to reference an image (Type 1 in the MR IODs); highdicom raises on
# an image without one.
REFERENCE_UIDS = {
    SOP_CLASS_UID: "SOPClassUID",
    SOP_INSTANCE_UID: "SOPInstanceUID",
    STUDY_INSTANCE_UID: "StudyInstanceUID",
    SERIES_INSTANCE_UID: "SeriesInstanceUID",
    FRAME_OF_REFERENCE_UID: "FrameOfReferenceUID",
}


def _element(ds: Dataset, tag: int) -> Any:
    try:
        return ds.get_item(tag)
    except KeyError:
        return None


def text(ds: Dataset, tag: int) -> str:
    """A string-VR value ('\\'-joined when multi-valued), stripped; "" when absent."""
    elem = _element(ds, tag)
    if elem is None:
        return ""
    if isinstance(elem, RawDataElement):
        raw = elem.value
        if raw is None:
            return ""
        return raw.decode("latin-1").strip(" \x00")
    value = elem.value
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    try:
        return "\\".join(str(v).strip() for v in value)
    except TypeError:
        return str(value).strip()


def numbers(ds: Dataset, tag: int) -> list[float] | None:
    """A DS / IS value as floats; None when absent or not numeric."""
    s = text(ds, tag)
    if not s:
        return None
    try:
        return [float(part) for part in s.split("\\")]
    except ValueError:
        return None


def ushort(ds: Dataset, tag: int) -> int | None:
    """A US value (Rows, Columns, Bits*): raw bytes in the element's byte order."""
    elem = _element(ds, tag)
    if elem is None:
        return None
    if isinstance(elem, RawDataElement):
        raw = elem.value
        if raw is None or len(raw) < 2:
            return None
        return int.from_bytes(raw[:2], "little" if elem.is_little_endian else "big")
    value = elem.value
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    return None if value is None else int(value)


# What the stack, its geometry and the SEG / SR references are built from: a value of the wrong
# VR here makes the image unusable. Any other attribute of the wrong VR is only left out of the
# header (vet_header): a scanner that writes, say, its software version under another VR
# still gets its images reported.
ESSENTIAL_TAGS = frozenset(
    {
        *REFERENCE_UIDS,
        MODALITY,  # the SR's image library copies it (dropped: AttributeError, seed 110308)
        IMAGE_POSITION,
        IMAGE_ORIENTATION,
        ROWS,
        COLUMNS,
        PIXEL_SPACING,
        RESCALE_INTERCEPT,
        RESCALE_SLOPE,
        SAMPLES_PER_PIXEL,
        NUMBER_OF_FRAMES,
        BITS_ALLOCATED,
        BITS_STORED,
        HIGH_BIT,
        PIXEL_REPRESENTATION,
        PHOTOMETRIC_INTERPRETATION,
        SLICE_THICKNESS,
        SPACING_BETWEEN_SLICES,
    }
)


def _wrong_vr_tags(ds: Dataset) -> list[Any]:
    """Top-level public tags whose VR as written disagrees with the data dictionary (SOPClassUID
    written as DA, Rows as DS). pydicom converts such a value into something else ('' for a UID
    read as a date). UN and implicit VR (None) are no disagreement; private and unknown tags are
    not checked."""
    out = []
    for tag in ds.keys():  # noqa: SIM118 (iterating a Dataset would convert every element)
        vr = ds.get_item(tag).VR
        if vr is None or vr == "UN" or tag.is_private:
            continue
        try:
            expected = dictionary_VR(tag)
        except KeyError:
            continue
        if vr not in expected.split(" or "):
            out.append(tag)
    return out


def wrong_vrs(ds: Dataset, tags: list[Any] | None = None) -> list[str]:
    """Keywords of the essential attributes (ESSENTIAL_TAGS) written under the wrong VR (among
    `tags` when the caller has read them with _wrong_vr_tags already)."""
    found = _wrong_vr_tags(ds) if tags is None else tags
    return [keyword_for_tag(t) or str(t) for t in found if int(t) in ESSENTIAL_TAGS]


def vet_header(ds: Dataset) -> str | None:
    """header_damage(ds); when there is none, the non-essential top-level attributes written
    under the wrong VR are deleted from `ds` (in memory; the file is untouched), so that nothing
    downstream (series naming, the technique line, the SEG / SR writers) reads a value pydicom
    had to convert into something else. The header's VRs are read once for both."""
    wrong = _wrong_vr_tags(ds)
    damage = header_damage(ds, wrong)
    if damage is None:
        for tag in wrong:
            del ds[tag]  # essential ones would have been damage
    return damage


def header_damage(ds: Dataset, wrong_tags: list[Any]) -> str | None:
    """What makes an image's header unusable for the SEG and SR written on it (a missing or
    multi-valued reference UID, a slice thickness or spacing that is not one number, essential
    values of the wrong VR, among `wrong_tags` from _wrong_vr_tags); None when nothing does."""
    parts = []
    # Type 1 attributes the SR's image library copies from each referenced image as well.
    required = {
        **REFERENCE_UIDS,
        MODALITY: "Modality",
        PHOTOMETRIC_INTERPRETATION: "PhotometricInterpretation",
    }
    missing = [name for tag, name in required.items() if not text(ds, tag)]
    if missing:
        parts.append(f"no {', '.join(missing)}")
    # A UID holds one value: several ('1.2.3\\4.5') cannot key or reference anything (highdicom's
    # SEG hashed the list: TypeError). Other malformed UID text is written back as it came.
    several = [name for tag, name in REFERENCE_UIDS.items() if "\\" in text(ds, tag)]
    # Decimal strings the SEG copies from its source images: present, each must be one number
    # (a list such as '1\\2\\3' reached highdicom as a MultiValue: TypeError, fuzz seed 133601).
    bad = []
    for tag, name in (
        (SLICE_THICKNESS, "SliceThickness"),
        (SPACING_BETWEEN_SLICES, "SpacingBetweenSlices"),
    ):
        if not text(ds, tag):
            continue
        values = numbers(ds, tag)
        if not _finite(values):
            bad.append(name)
        elif values is not None and len(values) > 1:
            several.append(name)
    if several:
        parts.append(f"several values in {', '.join(several)}")
    if bad:
        parts.append(f"{', '.join(bad)} not a number")
    wrong = wrong_vrs(ds, wrong_tags)
    if wrong:
        parts.append(f"header values of the wrong VR ({', '.join(wrong[:3])})")
    return "; ".join(parts) or None


def _finite(values: list[float] | None) -> bool:
    return bool(values) and all(math.isfinite(v) for v in values)  # type: ignore[union-attr]
