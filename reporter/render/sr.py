"""The report as a DICOM Comprehensive 3D SR, TID 1500 Measurement Report, built by highdicom.

One measurement group per disc level (TID 1411, volumetric ROI): the level's disc segment in our
SEG, the finding site, a coded qualitative evaluation per graded statement, the grounding
measurements with their units and the source image each was taken on, and the algorithm's
identity with the model and adapter sha256. Study-level statements (transitional anatomy,
alignment) form one TID 1501 group. Withheld statements are not asserted.

The document is marked what it is: CompletionFlag PARTIAL, VerificationFlag UNVERIFIED,
PreliminaryFlag PRELIMINARY.
"""

from __future__ import annotations

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from reporter.contracts import labels as L
from reporter.contracts.report import Provenance
from reporter.contracts.study import Study
from reporter.contracts.verdicts import Measurement
from reporter.errors import InputDataError
from reporter.render import codes as C
from reporter.render.seg import SegResult
from reporter.render.source_headers import OUTPUT_CHARACTER_SET
from reporter.render.statements import ASSERTED, Statement
from reporter.version import __version__

SR_SERIES_NUMBER = 9902
PROCEDURE = codes.LN.MRISpineReport


def _algorithm(prov: Provenance) -> hd.sr.AlgorithmIdentification:
    params = [
        f"model_sha256={prov.model_sha256 or 'none'}",
        f"adapter_sha256={prov.adapter_sha256 or 'none'}",
        f"prompt_version={prov.prompt_version or 'none'}",
        f"schema_version={prov.schema_version}",
    ]
    return hd.sr.AlgorithmIdentification(
        name=f"spine-reporter {prov.model_name or 'VLM'}",
        version=prov.code_version,
        parameters=params,
    )


def _checker_algorithm(prov: Provenance) -> hd.sr.AlgorithmIdentification:
    # Measurements come from the grounding checker, not from the model.
    return hd.sr.AlgorithmIdentification(
        name="spine-reporter grounding checker",
        version=prov.code_version,
        parameters=[f"rules_sha256={prov.rules_sha256 or 'none'}"],
    )


def _observation_context(prov: Provenance) -> hd.sr.ObservationContext:
    # A stable device UID per model, so all reports of one model group together.
    uid = generate_uid(entropy_srcs=["spine-reporter", prov.model_sha256 or "no-model"])
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=uid,
        name="spine-reporter",
        manufacturer_name="spine-reporter project",
        model_name=(prov.model_name or "spine-vlm")[:64],
    )
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        )
    )


def _source_image(study: Study, m: Measurement) -> hd.sr.SourceImageForMeasurement | None:
    if m.series_uid is None or m.slice_index is None:
        return None
    for s in study.series:
        if (
            s.series_uid == m.series_uid
            and s.stack_index == m.stack_index
            and 0 <= m.slice_index < len(s.sop_instance_uids)
        ):
            frames = [s.frame_numbers[m.slice_index]] if s.frame_numbers else None
            return hd.sr.SourceImageForMeasurement(
                referenced_sop_class_uid=s.sop_class_uid,
                referenced_sop_instance_uid=s.sop_instance_uids[m.slice_index],
                referenced_frame_numbers=frames,
            )
    return None


def _measurements(
    study: Study, items: list[Measurement], algorithm: hd.sr.AlgorithmIdentification
) -> list[hd.sr.Measurement]:
    out = []
    seen: set[str] = set()
    for m in items:
        if m.value is None or m.name in seen:
            continue
        seen.add(m.name)
        src = _source_image(study, m)
        out.append(
            hd.sr.Measurement(
                name=C.measurement_concept(m.name),
                value=float(m.value),
                unit=C.UNITS.get(m.unit, C.UNITS[""]),
                algorithm_id=algorithm,
                referenced_images=[src] if src is not None else None,
            )
        )
    return out


def _evaluations(statements: list[Statement]) -> list[hd.sr.QualitativeEvaluation]:
    out = []
    for s in statements:
        # Only what the report asserts: withheld (contradicted) and unconfirmed (unverifiable
        # positive) statements are not findings, and an SR has no "suggested" qualifier that a
        # receiving system would honour; they stay in findings.json with their verdicts.
        if s.status not in ASSERTED or s.value is None:
            continue
        out.append(
            hd.sr.QualitativeEvaluation(
                name=C.FIELD_CONCEPTS[s.field], value=C.value_code(s.field, s.value)
            )
        )
        if s.extra.get("zone"):
            out.append(
                hd.sr.QualitativeEvaluation(
                    name=C.FIELD_CONCEPTS["herniation_zone"],
                    value=C.local(f"Z-{s.extra['zone'].upper()}"[:16], s.extra["zone"]),
                )
            )
        if s.extra.get("direction"):
            out.append(
                hd.sr.QualitativeEvaluation(
                    name=C.FIELD_CONCEPTS["listhesis_direction"],
                    value=C.local(f"DIR-{s.extra['direction'].upper()}", s.extra["direction"]),
                )
            )
    return out


def build_sr(
    study: Study,
    statements: list[Statement],
    measurements: list[Measurement],
    seg: SegResult,
    provenance: Provenance,
) -> Dataset:
    """The TID 1500 document for one report (see the module docstring)."""
    algorithm = _algorithm(provenance)
    checker = _checker_algorithm(provenance)
    seg_ds = seg.dataset
    groups: list[
        hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations
        | hd.sr.MeasurementsAndQualitativeEvaluations
    ] = []
    levels = list(dict.fromkeys(s.level for s in statements if s.level is not None))
    for level in levels:
        at_level = [s for s in statements if s.level == level]
        evaluations = _evaluations(at_level)
        level_meas = _measurements(study, [m for m in measurements if m.level == level], checker)
        if not evaluations and not level_meas:
            continue  # nothing assessable here (e.g. outside the field of view)
        tracking = hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=f"{level} disc level")
        site = [hd.sr.FindingSite(anatomic_location=C.disc_code(level))]
        segment = seg.segment_numbers.get(L.disc_label(level))
        common = dict(
            tracking_identifier=tracking,
            finding_type=C.disc_code(level),
            algorithm_id=algorithm,
            finding_sites=site,
            measurements=level_meas or None,
            qualitative_evaluations=evaluations or None,
        )
        if segment is not None:
            groups.append(
                hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                    referenced_segment=hd.sr.ReferencedSegment(
                        sop_class_uid=seg_ds.SOPClassUID,
                        sop_instance_uid=seg_ds.SOPInstanceUID,
                        segment_number=segment,
                        source_series=hd.sr.SourceSeriesForSegmentation(seg.series.series_uid),
                    ),
                    **common,
                )
            )
        else:  # the level was graded but its disc is not in the label map
            groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(**common))

    study_evals = _evaluations([s for s in statements if s.level is None])
    if study_evals:
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=generate_uid(), identifier="study-level findings"
                ),
                finding_type=C.LUMBAR_SPINE,
                algorithm_id=algorithm,
                finding_sites=[hd.sr.FindingSite(anatomic_location=C.LUMBAR_SPINE)],
                qualitative_evaluations=study_evals,
            )
        )
    if not groups:
        raise InputDataError("no statement could be assessed; there is nothing to put in an SR")

    # The image library lists the images measurements point at (TID 1600); the evidence lists
    # every instance the document references, the segmented series and the SEG included.
    measured = {
        (m.series_uid, m.stack_index, m.slice_index)
        for m in measurements
        if m.series_uid and m.slice_index is not None
    }
    # highdicom describes library entries from top-level geometry, which an enhanced
    # multi-frame object keeps per frame; its measurements still name their frames (TID 320).
    library = [
        s.headers[k]
        for s in study.series
        for (uid, stack, k) in sorted(measured, key=str)
        if s.series_uid == uid
        and s.stack_index == stack
        and 0 <= k < len(s.headers)
        and not s.frame_numbers
    ]
    referenced = {uid for uid, _, _ in measured} | {seg.series.series_uid}
    report = hd.sr.MeasurementReport(
        observation_context=_observation_context(provenance),
        procedure_reported=PROCEDURE,
        imaging_measurements=groups,
        referenced_images=library or None,
    )
    # Each instance once: the frames of a multi-frame object share its header.
    evidence = list(
        {id(h): h for s in study.series if s.series_uid in referenced for h in s.headers}.values()
    )
    sr = hd.sr.Comprehensive3DSR(
        # The patient / study modules are copied from the first evidence item: the SEG, whose
        # modules were already made writable from the source (render.source_headers).
        evidence=[seg_ds, *evidence],
        specific_character_set=OUTPUT_CHARACTER_SET,
        content=report,
        series_instance_uid=generate_uid(),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="spine-reporter",
        is_complete=False,  # CompletionFlag PARTIAL
        is_final=False,
        is_verified=False,  # VerificationFlag UNVERIFIED
        series_description="PRELIMINARY AI DRAFT - NOT FOR CLINICAL USE",
    )
    sr.PreliminaryFlag = "PRELIMINARY"
    sr.SoftwareVersions = __version__
    sr.CodingSchemeIdentificationSequence = [C.scheme_identification()]
    return sr
