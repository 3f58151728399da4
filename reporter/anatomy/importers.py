"""Import label maps made by other tools (NIfTI, DICOM SEG) into this package's convention.

A label convention is a data file in `reporter/anatomy/conventions/` (or a JSON map beside the
label file, like `vb3_01_seg.json` of the lumbar3d set): `labels` maps a source value to a
structure name (`"L4"`, `"L4-L5"`, `"sacrum"`, `"canal"`, ...); `ordinal` gives value ranges of
vertebrae and discs numbered from the caudal end (SPIDER), whose names `reporter.anatomy.naming`
assigns. The imported map is resampled into the geometry of the study's reference series by
nearest neighbour through the two affines (label values must never be interpolated).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from reporter.contracts import labels as L
from reporter.contracts.findings import LEVELS, VERTEBRAE
from reporter.contracts.study import Series, Study
from reporter.errors import InputDataError, InputMissingError
from reporter.geometry import nifti_to_lps_affine

# Placeholders for structures numbered from the caudal end, before naming resolves them.
ORDINAL_VERTEBRA_BASE = 1000
ORDINAL_DISC_BASE = 2000

_TISSUE_BY_NAME = {name: value for value, name in L.TISSUE_NAMES.items()}
_TISSUE_ALIASES = {
    "spinal_canal": "canal",
    "thecal_sac": "canal",
    "dural_sac": "canal",
    "csf": "canal",
    "spinal_cord": "cord",
    "conus": "cord",
    "neural_foramen_left": "foramen_left",
    "neural_foramen_right": "foramen_right",
    "nerve_root_left": "root_left",
    "nerve_root_right": "root_right",
}
_VERTEBRA_BY_LOWER = {v.lower(): v for v in VERTEBRAE}
_LEVEL_BY_LOWER = {lv.lower(): lv for lv in LEVELS}
# Names outside this package's range (cervical, upper thoracic) are valid but dropped.
_OUT_OF_RANGE = re.compile(r"^(c\d|t[1-8])(-|$)")


@dataclass(frozen=True)
class Convention:
    """A label convention: which source value means which structure."""

    name: str
    description: str = ""
    source: str = ""
    labels: dict[int, str] = field(default_factory=dict)  # value -> canonical structure name
    ordinal_vertebrae: tuple[int, int] | None = None
    ordinal_partial_vertebrae: tuple[int, int] | None = None
    ordinal_discs: tuple[int, int] | None = None
    signature: tuple[int, ...] = ()
    ignore_unknown: bool = False
    distinctive: tuple[int, ...] = ()  # values only this convention uses (for detection)
    dropped: frozenset[int] = frozenset()  # real structures outside the lumbar range (C1, T4...)
    builtin: bool = False  # the package's own convention: values pass through

    @property
    def names_given(self) -> bool:
        """True when the map names vertebrae/discs itself (no ordinal numbering to resolve)."""
        return self.ordinal_vertebrae is None and self.ordinal_discs is None


def _strip_prefix(text: str) -> str:
    t = text.strip().lower().replace(" ", "_").replace("/", "-")
    for prefix in ("vertebrae_", "vertebra_", "intervertebral_disc_", "disc_", "ivd_"):
        if t.startswith(prefix):
            t = t[len(prefix) :]
            break
    return t.replace("_", "-") if re.match(r"^[ctls]\d+_[ctls]\d*$", t) else t


def canonical_name(text: str) -> str | None:
    """A structure name in this package's vocabulary, or None when it has no place here
    (cervical levels, organs). Raises nothing: unknown names are the caller's decision."""
    t = _strip_prefix(text)
    if t in ("sacrum", "s", "s1"):
        return "S1"
    if t.endswith("-s"):
        t += "1"
    if t in _VERTEBRA_BY_LOWER:
        return _VERTEBRA_BY_LOWER[t]
    if t in _LEVEL_BY_LOWER:
        return _LEVEL_BY_LOWER[t]
    t = _TISSUE_ALIASES.get(t, t)
    if t in _TISSUE_BY_NAME:
        return t
    return None


def name_to_label(name: str) -> int:
    """Our label value for a canonical structure name."""
    if name in VERTEBRAE:
        return L.vertebra_label(name)
    if name in LEVELS:
        return L.disc_label(name)
    return _TISSUE_BY_NAME[name]


def _range(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    lo, hi = value
    return int(lo), int(hi)


def convention_from_dict(data: dict[str, Any], default_name: str = "json map") -> Convention:
    """Build a convention from its JSON form; names are checked here, with a sentence on error."""
    if not isinstance(data, dict) or "labels" not in data:
        raise InputDataError(f"label map {default_name!r}: a convention needs a 'labels' object")
    name = str(data.get("name", default_name))
    if data["labels"] == "builtin":
        return Convention(
            name=name,
            description=data.get("description", ""),
            source=data.get("source", ""),
            labels={v: L.label_name(v) for v in L.ALL_LABELS},
            builtin=True,
        )
    mapped: dict[int, str] = {}
    dropped: set[int] = set()
    for key, text in data["labels"].items():
        try:
            value = int(key)
        except ValueError:
            raise InputDataError(
                f"label map {name!r}: label value {key!r} is not an integer"
            ) from None
        canon = canonical_name(str(text))
        if canon is None:
            if _OUT_OF_RANGE.match(_strip_prefix(str(text))) or data.get("ignore_unknown"):
                dropped.add(value)
                continue  # a real structure outside the lumbar range: dropped on purpose
            raise InputDataError(
                f"label map {name!r}: label {value} is named {text!r}, which is not a vertebra, "
                "disc level or tissue this package knows"
            )
        mapped[value] = canon
    ordinal = data.get("ordinal") or {}
    return Convention(
        name=name,
        description=str(data.get("description", "")),
        source=str(data.get("source", "")),
        labels=mapped,
        ordinal_vertebrae=_range(ordinal.get("vertebrae")),
        ordinal_partial_vertebrae=_range(ordinal.get("partial_vertebrae")),
        ordinal_discs=_range(ordinal.get("discs")),
        signature=tuple(int(v) for v in data.get("signature", ())),
        distinctive=tuple(int(v) for v in data.get("distinctive", ())),
        ignore_unknown=bool(data.get("ignore_unknown", False)),
        dropped=frozenset(dropped),
    )


@cache
def builtin_conventions() -> dict[str, Convention]:
    """The conventions shipped as data files, by name."""
    out: dict[str, Convention] = {}
    folder = resources.files("reporter.anatomy") / "conventions"
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".json"):
            data = json.loads(entry.read_text(encoding="utf-8"))
            conv = convention_from_dict(data, entry.name[:-5])
            out[conv.name] = conv
    return out


def load_convention(name_or_path: str | Path) -> Convention:
    """A shipped convention by name (`spider`, `totalspineseg`, ...) or a JSON map file."""
    conventions = builtin_conventions()
    if str(name_or_path) in conventions:
        return conventions[str(name_or_path)]
    path = Path(name_or_path)
    if not path.is_file():
        raise InputMissingError(
            f"label convention {str(name_or_path)!r} is neither a known convention "
            f"({', '.join(conventions)}) nor a JSON file"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputDataError(f"label convention {path.name}: not readable JSON ({exc})") from None
    return convention_from_dict(data, path.name)


def detect_convention(values: set[int]) -> Convention:
    """Guess the convention of a label map from the values it holds (no sidecar, no names).

    Order matters: value sets overlap (our vertebrae 20-30 and TotalSegmentator's 25-35), so a
    convention is picked only when every value has a meaning in it.
    """
    values = {v for v in values if v != 0}
    conv = builtin_conventions()
    if not values:
        raise InputDataError("the label map is empty (only background)")

    def explains(c: Convention) -> bool:
        if c.ignore_unknown:  # organ labels and the like are expected: its landmarks decide
            return len(values & set(c.signature)) >= 2 and bool(values & set(c.distinctive))
        known = set(c.labels) | set(c.dropped)
        for rng in (c.ordinal_vertebrae, c.ordinal_partial_vertebrae, c.ordinal_discs):
            if rng is not None:
                known |= set(range(rng[0], rng[1] + 1))
        return values <= known

    # Our own maps always hold vertebrae (20-30); TotalSpineSeg's lumbar maps hold values past
    # our range (discs 91-95, 100); SPIDER's hold 201+; TotalSegmentator's vertebrae reach 31+.
    if values & set(range(L.VERTEBRA_BASE, L.VERTEBRA_BASE + len(VERTEBRAE))) and explains(
        conv["spine_reporter"]
    ):
        return conv["spine_reporter"]
    for name in ("totalspineseg", "spider", "totalsegmentator"):
        if explains(conv[name]):
            return conv[name]
    raise InputDataError(
        f"cannot tell the label convention of a map holding values {sorted(values)[:12]}; "
        "name it (--seg-convention spider|totalspineseg|totalsegmentator|spine_reporter|FILE.json)"
    )


# --- reading label files --------------------------------------------------------------------------
@dataclass
class LabelVolume:
    """A label array with its (slice,row,col)->LPS affine and, where the file says so, names."""

    array: np.ndarray
    affine: np.ndarray
    source_name: str
    segment_names: dict[int, str] = field(default_factory=dict)  # DICOM SEG segment labels


def _as_labels(data: np.ndarray, name: str) -> np.ndarray:
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputDataError(f"label map {name}: expected a 3-D volume, got shape {data.shape}")
    if not np.issubdtype(data.dtype, np.integer):
        rounded = np.rint(data)
        if not np.allclose(rounded, data, atol=1e-3):
            raise InputDataError(f"label map {name}: holds non-integer values (not a label map)")
        data = rounded
    if data.min() < 0:
        raise InputDataError(f"label map {name}: holds negative label values")
    return data.astype(np.int32)


def read_nifti_labels(path: Path) -> LabelVolume:
    import nibabel as nib

    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types for damaged files
        raise InputDataError(f"label map {path.name}: not a readable NIfTI file ({exc})") from None
    return LabelVolume(_as_labels(data, path.name), nifti_to_lps_affine(img.affine), path.name)


def read_dicom_seg(path: Path) -> LabelVolume:
    """A DICOM Segmentation (binary or fractional) as one label volume, values = segment numbers."""
    import highdicom as hd

    try:
        seg = hd.seg.segread(str(path))
    except Exception as exc:
        raise InputDataError(f"{path.name}: not a readable DICOM SEG ({exc})") from None
    try:
        vol = seg.get_volume(combine_segments=True, relabel=False)
    except Exception as exc:
        raise InputDataError(
            f"{path.name}: the segmentation frames do not form one regular volume ({exc})"
        ) from None
    if vol is None:
        raise InputDataError(f"{path.name}: the segmentation holds no frames")
    names = {
        int(item.SegmentNumber): str(getattr(item, "SegmentLabel", ""))
        for item in seg.SegmentSequence
    }
    array = np.asarray(vol.array)
    return LabelVolume(_as_labels(array, path.name), np.asarray(vol.affine), path.name, names)


def read_label_file(path: Path) -> LabelVolume:
    if not path.exists():
        raise InputMissingError(f"label map {str(path)!r} does not exist")
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return read_nifti_labels(path)
    if name.endswith(".dcm") or _is_dicom(path):
        return read_dicom_seg(path)
    raise InputDataError(
        f"label map {path.name}: expected a NIfTI (.nii/.nii.gz) or DICOM SEG file"
    )


def _is_dicom(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def sidecar_json(path: Path) -> Path | None:
    """`x_seg.nii.gz` -> `x_seg.json` when it exists (the lumbar3d layout)."""
    name = path.name
    for ext in (".nii.gz", ".nii", ".dcm"):
        if name.lower().endswith(ext):
            candidate = path.with_name(name[: -len(ext)] + ".json")
            return candidate if candidate.is_file() else None
    return None


# --- translating into our convention --------------------------------------------------------------
def translate(volume: LabelVolume, convention: Convention | None) -> tuple[np.ndarray, str]:
    """Map source values to our labels. Ordinal structures get placeholder values
    (ORDINAL_VERTEBRA_BASE + n, ORDINAL_DISC_BASE + n; n = 1 at the caudal end) that
    `reporter.anatomy.naming` resolves. Returns the array and the convention's name."""
    src = volume.array
    present = {int(v) for v in np.unique(src)} - {0}
    if convention is None and volume.segment_names:
        mapped = {}
        for number, text in volume.segment_names.items():
            canon = canonical_name(text)
            if canon is not None:
                mapped[number] = canon
        if not mapped:
            raise InputDataError(
                f"{volume.source_name}: none of its segment labels names a vertebra, disc or "
                f"tissue ({', '.join(sorted(set(volume.segment_names.values()))[:6])})"
            )
        convention = Convention(name="DICOM SEG segment labels", labels=mapped, ignore_unknown=True)
    if convention is None:
        convention = detect_convention(present)
    lut_size = max(present | {0}) + 1
    lut = np.zeros(lut_size, dtype=np.int32)
    unknown: list[int] = []
    for value in present:
        if convention.builtin:
            if value not in L.ALL_LABELS:
                unknown.append(value)
            lut[value] = value if value in L.ALL_LABELS else 0
        elif value in convention.labels:
            lut[value] = name_to_label(convention.labels[value])
        elif (n := _ordinal(value, convention)) is not None:
            lut[value] = ORDINAL_VERTEBRA_BASE + n
        elif (rng := convention.ordinal_discs) and rng[0] <= value <= rng[1]:
            lut[value] = ORDINAL_DISC_BASE + value - rng[0] + 1
        elif value not in convention.dropped:
            unknown.append(value)
    # A value the convention does not define may be a structure out of our range (ignored) or a
    # sign the wrong convention was picked: refuse unless the convention says to ignore extras.
    if unknown and not convention.ignore_unknown:
        raise InputDataError(
            f"{volume.source_name}: label values {sorted(unknown)[:12]} have no meaning in the "
            f"{convention.name!r} convention"
        )
    return lut[src], convention.name


# --- resampling -----------------------------------------------------------------------------------
def _ordinal(value: int, convention: Convention) -> int | None:
    """Position from the caudal end (1 = lowest) of a numbered vertebra, fully or partly seen."""
    for rng in (convention.ordinal_vertebrae, convention.ordinal_partial_vertebrae):
        if rng is not None and rng[0] <= value <= rng[1]:
            return value - rng[0] + 1
    return None


def resample_nearest(
    src: np.ndarray,
    src_affine: np.ndarray,
    dst_shape: tuple[int, int, int],
    dst_affine: np.ndarray,
) -> np.ndarray:
    """Labels of `src` at the voxel centres of the destination grid (nearest neighbour; voxels
    outside the source volume become background). Affines map (k, j, i, 1) to LPS mm."""
    to_src = np.linalg.inv(np.asarray(src_affine, float)) @ np.asarray(dst_affine, float)
    out = np.zeros(dst_shape, dtype=src.dtype)
    if np.allclose(to_src, np.eye(4), atol=1e-4) and tuple(src.shape) == tuple(dst_shape):
        return src.copy()
    jj, ii = np.meshgrid(np.arange(dst_shape[1]), np.arange(dst_shape[2]), indexing="ij")
    plane = np.stack([jj.ravel(), ii.ravel()], axis=1).astype(float)
    lin = to_src[:3, 1:3] @ plane.T  # (3, n) row/column contribution, shared by all slices
    for k in range(dst_shape[0]):  # one destination slice at a time keeps memory flat
        pos = lin + (to_src[:3, 0] * k + to_src[:3, 3])[:, None]
        idx = np.rint(pos).astype(np.int64)
        ok = np.all((idx >= 0) & (idx < np.array(src.shape)[:, None]), axis=0)
        values = np.zeros(idx.shape[1], dtype=src.dtype)
        values[ok] = src[idx[0, ok], idx[1, ok], idx[2, ok]]
        out[k] = values.reshape(dst_shape[1], dst_shape[2])
    return out


def reference_series(study: Study) -> Series:
    """The grid an Anatomy lives on: sagittal T2, else sagittal T1/STIR, else the first series."""
    for role in ("sag_t2", "sag_t1", "sag_stir"):
        s = study.get(role)  # type: ignore[arg-type]
        if s is not None:
            return s
    if not study.series:
        raise InputDataError("the study has no image series to place a label map on")
    sagittal = [s for s in study.series if s.plane == "sagittal"]
    return (sagittal or study.series)[0]


def stack_key(series: Series) -> str:
    return f"{series.series_uid}#{series.stack_index}"
