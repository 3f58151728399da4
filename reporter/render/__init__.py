"""Report outputs: text / HTML (jinja2, autoescaped), findings.json, DICOM SR (TID 1500) and SEG,
provenance; every write atomic (see `atomic`).

`statements` decides what each output says (reported / withheld / indeterminate); the writers
only format it, so the outputs cannot disagree with each other.
"""

from __future__ import annotations

from reporter.render.outputs import FILES, render_all, write_outputs
from reporter.render.seg import SegResult, build_seg
from reporter.render.sr import build_sr
from reporter.render.statements import Statement, build_statements, final_findings, impression

__all__ = [
    "FILES",
    "SegResult",
    "Statement",
    "build_seg",
    "build_sr",
    "build_statements",
    "final_findings",
    "impression",
    "render_all",
    "write_outputs",
]
