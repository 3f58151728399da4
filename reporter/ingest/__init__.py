"""DICOM (and NIfTI) ingestion: `load_study(path) -> Study`, `scan(path) -> Inventory`.

A folder is searched recursively (file names do not matter; non-DICOM files are skipped and
counted), images are grouped by study and series, each series is classified (plane, weighting),
localizers and derived images are set aside, and every usable series becomes one `Series` per
geometric stack, with pixels rescaled to float32 and an affine to patient LPS
(reporter.contracts.study).
Series that cannot be used are listed in `Study.set_aside` with the reason; none is repaired.
See docs/ingest.md.
"""

from __future__ import annotations

from pathlib import Path

from reporter.contracts.study import Study
from reporter.dicomweb.urls import is_dicomweb_url
from reporter.errors import InputDataError, InputMissingError, ReporterError
from reporter.ingest.classify import OBLIQUE_TOLERANCE_DEG
from reporter.ingest.dicom import refuse_if_unusable, scan_folder, series_row
from reporter.ingest.image2d_read import IMAGE2D_SUFFIXES, read_image2d
from reporter.ingest.inventory import Inventory, SeriesRow
from reporter.ingest.nifti import is_nifti, labels_on_series_grid, load_nifti


def _existing(path: Path | str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise InputMissingError(f"no such file or folder: {p}")
    return p


def scan(
    path: Path | str,
    *,
    keep_derived: bool = False,
    oblique_tolerance_deg: float = OBLIQUE_TOLERANCE_DEG,
    study_uid: str | None = None,
) -> Inventory:
    """Everything found under `path` and what became of it; does not refuse (see `refusal`)."""
    p = _existing(path)
    if p.is_file() and is_nifti(p):
        study, _ = load_nifti(p)
        inv = Inventory(source=str(p), study=study, n_files=1, warnings=study.warnings)
        inv.rows.append(series_row(study.series[0]))
        return inv
    return scan_folder(
        p,
        keep_derived=keep_derived,
        oblique_tolerance_deg=oblique_tolerance_deg,
        study_uid=study_uid,
    )


def load_study(
    path: Path | str,
    *,
    keep_derived: bool = False,
    oblique_tolerance_deg: float = OBLIQUE_TOLERANCE_DEG,
    study_uid: str | None = None,
) -> Study:
    """A `Study` from a DICOM folder (searched recursively), one DICOM file, a NIfTI file, or a
    DICOMweb study URL (`dicomweb://HOST[:PORT]/PATH/studies/UID`, reporter.dicomweb: its MR
    series are pulled into a temporary folder, read, and the folder removed).

    Raises InputMissingError (exit 66) when `path` does not exist, and InputDataError (exit 65)
    when no MR images remain or no sagittal series is usable, or the folder mixes MR studies
    (`study_uid` picks one). `keep_derived` keeps DERIVED images (reformats) as series;
    `oblique_tolerance_deg` is the angle within which a slice still counts as sagittal /
    coronal / axial.
    """
    if is_dicomweb_url(path):
        return _load_dicomweb(
            str(path), keep_derived=keep_derived, oblique_tolerance_deg=oblique_tolerance_deg
        )
    p = Path(path).expanduser()
    # A single 2-D image (PNG, JPEG, ...) has no geometry: orientation is detected and the
    # pixel spacing estimated from anatomy (reporter.ingest.image2d), both recorded in the Study.
    if p.is_file() and p.suffix.lower() in IMAGE2D_SUFFIXES:
        return _load_2d(p)
    inventory = scan(
        path,
        keep_derived=keep_derived,
        oblique_tolerance_deg=oblique_tolerance_deg,
        study_uid=study_uid,
    )
    try:
        return refuse_if_unusable(inventory)
    except InputDataError:
        # One single-frame DICOM file is not a volume; read it as a 2-D sagittal image if it is
        # one, otherwise the original refusal stands.
        if not p.is_file():
            raise
        try:
            return _load_2d(p)
        except ReporterError:
            pass
        raise


def _load_2d(p: Path) -> Study:
    """reporter.ingest.image2d.load_image2d, with the file read and checked before the module
    (and torch, for its networks) is imported: a file that is no usable image is refused in a
    fraction of a second, not after seconds of imports."""
    image = read_image2d(p)
    from reporter.ingest.image2d import study_from_image

    return study_from_image(
        image.pixels, source=str(p), digest=image.digest, kind=image.kind, header=image.header
    )


def _load_dicomweb(url: str, **options: object) -> Study:
    """The study at a DICOMweb URL (reporter.dicomweb.urls), pulled into a temporary folder that
    is gone again before this returns."""
    from reporter.dicomweb import fetched_study, parse_study_url

    loc = parse_study_url(url)
    with fetched_study(loc) as folder:
        try:
            study = load_study(folder, study_uid=loc.study_uid, **options)  # type: ignore[arg-type]
        except ReporterError as exc:
            # The temporary folder means nothing to the user: name the study's URL instead.
            exc.args = (str(exc).replace(str(folder), loc.url),)
            raise
    study.source = loc.url
    return study


__all__ = [
    "Inventory",
    "SeriesRow",
    "labels_on_series_grid",
    "load_nifti",
    "load_study",
    "scan",
]
