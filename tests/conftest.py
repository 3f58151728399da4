"""Fixtures shared by test modules: one evaluation-seed phantom and its written DICOM folder
(module-scoped: each module that asks gets its own copy; a module may define its own `phantom`)."""

from __future__ import annotations

from pathlib import Path

import pytest

PHANTOM_SEED = 1_000_123  # an evaluation seed: never trained on


@pytest.fixture(scope="module")
def phantom():
    from reporter.synth import generate_study

    return generate_study(PHANTOM_SEED, site="site-a")


@pytest.fixture(scope="module")
def phantom_dir(phantom, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from reporter.synth import write_study

    return write_study(phantom, tmp_path_factory.mktemp("phantom") / "study")
