"""One study's record against every kind of truth its case carries: findings (conditions,
coverage of the graded discs), a label map on the study's grid (level naming, Dice; per named
structure with localisation for lumbar3d) and truth on an input image's pixels (2-D formats).

The harness calls `score_truth` for every study, reported or not: a study without a report keeps
its truth, counted as wrong, so a failure never makes a metric look better.
"""

from __future__ import annotations

from typing import Any

from reporter.contracts.anatomy import Anatomy
from reporter.contracts.findings import StudyFindings
from reporter.contracts.study import Study
from reporter.evaluation import scoring
from reporter.evaluation.image_scoring import score_image_truth
from reporter.evaluation.localisation import score_structures
from reporter.evaluation.scoring import StudyRecord

# Formats whose label maps name every vertebra and disc: each is scored by name (naming, Dice,
# localisation; reporter.evaluation.localisation). Phantom label maps keep the disc-only naming
# of the benchmark's published number.
STRUCTURE_FORMATS = ("lumbar3d",)


def score_truth(
    record: StudyRecord,
    fmt: str,
    truth: StudyFindings | None,
    truth_anatomy: Anatomy | None,
    image_truth: Any,
    study: Study | None = None,
    report: Any = None,
    anatomy: Anatomy | None = None,
    distributions: scoring.Distributions | None = None,
) -> None:
    """Everything comparable between the truth and the report into `record`. Without a report
    (`report` None) the truth still counts, as wrong: its graded discs not assessed, its
    structures misnamed, Dice 0 and not detected."""
    if report is None:
        anatomy = None
    if truth is not None:
        indeterminate = (
            [(d.get("level"), d.get("field")) for d in report.indeterminate] if report else []
        )
        if report is not None:
            scoring.compare_findings(
                record,
                truth,
                report.raw_findings,
                report.findings,
                report.verdicts,
                indeterminate=indeterminate,
                distributions=distributions,
            )
        else:
            scoring.all_unassessed(record, truth)
        record.graded_assessed = scoring.graded_discs_assessed(
            truth, report.findings if report is not None else None, indeterminate
        )
        record.graded_found = scoring.graded_discs_assessed(
            truth, report.raw_findings if report is not None else None
        )
    if truth_anatomy is not None:
        if fmt in STRUCTURE_FORMATS:
            score_structures(record, truth_anatomy, anatomy)
        else:
            record.naming = scoring.level_naming(truth_anatomy, anatomy)
            record.dice = scoring.dice_scores(truth_anatomy, anatomy)
    if image_truth is not None:
        score_image_truth(record, image_truth, study, anatomy)
