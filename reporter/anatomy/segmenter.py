"""The built-in segmenter: a 2-D MONAI U-Net on sagittal slices resampled to a fixed mm grid.

`segment_study(study)` segments the sagittal T2 series (T1 when there is no T2) into generic
classes (vertebra, sacrum, disc, canal, cord, foramen, root, posterior elements), splits
vertebrae and discs into instances, orders them along the spine and names them (counting from
the sacrum upward), and returns an `Anatomy` in the package's label convention.

Weights live in reporter/weights/segmenter/: model.safetensors, config.json (architecture and
the sha256 of the weight file) and MODEL_CARD.md. A missing file or a sha256 mismatch raises
ModelFileError; there is never a silent random model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from reporter.anatomy import labels as lab
from reporter.anatomy import segmenter_data as sd
from reporter.anatomy.anatomy import Anatomy
from reporter.errors import InputDataError, ModelFileError
from reporter.resources import weights_dir
from reporter.study import Series, Study

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "MODEL_CARD.md"


def default_weights_path() -> Path:
    return weights_dir() / "segmenter"


@dataclass(frozen=True)
class SegmenterConfig:
    """Architecture and preprocessing, stored beside the weights as config.json."""

    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    strides: tuple[int, ...] = (2, 2, 2, 2)
    num_res_units: int = 2
    norm: str = "instance"
    dropout: float = 0.0
    in_channels: int = 1
    spacing_mm: float = sd.SPACING_MM
    classes: tuple[str, ...] = sd.CLASS_NAMES

    @property
    def divisor(self) -> int:
        return int(np.prod(self.strides))

    def to_json(self) -> dict[str, Any]:
        return {"architecture": "monai.networks.nets.UNet", "spatial_dims": 2, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SegmenterConfig:
        try:
            return cls(
                channels=tuple(int(c) for c in data["channels"]),
                strides=tuple(int(s) for s in data["strides"]),
                num_res_units=int(data["num_res_units"]),
                norm=str(data.get("norm", "instance")),
                dropout=float(data.get("dropout", 0.0)),
                in_channels=int(data.get("in_channels", 1)),
                spacing_mm=float(data.get("spacing_mm", sd.SPACING_MM)),
                classes=tuple(data.get("classes", sd.CLASS_NAMES)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(
                f"segmenter config.json is incomplete or malformed: {exc}"
            ) from None


def build_network(config: SegmenterConfig) -> torch.nn.Module:
    from monai.networks.nets import UNet

    return UNet(
        spatial_dims=2,
        in_channels=config.in_channels,
        out_channels=len(config.classes),
        channels=config.channels,
        strides=config.strides,
        num_res_units=config.num_res_units,
        norm=config.norm,
        dropout=config.dropout,
    )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_weights(
    network: torch.nn.Module, config: SegmenterConfig, out_dir: Path, extra: dict | None = None
) -> str:
    """model.safetensors + config.json (with the file's sha256). Returns the sha256."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    save_file(state, str(out_dir / WEIGHTS_FILE), metadata={"format": "pt"})
    digest = sha256_file(out_dir / WEIGHTS_FILE)
    meta = {**config.to_json(), "weights_file": WEIGHTS_FILE, "sha256": digest, **(extra or {})}
    (out_dir / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return digest


@dataclass
class Segmenter:
    network: torch.nn.Module
    config: SegmenterConfig
    sha256: str
    path: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @torch.no_grad()
    def predict_series(
        self, pixels: np.ndarray, affine: np.ndarray, batch: int = 8
    ) -> tuple[np.ndarray, np.ndarray]:
        """Generic class map and max probability on the series' own grid, (n, rows, cols)."""
        frame = sd.canonical_frame(pixels.shape, affine, self.config.spacing_mm)
        img = torch.from_numpy(sd.normalize_intensity(pixels))[:, None]
        labels = np.zeros(pixels.shape, dtype=np.uint8)
        confidence = np.zeros(pixels.shape, dtype=np.float32)
        self.network.eval()
        for start in range(0, len(img), batch):
            chunk = frame.to_canonical(img[start : start + batch], "bilinear")
            logits = _pad_and_run(self.network, chunk, self.config.divisor)
            logits = frame.to_native(logits, "bilinear")
            prob = torch.softmax(logits, dim=1)
            conf, cls = prob.max(dim=1)
            labels[start : start + batch] = cls.numpy().astype(np.uint8)
            confidence[start : start + batch] = conf.numpy()
        return labels, confidence


def _pad_and_run(network: torch.nn.Module, x: torch.Tensor, divisor: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % divisor, (-w) % divisor
    if ph or pw:
        x = torch.nn.functional.pad(x, (0, pw, 0, ph))
    return network(x)[..., :h, :w]


def load_segmenter(path: Path | str | None = None) -> Segmenter:
    """Load weights from a folder holding model.safetensors + config.json (default: embedded).

    The sha256 recorded in config.json must match the weight file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(path) if path is not None else default_weights_path()
    if folder.is_file():
        folder = folder.parent
    weights, cfg_path = folder / WEIGHTS_FILE, folder / CONFIG_FILE
    if not weights.is_file():
        raise ModelFileError(f"segmenter weights not found: {weights}")
    if not cfg_path.is_file():
        raise ModelFileError(f"segmenter config not found: {cfg_path}")
    try:
        meta = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"segmenter config {cfg_path} is not valid JSON: {exc}") from None
    recorded = meta.get("sha256")
    if not recorded:
        raise ModelFileError(f"segmenter config {cfg_path} records no sha256 for the weights")
    actual = sha256_file(weights)
    if actual != recorded:
        raise ModelFileError(
            f"segmenter weights {weights} do not match their recorded sha256 "
            f"({actual[:12]}... != {str(recorded)[:12]}...)"
        )
    config = SegmenterConfig.from_json(meta)
    network = build_network(config)
    try:
        network.load_state_dict(load_file(str(weights)))
    except (SafetensorError, RuntimeError) as exc:
        raise ModelFileError(f"segmenter weights {weights} do not fit the config: {exc}") from None
    network.eval()
    return Segmenter(network, config, actual, folder, meta)


_CACHE: dict[str, Segmenter] = {}


def _cached(weights: Path | str | Segmenter | None) -> Segmenter:
    if isinstance(weights, Segmenter):
        return weights
    key = str(Path(weights).resolve()) if weights is not None else "<default>"
    if key not in _CACHE:
        _CACHE[key] = load_segmenter(weights)
    return _CACHE[key]


def segmentation_series(study: Study) -> Series:
    """The series the segmenter reads: sagittal T2, else sagittal T1."""
    for role in ("sag_t2", "sag_t1"):
        series = study.get(role)  # type: ignore[arg-type]
        if series is not None:
            return series
    raise InputDataError("the study has no sagittal T1 or T2 series for the segmenter")


def segment_study(study: Study, weights: Path | str | Segmenter | None = None) -> Anatomy:
    """Segment the study's sagittal T2 (or T1) and name vertebrae and discs."""
    segmenter = _cached(weights)
    series = segmentation_series(study)
    generic, _ = segmenter.predict_series(series.pixels, series.affine)
    return anatomy_from_generic(generic, series, detail=f"builtin segmenter {segmenter.sha256}")


# --- from generic classes to named structures ------------------------------------------------


@dataclass
class Instance:
    kind: str  # "vertebra" | "sacrum" | "disc"
    mask: np.ndarray  # boolean, native grid
    z_mm: float  # patient superior coordinate of the centroid (LPS z)
    voxels: int


def _instances(
    generic: np.ndarray, cls: int, kind: str, affine: np.ndarray, voxel_ml: float
) -> list[Instance]:
    comp, n = ndimage.label(generic == cls)
    if n == 0:
        return []
    counts = np.bincount(comp.ravel())[1:]
    centroids = ndimage.center_of_mass(np.ones_like(comp), comp, range(1, n + 1))
    out = []
    # Structures smaller than ~0.3 ml are fragments (a vertebral body is ~20-40 ml, a disc 5+).
    min_voxels = max(4, int(0.3 / voxel_ml))
    for i, (count, c) in enumerate(zip(counts, centroids, strict=True), start=1):
        if count < min_voxels:
            continue
        z = float((affine[:3, :3] @ np.asarray(c) + affine[:3, 3])[2])
        out.append(Instance(kind, comp == i, z, int(count)))
    return _merge_close(sorted(out, key=lambda s: -s.z_mm), min_gap_mm=12.0)


def _merge_close(items: list[Instance], min_gap_mm: float) -> list[Instance]:
    """Fragments of one body (split across slices) sit at nearly the same height: merge them.

    Consecutive vertebrae (or discs) are 25-45 mm apart, so pieces closer than 12 mm are one.
    """
    merged: list[Instance] = []
    for item in items:
        if merged and abs(merged[-1].z_mm - item.z_mm) < min_gap_mm:
            a = merged[-1]
            w = a.voxels + item.voxels
            z = (a.z_mm * a.voxels + item.z_mm * item.voxels) / w
            merged[-1] = Instance(a.kind, a.mask | item.mask, z, w)
        else:
            merged.append(item)
    return merged


@dataclass
class Naming:
    """What ordering and counting concluded."""

    vertebrae: list[tuple[str, Instance]]
    discs: list[tuple[str, Instance]]
    lumbar_vertebrae: int | None
    uncertain: bool
    convention: str


def name_instances(
    vertebrae: list[Instance], discs: list[Instance], sacrum: Instance | None
) -> Naming:
    """Minimal naming: count from the sacrum upward assuming five lumbar vertebrae.

    Without a sacrum the lowest vertebra is provisionally called L5 and naming is uncertain.
    """
    names_up = ["L5", "L4", "L3", "L2", "L1", "T12", "T11", "T10", "T9"]
    bodies = [v for v in vertebrae if sacrum is None or v.z_mm > sacrum.z_mm]
    bodies = sorted(bodies, key=lambda s: s.z_mm)  # caudal first
    named_v = [(names_up[i], b) for i, b in enumerate(bodies[: len(names_up)])]
    # A disc's name follows from how many named bodies lie below it.
    chain = (["S1"] if sacrum is not None else []) + names_up
    heights = ([sacrum.z_mm] if sacrum is not None else []) + [b.z_mm for _, b in named_v]
    named_d: list[tuple[str, Instance]] = []
    for disc in discs:
        below = sum(1 for h in heights if h < disc.z_mm)
        if below == 0 or below >= len(chain):
            continue
        level = f"{chain[below]}-{chain[below - 1]}"
        if level in lab.LEVELS and all(level != n for n, _ in named_d):
            named_d.append((level, disc))
    vert_list = ([("S1", sacrum)] if sacrum is not None else []) + named_v
    return Naming(
        vertebrae=sorted(vert_list, key=lambda t: -t[1].z_mm),
        discs=sorted(named_d, key=lambda t: -t[1].z_mm),
        lumbar_vertebrae=5 if sacrum is not None else None,
        uncertain=sacrum is None,
        convention="counted from the sacrum upward"
        if sacrum is not None
        else "sacrum not found: lowest vertebra provisionally L5",
    )


def anatomy_from_generic(generic: np.ndarray, series: Series, detail: str = "") -> Anatomy:
    """Generic class map on `series`' grid -> Anatomy with named vertebrae and discs."""
    affine = np.asarray(series.affine, dtype=float)
    voxel_ml = float(np.prod(series.spacing)) / 1000.0
    vertebrae = _instances(generic, sd.VERTEBRA, "vertebra", affine, voxel_ml)
    discs = _instances(generic, sd.DISC, "disc", affine, voxel_ml)
    sacra = _instances(generic, sd.SACRUM, "sacrum", affine, voxel_ml)
    sacrum = max(sacra, key=lambda s: s.voxels) if sacra else None
    if sacrum is not None and sacrum.voxels * voxel_ml < 2.0:
        sacrum = None  # a sliver at the FOV edge does not anchor the count
    naming = name_instances(vertebrae, discs, sacrum)

    out = np.zeros(generic.shape, dtype=np.int16)
    out[generic == sd.CANAL] = lab.CANAL
    out[generic == sd.CORD] = lab.CORD
    out[generic == sd.POSTERIOR] = lab.POSTERIOR_ELEMENTS
    left = _left_slices(generic, affine)
    side = left[:, None, None]
    out[(generic == sd.FORAMEN) & side] = lab.FORAMEN_LEFT
    out[(generic == sd.FORAMEN) & ~side] = lab.FORAMEN_RIGHT
    out[(generic == sd.ROOT) & side] = lab.ROOT_LEFT
    out[(generic == sd.ROOT) & ~side] = lab.ROOT_RIGHT
    for name, inst in naming.vertebrae:
        out[inst.mask] = lab.vertebra_label(name)
    for level, inst in naming.discs:
        out[inst.mask] = lab.disc_label(level)

    vert_names = [n for n, _ in naming.vertebrae]
    level_names = [n for n, _ in naming.discs]
    expected_v = ["L1", "L2", "L3", "L4", "L5", "S1"]
    expected_d = ["T12-L1", "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    missing = [v for v in expected_v if v not in vert_names]
    missing += [d for d in expected_d if d not in level_names]
    return Anatomy(
        reference_series_uid=series.series_uid,
        reference_stack_index=series.stack_index,
        labels=out,
        affine=affine,
        source="builtin_segmenter",
        source_detail=detail,
        vertebrae=vert_names,
        levels=level_names,
        lumbar_vertebrae=naming.lumbar_vertebrae,
        transitional="none",
        enumeration_confidence=0.5 if naming.uncertain else 0.9,
        naming_uncertain=naming.uncertain,
        naming_convention=naming.convention,
        missing=missing,
    )


def _left_slices(generic: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Per slice: does it lie on the patient's left of the canal (LPS +x)?"""
    n = generic.shape[0]
    mid = np.array([[k, generic.shape[1] / 2, generic.shape[2] / 2] for k in range(n)])
    x = (mid @ affine[:3, :3].T + affine[:3, 3])[:, 0]
    canal = np.nonzero(generic == sd.CANAL)
    centre = float(np.mean(x[canal[0]])) if canal[0].size else float(np.mean(x))
    return x > centre
