"""DICOM SEG (highdicom) of a phantom's ground-truth label map on its sagittal T2, byte-stable."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.sr.codedict import codes

from reporter.contracts import labels as lb
from reporter.render import codes as C
from reporter.synth.headers import study_date, uid
from reporter.synth.phantom import GENERATOR_VERSION, Phantom

SEG_SERIES_NUMBER = 99


def build_seg(phantom: Phantom) -> hd.seg.Segmentation:
    an = phantom.anatomy
    series = next(
        s
        for s in phantom.study.series
        if s.series_uid == an.reference_series_uid and s.stack_index == an.reference_stack_index
    )
    seed, site = phantom.meta["seed"], phantom.meta["site"]
    labels = np.asarray(an.labels)
    present = [int(v) for v in np.unique(labels) if v != lb.BACKGROUND and v in lb.ALL_LABELS]
    numbers = {v: k + 1 for k, v in enumerate(present)}
    lut = np.zeros(int(labels.max()) + 1, dtype=np.uint16)
    for v, n in numbers.items():
        lut[v] = n
    algorithm = hd.AlgorithmIdentificationSequence(
        name="spine-reporter phantom ground truth",
        family=codes.cid7162.ArtificialIntelligence,
        version=GENERATOR_VERSION,
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=n,
            segment_label=lb.label_name(v),
            segmented_property_category=C.ANATOMICAL_STRUCTURE,
            segmented_property_type=C.label_code(v),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            tracking_uid=uid(seed, site, "seg-tracking", v),
            tracking_id=lb.label_name(v),
            anatomic_regions=[C.LUMBAR_SPINE],
        )
        for v, n in numbers.items()
    ]
    seg = hd.seg.Segmentation(
        source_images=list(series.headers),
        pixel_array=lut[np.clip(labels, 0, None)],
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=uid(seed, site, "seg-series"),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=uid(seed, site, "seg-instance"),
        instance_number=1,
        manufacturer="spine-reporter",
        manufacturer_model_name="phantom engine",
        software_versions=GENERATOR_VERSION,
        device_serial_number="0",
        content_description="Phantom ground-truth anatomy",
        content_label="PHANTOM_GT",
    )
    seg.CodingSchemeIdentificationSequence = [C.scheme_identification()]
    # highdicom stamps the current date and time; a phantom must not depend on the clock.
    date = study_date(seed)
    for kw in ("ContentDate", "SeriesDate", "InstanceCreationDate"):
        if kw in seg:
            setattr(seg, kw, date)
    for kw in ("ContentTime", "SeriesTime", "InstanceCreationTime"):
        if kw in seg:
            setattr(seg, kw, "091500")
    if "ContributingEquipmentSequence" in seg:
        for item in seg.ContributingEquipmentSequence:
            if "ContributionDateTime" in item:
                item.ContributionDateTime = f"{date}091500"
    dim_uid = uid(seed, site, "seg-dimension")
    for kw in ("DimensionOrganizationSequence", "DimensionIndexSequence"):
        for item in seg.get(kw, []):
            if "DimensionOrganizationUID" in item:
                item.DimensionOrganizationUID = dim_uid
    return seg


def write_seg(phantom: Phantom, path: Path) -> None:
    build_seg(phantom).save_as(path, enforce_file_format=True)
