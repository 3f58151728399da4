"""Hostile inputs for eval/fuzz.py: each kind writes one case into a folder from a seeded
`random.Random`, starting from base material made once per run (phantom DICOM studies from
reporter.synth, a PNG and a NIfTI file cut from one of them).

A kind is a function `(rng, bases, dest) -> Case`. It copies what it needs from `bases` into
`dest` and damages the copy; the same seed always gives the same bytes. `Case.target` is what the
commands are given (a study folder, one file, or a worklist).
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import random
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.tag import Tag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

# Phantom seeds in the unassigned range (reporter.synth.seeds: never trained or evaluated on).
BASE_SEEDS: tuple[tuple[int, str], ...] = ((700_001, "site-a"), (700_002, "site-b"))
BASES_VERSION = "1"  # bump when the base material changes (a cached --work folder is remade)

# Inflated sizes of the deflate bombs: above any real header, at the 32-bit length limit, beyond.
BOMB_SIZES_MIB = (600, 4095, 12_000)
NIFTI_BOMB_SHAPE = (1024, 1024, 1024)  # 1 GiB of uint8 zeros, ~1 MB gzipped

# Type 1 attributes of the MR Image IOD (and the file meta) that ingest reads.
TYPE1 = (
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "Modality",
    "ImageType",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PixelSpacing",
    "ImageOrientationPatient",
    "ImagePositionPatient",
    "PixelData",
    "FrameOfReferenceUID",
    "ScanningSequence",
    "SequenceVariant",
    "EchoTime",
    "RepetitionTime",
)
# Tags whose VR or length the byte-level kinds damage (the ones ingest parses itself first).
HEADER_TAGS = (
    0x00080005,
    0x00080008,
    0x00080016,
    0x00080018,
    0x00080060,
    0x0008103E,
    0x00100010,
    0x00180050,
    0x00180080,
    0x00180081,
    0x00180088,
    0x0020000D,
    0x0020000E,
    0x00200013,
    0x00200032,
    0x00200037,
    0x00280002,
    0x00280004,
    0x00280010,
    0x00280011,
    0x00280030,
    0x00280100,
    0x00280101,
    0x00280102,
    0x00280103,
    0x00281052,
    0x00281053,
)
VR_CODES = (
    b"AE",
    b"AS",
    b"AT",
    b"CS",
    b"DA",
    b"DS",
    b"DT",
    b"FD",
    b"FL",
    b"IS",
    b"LO",
    b"LT",
    b"OB",
    b"OD",
    b"OF",
    b"OW",
    b"PN",
    b"SH",
    b"SL",
    b"SQ",
    b"SS",
    b"ST",
    b"TM",
    b"UI",
    b"UL",
    b"UN",
    b"US",
    b"UT",
    b"UV",
    b"ZZ",
    b"\x00\x00",
    b"\xff\xff",
)
LONG_VRS = {
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
    b"SV",
    b"UV",
}
ITEM = b"\xfe\xff\x00\xe0"
SEQ_DELIM = b"\xfe\xff\xdd\xe0"


@dataclass
class Bases:
    """Paths of the material cases are cut from (see make_bases)."""

    root: Path
    studies: list[Path] = field(default_factory=list)  # DICOM folders, one per phantom
    png8: Path | None = None
    png16: Path | None = None
    nifti: Path | None = None


@dataclass
class Case:
    target: Path
    input: str  # dicom | file | png | nifti | worklist
    note: str


Kind = Callable[[random.Random, Bases, Path], Case]


# ------------------------------------------------------------------------------------------ bases
def make_bases(root: Path) -> Bases:
    """Phantom studies, a PNG and a NIfTI file; kept in `root` and reused when already there."""
    marker = root / "bases.json"
    if marker.is_file() and json.loads(marker.read_text()).get("version") == BASES_VERSION:
        return _bases_at(root)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    from reporter.ingest import load_study
    from reporter.synth import generate_study, write_study

    for seed, site in BASE_SEEDS:
        written = write_study(generate_study(seed, site=site), root / f"phantom_{seed}")
        shutil.move(str(written / "dicom"), str(root / f"study_{seed}"))
        shutil.rmtree(written)
    study = load_study(root / f"study_{BASE_SEEDS[0][0]}")
    sag = next(s for s in study.series if s.plane == "sagittal" and s.weighting == "T2")
    mid = sag.pixels[sag.pixels.shape[0] // 2]
    lo, hi = np.percentile(mid, (0.5, 99.5))
    scaled = np.clip((mid - lo) / max(hi - lo, 1e-6), 0, 1)
    _write_png(root / "sag_t2.png", (scaled * 255).astype(np.uint8))
    _write_png(root / "sag_t2_16.png", (scaled * 4095).astype(np.uint16))
    import nibabel as nib

    lps_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0])
    nib.save(
        nib.Nifti1Image(sag.pixels.astype(np.int16), lps_to_ras @ sag.affine),
        str(root / "sag_t2.nii.gz"),
    )
    for size in BOMB_SIZES_MIB:
        (root / f"bomb_{size}.dcm").write_bytes(_deflate_bomb(root, size))
    (root / "bomb.nii.gz").write_bytes(_nifti_bomb())
    marker.write_text(json.dumps({"version": BASES_VERSION}))
    return _bases_at(root)


def _bases_at(root: Path) -> Bases:
    return Bases(
        root=root,
        studies=[root / f"study_{seed}" for seed, _ in BASE_SEEDS],
        png8=root / "sag_t2.png",
        png16=root / "sag_t2_16.png",
        nifti=root / "sag_t2.nii.gz",
    )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _write_png(path: Path, img: np.ndarray) -> None:
    path.write_bytes(_png_bytes(img))


def _png_bytes(
    img: np.ndarray,
    ihdr: bytes | None = None,
    extra: list[bytes] | None = None,
    idat: bytes | None = None,
) -> bytes:
    rows, cols = img.shape
    depth = 16 if img.dtype == np.uint16 else 8
    raw = b"".join(
        b"\x00" + img[r].astype(">u2" if depth == 16 else "u1").tobytes() for r in range(rows)
    )
    header = ihdr or struct.pack(">IIBBBBB", cols, rows, depth, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + b"".join(extra or [])
        + _png_chunk(b"IDAT", zlib.compress(raw) if idat is None else idat)
        + _png_chunk(b"IEND", b"")
    )


# ----------------------------------------------------------------------------- DICOM helpers
def _copy_study(rng: random.Random, bases: Bases, dest: Path, series: int | None = None) -> Path:
    """A copy of one base study (all series, or only the `series`-th folder) in dest/study."""
    src = rng.choice(bases.studies)
    out = dest / "study"
    if series is None:
        shutil.copytree(src, out)
    else:
        folder = sorted(p for p in src.iterdir() if p.is_dir())[series]
        shutil.copytree(folder, out / folder.name)
    return out


def _series_dirs(study: Path) -> list[Path]:
    return sorted(p for p in study.iterdir() if p.is_dir())


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _pick_files(rng: random.Random, study: Path) -> tuple[list[Path], str]:
    """Which files a damage applies to: one, a few, a whole series, or every file."""
    mode = rng.choice(("one", "some", "series", "series", "all"))
    files = _files(study)
    if mode == "one":
        return [rng.choice(files)], "one file"
    if mode == "some":
        return rng.sample(files, rng.randint(2, max(2, len(files) // 4))), "some files"
    if mode == "series":
        folder = rng.choice(_series_dirs(study))
        return _files(folder), f"series {folder.name}"
    return files, "every file"


def _edit(paths: list[Path], fn: Callable[[Dataset], None]) -> None:
    for p in paths:
        ds = pydicom.dcmread(p)
        fn(ds)
        buffer = io.BytesIO()
        try:
            ds.save_as(buffer, enforce_file_format=False)
        except Exception:
            # pydicom could not encode a value (a raw one under a character set it cannot
            # handle): write every element as it stands, raw bytes included.
            buffer = io.BytesIO()
            _write_raw(buffer, ds)
        p.write_bytes(buffer.getvalue())


def _write_raw(buffer: io.BytesIO, ds: Dataset) -> None:
    """Preamble, file meta, then each element as explicit VR little endian from its raw bytes
    (elements already converted by pydicom are written by pydicom one at a time)."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_data_element

    buffer.write(b"\x00" * 128 + b"DICM")
    meta = FileMetaDataset(ds.file_meta)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    write_file_meta_info(buffer, meta, enforce_standard=True)
    for tag in sorted(ds.keys()):
        elem = ds.get_item(tag)
        if isinstance(elem, RawDataElement):
            # A raw element read from an implicit-VR file has no VR of its own (seeds 103117,
            # 106386): the dictionary's first one, UN for an unknown tag.
            vr = (elem.VR or _dictionary_vr(tag)).encode()
            value = elem.value or b""
            head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr
            if vr in LONG_VRS:
                buffer.write(head + b"\x00\x00" + struct.pack("<I", len(value)) + value)
            else:
                buffer.write(head + struct.pack("<H", len(value) & 0xFFFF) + value)
            continue
        out = DicomBytesIO()
        out.is_little_endian, out.is_implicit_VR = True, False
        write_data_element(out, elem)
        buffer.write(out.getvalue())


def _dictionary_vr(tag: int) -> str:
    from pydicom.datadict import dictionary_VR

    try:
        return dictionary_VR(tag).split(" or ")[0]
    except KeyError:
        return "UN"


def _raw(tag: int, vr: str, value: bytes) -> RawDataElement:
    return RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)


def _element_headers(path: Path) -> dict[int, tuple[int, bytes]]:
    """Offset of each top-level element's header in an explicit VR little-endian file, and its
    VR code (read back from pydicom's value offsets). The site-b phantom writes implicit VR:
    there the "VR" bytes are the first two of the 4-byte length, so wrong_vr and wrong_length
    damage lengths instead (still hostile; kept so that seeds keep their cases)."""
    ds = pydicom.dcmread(path, defer_size=None)
    data = path.read_bytes()
    out = {}
    for tag in ds.keys():  # noqa: SIM118 (iterating a Dataset converts raw elements)
        elem = ds.get_item(tag)
        tell = getattr(elem, "value_tell", None)
        if not isinstance(elem, RawDataElement) or tell is None:
            continue
        vr = bytes(data[tell - 4 : tell - 2])
        start = tell - 12 if data[tell - 8 : tell - 6] in LONG_VRS else tell - 8
        if data[start : start + 4] == struct.pack("<HH", tag >> 16, tag & 0xFFFF):
            out[int(tag)] = (start, data[start + 4 : start + 6] if vr not in LONG_VRS else vr)
    return out


def _meta_end(data: bytes) -> int:
    """Where the dataset starts after the file meta group (0002)."""
    group_length = struct.unpack("<I", data[140:144])[0]
    return 144 + group_length


def _set_transfer_syntax(path: Path, uid: str) -> None:
    """Rewrite only the file meta's TransferSyntaxUID; the dataset bytes stay as they are."""
    data = path.read_bytes()
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    meta = FileMetaDataset(ds.file_meta)
    meta.TransferSyntaxUID = uid
    buffer = io.BytesIO()
    write_file_meta_info(buffer, meta, enforce_standard=True)
    path.write_bytes(data[:128] + b"DICM" + buffer.getvalue() + data[_meta_end(data) :])


def _pixel_value_offset(path: Path) -> int:
    ds = pydicom.dcmread(path)
    return int(ds.get_item(0x7FE00010).value_tell)


# ------------------------------------------------------------------------------------ kinds
def truncated_file(rng: random.Random, bases: Bases, dest: Path) -> Case:
    study = _copy_study(rng, bases, dest)
    files, which = _pick_files(rng, study)
    where = rng.choice(("preamble", "meta", "header", "pixels", "anywhere"))
    for p in files:
        data = p.read_bytes()
        meta, pixels = _meta_end(data), _pixel_value_offset(p)
        end = {
            "preamble": rng.randrange(0, 132),
            "meta": rng.randrange(132, meta),
            "header": rng.randrange(meta, pixels),
            "pixels": rng.randrange(pixels, len(data)),
            "anywhere": rng.randrange(len(data)),
        }[where]
        p.write_bytes(data[: max(0, end)])
    return Case(study, "dicom", f"{which} truncated in the {where}")


def truncated_pixels(rng: random.Random, bases: Bases, dest: Path) -> Case:
    study = _copy_study(rng, bases, dest)
    files, which = _pick_files(rng, study)
    how = rng.choice(("cut", "cut", "length_kept_short", "empty"))
    for p in files:
        data = p.read_bytes()
        start = _pixel_value_offset(p)
        if how == "cut":
            p.write_bytes(data[: rng.randrange(start, len(data))])
        elif how == "empty":  # element present with length 0
            p.write_bytes(data[: start - 4] + struct.pack("<I", 0))
        else:  # a length that says less than the matrix needs, the file cut to match
            n = rng.randrange(0, len(data) - start, 2)
            p.write_bytes(data[: start - 4] + struct.pack("<I", n) + data[start : start + n])
    return Case(study, "dicom", f"pixel data of {which}: {how}")


def bit_flips(rng: random.Random, bases: Bases, dest: Path) -> Case:
    study = _copy_study(rng, bases, dest)
    files, which = _pick_files(rng, study)
    n = rng.choice((1, 4, 16, 64))
    for p in files:
        data = bytearray(p.read_bytes())
        end = _pixel_value_offset(p) if rng.random() < 0.8 else len(data)
        for _ in range(n):
            pos = rng.randrange(0, end)
            data[pos] ^= 1 << rng.randrange(8)
        p.write_bytes(bytes(data))
    return Case(study, "dicom", f"{n} bits flipped in each of {which}")


def wrong_vr(rng: random.Random, bases: Bases, dest: Path) -> Case:
    study = _copy_study(rng, bases, dest)
    files, which = _pick_files(rng, study)
    tags = rng.sample(HEADER_TAGS, rng.randint(1, 3))
    vrs = [rng.choice(VR_CODES) for _ in tags]
    for p in files:
        data = bytearray(p.read_bytes())
        heads = _element_headers(p)
        for tag, vr in zip(tags, vrs, strict=True):
            if tag in heads:
                start, _ = heads[tag]
                data[start + 4 : start + 6] = vr
        p.write_bytes(bytes(data))
    desc = ", ".join(f"{t:08X}->{v.decode('latin-1')!r}" for t, v in zip(tags, vrs, strict=True))
    return Case(study, "dicom", f"VR of {desc} in {which}")


def wrong_length(rng: random.Random, bases: Bases, dest: Path) -> Case:
    study = _copy_study(rng, bases, dest)
    files, which = _pick_files(rng, study)
    tag = rng.choice((*HEADER_TAGS, 0x7FE00010))
    choice = rng.choice(("zero", "odd", "plus", "minus", "max16", "undefined", "huge"))
    for p in files:
        data = bytearray(p.read_bytes())
        heads = _element_headers(p)
        if tag == 0x7FE00010:
            start = _pixel_value_offset(p) - 12
            vr = b"OW"
        elif tag in heads:
            start, vr = heads[tag]
        else:
            continue
        long = vr in LONG_VRS
        fmt, at = ("<I", start + 8) if long else ("<H", start + 6)
        old = struct.unpack(fmt, data[at : at + struct.calcsize(fmt)])[0]
        cap = 0xFFFFFFFF if long else 0xFFFF
        new = {
            "zero": 0,
            "odd": old | 1,
            "plus": old + 2,
            "minus": max(0, old - 2),
            "max16": 0xFFFF,
            "undefined": cap,
            "huge": cap - 1,
        }[choice]
        data[at : at + struct.calcsize(fmt)] = struct.pack(fmt, min(new, cap))
        p.write_bytes(bytes(data))
    return Case(study, "dicom", f"length of {tag:08X} set {choice} in {which}")


def missing_type1(rng: random.Random, bases: Bases, dest: Path) -> Case:
    study = _copy_study(rng, bases, dest)
    files, which = _pick_files(rng, study)
    gone = rng.sample(TYPE1, rng.randint(1, 3))
    meta_gone = rng.random() < 0.15

    def drop(ds: Dataset) -> None:
        for keyword in gone:
            if keyword in ds:
                delattr(ds, keyword)
        if meta_gone:
            ds.file_meta = FileMetaDataset()

    _edit(files, drop)
    return Case(
        study,
        "dicom",
        f"{', '.join(gone)}{' and file meta' if meta_gone else ''} removed from {which}",
    )


_BAD_NUMBERS = (
    "0",
    "-1",
    "-0.5",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "1e308",
    "1e-320",
    "",
    "abc",
    "1,5",
    "0x10",
    " ",
    "1\\2\\3",
)


def absurd_geometry(rng: random.Random, bases: Bases, dest: Path) -> Case:
    study = _copy_study(rng, bases, dest)
    files, which = _pick_files(rng, study)
    what = rng.choice(
        (
            "spacing",
            "orientation",
            "position",
            "thickness",
            "matrix",
            "frames",
            "rescale",
            "same_position",
            "collinear",
        )
    )
    bad = rng.choice(_BAD_NUMBERS)
    iop_choice = rng.choice(
        (
            ["NaN"] * 6,
            ["0"] * 6,
            ["1", "0", "0", "1", "0", "0"],
            ["1", "0", "0", "0", "1"],
            ["inf", "0", "0", "0", "1", "0"],
            ["2", "0", "0", "0", "3", "0"],
            ["1e308", "1e308", "0", "0", "0", "1"],
            [bad] * 6,
        )
    )
    rows = rng.choice((0, 1, 65535, 100_000, 4097))
    frames = rng.choice(("0", "-1", "100000", "2", "1e9", "abc"))
    counter = iter(range(10**6))

    def change(ds: Dataset) -> None:
        if what == "spacing":
            ds[0x00280030] = _raw(0x00280030, "DS", f"{bad}\\{rng.choice(_BAD_NUMBERS)}".encode())
        elif what == "orientation":
            ds[0x00200037] = _raw(0x00200037, "DS", "\\".join(iop_choice).encode())
        elif what == "position":
            ds[0x00200032] = _raw(0x00200032, "DS", f"{bad}\\{bad}\\{bad}".encode())
        elif what == "thickness":
            for tag in (0x00180050, 0x00180088):
                ds[tag] = _raw(tag, "DS", bad.encode())
        elif what == "matrix":
            tag = rng.choice((0x00280010, 0x00280011))
            if rows > 0xFFFF:
                ds[tag] = _raw(tag, "UL", struct.pack("<I", rows))
            else:
                ds[tag] = _raw(tag, "US", struct.pack("<H", rows))
        elif what == "frames":
            ds[0x00280008] = _raw(0x00280008, "IS", frames.encode())
        elif what == "rescale":
            ds[0x00281053] = _raw(0x00281053, "DS", bad.encode())
            ds[0x00281052] = _raw(0x00281052, "DS", rng.choice(_BAD_NUMBERS).encode())
        elif what == "same_position":
            ds.ImagePositionPatient = [0, 0, 0]
        else:  # positions on a line not along the normal: a tilted, sheared stack
            k = next(counter)
            ds.ImagePositionPatient = [0.0, 3.0 * k, 0.0]

    _edit(files, change)
    detail = {
        "spacing": bad,
        "orientation": "\\".join(iop_choice),
        "position": bad,
        "thickness": bad,
        "matrix": str(rows),
        "frames": frames,
        "rescale": bad,
    }
    return Case(study, "dicom", f"{what} {detail.get(what, '')!r} in {which}")


def compressed_corrupt(rng: random.Random, bases: Bases, dest: Path) -> Case:
    study = _copy_study(rng, bases, dest)
    folder = rng.choice(_series_dirs(study))
    files = _files(folder)
    syntax = rng.choice(
        (RLELossless, RLELossless, JPEG2000Lossless, JPEGLSLossless, DeflatedExplicitVRLittleEndian)
    )
    damage = rng.choice(
        (
            "flip",
            "truncate",
            "fragment_length",
            "no_delimiter",
            "wrong_syntax",
            "claimed_only",
            "empty_fragment",
            "none",
        )
    )
    hit = rng.sample(files, rng.randint(1, len(files)))
    if damage == "claimed_only":  # native data under a compressed transfer syntax
        claimed = rng.choice(
            (
                JPEGBaseline8Bit,
                JPEG2000Lossless,
                RLELossless,
                "1.2.3.4.5",
                "1.2.840.10008.1.2.4.201",
                ExplicitVRBigEndian,
            )
        )
        for p in hit:
            _set_transfer_syntax(p, claimed)
        return Case(
            study,
            "dicom",
            f"native pixels under transfer syntax {claimed} in {len(hit)} of {folder.name}",
        )
    try:
        _edit(
            files,
            lambda ds: (
                ds.compress(syntax) if syntax != DeflatedExplicitVRLittleEndian else _deflate(ds)
            ),
        )
    except Exception as exc:  # no encoder here: the study stays native, still a case
        return Case(study, "dicom", f"(could not compress to {syntax}: {type(exc).__name__})")
    for p in hit:
        data = bytearray(p.read_bytes())
        if syntax == DeflatedExplicitVRLittleEndian:
            start = _meta_end(bytes(data))
        else:
            start = _pixel_value_offset(p)
        span = len(data) - start
        if damage == "flip":
            for _ in range(rng.choice((1, 8, 64))):
                pos = start + rng.randrange(span)
                data[pos] ^= 1 << rng.randrange(8)
        elif damage == "truncate":
            del data[start + rng.randrange(span) :]
        elif damage == "fragment_length" and syntax != DeflatedExplicitVRLittleEndian:
            items = [i for i in range(start, len(data) - 8) if data[i : i + 4] == ITEM]
            if items:
                i = rng.choice(items)
                data[i + 4 : i + 8] = struct.pack("<I", rng.choice((0, 1, 3, 0xFFFFFFF0, span)))
        elif damage == "no_delimiter" and syntax != DeflatedExplicitVRLittleEndian:
            if bytes(data[-8:-4]) == SEQ_DELIM:
                del data[-8:]
        elif damage == "empty_fragment" and syntax != DeflatedExplicitVRLittleEndian:
            data[start:] = ITEM + bytes(4) + ITEM + bytes(4) + SEQ_DELIM + bytes(4)
        elif damage == "wrong_syntax":
            p.write_bytes(bytes(data))
            _set_transfer_syntax(
                p,
                rng.choice(
                    (
                        JPEGBaseline8Bit,
                        JPEG2000Lossless,
                        RLELossless,
                        JPEGLSLossless,
                        ImplicitVRLittleEndian,
                    )
                ),
            )
            continue
        p.write_bytes(bytes(data))
    return Case(study, "dicom", f"{folder.name} as {syntax}, {damage} in {len(hit)} file(s)")


def _deflate(ds: Dataset) -> None:
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian


def _deflate_bomb(root: Path, size_mib: int) -> bytes:
    """A deflated file: a real MR header, then private OB elements of zeros inflating to
    `size_mib` MiB (a few MB on disk). Raw deflate blocks after a full flush are independent,
    so one compressed MiB is repeated instead of compressing gigabytes."""
    src = _files(root / f"study_{BASE_SEEDS[0][0]}")[0]
    ds = pydicom.dcmread(src)
    del ds.PixelData
    body = io.BytesIO()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(body, enforce_file_format=True)
    header = body.getvalue()
    dataset = header[_meta_end(header) :]
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    mib = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = mib.compress(b"\x00" * (1 << 20)) + mib.flush(zlib.Z_FULL_FLUSH)
    out = [c.compress(dataset)]
    left = size_mib
    element = 0
    while left > 0:
        n = min(left, 4095)
        tag = struct.pack("<HH", 0x0029, 0x1010 + element)
        out.append(c.compress(tag + b"OB\x00\x00" + struct.pack("<I", n << 20)))
        out.append(c.flush(zlib.Z_FULL_FLUSH))
        out.extend([zeros] * n)
        left -= n
        element += 1
    # Pixel Data last, so that a header reader reaches it only after all the zeros.
    tail = zlib.compressobj(9, zlib.DEFLATED, -15)
    out.append(
        tail.compress(b"\xe0\x7f\x10\x00OW\x00\x00" + struct.pack("<I", 8) + b"\x00" * 8)
        + tail.flush(zlib.Z_FINISH)
    )
    meta = FileMetaDataset(ds.file_meta)
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buffer = io.BytesIO()
    write_file_meta_info(buffer, meta, enforce_standard=True)
    return b"\x00" * 128 + b"DICM" + buffer.getvalue() + b"".join(out)


def _nifti_bomb() -> bytes:
    """A gzipped NIfTI of NIFTI_BOMB_SHAPE uint8 zeros (1 GiB inflated, ~1 MB on disk)."""
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_shape(NIFTI_BOMB_SHAPE)
    header.set_data_dtype(np.uint8)
    header.set_sform(np.eye(4), code=1)
    c = zlib.compressobj(6, zlib.DEFLATED, 31)  # gzip framing
    chunks = [c.compress(header.binaryblock + b"\x00" * 4)]
    block = b"\x00" * (1 << 24)
    chunks.extend(c.compress(block) for _ in range(math.prod(NIFTI_BOMB_SHAPE) >> 24))
    chunks.append(c.flush())
    return b"".join(chunks)


def deflate_bomb(rng: random.Random, bases: Bases, dest: Path) -> Case:
    size = rng.choice(BOMB_SIZES_MIB)
    how = rng.choice(("alone", "in_study", "single_file"))
    bomb = bases.root / f"bomb_{size}.dcm"
    if how == "single_file":
        shutil.copy(bomb, dest / "bomb.dcm")
        return Case(dest / "bomb.dcm", "file", f"deflate bomb of {size} MiB given as the file")
    study = _copy_study(rng, bases, dest) if how == "in_study" else dest / "study"
    study.mkdir(exist_ok=True)
    for k in range(rng.choice((1, 1, 3))):
        shutil.copy(bomb, study / f"bomb_{k}.dcm")
    return Case(study, "dicom", f"deflate bomb(s) of {size} MiB, {how}")


def mixed_studies(rng: random.Random, bases: Bases, dest: Path) -> Case:
    out = dest / "study"
    out.mkdir()
    a, b = rng.sample(bases.studies, 2) if rng.random() < 0.7 else [bases.studies[0]] * 2
    how = rng.choice(
        (
            "two_studies",
            "same_uid_other_patient",
            "foreign_series",
            "per_file_study_uid",
            "other_frame_of_reference",
        )
    )
    shutil.copytree(a, out / "a")
    if how == "two_studies":
        shutil.copytree(b, out / "b")
        if a == b:  # the same phantom twice under a new Study UID: a second study
            uid = generate_uid()
            _edit(_files(out / "b"), lambda ds: setattr(ds, "StudyInstanceUID", uid))
    elif how == "same_uid_other_patient":
        folder = rng.choice(_series_dirs(out / "a"))
        name = rng.choice(("OTHER^PATIENT", "Müller^Jürgen", ""))

        def other(ds: Dataset) -> None:
            ds.PatientName = name
            ds.PatientID = "OTHER-" + str(rng.randrange(10**6))
            ds.PatientBirthDate = rng.choice(("19000101", "", "1923-04-17"))

        _edit(_files(folder), other)
    elif how == "foreign_series":  # one series of the other study dropped in
        shutil.copytree(rng.choice(_series_dirs(b)), out / "foreign")
    elif how == "per_file_study_uid":
        _edit(
            rng.sample(_files(out), 5), lambda ds: setattr(ds, "StudyInstanceUID", generate_uid())
        )
    else:
        files = _files(rng.choice(_series_dirs(out / "a")))
        _edit(
            rng.sample(files, max(1, len(files) // 2)),
            lambda ds: setattr(ds, "FrameOfReferenceUID", generate_uid()),
        )
    return Case(out, "dicom", how)


def _sr_dataset(template: Dataset, sop_class: str, modality: str) -> Dataset:
    ds = Dataset()
    for keyword in (
        "PatientName",
        "PatientID",
        "StudyInstanceUID",
        "StudyDate",
        "SpecificCharacterSet",
    ):
        if keyword in template:
            setattr(ds, keyword, template.data_element(keyword).value)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


def non_image_sop(rng: random.Random, bases: Bases, dest: Path) -> Case:
    alone = rng.random() < 0.4
    study = dest / "study"
    if alone:
        study.mkdir()
        template = pydicom.dcmread(_files(bases.studies[0])[0], stop_before_pixels=True)
    else:
        study = _copy_study(rng, bases, dest)
        template = pydicom.dcmread(_files(study)[0], stop_before_pixels=True)
    objects = {
        "sr": ("1.2.840.10008.5.1.4.1.1.88.33", "SR"),
        "ko": ("1.2.840.10008.5.1.4.1.1.88.59", "KO"),
        "pr": ("1.2.840.10008.5.1.4.1.1.11.1", "PR"),
        "pdf": ("1.2.840.10008.5.1.4.1.1.104.1", "DOC"),
        "raw": ("1.2.840.10008.5.1.4.1.1.66", "MR"),
        "rtstruct": ("1.2.840.10008.5.1.4.1.1.481.3", "RTSTRUCT"),
    }
    chosen = rng.sample(sorted(objects), rng.randint(1, 4))
    for name in chosen:
        ds = _sr_dataset(template, *objects[name])
        if name == "pdf":
            ds.EncapsulatedDocument = b"%PDF-1.4\n" + bytes(rng.randrange(256) for _ in range(64))
            ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
        if name == "raw" and rng.random() < 0.5:  # MR modality, raw data SOP class, Rows set
            ds.Rows, ds.Columns = 4, 4
        ds.save_as(study / f"{name}.dcm", enforce_file_format=True)
    if rng.random() < 0.3:
        dicomdir = _sr_dataset(template, "1.2.840.10008.1.3.10", "")
        dicomdir.save_as(study / "DICOMDIR", enforce_file_format=True)
        chosen.append("dicomdir")
    if rng.random() < 0.3:  # an image of another modality beside the MR
        ct = pydicom.dcmread(rng.choice(_files(bases.studies[0])))
        ct.Modality = "CT"
        ct.SeriesInstanceUID = generate_uid()
        ct.SOPInstanceUID = generate_uid()
        ct.save_as(study / "ct.dcm", enforce_file_format=False)
        chosen.append("ct")
    return Case(study, "dicom", f"{'only ' if alone else ''}{'+'.join(chosen)}")


_CHARSETS = (
    "",
    "ISO_IR 999",
    "ISO_IR 192",
    "ISO_IR 100",
    "GB18030",
    "ISO 2022 IR 87",
    "\\ISO 2022 IR 87",
    "ISO 2022 IR 6\\ISO 2022 IR 149",
    "ISO_IR 13\\ISO 2022 IR 87",
    "ISO_IR 100\\ISO_IR 100\\ISO_IR 100",
    "utf-8",
    "ISO_IR 6",
    "\x00",
    "ISO_IR 192\\GB18030",
    "ISO 2022 IR 13\\ISO 2022 IR 87\\ISO 2022 IR 159",
    "ISO_IR 144",
    "ISO_IR 166",
)
_TEXTS: tuple[bytes, ...] = (
    "Müller^Jürgen".encode("latin-1"),
    "山田^太郎".encode(),
    b"\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B",
    b"\xff\xfe\xfd\xfc",
    b"\x1b$)C\xc8\xab\x1b(B",
    b"\xc3\x28\xa0\xa1",
    b"A" * 20_000,
    b"line one\nline two\r\nline three",
    b"\x1b[31mred\x1b[0m\x07",
    b"<script>alert(1)</script>",
    b"\x00\x00\x00",
    b"tab\there",
    "Ω≈ç√∫".encode("utf-16"),
    b"%s%n%x{0}",
    b"\\\\\\",
    b"\xe2\x80\xae\xe2\x80\x8b",
)
_TEXT_TAGS = (
    (0x00100010, "PN"),
    (0x0008103E, "LO"),
    (0x00081030, "LO"),
    (0x00080080, "LO"),
    (0x00181030, "LO"),
    (0x00080070, "LO"),
    (0x00100020, "LO"),
    (0x00080050, "SH"),
    (0x00080090, "PN"),
    (0x00200010, "SH"),
)


def charset(rng: random.Random, bases: Bases, dest: Path) -> Case:
    study = _copy_study(rng, bases, dest)
    files, which = _pick_files(rng, study)
    cs = rng.choice(_CHARSETS)
    texts = {tag: (vr, rng.choice(_TEXTS)) for tag, vr in rng.sample(_TEXT_TAGS, rng.randint(1, 4))}

    def change(ds: Dataset) -> None:
        ds[0x00080005] = _raw(0x00080005, "CS", cs.encode("latin-1"))
        for tag, (vr, value) in texts.items():
            ds[tag] = _raw(tag, vr, value + (b" " if len(value) % 2 else b""))

    _edit(files, change)
    return Case(
        study,
        "dicom",
        f"SpecificCharacterSet {cs!r}, text in {', '.join(f'{t:08X}' for t in texts)} of {which}",
    )


def duplicate_uids(rng: random.Random, bases: Bases, dest: Path) -> Case:
    study = _copy_study(rng, bases, dest)
    how = rng.choice(
        (
            "same_sop_in_series",
            "file_twice",
            "series_uid_shared",
            "empty_uids",
            "bad_uid_text",
            "sop_shared_across_series",
        )
    )
    folders = _series_dirs(study)
    if how == "same_sop_in_series":
        uid = generate_uid()
        _edit(_files(rng.choice(folders)), lambda ds: setattr(ds, "SOPInstanceUID", uid))
    elif how == "file_twice":
        for p in rng.sample(_files(study), rng.randint(1, 5)):
            shutil.copy(p, p.with_name(p.name + ".copy"))
    elif how == "series_uid_shared":
        uid = pydicom.dcmread(_files(folders[0])[0], stop_before_pixels=True).SeriesInstanceUID
        _edit(_files(rng.choice(folders[1:])), lambda ds: setattr(ds, "SeriesInstanceUID", uid))
    elif how == "sop_shared_across_series":
        uid = generate_uid()
        _edit([_files(f)[0] for f in folders], lambda ds: setattr(ds, "SOPInstanceUID", uid))
    else:
        files, _ = _pick_files(rng, study)
        tag = rng.choice((0x00080018, 0x0020000E, 0x0020000D, 0x00200052))
        value = (
            b""
            if how == "empty_uids"
            else rng.choice((b"1.2.3.\xff", b"1" * 200, b"1..2", b"abc", b"1.2.3\\4.5", b"0.0"))
        )
        _edit(files, lambda ds: ds.__setitem__(tag, _raw(tag, "UI", value)))
    return Case(study, "dicom", how)


def _orientations() -> list[tuple[np.ndarray, np.ndarray]]:
    """Every signed-axis (row, column) pair: 24 orientations times mirrored ones = 48."""
    axes = np.eye(3)
    out = []
    for i in range(3):
        for j in range(3):
            if i == j:
                continue
            for si in (1, -1):
                for sj in (1, -1):
                    out.append((si * axes[i], sj * axes[j]))
    return out


def orientation(rng: random.Random, bases: Bases, dest: Path) -> Case:
    """A series laid out in another orientation (positions moved with it), or tilted."""
    study = _copy_study(rng, bases, dest)
    files, which = _pick_files(rng, study)
    if rng.random() < 0.7:
        row, col = rng.choice(_orientations())
        label = f"row {row.astype(int).tolist()} col {col.astype(int).tolist()}"
    else:
        a, b = math.radians(rng.uniform(-89, 89)), math.radians(rng.uniform(-89, 89))
        rot = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
        rot = rot @ np.array(
            [[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]]
        )
        row, col = rot @ np.array([0.0, 1.0, 0.0]), rot @ np.array([0.0, 0.0, -1.0])
        label = f"tilted {math.degrees(a):.0f} / {math.degrees(b):.0f} deg"
    normal = np.cross(row, col)

    def turn(ds: Dataset) -> None:
        k = float(ds.get("InstanceNumber") or 0)
        spacing = float(ds.get("SpacingBetweenSlices") or 4.0)
        ds.ImageOrientationPatient = [round(float(v), 6) for v in (*row, *col)]
        ds.ImagePositionPatient = [
            round(float(v), 4) for v in (-100 * row - 100 * col + k * spacing * normal)
        ]

    _edit(files, turn)
    return Case(study, "dicom", f"{which} turned to {label}")


def pixel_values(rng: random.Random, bases: Bases, dest: Path) -> Case:
    study = _copy_study(rng, bases, dest)
    files, which = _pick_files(rng, study)
    what = rng.choice(
        (
            "bits_stored",
            "high_bit",
            "signed",
            "bits_allocated",
            "colour",
            "monochrome1",
            "zeros",
            "constant",
            "noise",
            "palette",
            "float",
        )
    )

    def change(ds: Dataset) -> None:
        arr = ds.pixel_array
        if what == "bits_stored":
            ds[0x00280101] = _raw(0x00280101, "US", struct.pack("<H", rng.choice((0, 17, 32, 1))))
        elif what == "high_bit":
            ds[0x00280102] = _raw(0x00280102, "US", struct.pack("<H", rng.choice((0, 15, 31))))
        elif what == "signed":
            ds.PixelRepresentation = 1
            ds.PixelData = (arr.astype(np.int16) - 2048).tobytes()
        elif what == "bits_allocated":
            ds[0x00280100] = _raw(0x00280100, "US", struct.pack("<H", rng.choice((1, 12, 64, 0))))
        elif what == "colour":
            ds.SamplesPerPixel = 3
            ds.PhotometricInterpretation = "RGB"
            ds.PlanarConfiguration = 0
            ds.PixelData = np.repeat(arr[..., None], 3, -1).astype(np.uint16).tobytes()
        elif what == "monochrome1":
            ds.PhotometricInterpretation = "MONOCHROME1"
        elif what in ("zeros", "constant", "noise"):
            fill = {
                "zeros": np.zeros_like(arr),
                "constant": np.full_like(arr, 777),
                "noise": np.random.default_rng(rng.randrange(2**32))
                .integers(0, 4096, arr.shape)
                .astype(arr.dtype),
            }[what]
            ds.PixelData = fill.tobytes()
        elif what == "palette":
            ds.PhotometricInterpretation = "PALETTE COLOR"
        else:  # float pixel data with NaN / inf, an MR object that should not carry it
            values = arr.astype(np.float32)
            values.flat[:: rng.choice((7, 101))] = rng.choice((np.nan, np.inf, -np.inf, 3e38))
            del ds.PixelData
            ds.FloatPixelData = values.tobytes()
            ds.BitsAllocated = 32

    _edit(files, change)
    return Case(study, "dicom", f"{what} in {which}")


def multiframe(rng: random.Random, bases: Bases, dest: Path) -> Case:
    """A series folded into one multi-frame object (legacy MR Image, or claimed Enhanced MR
    without usable functional groups), with a NumberOfFrames that may lie."""
    study = _copy_study(rng, bases, dest)
    folder = rng.choice(_series_dirs(study))
    files = _files(folder)
    datasets = [pydicom.dcmread(p) for p in files]
    first = datasets[0]
    frames = np.stack([d.pixel_array for d in datasets])
    claim = rng.choice((str(len(files)), "0", "-3", "100000", str(len(files) + 1), "abc", "1"))
    first.NumberOfFrames = claim if claim.lstrip("-").isdigit() else "1"
    if not claim.lstrip("-").isdigit():
        first[0x00280008] = _raw(0x00280008, "IS", claim.encode())
    first.PixelData = frames.tobytes()
    if rng.random() < 0.5:
        first.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"  # Enhanced MR, no functional groups
        first.file_meta.MediaStorageSOPClassUID = first.SOPClassUID
        if rng.random() < 0.5:
            first.PerFrameFunctionalGroupsSequence = [Dataset() for _ in range(rng.choice((0, 2)))]
            first.SharedFunctionalGroupsSequence = [Dataset()]
    for p in files:
        p.unlink()
    first.save_as(folder / "multiframe.dcm", enforce_file_format=False)
    return Case(
        study,
        "dicom",
        f"{folder.name} as one object of {len(files)} frames, "
        f"NumberOfFrames {claim!r}, {first.SOPClassUID}",
    )


def special_files(rng: random.Random, bases: Bases, dest: Path) -> Case:
    study = _copy_study(rng, bases, dest) if rng.random() < 0.6 else dest / "study"
    study.mkdir(exist_ok=True)
    made = []
    for what in rng.sample(
        (
            "fifo",
            "dev_zero",
            "loop",
            "dir_loop",
            "empty",
            "dicm_only",
            "random",
            "dangling",
            "deep",
            "newline_name",
            "many_tiny",
        ),
        rng.randint(1, 3),
    ):
        made.append(what)
        if what == "fifo":
            os.mkfifo(study / "pipe.dcm")
        elif what == "dev_zero":
            os.symlink("/dev/zero", study / "zero.dcm")
        elif what == "loop":
            os.symlink("loop_b", study / "loop_a")
            os.symlink("loop_a", study / "loop_b")
        elif what == "dir_loop":
            os.symlink(".", study / "self")
        elif what == "empty":
            (study / "empty.dcm").write_bytes(b"")
        elif what == "dicm_only":
            (study / "head.dcm").write_bytes(b"\x00" * 128 + b"DICM")
        elif what == "random":
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4096)))
            (study / "noise.dcm").write_bytes(b"\x00" * 128 + b"DICM" * rng.randint(0, 1) + data)
        elif what == "dangling":
            os.symlink("/nonexistent/nothing", study / "gone.dcm")
        elif what == "deep":
            deep = study
            for k in range(60):
                deep = deep / f"d{k}"
            deep.mkdir(parents=True)
            if bases.studies:
                shutil.copy(_files(bases.studies[0])[0], deep / "x.dcm")
        elif what == "newline_name":
            weird = study / "line\nbreak \x1b[31m"
            weird.mkdir()
            shutil.copy(_files(bases.studies[0])[0], weird / "x\n.dcm")
        else:
            tiny = study / "tiny"
            tiny.mkdir()
            for k in range(2000):
                (tiny / f"{k}").write_bytes(b"x")
    if rng.random() < 0.2:  # the study folder itself has a hostile name
        named = dest / rng.choice(("new\nline", "esc\x1b[2J", "tab\tname", " -- leading dash"))
        study.rename(named)
        study = named
    return Case(study, "dicom", "+".join(made))


def empty_input(rng: random.Random, bases: Bases, dest: Path) -> Case:
    what = rng.choice(
        (
            "empty_folder",
            "empty_file",
            "text_file",
            "missing",
            "folder_of_empty",
            "nifti_suffix_junk",
            "png_suffix_dicom",
            "odd_name",
        )
    )
    if what == "odd_name":  # a path that names the study with control characters
        name = rng.choice(("new\nline", "esc\x1b[2Jclear", "cr\rreturn", "sep\u2028x", "bell\x07"))
        (dest / name).mkdir()
        (dest / name / "a.dcm").write_bytes(b"junk")
        return Case(dest / name, "dicom", f"{what} {name!r}")
    if what == "empty_folder":
        (dest / "study").mkdir()
        return Case(dest / "study", "dicom", what)
    if what == "empty_file":
        (dest / "x.dcm").write_bytes(b"")
        return Case(dest / "x.dcm", "file", what)
    if what == "text_file":
        (dest / "x.dcm").write_text("patient: nobody\n" * 10)
        return Case(dest / "x.dcm", "file", what)
    if what == "missing":
        return Case(dest / "not-there", "dicom", what)
    if what == "folder_of_empty":
        (dest / "study").mkdir()
        for k in range(20):
            (dest / "study" / f"{k}.dcm").write_bytes(b"")
        return Case(dest / "study", "dicom", what)
    if what == "nifti_suffix_junk":
        (dest / "x.nii.gz").write_bytes(b"\x1f\x8b" + bytes(rng.randrange(256) for _ in range(99)))
        return Case(dest / "x.nii.gz", "nifti", what)
    shutil.copy(_files(bases.studies[0])[0], dest / "x.png")
    return Case(dest / "x.png", "png", what)


def single_file(rng: random.Random, bases: Bases, dest: Path) -> Case:
    """One DICOM file of a study given on its own (the 2-D path), damaged by another kind."""
    inner = rng.choice(
        (
            truncated_file,
            truncated_pixels,
            bit_flips,
            wrong_vr,
            wrong_length,
            missing_type1,
            absurd_geometry,
            charset,
            pixel_values,
            compressed_corrupt,
            None,
        )
    )
    work = dest / "inner"
    work.mkdir()
    if inner is None:
        study = _copy_study(rng, bases, work)
        note = "intact"
    else:
        case = inner(rng, bases, work)
        study, note = case.target, f"{inner.__name__}: {case.note}"
    files = _files(study) if study.is_dir() else [study]
    if not files:
        return Case(study, "dicom", f"single file: nothing left ({note})")
    chosen = rng.choice(files)
    target = dest / ("image.dcm" if rng.random() < 0.8 else "image")
    shutil.copy(chosen, target)
    shutil.rmtree(work)
    return Case(target, "file", f"single file, {note}")


def png_hostile(rng: random.Random, bases: Bases, dest: Path) -> Case:
    assert bases.png8 is not None and bases.png16 is not None
    import PIL.Image

    with PIL.Image.open(bases.png8) as im:
        img = np.asarray(im)
    what = rng.choice(
        (
            "intact",
            "intact16",
            "huge_ihdr",
            "zero_ihdr",
            "bad_depth",
            "bad_crc",
            "truncated",
            "idat_garbage",
            "text_bomb",
            "iccp_bomb",
            "apng",
            "tiny",
            "constant",
            "rgba",
            "palette",
            "interlaced_claim",
            "big_zero_bomb",
            "jpeg",
            "tiff",
            "wrong_suffix",
            "idat_too_short",
        )
    )
    target = dest / "image.png"
    if what == "intact":
        shutil.copy(bases.png8, target)
    elif what == "intact16":
        shutil.copy(bases.png16, target)
    elif what == "huge_ihdr":
        side = rng.choice((100_000, 8193, 20_000, 0x7FFFFFFF))
        target.write_bytes(_png_bytes(img, ihdr=struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)))
    elif what == "zero_ihdr":
        target.write_bytes(
            _png_bytes(img, ihdr=struct.pack(">IIBBBBB", 0, img.shape[0], 8, 0, 0, 0, 0))
        )
    elif what == "bad_depth":
        depth, colour = rng.choice(((3, 0), (8, 5), (16, 3), (1, 2), (0, 0)))
        target.write_bytes(
            _png_bytes(
                img,
                ihdr=struct.pack(">IIBBBBB", img.shape[1], img.shape[0], depth, colour, 0, 0, 0),
            )
        )
    elif what == "bad_crc":
        data = bytearray(_png_bytes(img))
        data[29] ^= 0xFF  # IHDR's CRC
        target.write_bytes(bytes(data))
    elif what == "truncated":
        data = _png_bytes(img)
        target.write_bytes(data[: rng.randrange(8, len(data))])
    elif what == "idat_garbage":
        target.write_bytes(_png_bytes(img, idat=bytes(rng.randrange(256) for _ in range(500))))
    elif what == "idat_too_short":
        target.write_bytes(_png_bytes(img, idat=zlib.compress(b"\x00" * 100)))
    elif what == "text_bomb":
        text = b"Comment\x00\x00" + zlib.compress(b"A" * (64 << 20), 9)
        target.write_bytes(_png_bytes(img, extra=[_png_chunk(b"zTXt", text)]))
    elif what == "iccp_bomb":
        icc = b"icc\x00\x00" + zlib.compress(b"\x00" * (64 << 20), 9)
        target.write_bytes(_png_bytes(img, extra=[_png_chunk(b"iCCP", icc)]))
    elif what == "apng":
        actl = _png_chunk(b"acTL", struct.pack(">II", rng.choice((2, 10**6)), 0))
        target.write_bytes(_png_bytes(img, extra=[actl]))
    elif what == "tiny":
        target.write_bytes(_png_bytes(img[: rng.choice((1, 8, 31)), : rng.choice((1, 500))]))
    elif what == "constant":
        target.write_bytes(_png_bytes(np.full_like(img, 128)))
    elif what in ("rgba", "palette", "jpeg", "tiff"):
        pil = PIL.Image.fromarray(img)
        pil = {"rgba": pil.convert("RGBA"), "palette": pil.convert("P")}.get(what, pil)
        if what in ("jpeg", "tiff"):
            target = dest / f"image.{'jpg' if what == 'jpeg' else 'tif'}"
            pil.save(target, format="JPEG" if what == "jpeg" else "TIFF")
            if rng.random() < 0.5:
                data = target.read_bytes()
                target.write_bytes(data[: rng.randrange(16, len(data))])
        else:
            pil.save(target, format="PNG")
    elif what == "interlaced_claim":
        target.write_bytes(
            _png_bytes(img, ihdr=struct.pack(">IIBBBBB", img.shape[1], img.shape[0], 8, 0, 0, 0, 1))
        )
    elif what == "big_zero_bomb":
        side = rng.choice((8192, 6000))
        raw = zlib.compressobj(9)
        row = b"\x00" * (side + 1)
        idat = b"".join(raw.compress(row) for _ in range(side)) + raw.flush()
        target.write_bytes(
            _png_bytes(img, ihdr=struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0), idat=idat)
        )
    else:  # a PNG under another suffix the 2-D path reads
        target = dest / rng.choice(("image.bmp", "image.jpeg", "image.TIFF"))
        shutil.copy(bases.png8, target)
    return Case(target, "png", what)


# NIfTI-1 header offsets (nifti1.h): dim, datatype, bitpix, pixdim, vox_offset, scl_slope,
# qform_code, sform_code, quatern_b.., srow_x.., magic.
_NII = {
    "dim": 40,
    "datatype": 70,
    "bitpix": 72,
    "pixdim": 76,
    "vox_offset": 108,
    "scl_slope": 112,
    "qform_code": 252,
    "sform_code": 254,
    "quatern": 256,
    "srow": 280,
    "magic": 344,
    "sizeof_hdr": 0,
}


def nifti_hostile(rng: random.Random, bases: Bases, dest: Path) -> Case:
    assert bases.nifti is not None
    data = bytearray(gzip.decompress(bases.nifti.read_bytes()))
    what = rng.choice(
        (
            "intact",
            "dim0",
            "dims_huge",
            "dims_zero",
            "dims_negative",
            "datatype",
            "bitpix",
            "pixdim",
            "vox_offset",
            "scl_slope",
            "qform_nan",
            "sform_zero",
            "magic",
            "sizeof_hdr",
            "truncated_data",
            "truncated_gz",
            "four_d",
            "two_d",
            "nan_voxels",
            "axial",
            "gz_bomb",
            "uncompressed_short",
        )
    )
    gz = True
    if what == "dim0":
        struct.pack_into("<h", data, _NII["dim"], rng.choice((0, 8, -1, 7)))
    elif what == "dims_huge":
        struct.pack_into("<h", data, _NII["dim"] + 2 * rng.randint(1, 3), 32767)
    elif what == "dims_zero":
        struct.pack_into("<h", data, _NII["dim"] + 2 * rng.randint(1, 3), 0)
    elif what == "dims_negative":
        struct.pack_into("<h", data, _NII["dim"] + 2 * rng.randint(1, 3), -5)
    elif what == "datatype":
        struct.pack_into("<h", data, _NII["datatype"], rng.choice((0, 1, 128, 1792, 2304, 9999)))
    elif what == "bitpix":
        struct.pack_into("<h", data, _NII["bitpix"], rng.choice((0, 7, 64)))
    elif what == "pixdim":
        struct.pack_into(
            "<f",
            data,
            _NII["pixdim"] + 4 * rng.randint(1, 3),
            rng.choice((0.0, -1.0, math.nan, math.inf, 1e30)),
        )
        struct.pack_into("<h", data, _NII["sform_code"], 0)  # so pixdim / qform is used
    elif what == "vox_offset":
        struct.pack_into(
            "<f", data, _NII["vox_offset"], rng.choice((0.0, 10.0, 1e9, -352.0, math.nan))
        )
    elif what == "scl_slope":
        struct.pack_into(
            "<f", data, _NII["scl_slope"], rng.choice((math.nan, math.inf, 0.0, -1e38, 1e38))
        )
    elif what == "qform_nan":
        struct.pack_into("<h", data, _NII["sform_code"], 0)
        struct.pack_into("<h", data, _NII["qform_code"], 1)
        struct.pack_into("<fff", data, _NII["quatern"], math.nan, 2.0, -7.0)
    elif what == "sform_zero":
        struct.pack_into("<12f", data, _NII["srow"], *([0.0] * 12))
    elif what == "magic":
        data[_NII["magic"] : _NII["magic"] + 4] = rng.choice(
            (b"ni1\x00", b"\x00\x00\x00\x00", b"n+2\x00")
        )
    elif what == "sizeof_hdr":
        struct.pack_into("<i", data, 0, rng.choice((0, 540, 1 << 24)))
    elif what == "truncated_data":
        del data[rng.randrange(352, len(data)) :]
    elif what == "four_d":
        struct.pack_into("<h", data, _NII["dim"], 4)
        struct.pack_into("<h", data, _NII["dim"] + 8, rng.choice((2, 1000)))
    elif what == "two_d":
        struct.pack_into("<h", data, _NII["dim"], 2)
    elif what == "nan_voxels":
        import nibabel as nib

        img = nib.load(str(bases.nifti))
        vol = np.asanyarray(img.dataobj).astype(np.float32)
        vol.flat[:: rng.choice((3, 1000))] = rng.choice((np.nan, np.inf))
        out = dest / "volume.nii.gz"
        nib.save(nib.Nifti1Image(vol, img.affine), str(out))
        return Case(out, "nifti", what)
    elif what == "axial":
        struct.pack_into("<12f", data, _NII["srow"], 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0)
    elif what == "gz_bomb":
        out = dest / "volume.nii.gz"
        shutil.copy(bases.root / "bomb.nii.gz", out)
        return Case(out, "nifti", what)
    if what == "uncompressed_short":
        gz = False
        del data[rng.randrange(352, len(data)) :]
    if what == "truncated_gz":
        packed = gzip.compress(bytes(data), 1)
        out = dest / "volume.nii.gz"
        out.write_bytes(packed[: rng.randrange(10, len(packed))])
        return Case(out, "nifti", what)
    out = dest / ("volume.nii.gz" if gz else "volume.nii")
    out.write_bytes(gzip.compress(bytes(data), 1) if gz else bytes(data))
    return Case(out, "nifti", what)


def worklist(rng: random.Random, bases: Bases, dest: Path) -> Case:
    """A worklist (CSV or JSONL) with bad rows; studies it names are small hostile folders, some
    of them outside the worklist's folder (relative paths that climb out, absolute paths)."""
    folder = dest / "lists"
    folder.mkdir()
    outside = dest / "outside"
    outside.mkdir()
    (outside / "junk").mkdir()
    (outside / "junk" / "a.dcm").write_bytes(b"not dicom")
    (folder / "inside").mkdir()
    (folder / "inside" / "b.dcm").write_bytes(b"\x00" * 128 + b"DICM")
    rows: list[object] = []
    for _ in range(rng.randint(1, 6)):
        rows.append(
            rng.choice(
                (
                    "inside",
                    "../outside/junk",
                    str(outside / "junk"),
                    "../../../../../../nonexistent",
                    "/nonexistent/study",
                    "",
                    " ",
                    "~nobody/x",
                    "a\x00b",
                    "x" * 5000,
                    "line\nbreak",
                    "dicomweb://",
                    "dicomweb://host/studies/",
                    "http://example.invalid/x",
                    "../lists",
                    "inside\\..\\..\\outside",
                    "💥/study",
                    "../outside/fifo",
                )
            )
        )
    if "../outside/fifo" in rows:
        os.mkfifo(outside / "fifo")
    fmt = rng.choice(("csv", "csv", "jsonl", "json_bad", "csv_bad"))
    priority = rng.choice(
        (
            "",
            "stat",
            "urgent",
            "1e999",
            "-1e999",
            "nan",
            "999999999999999999999",
            "routine",
            "x",
            "inf",
        )
    )
    if fmt == "csv":
        header = rng.choice(
            (
                "study,accession,priority,indication",
                "STUDY",
                "path,priority",
                "study,study",
                "accession",
                "\ufeffstudy",
            )
        )
        lines = [header] + [
            f'"{str(r).replace(chr(34), chr(34) * 2)}",A{k},{priority},"x"'
            for k, r in enumerate(rows)
        ]
        text = "\n".join(lines)
        target = folder / "worklist.csv"
        target.write_bytes(text.encode("utf-8", "surrogatepass"))
    elif fmt == "jsonl":
        recs = []
        for k, r in enumerate(rows):
            rec = rng.choice(
                (
                    {"study": r, "priority": priority},
                    {"study": r, "seg": r},
                    {"Study": r, "accession": k},
                    [r],
                    r,
                    {"study": {"nested": r}},
                    {"study": None},
                    {"study": r, "priority": [1, 2]},
                )
            )
            recs.append(json.dumps(rec))
        target = folder / "worklist.jsonl"
        target.write_text("\n".join(recs))
    elif fmt == "json_bad":
        target = folder / "worklist.jsonl"
        target.write_text(
            rng.choice(
                (
                    "{",
                    "[" * 100_000,
                    '{"study": "\\ud800"}',
                    "\x00",
                    '{"study": 1e999}',
                    "null\n[]\n",
                )
            )
        )
    else:
        target = folder / "worklist.csv"
        target.write_bytes(
            rng.choice(
                (
                    b"\xff\xfe\x00s",
                    b'study\n"unclosed',
                    b"study\x00\nx\x00",
                    b"study\n" + b"a," * 100_000,
                    b"",
                )
            )
        )
    return Case(target, "worklist", f"{fmt}, priority {priority!r}, rows {rows!r}"[:300])


# Each kind with its weight in the draw (worklists start batch workers: kept rarer).
KINDS: dict[str, tuple[Kind, int]] = {
    "truncated_file": (truncated_file, 6),
    "truncated_pixels": (truncated_pixels, 5),
    "bit_flips": (bit_flips, 6),
    "wrong_vr": (wrong_vr, 6),
    "wrong_length": (wrong_length, 6),
    "missing_type1": (missing_type1, 6),
    "absurd_geometry": (absurd_geometry, 6),
    "compressed_corrupt": (compressed_corrupt, 6),
    "deflate_bomb": (deflate_bomb, 2),
    "mixed_studies": (mixed_studies, 3),
    "non_image_sop": (non_image_sop, 3),
    "charset": (charset, 5),
    "duplicate_uids": (duplicate_uids, 4),
    "orientation": (orientation, 4),
    "pixel_values": (pixel_values, 4),
    "multiframe": (multiframe, 3),
    "special_files": (special_files, 3),
    "empty_input": (empty_input, 2),
    "single_file": (single_file, 4),
    "png_hostile": (png_hostile, 4),
    "nifti_hostile": (nifti_hostile, 5),
    "worklist": (worklist, 1),
}


def draw_kind(rng: random.Random, kinds: list[str]) -> str:
    weights = [KINDS[k][1] for k in kinds]
    return rng.choices(kinds, weights=weights)[0]
