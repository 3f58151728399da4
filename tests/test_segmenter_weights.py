"""Weights on disk: the shipped segmenter loads, and a file that does not match its recorded
sha256 (or records none) is refused with ModelFileError rather than used."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reporter.anatomy.segmenter import (
    SegmenterConfig,
    build_network,
    default_weights_path,
    load_segmenter,
    save_weights,
    sha256_file,
)
from reporter.errors import ModelFileError

TINY = SegmenterConfig(channels=(4, 8, 16), strides=(2, 2), num_res_units=1)


@pytest.fixture
def tiny_weights(tmp_path: Path) -> Path:
    save_weights(build_network(TINY), TINY, tmp_path / "seg")
    return tmp_path / "seg"


def test_shipped_weights_load_and_match_their_model_card() -> None:
    folder = default_weights_path()
    seg = load_segmenter(folder)
    assert seg.sha256 == sha256_file(folder / "model.safetensors")
    assert seg.sha256 in (folder / "MODEL_CARD.md").read_text()
    assert (folder / "model.safetensors").stat().st_size <= 15 * 1024 * 1024


def test_shipped_weights_have_their_enumeration_calibrated() -> None:
    # Without enumeration.json the lumbar count falls back to "five, low confidence": retrained
    # weights must be recalibrated (eval/bench_segmenter.py --calibrate-enumeration).
    assert load_segmenter(default_weights_path()).enumeration is not None


def test_enumeration_calibration_of_other_weights_is_refused(tmp_path: Path) -> None:
    import json
    import shutil

    from reporter.errors import ModelFileError

    folder = tmp_path / "seg"
    shutil.copytree(default_weights_path(), folder)
    doc = json.loads((folder / "enumeration.json").read_text())
    doc["weights_sha256"] = "0" * 64
    (folder / "enumeration.json").write_text(json.dumps(doc))
    with pytest.raises(ModelFileError, match="calibrates other weights"):
        load_segmenter(folder)


def test_weights_round_trip_through_safetensors(tiny_weights: Path) -> None:
    seg = load_segmenter(tiny_weights)
    assert seg.config == TINY


def test_tampered_weights_are_refused(tiny_weights: Path) -> None:
    with open(tiny_weights / "model.safetensors", "r+b") as fh:
        fh.seek(-4, 2)
        fh.write(b"\x00\x01\x02\x03")
    with pytest.raises(ModelFileError, match="sha256"):
        load_segmenter(tiny_weights)


def test_config_without_sha256_is_refused(tiny_weights: Path) -> None:
    cfg = json.loads((tiny_weights / "config.json").read_text())
    del cfg["sha256"]
    (tiny_weights / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match="no sha256"):
        load_segmenter(tiny_weights)


def test_missing_weight_file_is_a_model_file_error(tmp_path: Path, tiny_weights: Path) -> None:
    target = tmp_path / "copy"
    shutil.copytree(tiny_weights, target)
    (target / "model.safetensors").unlink()
    with pytest.raises(ModelFileError, match="not found"):
        load_segmenter(target)
