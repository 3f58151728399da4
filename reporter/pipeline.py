"""`report_study`: the one path from a study to a report; CLI, batch and Python API all call it.

ingest -> anatomy -> VLM -> grounding -> (withhold contradicted, do not assert unverifiable
positive findings, mark low confidence) -> render. Each stage is a direct call: jump to its
definition to follow a study through the code. The modules that import torch (the VLM, the 2-D
networks) are imported by the call that first needs them, after ingest: an input that cannot be
used is refused in a fraction of a second, not after seconds of imports and ~1 GB.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from reporter.anatomy import segment
from reporter.contracts.anatomy import Anatomy
from reporter.contracts.findings import StudyFindings
from reporter.contracts.report import Report
from reporter.contracts.study import Study
from reporter.contracts.verdicts import Evidence, Measurement, Verdict
from reporter.errors import InputMissingError, UsageError
from reporter.grounding import policy as report_policy
from reporter.grounding.check import check as check_findings
from reporter.ingest import load_study
from reporter.ingest.assessability import unassessable_fields
from reporter.render import atomic
from reporter.render.context import technique
from reporter.render.deidentify import deidentify_study
from reporter.render.outputs import write_outputs
from reporter.render.provenance import build_provenance, now_iso
from reporter.render.statements import Statement, build_statements, final_findings


@runtime_checkable
class FindingsModel(Protocol):
    """What the pipeline asks of a model: findings for a segmented study (the built-in VLM,
    reporter.vlm.inference.SpineVLM, or any object a caller passes in)."""

    def predict(self, study: Study, anatomy: Anatomy) -> StudyFindings: ...


# --- model cache: batch workers and repeated API calls load each model once per process --------
_MODELS: dict[tuple[str | None, str | None], Any] = {}
_MODELS_LOCK = threading.Lock()


def _key(p: Any) -> str | None:
    return None if p is None else str(Path(p).expanduser().resolve())


ModelArg = FindingsModel | str | os.PathLike[str] | None


def get_model(
    model: ModelArg = None, adapter: str | os.PathLike[str] | None = None
) -> FindingsModel:
    """The VLM for (`model`, `adapter`) paths (None = the embedded default), loaded once.

    An object with a `predict` method is taken as an already loaded model."""
    if model is not None and isinstance(model, FindingsModel):
        if adapter is not None:
            raise UsageError("pass the adapter with the model's path, not with a loaded model")
        return model
    for label, p in (("model", model), ("adapter", adapter)):
        if p is not None and not Path(p).exists():
            raise InputMissingError(f"the {label} path {p} does not exist")
    key = (_key(model), _key(adapter))
    with _MODELS_LOCK:
        if key not in _MODELS:
            from reporter.vlm.inference import load_model  # torch: imported when first needed

            _MODELS[key] = load_model(path=model, adapter=adapter)  # type: ignore[arg-type]
            _settle_heap()
        return _MODELS[key]


def _settle_heap() -> None:
    """Move what is loaded now (libraries, model objects: ~870k objects) out of the cyclic
    garbage collector's reach. Each full collection walked them all: every other warm report
    of the demo study paid ~0.4 s for it (p95 3.2 s against a 2.7 s median). Memory is still
    freed by reference counting; clear_model_cache undoes it."""
    gc.freeze()


def preload(model: ModelArg = None, adapter: str | os.PathLike[str] | None = None) -> None:
    """Import the stages and load the VLM (`model`, `adapter`) and the built-in segmenter into
    this process's caches, so the first report does not wait for them (the demo overlaps this
    with making its phantom)."""
    get_model(model, adapter)
    from reporter.anatomy.segmenter import preload_segmenter  # torch, as segment() imports it

    preload_segmenter()
    _settle_heap()


def clear_model_cache() -> None:
    with _MODELS_LOCK:
        _MODELS.clear()
    gc.unfreeze()  # the dropped models' cycles become collectable again


def _model_info(vlm: Any) -> dict[str, Any]:
    info = dict(vlm.provenance()) if hasattr(vlm, "provenance") else {}
    info.setdefault("model_name", getattr(vlm, "name", None) or type(vlm).__name__)
    return info


def _thresholds(vlm: Any, explicit: float | None) -> dict[str, float] | float | None:
    """The abstention threshold: an explicit number for every field, else the VLM's calibrated
    per-field thresholds (None when the model carries no calibration: nothing is marked)."""
    if explicit is not None:
        if not 0.0 <= explicit <= 1.0:
            raise UsageError(f"the indeterminate threshold must lie in [0, 1], not {explicit}")
        return float(explicit)
    thresholds = getattr(vlm, "thresholds", None)
    if isinstance(thresholds, dict) and thresholds:
        return {str(k): float(v) for k, v in thresholds.items()}
    return None


def _mark_unassessable(findings: StudyFindings, study: Study) -> StudyFindings:
    """Fields the study's series cannot show (a foramen on a single mid-sagittal image) become
    not_assessable whatever the source claimed: never a guess."""
    missing = unassessable_fields(study)
    if not missing:
        return findings
    data = findings.model_dump(mode="json", exclude_none=True)
    for level in data["levels"]:
        for field, why in missing.items():
            if "not_assessable" not in level[field]:
                level[field] = {"not_assessable": why}
    return StudyFindings.model_validate(data)


def _anatomy_facts(anatomy: Anatomy) -> dict[str, Any]:
    return {
        "source": anatomy.source,
        "lumbar_vertebrae": anatomy.lumbar_vertebrae,
        "transitional": anatomy.transitional,
        "enumeration_confidence": anatomy.enumeration_confidence,
        "naming_uncertain": anatomy.naming_uncertain,
        "naming_convention": anatomy.naming_convention,
        "missing": list(anatomy.missing),
        "levels": list(anatomy.levels),
    }


def assemble_report(
    study: Study,
    anatomy: Anatomy,
    raw: StudyFindings,
    verdicts: list[Verdict],
    measurements: list[Measurement],
    model_info: dict[str, Any],
    threshold: dict[str, float] | float | None,
    started: str,
    timings: dict[str, float] | None = None,
    withhold_unverifiable_positive: bool = True,
    policy: str | None = None,
) -> tuple[Report, list[Statement]]:
    """The `Report` from the stages' results, and the statements every renderer shows.

    `policy` (reporter.grounding.policy; None: evidence_policy.json's default): "bands" lists an
    abnormal finding the tolerance bands could not verify as an unconfirmed suggestion;
    "contradicted-only" asserts it; "posterior" asserts it when its evidence-weighted posterior
    reaches the validated threshold of its condition and evidence state.
    `withhold_unverifiable_positive=False` is "contradicted-only", kept for callers of the older
    switch."""
    name = resolve_policy(policy, withhold_unverifiable_positive)
    assert_at: Callable[[str, Evidence | None], float | None] | None = None
    if name == "posterior":
        verdicts = report_policy.apply_posterior(raw, verdicts)
        assert_at = report_policy.assert_threshold
    statements = build_statements(raw, verdicts, threshold, name == "bands", assert_at=assert_at)
    provenance = build_provenance(study, model_info, anatomy, started)
    provenance.timings_s.update(timings or {})
    report = Report(
        raw_findings=raw,
        findings=final_findings(raw, statements),
        verdicts=verdicts,
        measurements=measurements,
        withheld=[v for v in verdicts if v.verdict == "contradicted"],
        indeterminate=[
            {
                "level": s.level,
                "field": s.field,
                "value": s.value,
                "probability": s.probability,
                "threshold": s.extra.get("threshold"),
            }
            for s in statements
            if s.status == "indeterminate"
        ],
        provenance=provenance,
        technique=technique(study) | {"anatomy": _anatomy_facts(anatomy)},
        limitations=list(study.limitations),
    )
    return report, statements


def resolve_policy(policy: str | None, withhold_unverifiable_positive: bool = True) -> str:
    """The report policy a call asks for: the older switch off means contradicted-only; else the
    named one, or evidence_policy.json's default."""
    if not withhold_unverifiable_positive:
        return "contradicted-only"
    return report_policy.check_policy(policy) if policy else report_policy.default_policy()


def study_anatomy(study: Study, seg: str | os.PathLike[str] | None = None) -> Anatomy:
    """The anatomy `report_study` uses when none is passed (the evaluation harness asks for the
    same one): the label map `seg` when given; for 2-D images (a study with input notes) the
    levels of the disc detector of reporter.ingest.image2d, because the segmenter works on
    volumes (named from the lowest disc, marked uncertain); else the built-in segmenter."""
    if seg is None and getattr(study, "input_notes", None):
        from reporter.ingest.image2d import anatomy_from_discs  # torch, as the 2-D ingest did

        anatomy = anatomy_from_discs(study)
        if anatomy is not None:
            return anatomy
    return segment(study, seg_path=seg)


def report_study(
    path_or_study: str | os.PathLike[str] | Study,
    out_dir: str | os.PathLike[str] | None = None,
    seg: str | os.PathLike[str] | None = None,
    model: ModelArg = None,
    adapter: str | os.PathLike[str] | None = None,
    *,
    anatomy: Anatomy | None = None,
    findings: StudyFindings | None = None,
    indication: str | None = None,
    indeterminate_below: float | None = None,
    withhold_unverifiable_positive: bool = True,
    policy: str | None = None,
    deidentify: bool = False,
) -> Report:
    """Report one study; with `out_dir`, write report.txt / .html, findings.json, report.sr.dcm,
    seg.dcm and provenance.json there (all or none).

    `seg` imports a label map (NIfTI or DICOM SEG) instead of running the segmenter; `anatomy`
    passes one already built. `findings` reports statements from another source (a radiologist's
    structured report, another model) instead of running the VLM; they are checked the same way.
    `withhold_unverifiable_positive=False` asserts abnormal findings the images could not verify
    (the contradicted-only policy); by default they are listed apart, not asserted.
    `policy` names the report policy ("bands", "contradicted-only", "posterior"; None: the
    default of reporter/grounding/evidence_policy.json).
    `deidentify` writes every output under the PS3.15 Annex E basic profile with the options of
    reporter.render.deidentify (the returned report is de-identified the same way; the indication,
    free text, is left out).
    """
    # The output folder is proven writable before any work, and removed again if this call
    # made it and fails (atomic.output_dir); without out_dir nothing is written.
    with atomic.output_dir(out_dir) as out:
        t0 = time.perf_counter()
        started = now_iso()
        timings: dict[str, float] = {}

        def lap(name: str, since: float) -> float:
            now = time.perf_counter()
            timings[name] = round(now - since, 3)
            return now

        t = t0
        study = path_or_study if isinstance(path_or_study, Study) else load_study(path_or_study)
        t = lap("ingest", t)

        if anatomy is None:
            anatomy = study_anatomy(study, seg)
        t = lap("anatomy", t)

        if findings is None:
            vlm = get_model(model, adapter)
            raw = vlm.predict(study, anatomy)
            model_info = _model_info(vlm)
            threshold = _thresholds(vlm, indeterminate_below)
        else:
            raw = findings
            model_info = {"model_name": "external findings"}
            threshold = indeterminate_below
        raw = _mark_unassessable(raw, study)
        t = lap("vlm", t)

        grounding = check_findings(raw, study, anatomy)
        t = lap("grounding", t)

        if deidentify:
            # What every writer reads from here on: clean headers, no descriptions or dates.
            study = deidentify_study(study)
            indication = None

        report, statements = assemble_report(
            study,
            anatomy,
            raw,
            list(grounding.verdicts),
            list(grounding.measurements),
            model_info,
            threshold,
            started,
            timings,
            withhold_unverifiable_positive=withhold_unverifiable_positive,
            policy=policy,
        )
        if out is not None:
            write_outputs(
                report, study, anatomy, statements, out, indication, t0=t0, deidentify=deidentify
            )
        else:
            report.provenance.timings_s["total"] = round(time.perf_counter() - t0, 3)
            report.provenance.finished_at = now_iso()
        return report
