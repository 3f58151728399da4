"""Seed ranges: which phantoms may be used for what (see the team contract).

Training, validation / calibration, site fine-tuning and evaluation phantoms never share a seed,
so no metric is ever reported on a phantom a model was trained on.
"""

from __future__ import annotations

TRAINING = range(0, 100_000)
VALIDATION = range(100_000, 200_000)  # also calibration
FINE_TUNE = range(200_000, 300_000)  # site adaptation
EVALUATION_START = 1_000_000  # phantom-v1 and every test metric: seeds >= this


def split_of(seed: int) -> str:
    """The name of the split a seed belongs to ("training", "validation", "fine_tune",
    "evaluation" or "unassigned" for 300_000..999_999)."""
    if seed < 0:
        raise ValueError(f"Argument 'seed' must be >= 0, not {seed}.")
    if seed in TRAINING:
        return "training"
    if seed in VALIDATION:
        return "validation"
    if seed in FINE_TUNE:
        return "fine_tune"
    if seed >= EVALUATION_START:
        return "evaluation"
    return "unassigned"


def evaluation_seeds(n: int, start: int = EVALUATION_START) -> list[int]:
    if start < EVALUATION_START:
        raise ValueError(f"Argument 'start' must be >= {EVALUATION_START} for evaluation seeds.")
    return list(range(start, start + n))
