"""`verify`: the grounding checker on its own, for findings from any source."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from reporter.cli.app import app, err_console, guarded, out_console
from reporter.errors import InputDataError, InputMissingError

_STYLE = {"supported": "green", "contradicted": "bold red", "unverifiable": "yellow"}


def _read_findings(path: Path) -> Any:
    from reporter.contracts.findings import StudyFindings

    if not path.is_file():
        raise InputMissingError(f"findings file {str(path)!r} does not exist")
    try:
        return StudyFindings.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputDataError(f"{path.name}: cannot be read ({exc})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise InputDataError(
            f"{path.name}: not a valid StudyFindings document ({where}: {first['msg']})"
        ) from None


def _evidence(v: Any) -> list[dict[str, Any]]:
    return [m.model_dump(exclude_none=True) for m in v.evidence]


@app.command()
@guarded
def verify(
    findings: Annotated[Path, typer.Argument(help="StudyFindings JSON (any source).")],
    study: Annotated[Path, typer.Option("--study", help="The study: DICOM folder or NIfTI.")],
    seg: Annotated[
        Path | None,
        typer.Option("--seg", help="Label map (NIfTI or DICOM SEG) instead of the segmenter."),
    ] = None,
    seg_convention: Annotated[
        str | None,
        typer.Option(
            "--seg-convention",
            help="Label convention of --seg: spider, totalspineseg, totalsegmentator, "
            "spine_reporter or a JSON map (default: a JSON beside the file, else detected).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print verdicts as JSON.")] = False,
) -> None:
    """Check every statement of FINDINGS against the images: supported / contradicted /
    unverifiable. Exit 0 when the check ran (contradictions are results)."""
    import reporter
    from reporter.anatomy import segment
    from reporter.grounding import check

    claimed = _read_findings(findings)
    st = reporter.load_study(study)
    anatomy = segment(st, seg_path=seg, convention=seg_convention)
    result = check(claimed, st, anatomy)
    if as_json:
        rows = [
            {
                "level": v.level,
                "field": v.field,
                "claimed": v.claimed,
                "verdict": v.verdict,
                "reason": v.reason,
                "rule": v.rule,
                "supported_values": v.supported_values,
                "evidence": _evidence(v),
            }
            for v in result.verdicts
        ]
        print(json.dumps(rows, indent=2, default=str))
        return
    _print_table(result, anatomy)


def _print_table(result: Any, anatomy: Any) -> None:
    from rich.table import Table

    counts = result.counts()
    table = Table(
        title=f"Grounding: {counts['supported']} supported, {counts['contradicted']} "
        f"contradicted, {counts['unverifiable']} unverifiable",
        caption=f"anatomy: {anatomy.source} {anatomy.source_detail}; naming: "
        f"{anatomy.naming_convention}" + (" (UNCERTAIN)" if anatomy.naming_uncertain else ""),
    )
    for col in ("level", "field", "claimed", "verdict", "evidence / reason"):
        table.add_column(col, overflow="fold")
    for v in result.verdicts:
        table.add_row(
            v.level or "study",
            v.field,
            str(v.claimed),
            f"[{_STYLE[v.verdict]}]{v.verdict}[/]",
            v.reason,
        )
    out_console.print(table)
    if anatomy.naming_uncertain:
        err_console.print("note: level naming is uncertain; level claims are unverifiable")
