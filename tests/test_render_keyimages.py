"""Key-image drawing helpers: the slicing versions give exactly scipy's morphology."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from reporter.render.keyimages import _outline, _thicken


def _masks() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    out = [np.zeros((5, 5), bool), np.ones((5, 5), bool), np.ones((1, 1), bool)]
    out += [np.ones((1, 9), bool), np.ones((9, 1), bool)]
    for _ in range(60):
        shape = (int(rng.integers(1, 40)), int(rng.integers(1, 40)))
        m = rng.random(shape) > rng.random()
        out.append(ndimage.binary_opening(m) if rng.random() < 0.7 else m)
    return out


@pytest.mark.parametrize("mask", _masks())
def test_outline_and_thickening_equal_scipys_erosion_and_dilation(mask: np.ndarray) -> None:
    want_outline = mask & ~ndimage.binary_erosion(mask, iterations=1, border_value=0)
    assert np.array_equal(_outline(mask), want_outline)
    assert np.array_equal(_thicken(want_outline), ndimage.binary_dilation(want_outline))
