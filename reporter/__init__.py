"""spine-reporter: draft structured lumbar spine MRI reports, every statement checked.

The output is a preliminary AI draft, not for clinical use.

    import reporter
    study = reporter.load_study("study/")          # reporter.ingest.load_study
    rep = reporter.report_study(study, out_dir="out")  # reporter.pipeline.report_study

Both are imported on first use, so `import reporter` stays light (no torch until a report runs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reporter.version import __version__

if TYPE_CHECKING:
    from reporter.ingest import load_study
    from reporter.pipeline import report_study


def __getattr__(name: str) -> Any:
    if name == "load_study":
        from reporter.ingest import load_study

        return load_study
    if name == "report_study":
        from reporter.pipeline import report_study

        return report_study
    raise AttributeError(f"module 'reporter' has no attribute {name!r}")


__all__ = ["__version__", "load_study", "report_study"]
