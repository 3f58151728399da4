"""Intensities drawn per class per image (SynthSeg-style, Billot et al. 2023).

With probability `random_contrast_p` an image draws every class mean uniformly in [0, 1]: the
network must then recognise anatomy by shape alone. Otherwise each class mean is drawn uniformly
within its clinical T1 or T2 range (params.json), which keeps the look of real scans while still
spreading contrast far wider than any one scanner. Two things stay tied to the physics of the
ground truth: each disc nucleus on T2 is its drawn nucleus/CSF ratio times the image's CSF (the
Pfirrmann grade is measured that way), and Modic bands are the image's marrow times their
physical band/marrow ratio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reporter.synth import tissues as tx
from reporter.synth.spine import SpineModel
from reporter.synth.v2.params import CLASS_ID, CLASS_NAMES, PARAMS, EngineParams
from reporter.synth.v2.tissue_map import DERIVED_KEY0, N_BASE_TISSUES, N_KEYS

F32 = np.float32


@dataclass(frozen=True)
class Contrast:
    mode: str  # "prior" | "random"
    means: np.ndarray  # (N_KEYS,) float32 mean per intensity key
    second: np.ndarray  # (N_KEYS,) the second sub-cluster's mean, mixed in by a smooth field
    std: np.ndarray  # (n classes,) within-class spread
    texture: np.ndarray  # (n classes,) amplitude of the smooth texture field
    gamma: float


def draw_contrast(
    rng: np.random.Generator,
    weighting: str,
    m: SpineModel,
    field_t: float,
    seq: tuple[float, float],
    params: EngineParams = PARAMS,
) -> Contrast:
    """Class means for one image of `weighting` ("T1" | "T2"); `seq` (TR, TE) gives the
    physical ratios of the per-study tissues."""
    w = weighting.lower()
    n = len(CLASS_NAMES)
    random_mode = bool(rng.random() < params.random_contrast_p)
    means = np.zeros(N_KEYS, F32)
    std = np.zeros(n, F32)
    tex = np.zeros(n, F32)
    for name, prior in params.classes.items():
        k = CLASS_ID[name]
        lo, hi = (0.0, 1.0) if random_mode else getattr(prior, w)
        means[k] = rng.uniform(lo, hi)
        std[k] = rng.uniform(*prior.std)
        tex[k] = prior.texture * rng.uniform(0.5, 1.5)
    # Vertebrae above T9 carry no name but must look like the named ones.
    means[CLASS_ID["thoracic_marrow"]] = means[CLASS_ID["marrow"]]
    sig = tx.tissue_signal(m.tissues, field_t, *seq)
    csf, marrow, annulus = (float(sig[t]) for t in (tx.CSF, tx.MARROW, tx.ANNULUS))
    for tid in range(N_BASE_TISSUES, min(len(m.tissues), N_BASE_TISSUES + N_KEYS - DERIVED_KEY0)):
        key = DERIVED_KEY0 + tid - N_BASE_TISSUES
        name = m.tissues[tid].name
        if random_mode:
            means[key] = rng.uniform(0.0, 1.0)
        elif name.startswith("nucleus"):
            ref, ref_sig = (CLASS_ID["csf"], csf) if w == "t2" else (CLASS_ID["annulus"], annulus)
            means[key] = np.clip(means[ref] * float(sig[tid]) / max(ref_sig, 1e-6), 0.0, 1.0)
        else:  # Modic band: relative to this image's marrow
            ratio = float(sig[tid]) / max(marrow, 1e-6)
            means[key] = np.clip(means[CLASS_ID["marrow"]] * ratio, 0.0, 1.0)
    # Sub-clusters: a second mean per class (per-study tissues keep one: their contrast is the
    # ground truth's).
    second = means.copy()
    for name, prior in params.classes.items():
        k = CLASS_ID[name]
        second[k] = np.clip(means[k] + rng.uniform(-1.0, 1.0) * prior.subcluster, 0.0, 1.0)
    second[CLASS_ID["thoracic_marrow"]] = second[CLASS_ID["marrow"]]
    gamma = float(np.exp(rng.normal(0.0, params.gamma_log_sd)))
    return Contrast("random" if random_mode else "prior", means, second, std, tex, gamma)
