"""eval/real_ablation.py: removing a weighting leaves the other channels untouched."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))

from real_ablation import without

from reporter.vlm.views import CHANNELS, StudyViews


def test_without_t1_marks_t1_absent_and_keeps_t2() -> None:
    rng = np.random.default_rng(0)
    views = StudyViews(
        global_images=rng.normal(size=(3, 3, 64, 64)).astype(np.float32),
        global_present=np.ones((3, 3), bool),
        levels=["L4-L5", "L5-S1"],
        level_images=rng.normal(size=(2, 4, 3, 64, 64)).astype(np.float32),
        level_present=np.ones((2, 4, 3), bool),
        warnings=[],
    )
    out = without(views, ("T1",))
    t1, t2 = CHANNELS.index("T1"), CHANNELS.index("T2")
    assert not out.level_present[:, :, t1].any() and not out.global_present[:, t1].any()
    assert (out.level_images[:, :, t1] == 0).all()
    assert np.array_equal(out.level_images[:, :, t2], views.level_images[:, :, t2])
    assert views.level_present.all()  # the input is not modified
