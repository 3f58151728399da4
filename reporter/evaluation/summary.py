"""The markdown summary of an evaluation run (summary.md), and the README results table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reporter.evaluation import checker_block
from reporter.evaluation.scoring import CONDITIONS, StudyRecord

TARGET_AFTER_GROUNDING = 0.005  # at most 0.5% of positive statements (issue 7)
TARGET_FALSE_FLAG = 0.03


def _f(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _pct(value: Any, digits: int = 2) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def tradeoff_section(metrics: dict[str, Any]) -> list[str]:
    """The posterior policy's threshold trade-off (reporter.evaluation.tradeoff), when the run
    used it."""
    from reporter.evaluation.tradeoff import table

    points = metrics.get("hallucination", {}).get("tradeoff") or []
    if not points:
        return []
    return [
        "## Posterior policy: hallucination vs retention over the assertion threshold",
        "",
        "The report asserts at the per-condition thresholds of "
        "reporter/grounding/evidence_policy.json (chosen on validation phantoms); these rows "
        "show what one threshold for every condition would give instead. "
        "Plot: plots/tradeoff.png.",
        "",
        table(points),
        "",
    ]


def results_table(metrics: dict[str, Any]) -> str:
    """The README table: kappa per condition, RSNA metric, hallucination, naming, ECE, latency."""
    c = metrics["conditions"]
    h = metrics["hallucination"]
    lat = metrics["latency_s_per_study"]
    lines = [
        "| metric | value |",
        "|---|---|",
        *(
            f"| QWK {name.replace('_', ' ')} (balanced acc.) | {_f(c[name]['qwk'])} "
            f"({_f(c[name]['balanced_accuracy'])}) |"
            for name in CONDITIONS
        ),
        f"| RSNA 2024 weighted log loss | {_f(metrics['rsna_weighted_log_loss'])} |",
        f"| hallucinated positive statements, raw -> after grounding | {_pct(h['raw_rate'])} "
        f"-> {_pct(h['after_grounding_rate'])} |",
        f"| true positive statements still asserted (retention) | "
        f"{_pct(h.get('true_positive_retention'))} ({h.get('n_true_positive_after_grounding')} "
        f"of {h.get('n_true_positive_raw')}) |",
        f"| contradicted-only policy: hallucinated after grounding / true positive retention | "
        f"{_pct(h.get('after_grounding_rate_contradicted_only'))} / "
        f"{_pct(h.get('true_positive_retention_contradicted_only'))} |",
        f"| checker: flag recall / false-flag rate | {_f(h['flag_recall'])} / "
        f"{_pct(h['false_flag_rate'])} |",
        f"| checker alone, planted errors: recall / false-flag rate | "
        f"{_f(metrics['injected']['flag_recall'])} / "
        f"{_pct(metrics['injected']['false_flag_rate'])} |",
        f"| level naming accuracy | {_pct(metrics['level_naming_accuracy'])} |",
        f"| expected calibration error ({metrics['calibration'].get('ece_bins', 10)} bins) | "
        f"{_f(metrics['calibration']['ece'])} |",
        f"| latency per study, median / p95 | {_f(lat['median'], 2)} s / {_f(lat['p95'], 2)} s |",
        f"| peak memory (RSS) | {_f(metrics.get('peak_rss_mb'), 0)} MB |",
    ]
    return "\n".join(lines)


def structures_table(metrics: dict[str, Any]) -> str:
    """Failures, segmentation, localisation and coverage of the graded discs, one row each that
    the run measured (real-data formats; phantom runs show Dice and failures only)."""
    dice = metrics.get("segmentation", {}).get("dice", {})
    loc = metrics.get("localisation", {})
    cov = metrics.get("coverage", {})
    rows = [("studies failed (no report)", str(metrics.get("n_failed", 0)))]
    rows += [
        (f"Dice {cls}", _f(dice[cls]))
        for cls in ("vertebra", "disc", "canal")
        if dice.get(cls) is not None
    ]
    if loc.get("detect_rate") is not None:
        rows.append(
            ("structures detected", f"{_pct(loc['detect_rate'])} of {loc.get('n_structures')}")
        )
    if loc.get("median_error_mm") is not None:
        rows.append(("median centroid error", f"{_f(loc['median_error_mm'], 1)} mm"))
    if cov.get("graded_discs_assessed") is not None:
        rows.append(
            (
                "graded discs assessed by the report",
                f"{_pct(cov['graded_discs_assessed'])} of {cov.get('n_graded_discs')}",
            )
        )
    if cov.get("graded_discs_found") is not None:
        rows.append(("graded discs found and graded (before indeterminate)",
                     _pct(cov["graded_discs_found"])))  # fmt: skip
    return "\n".join(
        ["| structure metric | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    )


def subgroup_table(metrics: dict[str, Any], key: str) -> str:
    groups = metrics.get(key, {})
    if not groups:
        return "(none)"
    head = [
        "group",
        "n",
        *(n.replace("_stenosis", "") for n in CONDITIONS),
        "RSNA",
        "hall. raw",
        "hall. after",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, g in groups.items():
        row = [
            name,
            str(g["n_studies"]),
            *(_f(g["conditions"][c]["qwk"], 2) for c in CONDITIONS),
            _f(g["rsna_weighted_log_loss"]),
            _pct(g["hallucination"]["raw_rate"], 1),
            _pct(g["hallucination"]["after_grounding_rate"], 2),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def target_note(metrics: dict[str, Any]) -> str:
    h = metrics["hallucination"]
    after, ff = h.get("after_grounding_rate"), h.get("false_flag_rate")
    if after is None or ff is None:
        return "Target (<= 0.5% after grounding, <= 3% false flags): not measurable on this run."
    met = after <= TARGET_AFTER_GROUNDING and ff <= TARGET_FALSE_FLAG
    verdict = "met" if met else "NOT met"
    return (
        f"Target (hallucinated <= 0.5% of positive statements after grounding with false-flag "
        f"rate <= 3%): **{verdict}** ({_pct(after)} after grounding of "
        f"{h.get('n_positive_after_grounding')} asserted positives; false-flag rate {_pct(ff)})."
    )


def render(metrics: dict[str, Any], run: dict[str, Any], records: Sequence[StudyRecord]) -> str:
    failed = [r for r in records if r.error]
    src = run.get("benchmark") or f"{run.get('data')} ({run.get('format')})"
    parts = [
        "# Evaluation summary",
        "",
        f"- source: {src}" + (f" -- {run['description']}" if run.get("description") else ""),
        f"- command: `{run.get('command')}`",
        f"- commit: `{run.get('commit')}`",
        f"- model: `{run.get('model', {}).get('model_sha256', 'n/a')}`"
        + (
            f", adapter `{run['model']['adapter_sha256']}`"
            if run.get("model", {}).get("adapter_sha256")
            else ""
        ),
        f"- studies: {metrics['n_studies']} ({metrics.get('n_failed', 0)} failed), "
        f"wall time {run.get('wall_s')} s, schema-valid {_pct(metrics['schema_valid_rate'], 1)}",
        "",
        "Phantom results measure the pipeline against exact synthetic truth; they are not "
        "clinical accuracy.",
        "",
        "## Results",
        "",
        results_table(metrics),
        "",
        structures_table(metrics),
        "",
        target_note(metrics),
        "",
        *tradeoff_section(metrics),
        *checker_block.table(metrics),
        "## By site",
        "",
        subgroup_table(metrics, "by_site"),
        "",
        "## By sex",
        "",
        subgroup_table(metrics, "by_sex"),
        "",
        "## By age band",
        "",
        subgroup_table(metrics, "by_age"),
        "",
        "## By benchmark variant",
        "",
        subgroup_table(metrics, "by_variant"),
        "",
        "## With / without artifacts on the sagittal series",
        "",
        subgroup_table(metrics, "by_artifacts"),
        "",
        "## Median seconds per stage",
        "",
        ", ".join(
            f"{k} {v:.2f}"
            for k, v in (metrics.get("timings_s_median") or {}).items()
            if v is not None
        )
        or "(none)",
        "",
        "## Definitions",
        "",
        "- Positive statement: a level field with an abnormal value. Hallucinated: the truth at"
        " that level and field is normal, or the level does not exist. Raw = the model's output;"
        " after grounding = what the rendered report still asserts (contradicted statements"
        " withheld, unverifiable positive ones not asserted); contradicted-only = what a report"
        " withholding only contradicted statements would assert. True positive retention: true"
        " positive raw statements the report still asserts, over all true positive raw"
        " statements.",
        "- Flag recall: hallucinated raw statements the checker contradicted. False-flag rate: raw"
        " statements equal to the truth that the checker contradicted.",
        "- injected.*: the checker alone on ground-truth findings with planted errors"
        " (reporter.grounding.inject), on the ground-truth anatomy.",
        f"- ECE: {metrics['calibration'].get('ece_bins', 10)} equal-width bins of the probability"
        " of the stated value against exact-match correctness, over all level statements.",
        "- RSNA 2024 weighted log loss: the competition's scorer (weights 1/2/4, per-condition"
        " losses averaged with the any-severe-spinal term) over L1-L2..L5-S1; the model's"
        " probability of its stated value, the rest spread evenly over the other values; a cell"
        " it did not assess scores as uniform.",
    ]
    if failed:
        parts += ["", "## Failed studies", ""]
        parts += [f"- {r.case_id}: {r.error}" for r in failed[:20]]
    examples = [(r.case_id, e) for r in records for e in r.hallucinated_examples if not r.error]
    if examples:
        parts += ["", "## Examples of hallucinated raw statements", ""]
        parts += [f"- {cid}: {e}" for cid, e in examples[:15]]
    return "\n".join(parts) + "\n"


def readme_section(metrics: dict[str, Any], run: dict[str, Any]) -> str:
    """The README's results section: the table next to the command and commit that made it."""
    model = run.get("model", {}) or {}
    return "\n".join(
        [
            "## Results on phantom-v1",
            "",
            (f"A stratified subset (--limit {run['limit']}) of: " if run.get("limit") else "")
            + f"{run.get('description', '')}",
            "",
            f"{metrics['n_studies']} studies evaluated ({metrics.get('n_failed', 0)} failed); "
            f"model `{model.get('model_name', 'n/a')}` sha256 "
            f"`{str(model.get('model_sha256', 'n/a'))[:12]}`; commit `{run.get('commit')}`; "
            f"{run.get('wall_s')} s wall on {run.get('cpu_count')} CPU cores "
            f"({run.get('workers')} worker(s)). Reproduce with:",
            "",
            "```",
            str(run.get("command")),
            "```",
            "",
            results_table(metrics),
            "",
            target_note(metrics),
            "",
            "Phantoms are synthetic with exact ground truth; these numbers are not clinical "
            "accuracy. Per-site, per-sex and per-age tables: eval/results/phantom-v1/summary.md.",
        ]
    )


if __name__ == "__main__":  # python -m reporter.evaluation.summary RESULTS_DIR
    import json
    import sys
    from pathlib import Path

    folder = Path(sys.argv[1])
    print(
        readme_section(
            json.loads((folder / "metrics.json").read_text()),
            json.loads((folder / "run.json").read_text()),
        )
    )
