"""A DICOM folder -> `Inventory` (every series and what became of it) -> `Study`.

Each file is opened for its header once (parsed up to the Pixel Data element, whose position is
kept); pixels are read only for series that survive classification, straight into their volume
(reporter/ingest/pixels.py). The header dataset, which never held pixel data, is the per-slice
entry of `Series.headers`: no copy is made.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import re
import stat
import warnings
import zlib
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.charset import python_encoding
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import DeflatedExplicitVRLittleEndian

from reporter.contracts.study import Series, SetAside, Study
from reporter.errors import InputDataError
from reporter.ingest import fastread as fast
from reporter.ingest.classify import (
    OBLIQUE_TOLERANCE_DEG,
    classify_weighting,
    is_derived,
    looks_like_localizer,
)
from reporter.ingest.frames import Frame, complete, frames_of
from reporter.ingest.inventory import Inventory, SeriesRow
from reporter.ingest.nifti import is_nifti
from reporter.ingest.pixels import MAX_VOXELS, PIXEL_DATA_TAG, PixelDataError
from reporter.ingest.roles import assign_roles
from reporter.ingest.stacks import Stack, StackProblem, build_stacks
from reporter.ingest.volumes import decode_stacks

READ_BUFFER = 1 << 16
# A deflated dataset is inflated whole by pydicom; one that would inflate beyond this (no MR
# header with its pixels comes near it: MAX_VOXELS float32) is a deflate bomb and is skipped.
MAX_INFLATED_BYTES = 4 * MAX_VOXELS + (64 << 20)
PIXEL_DATA_TAG_BIG_ENDIAN = b"\x7f\xe0\x00\x10"
# A localizer without the LOCALIZER image type: a few images in several planes.
LOCALIZER_MAX_IMAGES = 9
DEFLATED_UID = str(DeflatedExplicitVRLittleEndian).encode()
INFLATE_STEP = 1 << 22  # bytes inflated per step while counting


def iter_files(root: Path) -> Iterator[Path]:
    """Every regular file below `root`, in a stable order (names do not matter)."""
    if root.is_file():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while headers accumulate: every collection would walk
    all datasets read so far (thousands of element objects, none of them cyclic garbage)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Reader:
    def __init__(self) -> None:
        self.n_files = 0
        self.n_not_dicom = 0
        self.n_nifti = 0
        self.n_corrupt = 0
        self.n_no_image = 0
        self.n_unreadable = 0  # permissions, vanished files
        self.n_special = 0  # pipes, devices, sockets: opening a pipe would wait for a writer
        self.n_bombs = 0

    def read(self, path: Path) -> tuple[Dataset, int] | None:
        """The header (without pixel data) and where the Pixel Data element starts (-1 when
        the position is unknown, as in a deflated file); None for anything not an image."""
        self.n_files += 1
        try:
            if not stat.S_ISREG(path.stat().st_mode):
                self.n_special += 1
                return None
            # pydicom reads element by element (~100 small reads per header); a 64 KiB buffer
            # instead of the default 8 KiB halves the time a header takes.
            with path.open("rb", buffering=READ_BUFFER) as fh:
                if _inflates_beyond_limit(fh):
                    self.n_bombs += 1
                    return None
                ds = pydicom.dcmread(fh, stop_before_pixels=True)
                offset = fh.tell()  # pydicom rewinds to the start of the Pixel Data element
                tag = fh.read(4)
        except OSError:
            self.n_unreadable += 1
            return None
        except InvalidDicomError:
            self.n_not_dicom += 1
            self.n_nifti += is_nifti(path)
            return None
        except Exception:  # a DICOM preamble, then anything from a damaged header
            self.n_corrupt += 1
            return None
        if tag in (PIXEL_DATA_TAG, PIXEL_DATA_TAG_BIG_ENDIAN):
            return ds, offset
        tsyntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        if tsyntax == DeflatedExplicitVRLittleEndian and "Rows" in ds:
            return ds, -1
        self.n_no_image += 1  # SR, KO, PR, DICOMDIR ...: no image
        return None


def _inflates_beyond_limit(fh: BinaryIO) -> bool:
    """Whether `fh` is a deflated DICOM file whose dataset inflates beyond MAX_INFLATED_BYTES
    (pydicom inflates all of it into memory before reading a single element). Inflated in
    chunks and counted, never held; `fh` is left at its start."""
    try:
        head = fh.read(144)
        if len(head) < 144 or head[128:132] != b"DICM" or head[132:136] != b"\x02\x00\x00\x00":
            return False
        meta_end = 144 + int.from_bytes(head[140:144], "little")
        meta = head + fh.read(meta_end - 144)
        if DEFLATED_UID not in meta:
            return False
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        total = 0
        while chunk := fh.read(READ_BUFFER):
            data = inflater.decompress(chunk, INFLATE_STEP)
            total += len(data)
            while inflater.unconsumed_tail and total <= MAX_INFLATED_BYTES:
                data = inflater.decompress(inflater.unconsumed_tail, INFLATE_STEP)
                total += len(data)
            if total > MAX_INFLATED_BYTES:
                return True
            if inflater.eof:
                break
        return False
    except (OSError, zlib.error):
        return False  # pydicom's own reading decides what a damaged file is
    finally:
        fh.seek(0)


def is_deflate_bomb(path: Path) -> bool:
    """Whether `path` is a deflated DICOM file that would inflate beyond MAX_INFLATED_BYTES."""
    try:
        with path.open("rb", buffering=READ_BUFFER) as fh:
            return _inflates_beyond_limit(fh)
    except OSError:
        return False


def scan_folder(
    root: Path,
    *,
    keep_derived: bool = False,
    oblique_tolerance_deg: float = OBLIQUE_TOLERANCE_DEG,
    study_uid: str | None = None,
) -> Inventory:
    """Read, group, classify and build every series under `root`; never raises for bad data."""
    reader = _Reader()
    frames_by_series: dict[tuple[str, str], list[Frame]] = defaultdict(list)
    n_frame_errors = 0
    with warnings.catch_warnings(), _gc_paused():
        # pydicom warns about every odd value in real-world headers; the outcome is what counts.
        warnings.simplefilter("ignore")
        for path in iter_files(root):
            header = reader.read(path)
            if header is None:
                continue
            ds, offset = header
            try:
                for f in frames_of(ds, path, offset):
                    frames_by_series[(f.study_uid, f.series_uid)].append(f)
            except Exception:  # unreadable values in an otherwise parseable header
                n_frame_errors += 1
        inv = Inventory(source=str(root), n_files=reader.n_files)
        inv.n_files_skipped = reader.n_not_dicom
        if reader.n_nifti:
            inv.warnings.append(
                f"{reader.n_nifti} NIfTI file(s) skipped: give the path of one to read it"
            )
        if reader.n_corrupt + n_frame_errors:
            inv.warnings.append(
                f"{reader.n_corrupt + n_frame_errors} DICOM file(s) could not be read "
                "(damaged header) and were skipped"
            )
        if reader.n_unreadable:
            inv.warnings.append(f"{reader.n_unreadable} file(s) could not be opened")
        if reader.n_special:
            inv.warnings.append(
                f"{reader.n_special} special file(s) (pipes, devices, sockets) skipped"
            )
        if reader.n_bombs:
            inv.warnings.append(
                f"{reader.n_bombs} deflated DICOM file(s) skipped: they would inflate beyond "
                f"{MAX_INFLATED_BYTES >> 20} MiB"
            )
        if reader.n_no_image:
            inv.warnings.append(f"{reader.n_no_image} DICOM object(s) without images ignored")
        if study_uid is not None:  # everything else is left out, as if in another folder
            frames_by_series = {k: v for k, v in frames_by_series.items() if k[0] == study_uid}
        _build(inv, frames_by_series, keep_derived, oblique_tolerance_deg)
    return inv


def _build(
    inv: Inventory,
    frames_by_series: dict[tuple[str, str], list[Frame]],
    keep_derived: bool,
    tolerance: float,
) -> None:
    mr_studies = sorted({k[0] for k, fr in frames_by_series.items() if fr[0].modality == "MR"})
    if not mr_studies:
        inv.refusal = f"no MR images found in {inv.source}" + _found_text(inv, frames_by_series)
        for frames in frames_by_series.values():
            _set_aside(inv, frames, None, f"not an MR image (modality {frames[0].modality or '?'})")
        return
    if len(mr_studies) > 1:
        inv.refusal = (
            f"{inv.source} holds {len(mr_studies)} MR studies ({', '.join(mr_studies)}); "
            "give the folder of one study, or choose one with study_uid"
        )
        return
    study_uid = mr_studies[0]
    series: list[Series] = []
    set_aside: list[SetAside] = []
    limitations: list[str] = []
    for (st_uid, _se_uid), all_frames in sorted(frames_by_series.items()):
        frames, clash = _dedupe(all_frames, inv.warnings)
        first = all_frames[0]
        if first.modality != "MR":
            set_aside.append(
                _set_aside(inv, all_frames, None, f"not an MR image (modality {first.modality})")
            )
            continue
        if st_uid != study_uid:  # cannot happen with one MR study; kept for clarity
            continue
        damage = None
        if clash is not None:
            built, reason, note = [], clash, None
        else:
            try:
                built, reason, note, damage = _series_from_frames(frames, keep_derived, tolerance)
            except Exception as exc:
                # pydicom converts values lazily, so a damaged value surfaces where it is first
                # read; whatever it is, the series is unusable and says why.
                built, reason, note = [], f"could not be read ({type(exc).__name__})", None
        if note:
            inv.warnings.append(f"series {first.series_uid}: {note}")
        if damage:
            inv.warnings.append(f"series {first.series_uid}: {damage}")
            limitations.append(
                f"{_series_label(built[0].plane, built[0].weighting, first)}: {damage}"
            )
        if reason is not None:
            aside = _set_aside(inv, all_frames, built, reason)
            set_aside.append(aside)
            if _is_key_series_failure(aside):
                limitations.append(
                    f"{_series_label(aside.plane, aside.weighting, first)} could not be used "
                    f"({reason}); findings that need it are not assessed from it"
                )
            continue
        series.extend(built)
    assign_roles(series)
    series.sort(key=lambda s: (s.series_number is None, s.series_number or 0, s.series_uid,
                               s.stack_index))  # fmt: skip
    for s in series:
        inv.rows.append(series_row(s))
    inv.study = _study(study_uid, inv, series, set_aside, frames_by_series)
    inv.study.limitations = limitations + inv.study.limitations
    if not any(s.plane == "sagittal" for s in series):
        reasons = [
            f"{r.description or r.series_uid}: {r.problem}"
            for r in inv.rows
            if not r.usable and r.plane == "sagittal"
        ]
        inv.refusal = f"no usable sagittal MR series in {inv.source}" + (
            f" (set aside: {'; '.join(reasons)})" if reasons else ""
        )


def _found_text(inv: Inventory, frames_by_series: dict[tuple[str, str], list[Frame]]) -> str:
    modalities = sorted({fr[0].modality or "?" for fr in frames_by_series.values()})
    parts = [f"{inv.n_files} file(s)"]
    if inv.n_files_skipped:
        parts.append(f"{inv.n_files_skipped} not DICOM")
    if modalities:
        parts.append(f"modalities {', '.join(modalities)}")
    return f" ({'; '.join(parts)})"


def _dedupe(frames: list[Frame], warnings_out: list[str]) -> tuple[list[Frame], str | None]:
    """One frame per image identity, and a reason when the identities cannot be trusted.

    The same file twice (same SOP Instance UID and frame, same position) is kept once. Different
    images that share a SOP Instance UID (a broken anonymiser or export) cannot be told apart by
    anything a SEG or SR references, so the series is set aside naming that cause."""
    seen: dict[tuple[str, int], Frame] = {}
    duplicates = 0
    clashing: set[tuple[str, int]] = set()
    for f in frames:
        if f.key not in seen:
            seen[f.key] = f
            continue
        duplicates += 1
        other = seen[f.key]
        same_place = (
            f.ipp is not None and other.ipp is not None and np.allclose(f.ipp, other.ipp, atol=1e-3)  # type: ignore[arg-type]
        ) or (f.ipp is None and other.ipp is None)
        if not same_place:
            clashing.add(f.key)
    if clashing:
        n_images = sum(1 for f in frames if f.key in clashing)
        return [], (
            f"{n_images} different images share {len(clashing)} SOP Instance UID(s) (a broken "
            "export or anonymiser): the images cannot be told apart or referenced"
        )
    if duplicates:
        warnings_out.append(
            f"series {frames[0].series_uid}: {duplicates} duplicate instance(s) "
            "(same SOP Instance UID) kept once"
        )
    return list(seen.values()), None


def _series_from_frames(
    frames: list[Frame], keep_derived: bool, tolerance: float
) -> tuple[list[Series], str | None, str | None, str | None]:
    """The stacks of one series as `Series`, or ([], reason) when it is set aside; a note when
    the description disagrees with the acquisition; and what was left out of a series used with
    damaged images removed."""
    first = complete(frames[0])
    ds = first.ds
    description = _s(ds, "SeriesDescription")
    if looks_like_localizer(first.image_type, description, len(frames)):
        return [], "localizer", None, None
    if not keep_derived and is_derived(first.image_type):
        return [], f"derived images (ImageType {'/'.join(first.image_type[:3])})", None, None
    references = {fast.text(f.ds, fast.FRAME_OF_REFERENCE_UID) for f in frames}
    if len(references) > 1:
        # One series, several patient coordinate systems: its geometry (and the SEG written on
        # it, which names one) would mix positions that cannot be compared.
        return [], f"images in {len(references)} frames of reference", None, None
    step = _nominal_step(ds, first)
    try:
        stacks = build_stacks(frames, step)
    except StackProblem as exc:
        if len(frames) <= LOCALIZER_MAX_IMAGES and str(exc).startswith("mixed orientation"):
            return [], "localizer (a few images in several planes)", None, None
        return [], str(exc), None, None
    weighting, note = classify_weighting(
        first.tr, first.te, first.ti, first.sequence, description, first.flip_angle,
        first.acquisition_contrast,
    )  # fmt: skip
    try:
        stacks, volumes, damage = decode_stacks(stacks)
    except PixelDataError as exc:
        return [], str(exc), note, None
    out = [
        _series(stack, index, volume, weighting, description, tolerance)
        for index, (stack, volume) in enumerate(zip(stacks, volumes, strict=True))
    ]
    return out, None, note, damage


def _nominal_step(ds: Dataset, first: Frame) -> float | None:
    """The slice step a one-slice stack cannot measure: SpacingBetweenSlices or thickness."""
    for value in (_get(ds, "SpacingBetweenSlices"), first.extra.get("slice_thickness"),
                  _get(ds, "SliceThickness")):  # fmt: skip
        try:
            v = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if np.isfinite(v) and v > 0:
            return v
    return None


def _series(
    stack: Stack, index: int, volume: np.ndarray, weighting: str, description: str, tol: float
) -> Series:
    from reporter.ingest.classify import classify_plane

    f0 = stack.frames[0]
    ds = f0.ds
    tsyntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "")
    multiframe = f0.frame is not None
    return Series(
        series_uid=f0.series_uid,
        study_uid=f0.study_uid,
        frame_of_reference_uid=_s(ds, "FrameOfReferenceUID") or None,
        series_number=_int(_get(ds, "SeriesNumber")),
        description=description,
        plane=classify_plane(f0.iop, tol),  # type: ignore[arg-type]
        weighting=weighting,  # type: ignore[arg-type]
        role="other",  # set by assign_roles
        stack_index=index,
        vendor=_s(ds, "Manufacturer"),
        model_name=_s(ds, "ManufacturerModelName"),
        field_strength=_float(_get(ds, "MagneticFieldStrength")),
        repetition_time=f0.tr,
        echo_time=f0.te,
        inversion_time=f0.ti,
        slice_thickness=f0.extra.get("slice_thickness") or _float(_get(ds, "SliceThickness")),
        pixels=volume,
        affine=stack.affine,
        sop_class_uid=_s(ds, "SOPClassUID"),
        sop_instance_uids=[f.sop_uid for f in stack.frames],
        frame_numbers=[f.frame + 1 for f in stack.frames] if multiframe else [],  # type: ignore[operator]
        headers=[f.ds for f in stack.frames],
        transfer_syntax_uid=str(tsyntax),
    )


def series_row(s: Series) -> SeriesRow:
    """The inventory line of a usable series."""
    return SeriesRow(
        series_uid=s.series_uid,
        stack_index=s.stack_index,
        series_number=s.series_number,
        description=s.description,
        plane=s.plane,
        weighting=s.weighting,
        n_slices=s.shape[0],
        spacing=[round(v, 4) for v in s.spacing],
        matrix=[s.shape[1], s.shape[2]],
        vendor=s.vendor,
        field_strength=s.field_strength,
        role=s.role,
        usable=True,
    )


def _set_aside(
    inv: Inventory, frames: list[Frame], built: list[Series] | None, reason: str
) -> SetAside:
    from reporter.ingest.classify import classify_plane

    first = frames[0]
    ds = first.ds
    description = _s(ds, "SeriesDescription")
    plane = None
    if first.iop is not None:
        plane = classify_plane(first.iop)
    inv.rows.append(
        SeriesRow(
            series_uid=first.series_uid,
            series_number=_int(_get(ds, "SeriesNumber")),
            description=description,
            plane=plane,
            n_slices=len(frames),
            matrix=[first.rows, first.cols],
            vendor=_s(ds, "Manufacturer"),
            field_strength=_float(_get(ds, "MagneticFieldStrength")),
            role="localizer" if reason.startswith("localizer") else None,
            usable=False,
            problem=reason,
        )
    )
    weighting = None
    if first.modality == "MR":  # another modality (a SEG, a CT) is listed, not a problem
        label = f"series {first.series_uid}" + (f" ({description!r})" if description else "")
        inv.warnings.append(f"{label} set aside: {reason}")
        try:
            f = complete(first)
            weighting, _ = classify_weighting(
                f.tr, f.te, f.ti, f.sequence, description, f.flip_angle, f.acquisition_contrast
            )
        except Exception:  # the weighting only labels the set-aside line; unknown is fine
            weighting = None
    return SetAside(
        series_uid=first.series_uid,
        description=description,
        reason=reason,
        plane=plane,  # type: ignore[arg-type]
        weighting=weighting,  # type: ignore[arg-type]
    )


def _is_key_series_failure(aside: SetAside) -> bool:
    """A sagittal or axial MR series set aside for damage or inconsistency (not a localizer or
    derived images, which are left out on purpose): the report must say so up front."""
    if aside.plane not in ("sagittal", "axial"):
        return False
    return not aside.reason.startswith(("localizer", "derived images", "not an MR image"))


def _series_label(plane: str | None, weighting: str | None, first: Frame) -> str:
    description = _s(first.ds, "SeriesDescription")
    kind = " ".join(x for x in (plane, weighting if weighting != "other" else None) if x)
    return (
        f"the {kind or 'MR'} series"
        + (f" '{description}'" if description else "")
        + (f" (series {first.series_uid})")
    )


def _study(
    study_uid: str,
    inv: Inventory,
    series: list[Series],
    set_aside: list[SetAside],
    frames_by_series: dict[tuple[str, str], list[Frame]],
) -> Study:
    ds = next(fr[0].ds for k, fr in frames_by_series.items() if k[0] == study_uid)
    limitations = []
    unknown = _unknown_charsets(ds)
    if unknown:
        limitations.append(
            f"SpecificCharacterSet {', '.join(repr(c) for c in unknown)} is not a character set "
            "DICOM defines: header text was read as plain ASCII / Latin-1 and may be garbled"
        )
        inv.warnings.append(limitations[-1])
    accession = _s(ds, "AccessionNumber")
    sex = _s(ds, "PatientSex").upper()
    return Study(
        study_uid=study_uid,
        source=inv.source,
        accession_hash=hashlib.sha256(accession.encode()).hexdigest()[:16] if accession else None,
        patient_sex=sex if sex in ("M", "F", "O") else None,
        patient_age=_age(_s(ds, "PatientAge")),
        study_date=_s(ds, "StudyDate") or None,
        series=series,
        set_aside=set_aside,
        warnings=list(inv.warnings),
        limitations=limitations,
        n_files_skipped=inv.n_files_skipped,
    )


def _unknown_charsets(ds: Dataset) -> list[str]:
    """Values of SpecificCharacterSet that pydicom cannot decode ('' is the default repertoire,
    legal as the first value of a code-extension list)."""
    try:
        value = ds.get("SpecificCharacterSet")
    except Exception:
        return ["(unreadable)"]
    if value is None:
        return []
    values = [value] if isinstance(value, str) else list(value)
    return [v for v in (str(x).strip() for x in values) if v and v not in python_encoding]


_AGE = re.compile(r"^(\d{1,3})([DWMY])$")
_AGE_UNIT = {"D": 1 / 365.25, "W": 7 / 365.25, "M": 1 / 12, "Y": 1.0}


def _age(text: str) -> float | None:
    m = _AGE.match(text.upper())
    return round(int(m.group(1)) * _AGE_UNIT[m.group(2)], 2) if m else None


def _get(ds: Dataset, keyword: str) -> object:
    """A header value, or None when absent or damaged (pydicom converts lazily, so a damaged
    value raises only when read)."""
    try:
        return ds.get(keyword)
    except Exception:
        return None


def _s(ds: Dataset, keyword: str) -> str:
    value = _get(ds, keyword)
    return "" if value is None else str(value).strip()


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def _float(value: object) -> float | None:
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


def refuse_if_unusable(inv: Inventory) -> Study:
    if inv.refusal is not None or inv.study is None:
        raise InputDataError(inv.refusal or f"no usable study in {inv.source}")
    return inv.study
