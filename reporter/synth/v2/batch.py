"""Writing v2 studies: the v1 writer (DICOM, findings.json, meta.json, labels/, seg.dcm) plus the
v2 tissue class map as labels/tissues_v2.nii.gz."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reporter.errors import UsageError
from reporter.synth.batch import study_dir_name
from reporter.synth.storage import write_nifti, write_study
from reporter.synth.v2.study import PhantomV2, generate_study_v2

SLICES = ("stack", "mid")


def write_study_v2(ph: PhantomV2, out_dir: str | Path) -> Path:
    d = write_study(ph, out_dir, fmt="dicom")
    if ph.tissue_map is not None:
        write_nifti(d / "labels" / "tissues_v2.nii.gz", ph.tissue_map, ph.anatomy.affine)
    return d


def run_job_v2(
    seed: int, site: str, priors: str, out: str, fmt: str, slices: str
) -> dict[str, Any]:
    """Generate and write one v2 study (DICOM only: the RSNA layout needs axial series)."""
    if fmt != "dicom":
        raise UsageError("--engine v2 writes --format dicom only (it has no axial series)")
    if slices not in SLICES:
        raise UsageError(f"unknown --slices {slices!r}; expected one of {', '.join(SLICES)}")
    ph = generate_study_v2(seed, site=site, priors=priors, slices=slices)
    d = write_study_v2(ph, Path(out) / study_dir_name(seed))
    return {"seed": seed, "path": str(d)}
