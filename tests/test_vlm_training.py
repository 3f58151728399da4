"""Model folders (sha256-checked safetensors), the training loop, LoRA adapters, calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_vlm_decoding import tiny_config
from typer.testing import CliRunner
from vlm_toy import toy_study

from reporter.cli.app import app
from reporter.contracts.findings import LEVEL_FIELDS, StudyFindings, field_values
from reporter.errors import ModelFileError
from reporter.training.vlm_data import ShardSet, make_example, shard_views, write_shard
from reporter.training.vlm_finetune import finetune
from reporter.training.vlm_train import CHECKPOINT, TrainConfig, train
from reporter.vlm.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS
from reporter.vlm.config import ViewConfig
from reporter.vlm.inference import load_model, new_model, save_model


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _findings(levels: list[str], rng: np.random.Generator) -> StudyFindings:
    out = []
    for lv in levels:
        d: dict = {"level": lv}
        for f in LEVEL_FIELDS:
            d[f] = {"value": field_values(f)[int(rng.integers(len(field_values(f))))]}
        d["herniation"] = {"value": "none"}
        d["spondylolisthesis"] = {"value": 0}
        out.append(d)
    study = {"lumbar_vertebrae": 5, "transitional": {"value": "none"},
             "alignment": {"value": "normal"}}  # fmt: skip
    return StudyFindings.model_validate({"study": study, "levels": out})


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("shards")
    examples = []
    for s in range(4):
        study, anatomy = toy_study(seed=s, axial=s % 2 == 0)
        examples.append(make_example(study, anatomy, _findings(anatomy.levels, rng), ViewConfig(),
                                     {"seed": s}))  # fmt: skip
    write_shard(folder / "views-00000.safetensors", examples)
    return folder


@pytest.fixture(scope="module")
def trained(shards, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model")
    cfg = TrainConfig(steps=2, batch_studies=2, warmup=1, checkpoint_every=1)
    import reporter.training.vlm_train as tr

    orig = tr.new_model
    tr.new_model = lambda config=None: orig(tiny_config())
    try:
        train([shards], out, cfg, val_dirs=[shards], resume=False)
    finally:
        tr.new_model = orig
    return out


def test_saved_model_round_trips_and_predicts_the_same(trained, shards):
    data = ShardSet.load([shards])
    a = load_model(trained).predict_views(shard_views(data, 0))
    b = load_model(trained).predict_views(shard_views(data, 0))
    assert a == b
    assert (trained / "calibration.json").is_file()
    assert (trained / CHECKPOINT / "optimizer.safetensors").is_file()


def test_tampered_weights_are_refused_with_model_file_error(trained, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(trained, bad)
    with (bad / "model.safetensors").open("r+b") as fh:
        fh.seek(-8, 2)
        fh.write(b"\x00" * 8)
    with pytest.raises(ModelFileError, match="sha256"):
        load_model(bad)
    (bad / "model.safetensors").unlink()
    with pytest.raises(ModelFileError, match="missing"):
        load_model(bad)


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "nope")


def test_training_resumes_from_its_checkpoint(trained, shards):
    cfg = TrainConfig(steps=3, batch_studies=2, warmup=1, checkpoint_every=100)
    summary = train([shards], trained, cfg, resume=True)
    assert summary["steps_done"] == 3


def test_lora_adapter_is_peft_format_and_changes_provenance(trained, shards, tmp_path):
    adapter = tmp_path / "adapter"
    info = finetune(trained, [shards], adapter, steps=2, batch_studies=2)
    assert (adapter / ADAPTER_CONFIG).is_file() and (adapter / ADAPTER_WEIGHTS).is_file()
    model = load_model(trained, adapter)
    prov = model.provenance()
    assert prov["adapter_sha256"] == info["adapter_sha256"]
    assert prov["prompt_version"] == "vlm-v1" and len(prov["prompt_sha256"]) == 64
    findings = model.predict_views(shard_views(ShardSet.load([shards]), 1))
    StudyFindings.model_validate_json(findings.to_json())


def test_predict_from_study_and_anatomy_gives_probabilities_for_every_assessed_field(tmp_path):
    model = new_model(tiny_config())
    save_model(model, tmp_path / "m")
    study, anatomy = toy_study()
    findings = load_model(tmp_path / "m").predict(study, anatomy)
    assert [lf.level for lf in findings.levels] == anatomy.levels
    for lf in findings.levels:
        for f in LEVEL_FIELDS:
            fd = getattr(lf, f)
            assert fd.not_assessable or 0.0 < fd.probability <= 1.0


def test_cli_finetune_with_missing_base_exits_66(tmp_path, shards):
    result = CliRunner().invoke(
        app, ["finetune", "--base", str(tmp_path / "nope"), "--data", str(shards),
              "--out", str(tmp_path / "a")],
    )  # fmt: skip
    assert result.exit_code == 66
    assert "does not exist" in result.output


def test_grade_head_targets_follow_the_views_each_level_sequence_sees(shards):
    from reporter.training.vlm_batches import Augment, Batcher
    from reporter.vlm.decoding import level_grammar
    from reporter.vlm.views import GLOBAL_VIEWS

    net = new_model(tiny_config()).net
    data = ShardSet.load([shards])
    no_axial = Augment(**{**Augment.none().__dict__, "drop_axial": 1.0})
    batch = Batcher(net, data, no_axial).batch([0, 1], np.random.default_rng(0))
    # sequences per study: the study sequence, then one per level
    n0, n1 = (len(data.levels_of[i]) for i in (0, 1))
    levels = [i for i in range(2 + n0 + n1) if i not in (0, 1 + n0)]
    assert len(batch["aux_rows"]) == len(levels) == len(batch["aux_codes"])
    # the heads read exactly the level views the decoder sequence was given
    assert torch.equal(batch["aux_rows"], batch["view_rows"][levels][:, len(GLOBAL_VIEWS) :])
    slots = [s.field for s in level_grammar().slots]
    codes = batch["aux_codes"]
    truth = np.concatenate([data.level_codes[data.levels_of[i]] for i in (0, 1)])
    # the axial stack was dropped: subarticular (axial only) teaches nothing; canal (sagittal
    # too) keeps its ground truth
    assert (codes[:, slots.index("subarticular_stenosis_left")] == -1).all()
    canal = slots.index("canal_stenosis")
    assert np.array_equal(codes[:, canal].numpy(), truth[:, canal])


def test_vision_stage_trains_the_vision_path_only_and_resumes_its_heads(shards, tmp_path):
    import reporter.training.vlm_train as tr

    out = tmp_path / "m"
    cfg = TrainConfig(steps=2, batch_studies=2, warmup=1, checkpoint_every=1, vision_steps=2,
                      aux_weight=0.5)  # fmt: skip
    torch.manual_seed(0)
    start = new_model(tiny_config())
    orig = tr.new_model
    tr.new_model = lambda config=None: start
    before = {k: v.clone() for k, v in start.net.state_dict().items()}
    try:
        train([shards], out, cfg, resume=False)
    finally:
        tr.new_model = orig
    after = load_model(out).net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("visual.") for k in changed)
    assert any(k.startswith("projector.") for k in changed)
    assert not any(k.startswith("decoder.") for k in changed)
    assert (out / CHECKPOINT / tr.HEADS_FILE).is_file()
    # resuming into the decoder stage reads the heads back and trains with them
    more = TrainConfig(steps=3, batch_studies=2, warmup=1, checkpoint_every=100, vision_steps=2,
                       aux_weight=0.5)  # fmt: skip
    assert train([shards], out, more, resume=True)["steps_done"] == 3


def test_each_sequence_of_a_mixed_batch_gets_its_own_view_tokens(shards):
    """A training batch mixes study sequences (3 views) with level sequences (7 views); every
    image position must receive the tokens of the view its layout names, in every row. (A flat
    masked_scatter once shifted all rows after the first study sequence onto other views'
    tokens -- other levels', other studies' -- so the decoder could not learn to read images.)"""
    from reporter.training.vlm_batches import Augment, Batcher
    from reporter.vlm.model import IMAGE_PLACEHOLDER

    net = new_model(tiny_config()).net.eval()
    data = ShardSet.load([shards])
    batch = Batcher(net, data, Augment.none()).batch([0, 1], np.random.default_rng(0))
    with torch.no_grad():
        views = net.encode_views(batch["images"], batch["present"])
        embeds = net.embed(batch["ids"], batch["view_rows"], views)
    k = net.tokens_per_view
    for b in range(len(batch["ids"])):
        positions = (batch["ids"][b] == IMAGE_PLACEHOLDER).nonzero().flatten()
        n_views = len(positions) // k
        expected = views[batch["view_rows"][b, :n_views]].flatten(0, 1)
        assert torch.equal(embeds[b, positions], expected), f"sequence {b}"


def test_cli_train_passes_the_grade_head_options(shards, tmp_path, monkeypatch):
    import reporter.training.vlm_train as tr

    seen = {}

    def fake_train(dirs, out, cfg, **kw):
        seen["cfg"] = cfg
        return {"steps_done": 0, "final_loss_ema": 0.0, "seconds": 0.0, "device": "cpu"}

    monkeypatch.setattr(tr, "train", fake_train)
    result = CliRunner().invoke(
        app, ["train", "--data", str(shards), "--out", str(tmp_path / "m"), "--steps", "5",
              "--vision-steps", "3", "--aux-weight", "0.5"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (seen["cfg"].vision_steps, seen["cfg"].aux_weight) == (3, 0.5)


def test_resuming_with_the_grade_heads_switched_off_is_refused(shards, tmp_path):
    from reporter.errors import UsageError

    out = tmp_path / "m"
    import reporter.training.vlm_train as tr

    orig = tr.new_model
    tr.new_model = lambda config=None: orig(tiny_config())
    try:
        with_heads = TrainConfig(steps=2, batch_studies=2, warmup=1, checkpoint_every=1,
                                 vision_steps=1, aux_weight=0.5)  # fmt: skip
        train([shards], out, with_heads, resume=False)
        without = TrainConfig(steps=3, batch_studies=2, warmup=1, checkpoint_every=100)
        with pytest.raises(UsageError, match="grade heads"):
            train([shards], out, without, resume=True)
    finally:
        tr.new_model = orig
