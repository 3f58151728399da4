"""The training loop: a tiny run writes loadable weights, resumes, and the partial-label loss
ignores classes a real volume does not annotate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from reporter.anatomy import segmenter_data as sd
from reporter.anatomy.segmenter import SegmenterConfig, load_segmenter
from reporter.training.segmenter_train import Batch, PartialDiceCE, TrainConfig, make_batch, train
from tests.segmenter_factory import fake_phantom

TINY = SegmenterConfig(channels=(4, 8, 16), strides=(2, 2), num_res_units=1)


def tiny_config(steps: int) -> TrainConfig:
    return TrainConfig(
        steps=steps, batch_size=2, crop=64, pool_size=2, refresh_every=2,
        checkpoint_every=2, model=TINY,
    )  # fmt: skip


def test_tiny_training_run_writes_weights_that_load_with_their_sha(tmp_path: Path) -> None:
    result = train(tmp_path, tiny_config(2), generate=fake_phantom, log=lambda m: None)
    seg = load_segmenter(tmp_path)
    assert seg.sha256 == result["sha256"]
    assert seg.config.channels == TINY.channels
    log = json.loads((tmp_path / "train_log.json").read_text())
    assert log["step"] == 2


def test_training_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    train(tmp_path, tiny_config(2), generate=fake_phantom, log=lambda m: None)
    messages: list[str] = []
    train(tmp_path, tiny_config(4), resume=True, generate=fake_phantom, log=messages.append)
    assert any("resuming at step 2" in m for m in messages)
    state = json.loads((tmp_path / "train_state.json").read_text())
    assert state["step"] == 4


def test_batches_mix_phantom_and_real_sources_with_their_annotations() -> None:
    phantom = sd.phantom_stacks(fake_phantom())
    real = sd.phantom_stacks(fake_phantom(1))
    real[0].annotated = frozenset({sd.VERTEBRA})
    cfg = TrainConfig(batch_size=4, crop=64, real_fraction=0.5)
    batch = make_batch(phantom, real, cfg, np.random.default_rng(0))
    assert batch.image.shape == (4, 1, 64, 64)
    assert batch.annotated[:2, sd.DISC].tolist() == [False, False]  # real rows first
    assert batch.annotated[2:, sd.DISC].tolist() == [True, True]


def _batch(labels: np.ndarray, annotated: set[int]) -> Batch:
    ann = np.zeros((1, sd.N_CLASSES), dtype=bool)
    ann[0, [0, *annotated]] = True
    lbl = torch.from_numpy(labels)[None, None].long()
    return Batch(lbl.float(), lbl, torch.from_numpy(ann), torch.ones_like(lbl, dtype=torch.bool))


def test_partial_loss_does_not_punish_an_unannotated_class() -> None:
    # Truth (vertebra-only annotation): a vertebra block; the rest is "not a vertebra".
    labels = np.zeros((32, 32), dtype=np.int64)
    labels[4:12] = sd.VERTEBRA
    disc_rows = slice(14, 18)
    logits = torch.full((1, sd.N_CLASSES, 32, 32), -8.0)
    logits[0, 0] = 8.0
    logits[0, 0, 4:12] = -8.0
    logits[0, sd.VERTEBRA, 4:12] = 8.0
    says_disc = logits.clone()
    says_disc[0, 0, disc_rows] = -8.0
    says_disc[0, sd.DISC, disc_rows] = 8.0
    loss = PartialDiceCE()
    vertebra_only = _batch(labels, {sd.VERTEBRA})
    full = _batch(labels, set(sd.ALL_CLASSES))
    # With only vertebrae annotated, calling some background "disc" costs (almost) nothing ...
    assert float(loss(says_disc, vertebra_only)) == pytest.approx(
        float(loss(logits, vertebra_only)), abs=1e-3
    )
    # ... while with full labels it is an error.
    assert float(loss(says_disc, full)) > float(loss(logits, full)) + 0.05


def test_masked_rows_add_no_gradient() -> None:
    labels = np.zeros((16, 16), dtype=np.int64)
    batch = _batch(labels, set(sd.ALL_CLASSES))
    batch.valid[..., :8, :] = False
    logits = torch.zeros((1, sd.N_CLASSES, 16, 16), requires_grad=True)
    PartialDiceCE()(logits, batch).backward()
    assert float(logits.grad[..., :8, :].abs().max()) == 0.0
    assert float(logits.grad[..., 8:, :].abs().max()) > 0.0


# --- 2.5-D: neighbour slices as input channels ---------------------------------------------


def test_neighbour_slices_are_clamped_at_the_ends_and_spaced_by_millimetres() -> None:
    assert sd.context_indices(5, 0, 1, 1) == [0, 0, 1]
    assert sd.context_indices(5, 4, 1, 1) == [3, 4, 4]
    assert sd.context_indices(20, 10, 1, sd.context_offset(1.0)) == [6, 10, 14]  # 4 mm apart
    assert sd.context_offset(5.5) == 1
    vol = np.arange(3, dtype=np.float32)[:, None, None] * np.ones((3, 2, 2), np.float32)
    ctx = sd.with_context(vol, 1, 1)
    assert ctx.shape == (3, 3, 2, 2)
    assert ctx[0, :, 0, 0].tolist() == [0.0, 0.0, 1.0]
    assert ctx[2, :, 0, 0].tolist() == [1.0, 2.0, 2.0]


def test_a_2d_model_grown_to_three_channels_computes_the_same_until_trained() -> None:
    from dataclasses import replace

    from reporter.anatomy.segmenter import build_network
    from reporter.training.segmenter_train import inflate_input

    torch.manual_seed(0)
    flat = build_network(TINY).eval()
    grown = build_network(replace(TINY, in_channels=3)).eval()
    grown.load_state_dict(inflate_input(flat.state_dict(), grown.state_dict()))
    x = torch.randn(2, 1, 64, 64)
    neighbours = torch.randn(2, 2, 64, 64)
    with torch.no_grad():
        a = flat(x)
        b = grown(torch.cat([neighbours[:, :1], x, neighbours[:, 1:]], dim=1))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_a_25d_training_run_from_2d_weights_writes_a_three_channel_model(tmp_path: Path) -> None:
    from dataclasses import replace

    flat_dir, grown_dir = tmp_path / "flat", tmp_path / "grown"
    train(flat_dir, tiny_config(2), generate=fake_phantom, log=lambda m: None)
    cfg = replace(tiny_config(2), init=str(flat_dir), context_slices=1)
    train(grown_dir, cfg, generate=fake_phantom, log=lambda m: None)
    seg = load_segmenter(grown_dir)
    assert seg.config.in_channels == 3
    series = fake_phantom().study.get("sag_t2")
    labels, conf = seg.predict_series(series.pixels, series.affine)
    assert labels.shape == series.pixels.shape == conf.shape
    # Without --context-slices a further run keeps the init's three channels.
    again = tmp_path / "again"
    train(again, replace(tiny_config(2), init=str(grown_dir)), generate=fake_phantom,
          log=lambda m: None)  # fmt: skip
    assert load_segmenter(again).config.in_channels == 3


def test_25d_batches_carry_the_neighbours_as_channels() -> None:
    from dataclasses import replace

    phantom = sd.phantom_stacks(fake_phantom())
    cfg = TrainConfig(batch_size=3, crop=64, model=replace(TINY, in_channels=3))
    batch = make_batch(phantom, [], cfg, np.random.default_rng(0))
    assert batch.image.shape == (3, 3, 64, 64)
    assert batch.labels.shape == (3, 1, 64, 64)


def test_a_config_with_an_even_number_of_input_channels_is_refused() -> None:
    from reporter.errors import ModelFileError

    with pytest.raises(ModelFileError, match="in_channels must be odd"):
        SegmenterConfig.from_json({**TINY.to_json(), "in_channels": 2})
