"""DICOM SEG of the anatomy the report rests on (highdicom), on the reference series' headers.

One segment per structure present in the label map, numbered in label order, so the SR can point
at "the L4-L5 disc" by segment number. Built from the pixel-free headers ingest kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from reporter.contracts import labels as L
from reporter.contracts.anatomy import Anatomy
from reporter.contracts.study import Series, Study
from reporter.errors import InputDataError
from reporter.render import codes as C
from reporter.render.source_headers import OUTPUT_CHARACTER_SET, writer_source
from reporter.version import __version__

MANUFACTURER = "spine-reporter"
SEG_SERIES_NUMBER = 9901


@dataclass
class SegResult:
    dataset: Dataset
    segment_numbers: dict[int, int]  # label value -> segment number
    series: Series  # the reference series the segments lie on


def reference_series(study: Study, anatomy: Anatomy) -> Series:
    for s in study.series:
        if (
            s.series_uid == anatomy.reference_series_uid
            and s.stack_index == anatomy.reference_stack_index
        ):
            return s
    raise InputDataError(
        f"the anatomy refers to series {anatomy.reference_series_uid}, which is not in the study"
    )


def multiframe_problem(series: Series) -> str | None:
    """Why a SEG cannot reference `series` (None when it can): the slices of an enhanced
    multi-frame series must all be frames of one object."""
    if series.frame_numbers and len({id(h) for h in series.headers}) > 1:
        return (
            f"series {series.series_uid} is spread over several multi-frame objects; a DICOM "
            "SEG references the frames of one"
        )
    return None


def _sources_and_frames(series: Series, seg_values: np.ndarray) -> tuple[list[Dataset], np.ndarray]:
    """Source images and segmentation frames as highdicom pairs them: one frame per slice for
    single-frame images; for an enhanced multi-frame object, the object once and one frame per
    *source frame*, in the object's frame order (our slices are sorted along the normal, and the
    object may hold frames of other stacks, which stay empty)."""
    if not series.frame_numbers:
        return list(series.headers), seg_values
    problem = multiframe_problem(series)
    if problem is not None:
        raise InputDataError(problem)
    source = series.headers[0]
    n_frames = int(source.get("NumberOfFrames", 0) or 0)
    if n_frames < max(series.frame_numbers):
        raise InputDataError(
            f"series {series.series_uid}: frame numbers exceed the object's NumberOfFrames"
        )
    frames = np.zeros((n_frames, *seg_values.shape[1:]), dtype=seg_values.dtype)
    frames[np.asarray(series.frame_numbers) - 1] = seg_values
    return [source], frames


def build_seg(study: Study, anatomy: Anatomy, source_detail: str = "") -> SegResult:
    """A DICOM SEG (BINARY, one segment per structure) of `anatomy` on its reference series."""
    series = reference_series(study, anatomy)
    if len(series.headers) != series.shape[0]:
        raise InputDataError(
            f"series {series.series_uid} has {len(series.headers)} headers for "
            f"{series.shape[0]} slices; a DICOM SEG needs one header per slice"
        )
    labels = np.asarray(anatomy.labels)
    if labels.shape != series.shape:
        raise InputDataError(
            f"the label map {labels.shape} does not match the reference series {series.shape}"
        )
    present = [int(v) for v in np.unique(labels) if v != L.BACKGROUND and v in L.ALL_LABELS]
    if not present:
        raise InputDataError("the anatomy label map is empty; there is nothing to segment")
    numbers = {v: i + 1 for i, v in enumerate(present)}
    # Segment numbers as a label-valued array: highdicom encodes one binary segment per value.
    lut = np.zeros(int(labels.max()) + 1, dtype=np.uint16)
    for v, n in numbers.items():
        lut[v] = n
    seg_values = lut[np.clip(labels, 0, None)]

    algorithm = hd.AlgorithmIdentificationSequence(
        name=f"spine-reporter anatomy ({anatomy.source})",
        family=codes.cid7162.ArtificialIntelligence,
        version=__version__,
        parameters={"source_detail": (source_detail or anatomy.source_detail or "-")[:64]},
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=n,
            segment_label=L.label_name(v),
            segmented_property_category=C.ANATOMICAL_STRUCTURE,
            segmented_property_type=C.label_code(v),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            tracking_uid=generate_uid(),
            tracking_id=L.label_name(v),
            anatomic_regions=[C.LUMBAR_SPINE],
        )
        for v, n in numbers.items()
    ]
    sources, seg_values = _sources_and_frames(series, seg_values)
    seg = hd.seg.Segmentation(
        # The patient / study modules are copied from the first source image: a writable copy.
        source_images=[writer_source(sources[0]), *sources[1:]],
        specific_character_set=OUTPUT_CHARACTER_SET,
        pixel_array=seg_values,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name="spine-reporter",
        software_versions=__version__,
        device_serial_number="0",
        content_description="Lumbar spine anatomy (preliminary AI draft)",
        content_label="SPINE_ANATOMY",
    )
    seg.CodingSchemeIdentificationSequence = [C.scheme_identification()]
    return SegResult(dataset=seg, segment_numbers=numbers, series=series)
