"""A single 2-D sagittal image (PNG/JPEG/TIFF, or a single-frame DICOM) -> `Study`.

NOTE FOR reporter.ingest.load_study (foundation): dispatch a path whose suffix is in
`IMAGE2D_SUFFIXES`, or a single-frame DICOM *file* with no 3-D neighbours, to
``load_image2d(path) -> Study``. It raises InputMissingError / InputDataError like the rest of
ingest.

What such an image lacks, and how it is made up for (all of it recorded in
``Study.input_notes[series_uid]`` and summarised in ``Study.warnings`` so the report can say it):

* **Orientation** is detected from the image content, never assumed: OrientNet
  (reporter.ingest.image2d_nets) picks one of the eight flips/rotations; the image is turned to the
  standard display (superior at the top, anterior at the left) before anything else sees it.
* **Pixel spacing**, when the file has none (PNG), is estimated from anatomy: DiscNet finds the
  five lumbar discs, and the median distance between neighbouring disc centres is set equal to
  `DISC_STEP_MM`, the median lumbar disc-to-disc distance measured on SPIDER training images with
  known spacing (scripts/baselines_spider.py prints it). A DICOM file's PixelSpacing wins.
* **Weighting** (T1/T2) comes from the caller, the DICOM description, or OrientNet's second head.
* What one mid-sagittal slice cannot show (foramina, subarticular recesses, axial findings, Modic
  typing without both T1 and T2) is listed by `reporter.ingest.assessability.unassessable_fields`.

Geometry of the Series built: pixels (1, rows, cols) in the standard display; rows run superior
-> inferior (-z in LPS), columns anterior -> posterior (+y), the slice normal is +x (left); the
slice thickness is unknown and set to `NOMINAL_THICKNESS_MM` (noted).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reporter.contracts.anatomy import Anatomy
from reporter.contracts.study import Series, Study
from reporter.errors import InputDataError, ModelFileError
from reporter.ingest.image2d_nets import (
    DISC_LEVELS,
    DISC_SIZE,
    ORIENT_SIZE,
    WEIGHTINGS,
    DiscNet,
    OrientNet,
    decode_chain,
    describe_orientation,
    fit_square,
    normalize,
    undo_orientation,
)
from reporter.ingest.image2d_read import IMAGE2D_SUFFIXES, read_image2d
from reporter.ingest.image2d_shapes import named_labels, segment_classes
from reporter.resources import weights_dir

# Discs above L1-L2 that the 2-D path names, nearest first (counted up from L5-S1).
CRANIAL_LEVELS: tuple[str, ...] = ("T12-L1", "T11-T12", "T10-T11", "T9-T10")
# Median centre-to-centre distance of neighbouring lumbar discs (L1-L2 .. L5-S1), mm, measured
# on SPIDER training patients with the scanner's pixel spacing (scripts/baselines_spider.py).
DISC_STEP_MM = 37.3
# Used only when no disc row can be trusted: a typical sagittal lumbar field of view.
FALLBACK_FOV_MM = 300.0
NOMINAL_THICKNESS_MM = 4.0
# Below these, a detection is reported but not used to set the spacing.
MIN_DISC_SCORE = 0.3
MAX_STEP_RATIO = 1.6


def _weights(name: str) -> Path:
    path = weights_dir() / "image2d" / f"{name}.safetensors"
    if not path.is_file():
        raise ModelFileError(f"the 2-D input network weights are missing: {path}")
    return path


@lru_cache(maxsize=1)
def _nets() -> tuple[OrientNet, DiscNet]:
    from safetensors.torch import load_file

    try:
        # The JSON beside the weights says how wide the net is and how many heatmaps it has
        # (5: lumbar discs only; 6: plus every disc in view).
        cfg = json.loads(_weights("disc_net").with_suffix(".json").read_text())
        onet = OrientNet()
        dnet = DiscNet(width=int(cfg.get("width", 8)), n_out=int(cfg.get("n_out", 5)))
        onet.load_state_dict(load_file(_weights("orient_net")))
        dnet.load_state_dict(load_file(_weights("disc_net")))
    except (RuntimeError, OSError, ValueError) as exc:
        raise ModelFileError(f"the 2-D input network weights cannot be loaded: {exc}") from None
    return onet.eval(), dnet.eval()


def weights_sha256() -> dict[str, str]:
    return {
        n: hashlib.sha256(_weights(n).read_bytes()).hexdigest() for n in ("orient_net", "disc_net")
    }


# ----------------------------------------------------------------------------- analysis
@torch.no_grad()
def detect_orientation(img: np.ndarray) -> tuple[int, float, str, float]:
    """(orientation code, its probability, weighting, its probability) from the content."""
    onet, _ = _nets()
    x = torch.from_numpy(fit_square(normalize(img), ORIENT_SIZE)[0])[None, None]
    lo, lw = onet(x)
    po, pw = torch.softmax(lo, 1)[0], torch.softmax(lw, 1)[0]
    code, w = int(po.argmax()), int(pw.argmax())
    return code, float(po[code]), WEIGHTINGS[w], float(pw[w])


@torch.no_grad()
def locate_discs(canonical: np.ndarray) -> dict[str, tuple[float, float, float]]:
    """Lumbar disc centres (row, col, score) in the pixels of a standard-display image."""
    return locate_spine(canonical)[0]


@torch.no_grad()
def locate_spine(
    canonical: np.ndarray,
) -> tuple[dict[str, tuple[float, float, float]], list[tuple[float, float, float]]]:
    """Lumbar disc centres by name, and the discs above L1-L2 (row, col, score) nearest first,
    in the pixels of a standard-display image."""
    _, dnet = _nets()
    sq, scale, _ = fit_square(normalize(canonical), DISC_SIZE)
    logits = dnet(torch.from_numpy(sq)[None, None])[0]
    pos, score, cranial = decode_chain(logits)
    f = logits.shape[-1] / DISC_SIZE

    def back(rc: np.ndarray) -> np.ndarray:
        return ((rc + 0.5) / f - 0.5) / scale

    rc = back(pos)
    lumbar = {
        lv: (float(rc[i, 0]), float(rc[i, 1]), float(score[i])) for i, lv in enumerate(DISC_LEVELS)
    }
    above = [(*(float(v) for v in back(np.array(c[:2]))), float(c[2])) for c in cranial]
    return lumbar, above[: len(CRANIAL_LEVELS)]  # type: ignore[misc]


def discs_plausible(discs: dict[str, tuple[float, float, float]]) -> tuple[bool, str]:
    """Whether the five discs look like a lumbar spine (all found, in order, evenly spaced)."""
    pts = np.array([discs[lv][:2] for lv in DISC_LEVELS])
    scores = np.array([discs[lv][2] for lv in DISC_LEVELS])
    steps = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    if scores.min() < MIN_DISC_SCORE:
        weakest = DISC_LEVELS[int(scores.argmin())]
        return False, f"disc {weakest} not found with confidence ({scores.min():.2f})"
    if not (np.diff(pts[:, 0]) > 0).all():
        return False, "the detected discs do not run cranio-caudally"
    if steps.min() <= 0 or steps.max() / steps.min() > MAX_STEP_RATIO:
        return False, "the detected discs are unevenly spaced"
    return True, "five lumbar discs found in order"


def estimate_spacing(
    discs: dict[str, tuple[float, float, float]], shape: tuple[int, int]
) -> tuple[float, str, bool]:
    """(mm per pixel, how it was obtained, whether it rests on anatomy)."""
    ok, why = discs_plausible(discs)
    if ok:
        pts = np.array([discs[lv][:2] for lv in DISC_LEVELS])
        step_px = float(np.median(np.linalg.norm(np.diff(pts, axis=0), axis=1)))
        return (
            DISC_STEP_MM / step_px,
            f"estimated from anatomy: median lumbar disc-to-disc distance {step_px:.1f} px set "
            f"to {DISC_STEP_MM:.0f} mm",
            True,
        )
    fallback = FALLBACK_FOV_MM / max(shape)
    return (
        fallback,
        f"unknown; anatomy-based estimate failed ({why}); assumed a {FALLBACK_FOV_MM:.0f} mm "
        "field of view",
        False,
    )


def _uid(*parts: str) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=list(parts))


# ----------------------------------------------------------------------------- public API
def load_image2d(
    path: Path | str,
    *,
    weighting: str | None = None,
    pixel_spacing_mm: float | None = None,
    orientation: int | None = None,
) -> Study:
    """A Study with one sagittal series of one slice, turned to the standard display.

    `weighting` ("T1"/"T2"), `pixel_spacing_mm` and `orientation` (a code of
    reporter.ingest.image2d_nets, 0 = standard display) override what would otherwise be
    detected; whatever was detected or assumed is recorded in ``study.input_notes``.
    """
    if weighting is not None and weighting not in WEIGHTINGS:
        raise ValueError(f"Argument 'weighting' must be one of {WEIGHTINGS}, not {weighting!r}.")
    image = read_image2d(path)
    return study_from_image(
        image.pixels,
        source=str(Path(path).expanduser()),
        digest=image.digest,
        kind=image.kind,
        header=image.header,
        weighting=weighting,
        pixel_spacing_mm=pixel_spacing_mm,
        orientation=orientation,
    )


def study_from_image(
    img: np.ndarray,
    *,
    source: str = "",
    digest: str | None = None,
    kind: str = "2-D image",
    header: dict[str, Any] | None = None,
    weighting: str | None = None,
    pixel_spacing_mm: float | None = None,
    orientation: int | None = None,
) -> Study:
    """The work of `load_image2d` on pixels already in memory (2-D array, any orientation)."""
    header = header or {}
    img = np.asarray(img, dtype=np.float32)
    if img.ndim != 2:
        raise InputDataError(f"expected one 2-D image, got shape {img.shape}")
    digest = digest or hashlib.sha256(img.tobytes()).hexdigest()
    code, p_code, w_net, p_w = detect_orientation(img)
    notes: dict[str, Any] = {"input": kind, "file_sha256": digest}
    if orientation is not None:
        notes["orientation"] = {
            "code": int(orientation),
            "as_found": describe_orientation(int(orientation)),
            "method": "given by the caller",
            "detected_code": code,
            "detected_probability": round(p_code, 4),
        }
        code = int(orientation)
    else:
        notes["orientation"] = {
            "code": code,
            "as_found": describe_orientation(code),
            "probability": round(p_code, 4),
            "method": "detected from the image content (OrientNet, reporter/weights/image2d)",
        }
    canonical = undo_orientation(img, code)

    from reporter.ingest.classify import weighting_hint

    hint = weighting_hint(header.get("description", "")) if header.get("description") else None
    if weighting is not None:
        wt, w_method = weighting, "given by the caller"
    elif hint in WEIGHTINGS:
        wt, w_method = str(hint), "from the DICOM series description"
    else:
        wt, w_method = w_net, f"detected from the image content (probability {p_w:.2f})"
    notes["weighting"] = {"value": wt, "method": w_method}

    discs, cranial = locate_spine(canonical)
    plausible, why = discs_plausible(discs)
    notes["discs_px"] = {lv: [round(v, 2) for v in discs[lv]] for lv in DISC_LEVELS}
    notes["cranial_discs_px"] = {
        lv: [round(v, 2) for v in c] for lv, c in zip(CRANIAL_LEVELS, cranial, strict=False)
    }
    notes["discs_plausible"] = plausible
    notes["discs_note"] = why
    if pixel_spacing_mm is not None:
        row_mm = col_mm = float(pixel_spacing_mm)
        s_method, anatomical = "given by the caller", False
    elif "pixel_spacing_mm" in header:
        row_mm, col_mm = header["pixel_spacing_mm"]
        s_method, anatomical = "from the DICOM header (PixelSpacing)", False
    else:
        est, s_method, anatomical = estimate_spacing(discs, canonical.shape)
        row_mm = col_mm = est
    if code % 2 == 1 and pixel_spacing_mm is None and "pixel_spacing_mm" in header:
        row_mm, col_mm = col_mm, row_mm  # a quarter turn swaps the header's row/column spacing
    notes["pixel_spacing_mm"] = [round(row_mm, 4), round(col_mm, 4)]
    notes["pixel_spacing_method"] = s_method
    notes["pixel_spacing_estimated"] = anatomical
    notes["slice_thickness_mm"] = f"unknown; nominal {NOMINAL_THICKNESS_MM} mm"

    study_uid = header.get("study_uid") or _uid(digest, "study")
    series_uid = header.get("series_uid") or _uid(digest, "series")
    affine = np.array(
        [
            [NOMINAL_THICKNESS_MM, 0.0, 0.0, 0.0],
            [0.0, 0.0, col_mm, 0.0],
            [0.0, -row_mm, 0.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    series = Series(
        series_uid=series_uid,
        study_uid=study_uid,
        description=header.get("description") or f"2-D sagittal {wt} ({kind})",
        plane="sagittal",
        weighting=wt,  # type: ignore[arg-type]
        role="sag_t1" if wt == "T1" else "sag_t2",
        vendor=header.get("vendor", ""),
        pixels=canonical[None].astype(np.float32),
        affine=affine,
        slice_thickness=None,
        sop_instance_uids=[header["sop_instance_uid"]] if header.get("sop_instance_uid") else [],
    )
    warnings = [
        f"single 2-D sagittal {kind}: orientation {notes['orientation']['as_found']} "
        f"({notes['orientation']['method']}); pixel spacing {row_mm:.3f} mm "
        f"({s_method}); foramina, subarticular recesses and axial findings are not assessable"
    ]
    study = Study(study_uid=study_uid, source=source, series=[series], warnings=warnings)
    _set_notes(study, {series_uid: notes})
    return study


def _set_notes(study: Study, notes: dict[str, Any]) -> None:
    """Study.input_notes when the Study model has it (additive field), else a JSON warning."""
    if "input_notes" in type(study).model_fields:
        study.input_notes.update(notes)  # type: ignore[attr-defined]
    else:
        study.warnings.append("input_notes: " + json.dumps(notes, sort_keys=True))


def _axis_at(pts: np.ndarray, i: int) -> np.ndarray:
    """Unit spine direction (row, col), cranial -> caudal, at disc `i`."""
    a, b = pts[max(0, i - 1)], pts[min(len(pts) - 1, i + 1)]
    d = b - a
    return d / (np.linalg.norm(d) + 1e-9)


def _band(centre: np.ndarray, ax: np.ndarray, half_len: float, half_w: float) -> list:
    """Corners (x=col, y=row, for PIL) of a rectangle along `ax` around `centre`."""
    perp = np.array([-ax[1], ax[0]])
    corners = [
        centre - ax * half_len - perp * half_w,
        centre - ax * half_len + perp * half_w,
        centre + ax * half_len + perp * half_w,
        centre + ax * half_len - perp * half_w,
    ]
    return [(float(c[1]), float(c[0])) for c in corners]


def anatomy_from_discs(study: Study) -> Anatomy | None:
    """A coarse label map for a 2-D study from DiscNet's disc centres (reference: the first
    series with plausible discs): each disc drawn as a band across the spine axis, each
    vertebral body as the quadrilateral between its discs, S1 as a short block below L5-S1.
    Discs found above L1-L2 (six-channel DiscNet) are drawn and named T12-L1, T11-T12, ...
    counting up; the chain stops at the first gap, so a missed disc never shifts a name.

    Shapes are schematic (widths from the disc-to-disc step), so this anatomy names levels and
    places per-level views; it is no segmentation for measuring. None when no series has five
    plausible discs. Naming: counted from the lowest detected disc, taken as L5-S1; it is marked
    uncertain because a single image cannot show transitional anatomy reliably.
    """
    from PIL import Image, ImageDraw

    from reporter.anatomy.naming import name_labels
    from reporter.contracts import labels as lab

    notes = getattr(study, "input_notes", {}) or {}
    for series in study.series:
        info = notes.get(series.series_uid, {})
        if not info.get("discs_plausible"):
            continue
        names, pts, step = _chain(info)  # (r, c), cranial first
        rows, cols = series.shape[1:]
        canvas = Image.new("I", (cols, rows), 0)
        draw = ImageDraw.Draw(canvas)

        half_w = 0.5 * step
        # The top vertebra sits half a step above the first disc; each other one between its
        # discs and takes the lower name of the disc above it ("T12-L1" -> L1).
        for i, lv in enumerate(names):
            if i == 0:
                ax = _axis_at(pts, 0)
                top = lv.split("-")[0]
                draw.polygon(
                    _band(pts[0] - ax * step / 2, ax, 0.36 * step, half_w),
                    fill=lab.vertebra_label(top),
                )
            if i + 1 < len(names):
                centre, ax = (pts[i] + pts[i + 1]) / 2, _axis_at(pts, i + 1)
                draw.polygon(
                    _band(centre, ax, 0.36 * step, half_w),
                    fill=lab.vertebra_label(lv.split("-")[1]),
                )
        ax5 = _axis_at(pts, len(pts) - 1)
        draw.polygon(
            _band(pts[-1] + ax5 * 0.45 * step, ax5, 0.3 * step, half_w),
            fill=lab.vertebra_label("S1"),
        )
        for i, lv in enumerate(names):
            draw.polygon(
                _band(pts[i], _axis_at(pts, i), 0.12 * step, 0.45 * step), fill=lab.disc_label(lv)
            )
        label_map = np.asarray(canvas, dtype=np.int32).astype(np.int16)[None]
        detail = "reporter.ingest.image2d DiscNet (schematic shapes from disc centres)"
        classes = segment_classes(series.pixels[0])
        if classes is not None:
            # Real shapes where SegNet2D finds them; the schematic shape of a structure it
            # missed stays, so every named level keeps a place for its views.
            shaped, _ = named_labels(classes, names, pts, step)
            schematic = label_map[0]
            present = set(np.unique(shaped).tolist())
            for v in np.unique(schematic):
                if v and int(v) not in present:
                    shaped[(schematic == v) & (shaped == 0)] = v
            label_map = shaped[None]
            detail = "reporter.ingest.image2d DiscNet names + SegNet2D shapes"
        naming = name_labels(
            label_map, series.affine, "DiscNet disc centres on a 2-D image, L5-S1 the lowest"
        )
        extra = {} if classes is None else _other_images(study, series, notes)
        return Anatomy(
            reference_series_uid=series.series_uid,
            reference_stack_index=series.stack_index,
            labels=label_map,
            affine=series.affine.copy(),
            source="builtin_segmenter",
            source_detail=detail,
            vertebrae=naming.vertebrae,
            levels=naming.levels,
            lumbar_vertebrae=naming.lumbar_vertebrae,
            transitional=naming.transitional,
            enumeration_confidence=min(naming.confidence, 0.7),
            naming_uncertain=True,
            naming_convention=naming.convention,
            missing=naming.missing,
            extra_labels=extra,
        )
    return None


def _chain(info: dict[str, Any]) -> tuple[list[str], np.ndarray, float]:
    """An image's named disc chain (names and (row, col) centres, cranial first) and its median
    lumbar disc-to-disc step in pixels, from its input notes."""
    above = info.get("cranial_discs_px", {})
    names = [lv for lv in CRANIAL_LEVELS if lv in above][::-1] + list(DISC_LEVELS)
    pts = np.array(
        [above[lv][:2] if lv in above else info["discs_px"][lv][:2] for lv in names], dtype=float
    )
    lumbar = pts[-len(DISC_LEVELS) :]
    return names, pts, float(np.median(np.linalg.norm(np.diff(lumbar, axis=0), axis=1)))


def _other_images(study: Study, ref: Series, notes: dict[str, Any]) -> dict[str, np.ndarray]:
    """Label maps of the study's other images on their own pixels (SegNet2D shapes named by
    each image's own DiscNet chain), keyed as Anatomy.extra_labels: a T1 image of the patient is
    measured on its own bone and disc edges, not on the reference map carried over by the
    disc-centre registration (a millimetre off moves an endplate band into the disc)."""
    from reporter.anatomy.importers import stack_key

    out: dict[str, np.ndarray] = {}
    for other in study.series:
        info = notes.get(other.series_uid, {})
        if other is ref or other.shape[0] != 1 or not info.get("discs_plausible"):
            continue
        classes = segment_classes(other.pixels[0])
        if classes is None:
            continue
        names, pts, step = _chain(info)
        shaped, _ = named_labels(classes, names, pts, step)
        out[stack_key(other)] = shaped[None]
    return out


def _similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares scale, rotation and translation taking points `src` onto `dst` (Umeyama)."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    u, sig, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt))
    rot = u @ np.diag([1.0, d]) @ vt
    scale = float((sig * np.array([1.0, d])).sum() / max((a**2).sum(), 1e-9))
    return scale, rot, md - scale * rot @ ms


def merge_studies(studies: list[Study], study_uid: str | None = None, align: bool = True) -> Study:
    """Several single-image studies of one patient (e.g. SPIDER t1 + t2) as one Study.

    With `align`, every image whose five discs were found is placed in the first such image's
    patient frame by the similarity transform that maps its disc centres onto the first image's
    (two sagittal images of one patient differ by field of view and matrix, not by anatomy), so
    T1 and T2 sample the same anatomy at the same coordinates and share one spacing estimate.
    """
    if not studies:
        raise ValueError("Argument 'studies' must contain at least one Study.")
    uid = study_uid or studies[0].study_uid
    notes: dict[str, Any] = {}
    for s in studies:
        notes.update(getattr(s, "input_notes", {}) or {})
    series = [se.model_copy(update={"study_uid": uid}) for s in studies for se in s.series]
    ref = next((se for se in series if notes.get(se.series_uid, {}).get("discs_plausible")), None)
    if align and ref is not None:
        ref_pts = np.array([notes[ref.series_uid]["discs_px"][lv][:2] for lv in DISC_LEVELS])
        for se in series:
            info = notes.get(se.series_uid, {})
            if se is ref or not info.get("discs_plausible"):
                continue
            pts = np.array([info["discs_px"][lv][:2] for lv in DISC_LEVELS])
            scale, rot, t = _similarity(pts, ref_pts)
            m = np.eye(4)
            m[1:3, 1:3] = scale * rot
            m[1:3, 3] = t
            se.affine = ref.affine @ m
            info = dict(info)
            info["pixel_spacing_mm"] = [round(v, 4) for v in se.spacing[1:]]
            info["pixel_spacing_method"] = (
                f"registered to {ref.weighting} image {ref.series_uid} by the five disc centres "
                f"(scale {scale:.3f}); {info.get('pixel_spacing_method', '')}"
            )
            notes[se.series_uid] = info
    merged = Study(
        study_uid=uid,
        source=studies[0].source,
        series=series,
        warnings=[w for s in studies for w in s.warnings],
    )
    _set_notes(merged, notes)
    return merged


__all__ = [
    "DISC_STEP_MM",
    "IMAGE2D_SUFFIXES",
    "anatomy_from_discs",
    "detect_orientation",
    "discs_plausible",
    "estimate_spacing",
    "load_image2d",
    "locate_discs",
    "merge_studies",
    "study_from_image",
    "weights_sha256",
]
