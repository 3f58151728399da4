"""The checker against the truth, per condition and under every report policy: metrics.json's
"checker_by_condition" block (issue 18 item 5).

Every raw statement the truth can judge (its level graded, the field graded there) is one row
(StudyRecord.checked_statements): [condition, correct, positive, hallucinated, band verdict,
posterior verdict, asserted under bands, under contradicted-only, under posterior, why
unverifiable, measured]. Definitions, as reporter.evaluation.scoring's headline numbers:
- correct: the statement's value equals the truth's; hallucinated: a positive statement whose
  truth is normal;
- false_flag_rate: correct statements contradicted / correct statements;
- flag_recall: hallucinated positive statements contradicted / hallucinated positive statements
  (flag_recall_false: false statements of any kind contradicted / false statements);
- verifiable_share: statements whose band verdict is supported or contradicted / statements;
  measured_share: statements the checker had a usable measurement for (weighed with an error
  or grade model, whatever the verdict) / statements: a measured statement stays unverifiable
  when the numbers decide neither way;
- asserted: a positive statement the policy states as a finding (bands: supported;
  contradicted-only: not contradicted; posterior: not contradicted and its posterior of an
  abnormal value at least its condition's threshold); hallucinated_asserted: the hallucinated
  share of those; retention: true positive statements asserted / true positive statements.
The bands and contradicted-only policies share the band verdicts (and so their flags); the
posterior policy has its own. Whatever policy the run reported with, the other two are computed
from the same verdicts (reporter.grounding.policy).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from reporter.contracts.findings import StudyFindings, is_abnormal
from reporter.contracts.verdicts import Verdict
from reporter.grounding import policy

POLICY_NAMES: tuple[str, ...] = ("bands", "contradicted-only", "posterior")


def _index(verdicts: Sequence[Verdict]) -> dict[tuple[str | None, str], Verdict]:
    return {(v.level, v.field): v for v in verdicts}


def statement_verdicts(
    raw: StudyFindings, verdicts: Sequence[Verdict]
) -> tuple[dict[tuple[str | None, str], Verdict], dict[tuple[str | None, str], Verdict]]:
    """(band verdicts, posterior verdicts) by (level, field), from the verdicts of a report under
    any policy: a posterior report keeps the band verdict in `band_verdict`."""
    if any(v.band_verdict is not None for v in verdicts):
        posterior = _index(verdicts)
        band = {
            k: v.model_copy(update={"verdict": v.band_verdict or v.verdict})
            for k, v in posterior.items()
        }
        return band, posterior
    return _index(verdicts), _index(policy.apply_posterior(raw, list(verdicts)))


def row(
    condition: str,
    field: str,
    claim: Any,
    truth: Any,
    band: Verdict | None,
    posterior: Verdict | None,
) -> list[Any]:
    """One checked statement (module doc); a statement without a verdict counts as
    unverifiable ("no_verdict")."""
    positive = is_abnormal(field, claim)
    b = band.verdict if band is not None else "unverifiable"
    p = posterior.verdict if posterior is not None else "unverifiable"
    weight = posterior.weight if posterior is not None else None
    limit = policy.assert_threshold(field, weight)
    asserted_post = (
        positive
        and p != "contradicted"
        and limit is not None
        and weight is not None
        and weight.posterior_abnormal >= limit
    )
    because = None
    if band is None:
        because = "no_verdict"
    elif b == "unverifiable":
        because = band.unverified_because or "unknown"
    return [
        condition,
        claim == truth,
        positive,
        positive and not is_abnormal(field, truth),
        b,
        p,
        positive and b == "supported",
        positive and b != "contradicted",
        bool(asserted_post),
        because,
        bool(weight is not None and weight.measured),
    ]


def _share(num: int, den: int) -> float:
    return num / den if den else math.nan


def _policy_numbers(rows: list[list[Any]], flag_col: int, assert_col: int) -> dict[str, float]:
    correct = [r for r in rows if r[1]]
    false = [r for r in rows if not r[1]]
    halls = [r for r in rows if r[3]]
    true_pos = [r for r in rows if r[2] and not r[3]]
    asserted = [r for r in rows if r[assert_col]]
    return {
        "false_flag_rate": _share(
            sum(r[flag_col] == "contradicted" for r in correct), len(correct)
        ),
        "flag_recall": _share(sum(r[flag_col] == "contradicted" for r in halls), len(halls)),
        "flag_recall_false": _share(sum(r[flag_col] == "contradicted" for r in false), len(false)),
        "n_asserted_positive": len(asserted),
        "hallucinated_asserted": _share(sum(r[3] for r in asserted), len(asserted)),
        "retention": _share(sum(not r[3] for r in asserted), len(true_pos)),
    }


def condition_numbers(rows: list[list[Any]]) -> dict[str, Any]:
    return {
        "n_statements": len(rows),
        "n_correct": sum(bool(r[1]) for r in rows),
        "n_positive": sum(bool(r[2]) for r in rows),
        "n_hallucinated": sum(bool(r[3]) for r in rows),
        "verifiable_share": _share(sum(r[4] != "unverifiable" for r in rows), len(rows)),
        "measured_share": _share(sum(bool(r[10]) for r in rows if len(r) > 10), len(rows)),
        "verifiable_share_posterior": _share(sum(r[5] != "unverifiable" for r in rows), len(rows)),
        "unverified_because": dict(Counter(r[9] for r in rows if r[9] is not None)),
        "policies": {
            "bands": _policy_numbers(rows, 4, 6),
            "contradicted-only": _policy_numbers(rows, 4, 7),
            "posterior": _policy_numbers(rows, 5, 8),
        },
    }


def block(rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """metrics.json "checker_by_condition": per condition (and "all"), empty without rows."""
    all_rows = [list(r) for r in rows]
    if not all_rows:
        return {}
    out = {
        cond: condition_numbers([r for r in all_rows if r[0] == cond])
        for cond in sorted({r[0] for r in all_rows})
    }
    out["all"] = condition_numbers(all_rows)
    return out


def _pct(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def table(metrics: dict[str, Any]) -> list[str]:
    """The block as markdown lines (printed by the eval and written to summary.md); [] when the
    run has no checked statements."""
    b = metrics.get("checker_by_condition") or {}
    if not b:
        return []
    lines = [
        "## Checker per condition (against the truth)",
        "",
        "Measured: statements with a usable measurement; verifiable: supported or "
        "contradicted by the bands; false flags: correct statements contradicted; recall: "
        "hallucinated positives contradicted; per policy: asserted positives' hallucinated "
        "share / true-positive retention.",
        "",
        "| condition | statements | measured | verifiable | false flags | flag recall | bands | "
        "contradicted-only | posterior (false flags, recall) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for cond, c in b.items():
        pol = c["policies"]

        def tr(p: dict[str, Any]) -> str:
            return f"{_pct(p['hallucinated_asserted'])} / {_pct(p['retention'])}"

        post = pol["posterior"]
        lines.append(
            f"| {cond} | {c['n_statements']} | {_pct(c['measured_share'])} | "
            f"{_pct(c['verifiable_share'])} | "
            f"{_pct(pol['bands']['false_flag_rate'])} | {_pct(pol['bands']['flag_recall'])} | "
            f"{tr(pol['bands'])} | {tr(pol['contradicted-only'])} | {tr(post)} "
            f"({_pct(post['false_flag_rate'])}, {_pct(post['flag_recall'])}) |"
        )
    reasons = b.get("all", {}).get("unverified_because") or {}
    if reasons:
        shown = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]))
        lines += ["", f"Unverifiable, why: {shown}."]
    return [*lines, ""]
