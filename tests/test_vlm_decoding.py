"""Schema-constrained decoding: valid output for any weights and any tokenizer."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest
import torch
from vlm_toy import toy_study

from reporter.contracts.findings import LEVEL_FIELDS, StudyFindings, json_schema
from reporter.vlm.config import TextConfig, ViewConfig, VisionConfig, VLMConfig
from reporter.vlm.decoding import Constraint, SequenceSpec, level_grammar, study_grammar
from reporter.vlm.inference import new_model
from reporter.vlm.prompt import PromptTemplate
from reporter.vlm.tokenizer import train_byte_level_bpe
from reporter.vlm.views import build_views
from reporter.vlm.vocabulary import build_default_tokenizer


def tiny_config() -> VLMConfig:
    vision = VisionConfig()
    oc = copy.deepcopy(vision.open_clip_config)
    oc["embed_dim"] = 32
    oc["vision_cfg"].update(width=32, layers=1, head_width=16)
    return VLMConfig(
        vision_config=VisionConfig(model_name="spine-vit-test", open_clip_config=oc),
        text_config=TextConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
            num_key_value_heads=2,
        ),
    )  # fmt: skip


def _corpus(template: PromptTemplate) -> list[str]:
    from reporter.vlm.decoding import value_text

    texts = [template.study, template.level]
    for g in (level_grammar(), study_grammar()):
        for s in g.slots:
            texts.append(" ".join(f"{s.name} = {value_text(v)} ;" for v in s.values))
    return texts * 3


@pytest.fixture(autouse=True)
def _one_thread():
    # The CI box has 2 cores shared by pytest-xdist workers: one torch thread each.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def views():
    study, anatomy = toy_study()
    return build_views(study, anatomy, ViewConfig()), anatomy


@pytest.mark.parametrize("tokenizer_kind", ["default", "byte_level_bpe"])
def test_100_samples_from_random_weights_are_schema_valid(views, tokenizer_kind):
    torch.manual_seed(0)
    template = PromptTemplate.load("vlm_v1.json")
    if tokenizer_kind == "default":
        tok = build_default_tokenizer(template)
    else:
        tok = train_byte_level_bpe(_corpus(template), vocab_size=300)
        # The point of this case: values span several tokens under this tokenizer.
        assert not Constraint(tok, template).all_single_token
    model = new_model(tiny_config(), tok)
    v, anatomy = views
    gen = torch.Generator().manual_seed(1)
    validator = jsonschema.Draft202012Validator(json_schema())
    seen_values: set[str] = set()
    n = 100 if tokenizer_kind == "default" else 25
    for _ in range(n):
        # Very hot sampling reaches the rare branches (zones, slip directions) of the grammar.
        temps = {name: 50.0 for name in ("herniation", "spondylolisthesis", "disc_bulging")}
        findings = model.predict_views(v, anatomy, generator=gen, temperatures=temps)
        data = json.loads(findings.to_json())
        validator.validate(data)
        StudyFindings.model_validate(data)
        seen_values.update(str(lv["herniation"].get("value")) for lv in data["levels"])
    assert {"protrusion", "extrusion", "bulge"} & seen_values


def test_probability_is_a_distribution_over_allowed_values(views):
    model = new_model(tiny_config())
    v, anatomy = views
    dists: dict = {}
    findings = model.predict_views(v, anatomy, distributions=dists)
    lf = findings.levels[0]
    for field in ("pfirrmann", "canal_stenosis", "modic_upper"):
        d = dists[lf.level][field]
        assert sum(d.values()) == pytest.approx(1.0, abs=1e-5)
        assert getattr(lf, field).probability == pytest.approx(d[getattr(lf, field).value])


def test_grammar_follows_the_schema_validators():
    g = level_grammar()
    herniation = next(i for i, s in enumerate(g.slots) if s.name == "herniation")
    zone = next(i for i, s in enumerate(g.slots) if s.name == "herniation_zone")
    assert "bulge" not in g.allowed(herniation, {"disc_bulging": {"value": False}})
    assert "bulge" in g.allowed(herniation, {"disc_bulging": {"value": True}})
    assert "central" in g.allowed(zone, {"herniation": {"value": "protrusion"}})
    assert g.allowed(zone, {"herniation": {"value": "none"}}) == (None,)


def test_fields_needing_a_missing_series_decode_as_not_assessable():
    study, anatomy = toy_study(axial=False, t1=False)
    v = build_views(study, anatomy, ViewConfig())
    findings = new_model(tiny_config()).predict_views(v, anatomy)
    for lf in findings.levels:
        assert lf.modic_upper.not_assessable and lf.modic_lower.not_assessable
        assert lf.subarticular_stenosis_left.not_assessable
        assert lf.pfirrmann.value is not None  # T2 is there


def test_teacher_forced_answer_marks_only_open_choices_for_learning():
    template = PromptTemplate.load("vlm_v1.json")
    c = Constraint(build_default_tokenizer(template), template)
    spec = SequenceSpec(level_grammar(), {"subarticular_stenosis_left": "no axial"})
    targets = {f: {"value": None} for f in LEVEL_FIELDS}
    targets.update(pfirrmann={"value": 4}, herniation={"value": "none"})
    _ids, sup = c.teacher_forced(spec, targets)
    names = [name for _p, _a, name in sup]
    assert "pfirrmann" in names and "herniation" in names
    assert "subarticular_stenosis_left" not in names
