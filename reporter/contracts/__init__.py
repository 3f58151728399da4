"""The types every stage shares, and nothing else: `Study` / `Series` (study.py), the anatomy label
map with its label values and level names (anatomy.py, labels.py), `Measurement` / `Verdict`
(verdicts.py), the finding schema `StudyFindings` with its JSON Schema export (findings.py), and
`Report` / `Provenance` (report.py).

This package imports no stage: stages import it, never each other's internals, so a consumer
never imports a producer to get a type.
"""
