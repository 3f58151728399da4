"""spine-reporter: draft structured lumbar spine MRI reports, every statement checked.

The output is a preliminary AI draft, not for clinical use.
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reporter.study import Study


def load_study(path: Any) -> Study:
    """Read a DICOM folder (or NIfTI file) into a `Study` (see reporter.ingest)."""
    from reporter.ingest import load_study as _load

    return _load(path)


def report_study(path_or_study: Any, **kwargs: Any) -> Any:
    """The one path from a study to a `Report` (see reporter.pipeline)."""
    from reporter.pipeline import report_study as _report

    return _report(path_or_study, **kwargs)


__all__ = ["__version__", "load_study", "report_study"]
