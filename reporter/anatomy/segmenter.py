"""The built-in segmenter: a 2-D MONAI U-Net on sagittal slices resampled to a fixed mm grid.

A 2.5-D model (config `in_channels` 3) sees each slice with its neighbours on either side as
input channels (`segmenter_data.with_context`); the label map is still that of the centre slice.

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

from reporter.anatomy import segmenter_data as sd
from reporter.anatomy.enumeration_file import load_enumeration
from reporter.anatomy.segmenter_instances import anatomy_from_generic
from reporter.contracts.anatomy import Anatomy
from reporter.contracts.study import Series, Study
from reporter.errors import InputDataError, ModelFileError
from reporter.resources import weights_dir

__all__ = [
    "Segmenter",
    "SegmenterConfig",
    "anatomy_from_generic",
    "load_segmenter",
    "preload_segmenter",
    "segment_study",
]

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
    def context_slices(self) -> int:
        """Neighbour slices on each side in the input (0: a 2-D model, 1: 2.5-D, 3 channels)."""
        return (self.in_channels - 1) // 2

    @property
    def divisor(self) -> int:
        return int(np.prod(self.strides))

    def to_json(self) -> dict[str, Any]:
        return {"architecture": "monai.networks.nets.UNet", "spatial_dims": 2, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SegmenterConfig:
        try:
            config = cls(
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
        if config.in_channels < 1 or config.in_channels % 2 == 0:
            # The input is a centre slice with as many neighbours on each side.
            raise ModelFileError(
                f"segmenter config.json: in_channels must be odd, got {config.in_channels}"
            )
        return config


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
    # The lumbar-count calibration measured for these weights (enumeration.json), or None.
    enumeration: dict[str, float] | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def to(self, device: str | torch.device) -> Segmenter:
        self.device = torch.device(device)
        self.network.to(self.device)
        return self

    @torch.no_grad()
    def predict_series(
        self, pixels: np.ndarray, affine: np.ndarray, batch: int = 8
    ) -> tuple[np.ndarray, np.ndarray]:
        """Generic class map and max probability on the series' own grid, (n, rows, cols)."""
        frame = sd.canonical_frame(pixels.shape, affine, self.config.spacing_mm)
        offset = sd.context_offset(sd.slice_spacing_mm(affine))
        norm = sd.normalize_intensity(pixels)
        img = torch.from_numpy(sd.with_context(norm, self.config.context_slices, offset))
        labels = np.zeros(pixels.shape, dtype=np.uint8)
        confidence = np.zeros(pixels.shape, dtype=np.float32)
        self.network.eval()
        for start in range(0, len(img), batch):
            chunk = frame.to_canonical(img[start : start + batch].to(self.device), "bilinear")
            logits = _pad_and_run(self.network, chunk, self.config.divisor)
            logits = frame.to_native(logits.float(), "bilinear").cpu()
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
    enumeration = load_enumeration(folder, actual)
    return Segmenter(network, config, actual, folder, meta, enumeration=enumeration)


_CACHE: dict[str, Segmenter] = {}


def _cached(weights: Path | str | Segmenter | None) -> Segmenter:
    if isinstance(weights, Segmenter):
        return weights
    key = str(Path(weights).resolve()) if weights is not None else "<default>"
    if key not in _CACHE:
        _CACHE[key] = load_segmenter(weights)
    return _CACHE[key]


def preload_segmenter(weights: Path | str | None = None) -> Segmenter:
    """The segmenter `segment_study` will use for `weights` (None: embedded), loaded now."""
    return _cached(weights)


def segmentation_series(study: Study) -> Series:
    """The series the segmenter reads: sagittal T2, else sagittal T1."""
    for role in ("sag_t2", "sag_t1"):
        series = study.get(role)  # type: ignore[arg-type]
        if series is not None:
            return series
    raise InputDataError("the study has no sagittal T1 or T2 series for the segmenter")


def segment_study(study: Study, weights: Path | str | Segmenter | None = None) -> Anatomy:
    """Segment the study's sagittal T2 (or T1) and name vertebrae and discs.

    The other sagittal and axial stacks get the label map resampled into their grids
    (extra_labels): on axials that gives the canal and the level of every slice, at the
    resolution of the sagittal slice spacing.
    """
    from reporter.anatomy.importers import resample_nearest, stack_key

    segmenter = _cached(weights)
    series = segmentation_series(study)
    generic, _ = segmenter.predict_series(series.pixels, series.affine)
    anatomy = anatomy_from_generic(
        generic,
        series,
        detail=f"builtin segmenter {segmenter.sha256}",
        calibration=segmenter.enumeration,
    )
    for other in study.series:
        if other is series or other.role not in ("sag_t1", "sag_t2", "sag_stir", "ax_t2", "ax_t1"):
            continue
        anatomy.extra_labels[stack_key(other)] = resample_nearest(
            anatomy.labels, series.affine, other.shape, other.affine
        )
    return anatomy
