"""Series classification: imaging plane from the orientation, weighting from the acquisition.

The physics (TR, TE, TI, scanning sequence) decides; the series description is only a hint used
when the physics is missing or ambiguous, because Siemens (``t2_tse_sag``), GE (``SAG T2 FSE``)
and Philips (``T2W_TSE``) name the same sequence differently and sites rename freely.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

import numpy as np

from reporter.contracts.study import Plane, Weighting

# A normal within this angle of a patient axis names the plane; beyond it the slice is oblique.
# Lumbar axial blocks are angled along each disc, commonly 20-35 degrees, and must stay "axial".
OBLIQUE_TOLERANCE_DEG = 40.0

_PLANE_OF_AXIS: tuple[Plane, Plane, Plane] = ("sagittal", "coronal", "axial")  # LPS x, y, z


def slice_normal(iop: np.ndarray) -> np.ndarray:
    """Unit normal of an image plane: row direction x column direction (DICOM IOP order)."""
    n = np.cross(iop[:3], iop[3:])
    return n / np.linalg.norm(n)


def classify_plane(iop: np.ndarray, tolerance_deg: float = OBLIQUE_TOLERANCE_DEG) -> Plane:
    """Sagittal / coronal / axial when the normal lies within `tolerance_deg` of x / y / z (LPS)."""
    n = np.abs(slice_normal(np.asarray(iop, dtype=float)))
    axis = int(np.argmax(n))
    angle = math.degrees(math.acos(min(1.0, float(n[axis]))))
    return _PLANE_OF_AXIS[axis] if angle <= tolerance_deg else "oblique"


# Hints from the description. Order matters: STIR before T2 ("T2 STIR"); T1 and T2 must not be
# part of a longer number ("T12", "4T1").
_HINTS: tuple[tuple[Weighting, re.Pattern[str]], ...] = (
    ("STIR", re.compile(r"STIR|TIRM|T2[ _-]?IR\b|\bIR[ _-]?T2", re.IGNORECASE)),
    ("T1", re.compile(r"(?<!\d)T1(?!\d)", re.IGNORECASE)),  # Philips writes "sT1W_TSE"
    ("T2", re.compile(r"(?<!\d)T2(?![\d*])", re.IGNORECASE)),
    ("other", re.compile(r"(?<![A-Z])(PD|DWI|DIFF|ADC|T2\*|MEDIC|SWI|FLASH|DIXON)", re.IGNORECASE)),
)


def weighting_hint(description: str) -> Weighting | None:
    for weighting, pattern in _HINTS:
        if pattern.search(description or ""):
            return weighting
    return None


def weighting_from_physics(
    tr: float | None,
    te: float | None,
    ti: float | None,
    sequence: Iterable[str] = (),
    flip_angle: float | None = None,
    acquisition_contrast: str | None = None,
) -> Weighting | None:
    """T1 / T2 / STIR / other from the acquisition, or None when the physics does not say.

    Rules (times in ms, valid at 1.5 T and 3 T):
    - Enhanced MR `AcquisitionContrast` T1 / T2 / STIR is taken as written.
    - Inversion recovery (IR in ScanningSequence, or a TI): TI <= 300 is STIR (fat nulled);
      TI 300-1500 with TE < 40 is T1 (T1 FLAIR, the usual GE/Siemens spine T1);
      TI >= 1500 with TE >= 60 is T2 (T2 FLAIR); anything else is "other".
    - Otherwise: TE < 40 with TR < 1200 is T1 (spin echo or spoiled gradient echo), except a
      gradient echo with a small flip angle and TE >= 10 (T2*), which is "other";
      TE >= 60 with TR >= 800 is T2 (2D FSE and 3D SPACE/CUBE/VISTA); TE < 40 with TR >= 1500
      is proton density ("other"). The remaining corner (40 <= TE < 60) is ambiguous: None.
    """
    contrast = (acquisition_contrast or "").upper()
    if contrast in ("T1", "T2", "STIR"):
        return contrast  # type: ignore[return-value]
    seq = {s.upper() for s in sequence}
    inversion = "IR" in seq or (ti is not None and ti > 0)
    if inversion and ti is not None and ti > 0:
        if ti <= 300:
            return "STIR"
        if ti < 1500 and te is not None and te < 40:
            return "T1"
        if ti >= 1500 and te is not None and te >= 60:
            return "T2"
        return "other"
    if tr is None or te is None:
        return None
    if te < 40 and tr < 1200:
        if "GR" in seq and flip_angle is not None and flip_angle <= 30 and te >= 10:
            return "other"
        return "T1"
    if te >= 60 and tr >= 800:
        return "T2"
    if te < 40 and tr >= 1500:
        return "other"
    return None


def classify_weighting(
    tr: float | None,
    te: float | None,
    ti: float | None,
    sequence: Iterable[str] = (),
    description: str = "",
    flip_angle: float | None = None,
    acquisition_contrast: str | None = None,
) -> tuple[Weighting, str | None]:
    """The weighting and, when physics and description disagree, a sentence saying so."""
    physics = weighting_from_physics(tr, te, ti, sequence, flip_angle, acquisition_contrast)
    hint = weighting_hint(description)
    if physics is None:
        return (hint or "other"), None
    note = None
    if hint is not None and hint != physics and hint != "other":
        note = (
            f"description {description!r} suggests {hint} but TR/TE/TI "
            f"({_fmt(tr)}/{_fmt(te)}/{_fmt(ti)} ms) say {physics}; the acquisition was trusted"
        )
    return physics, note


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:g}"


_LOCALIZER_TEXT = re.compile(
    r"\bLOC(ALI[SZ]ER)?\b|SCOUT|SURVEY|3[ -]?PLANE|TRI[ -]?PILOT", re.IGNORECASE
)
# A localizer name alone counts only for a short series: a name is a hint, not proof.
LOCALIZER_NAME_MAX_IMAGES = 30


def looks_like_localizer(image_type: tuple[str, ...], description: str, n_images: int) -> bool:
    """ImageType LOCALIZER (all vendors), or a localizer name (Philips "Survey", GE "3-plane")
    on a series of at most LOCALIZER_NAME_MAX_IMAGES images."""
    if "LOCALIZER" in image_type:
        return True
    return n_images <= LOCALIZER_NAME_MAX_IMAGES and bool(_LOCALIZER_TEXT.search(description))


def is_derived(image_type: tuple[str, ...]) -> bool:
    """Reformats, MIPs, composed whole-spine images: not acquired slices."""
    return bool(image_type) and image_type[0] == "DERIVED"
