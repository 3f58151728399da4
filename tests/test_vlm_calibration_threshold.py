"""Abstention thresholds: exact target for nominal fields, within-one-grade for ordered grades."""

import numpy as np

from reporter.training.vlm_calibration import THRESHOLD_GRID, fit_threshold

VALUES = ["1", "2", "3", "4", "5"]


def _item(p_guess: float, guess: int, truth: int) -> tuple[np.ndarray, int]:
    p = np.full(5, (1 - p_guess) / 4)
    p[guess] = p_guess
    return np.log(p), truth


def test_off_by_one_counts_only_with_a_tolerance() -> None:
    # Confident statements are all one grade off; uncertain ones two grades off.
    items = [_item(0.6, 2, 3) for _ in range(30)] + [_item(0.27, 0, 4) for _ in range(30)]
    exact = fit_threshold(items, 1.0, 0.9)
    within_one = fit_threshold(items, 1.0, 0.9, tolerance=1, values=VALUES)
    assert exact == THRESHOLD_GRID[-1]  # nothing reaches 90 % exact: abstain as much as allowed
    assert 0.27 < within_one <= 0.6  # keeps the one-off statements, drops the two-off ones


def test_tolerance_ignores_non_numeric_values() -> None:
    items = [_item(0.6, 1, 2) for _ in range(30)]
    th = fit_threshold(items, 1.0, 0.9, tolerance=1, values=["na", "yes", "no", "x", "y"])
    assert th == THRESHOLD_GRID[-1]
