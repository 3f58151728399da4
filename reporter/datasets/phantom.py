"""Phantom study folders written by reporter.synth.write_study (dicom/, findings.json, meta.json,
labels/). Patient id = the generator seed, so a seed's split never changes."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from reporter.datasets.case import Case
from reporter.errors import InputDataError


def is_phantom_study(path: Path) -> bool:
    return (path / "findings.json").is_file() and (path / "meta.json").is_file()


def _phantom_loader(folder: Path) -> Any:
    @lru_cache(maxsize=1)
    def load() -> Any:
        from reporter.synth import load_phantom

        return load_phantom(folder)

    return load


def phantom_cases(root: Path) -> list[Case]:
    folders = (
        [root]
        if is_phantom_study(root)
        else sorted(p for p in root.iterdir() if p.is_dir() and is_phantom_study(p))
    )
    cases = []
    for folder in folders:
        try:
            meta = json.loads((folder / "meta.json").read_text("utf-8"))
        except ValueError as exc:
            raise InputDataError(f"phantom study {folder}: meta.json is not JSON ({exc})") from None
        seed = meta.get("seed", folder.name)
        load = _phantom_loader(folder)
        cases.append(
            Case(
                case_id=folder.name,
                patient_id=f"phantom-{seed}",
                fmt="phantom",
                source=folder,
                meta={
                    **{k: meta[k] for k in ("seed", "site", "age", "sex") if k in meta},
                    "phantom_meta": meta,
                },
                load_study=lambda load=load: load().study,
                load_anatomy=lambda _study, load=load: load().anatomy,
                load_findings=lambda load=load: load().findings,
            )
        )
    return cases
