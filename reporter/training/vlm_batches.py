"""Turning cached studies into teacher-forced training batches (with augmentation).

One batch = some studies; its image table holds every view of every study; its sequences are each
study's level sequences and study sequence, answers teacher-forced from the ground truth. The
augmentation is what makes the model honest about missing series and robust across sites: whole
series are dropped at random (and the fields needing them become forced "na", exactly as at
inference), and every channel gets a random gamma, gain and noise. Level crops also get a small
random rotation, scale and shift (real localisation is never exactly centred, and 390 real
training patients are few enough to memorise) and a smooth multiplicative bias field (surface
coil fall-off differs by site).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from reporter.contracts.findings import LEVEL_FIELDS
from reporter.training.vlm_data import ShardSet, decode_targets
from reporter.vlm.decoding import STUDY_GRAMMAR_FIELDS
from reporter.vlm.model import SpineVLMModel, level_spec, sequence_batch, study_spec
from reporter.vlm.views import CHANNELS, GLOBAL_VIEWS, LEVEL_VIEWS, not_assessable_fields


@dataclass
class Augment:
    drop_t1: float = 0.10
    drop_t2: float = 0.03
    drop_axial: float = 0.10
    drop_foramen: float = 0.03
    gamma: tuple[float, float] = (0.7, 1.4)
    gain: tuple[float, float] = (0.85, 1.15)
    noise: tuple[float, float] = (0.0, 0.04)
    rotate_deg: float = 0.0  # level crops: uniform in +-rotate_deg
    scale: tuple[float, float] = (1.0, 1.0)
    shift_px: float = 0.0  # uniform in +-shift_px on the 64-pixel crop
    bias: float = 0.0  # bias field exp(linear ramp), its log spanning up to +-bias over a crop

    @classmethod
    def none(cls) -> Augment:
        return cls(0.0, 0.0, 0.0, 0.0, (1.0, 1.0), (1.0, 1.0), (0.0, 0.0))

    @classmethod
    def real(cls) -> Augment:
        """The default plus the geometric and bias-field augmentation for real crops."""
        return cls(rotate_deg=10.0, scale=(0.9, 1.1), shift_px=3.0, bias=0.3)


class Batcher:
    """Builds batches from a ShardSet for one model; memoises the teacher-forced answers."""

    def __init__(self, net: SpineVLMModel, data: ShardSet, augment: Augment | None = None) -> None:
        self.net = net
        self.data = data
        self.augment = augment or Augment()
        self._answers: dict[Any, tuple[list[int], list[tuple[int, list[int], str]]]] = {}
        self._lg = level_spec(net, {}).grammar
        self._sg = study_spec(net, {}).grammar

    def _answer(
        self, level: bool, codes: np.ndarray, na: dict[str, str]
    ) -> tuple[list[int], list[tuple[int, list[int], str]]]:
        key = (level, codes.tobytes(), tuple(sorted(na)))
        if key not in self._answers:
            grammar = self._lg if level else self._sg
            spec = (level_spec if level else study_spec)(self.net, na)
            self._answers[key] = self.net.constraint.teacher_forced(
                spec, decode_targets(grammar, codes)
            )
        return self._answers[key]

    def batch(self, study_ids: list[int], rng: np.random.Generator) -> dict[str, Any]:
        d = self.data
        images: list[np.ndarray] = []
        present: list[np.ndarray] = []
        seqs: list[tuple[str | None, list[int], list[int]]] = []
        sups: list[list[tuple[int, list[int], str]]] = []
        aux_rows: list[list[int]] = []  # per level sequence: the image rows of its level views
        aux_codes: list[np.ndarray] = []  # ... and its targets for the grade heads
        for i in study_ids:
            g_img = d.global_images[i].astype(np.float32)
            g_pres = d.global_present[i].astype(bool)
            rows = d.levels_of[i]
            l_img = d.level_images[rows].astype(np.float32)
            l_pres = d.level_present[rows].astype(bool)
            g_img, g_pres, l_img, l_pres = self._augment(g_img, g_pres, l_img, l_pres, rng)
            base = sum(len(x) for x in images)
            images += [g_img, l_img.reshape(-1, *l_img.shape[2:])]
            present += [g_pres, l_pres.reshape(-1, 3)]
            global_p = {v: g_pres[k] for k, v in enumerate(GLOBAL_VIEWS)}
            na = not_assessable_fields(STUDY_GRAMMAR_FIELDS, global_p)
            ids, sup = self._answer(False, d.study_codes[i], na)
            seqs.append((None, ids, [base + k for k in range(len(GLOBAL_VIEWS))]))
            sups.append(sup)
            for li, r in enumerate(rows):
                level = _level_name(int(d.level_name[r]))
                pres = dict(global_p)
                pres.update({v: l_pres[li, k] for k, v in enumerate(LEVEL_VIEWS)})
                na = not_assessable_fields(LEVEL_FIELDS, pres)
                ids, sup = self._answer(True, d.level_codes[r], na)
                view_rows = [base + k for k in range(len(GLOBAL_VIEWS))]
                first = base + len(GLOBAL_VIEWS) + li * len(LEVEL_VIEWS)
                view_rows += [first + k for k in range(len(LEVEL_VIEWS))]
                seqs.append((level, ids, view_rows))
                sups.append(sup)
                aux_rows.append(view_rows[len(GLOBAL_VIEWS) :])
                aux_codes.append(self._aux_codes(d.level_codes[r], na))
        out = sequence_batch(self.net, seqs, sups)
        out["images"] = torch.from_numpy(np.concatenate(images))
        out["present"] = torch.from_numpy(np.concatenate(present).any(-1))
        n_views, n_slots = len(LEVEL_VIEWS), len(self._lg.slots)
        out["aux_rows"] = torch.tensor(aux_rows, dtype=torch.long).reshape(-1, n_views)
        out["aux_codes"] = torch.from_numpy(
            np.stack(aux_codes) if aux_codes else np.zeros((0, n_slots), np.int16)
        ).long()
        return out

    def _aux_codes(self, codes: np.ndarray, na: dict[str, str]) -> np.ndarray:
        """The grade heads' targets: nothing is taught for a field whose views were dropped
        (the decoder is taught "not assessable" there instead)."""
        out = codes.astype(np.int16).copy()
        for k, slot in enumerate(self._lg.slots):
            if slot.field in na:
                out[k] = -1
        return out

    def _augment(
        self,
        g_img: np.ndarray,
        g_pres: np.ndarray,
        l_img: np.ndarray,
        l_pres: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        aug = self.augment
        t1, t2 = CHANNELS.index("T1"), CHANNELS.index("T2")
        drop_t1 = rng.random() < aug.drop_t1
        drop_t2 = not drop_t1 and rng.random() < aug.drop_t2
        for ch, drop in ((t1, drop_t1), (t2, drop_t2)):
            if drop:  # the sagittal series of that weighting is missing
                g_img[:, ch] = 0.0
                g_pres[:, ch] = False
                l_img[:, :3, ch] = 0.0
                l_pres[:, :3, ch] = False
        if rng.random() < aug.drop_axial:
            l_img[:, 3] = 0.0
            l_pres[:, 3] = False
        elif len(l_pres) and rng.random() < aug.drop_axial:  # stacks covering some levels only
            keep = rng.random(len(l_pres)) < 0.5
            l_img[~keep, 3] = 0.0
            l_pres[~keep, 3] = False
        for vi in (1, 2):
            if rng.random() < aug.drop_foramen:
                l_img[:, vi] = 0.0
                l_pres[:, vi] = False
        if len(l_img) and (aug.rotate_deg or aug.shift_px or aug.scale != (1.0, 1.0)):
            l_img = _warp(l_img, aug, rng)
        if aug.bias and len(l_img):
            l_img = _bias(l_img, aug.bias, rng)
        for ch in range(3):
            gamma = rng.uniform(*aug.gamma)
            gain = rng.uniform(*aug.gain)
            sigma = rng.uniform(*aug.noise)
            for img, pres in ((g_img, g_pres), (l_img, l_pres)):
                sl = img[..., ch, :, :]
                x = np.clip(sl + 0.5, 0.0, None) ** gamma * gain - 0.5
                if sigma > 0:
                    x = x + rng.normal(0.0, sigma, x.shape).astype(np.float32)
                img[..., ch, :, :] = np.where(pres[..., ch, None, None], x, 0.0)
        return g_img, g_pres, l_img, l_pres


def _level_name(index: int) -> str:
    from reporter.contracts.findings import LEVELS

    return LEVELS[index]


def _warp(img: np.ndarray, aug: Augment, rng: np.random.Generator) -> np.ndarray:
    """One random similarity transform per level view (all channels alike: they are co-registered
    samples of one place); border values fill what comes in from outside."""
    x = torch.from_numpy(img.reshape(-1, *img.shape[-3:]))
    n, size = x.shape[0], x.shape[-1]
    a = np.deg2rad(rng.uniform(-aug.rotate_deg, aug.rotate_deg, n))
    s = rng.uniform(*aug.scale, n)
    t = rng.uniform(-aug.shift_px, aug.shift_px, (n, 2)) * 2.0 / size
    theta = np.zeros((n, 2, 3), np.float32)
    theta[:, 0, 0], theta[:, 0, 1] = np.cos(a) / s, -np.sin(a) / s
    theta[:, 1, 0], theta[:, 1, 1] = np.sin(a) / s, np.cos(a) / s
    theta[:, :, 2] = t
    grid = torch.nn.functional.affine_grid(torch.from_numpy(theta), list(x.shape), False)
    out = torch.nn.functional.grid_sample(x, grid, "bilinear", "border", False)
    return out.numpy().reshape(img.shape)


def _bias(img: np.ndarray, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """Multiply each level view and channel's intensities (shifted to start at 0) by
    exp(a x + b y), a smooth ramp like a surface coil's fall-off."""
    size = img.shape[-1]
    lin = np.linspace(-0.5, 0.5, size, dtype=np.float32)
    coef = rng.uniform(-amplitude, amplitude, (*img.shape[:-2], 2)).astype(np.float32)
    field = np.exp(coef[..., 0, None, None] * lin[:, None] + coef[..., 1, None, None] * lin)
    return (np.clip(img + 0.5, 0.0, None) * field - 0.5).astype(np.float32)
