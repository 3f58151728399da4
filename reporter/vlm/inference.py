"""`SpineVLM`: a loaded model that turns (Study, Anatomy) into StudyFindings, and `load_model`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from reporter.contracts.anatomy import Anatomy
from reporter.contracts.findings import (
    LEVEL_FIELDS,
    LEVELS,
    LevelFindings,
    StudyFindings,
    StudyLevelFindings,
    not_assessable_level,
)
from reporter.contracts.study import Study
from reporter.errors import ModelFileError
from reporter.resources import weights_dir
from reporter.vlm import io
from reporter.vlm.config import VLMConfig
from reporter.vlm.decoding import STUDY_GRAMMAR_FIELDS, SequenceSpec, constrained_decode
from reporter.vlm.model import SpineVLMModel, level_spec, sequence_batch, study_spec
from reporter.vlm.tokenizer import SpineTokenizer
from reporter.vlm.views import (
    GLOBAL_VIEWS,
    LEVEL_VIEWS,
    REPORTED_LEVELS,
    StudyViews,
    build_views,
    not_assessable_fields,
    presence_of_level,
    presence_of_study,
)

DEFAULT_MODEL_DIR = weights_dir() / "vlm"


def view_table(views: StudyViews) -> tuple[torch.Tensor, torch.Tensor]:
    """All images of a study in one tensor: the global views, then each level's views."""
    size = views.global_images.shape[-1]
    imgs = np.concatenate(
        [views.global_images, views.level_images.reshape(-1, 3, size, size)], axis=0
    )
    pres = np.concatenate(
        [views.global_present.any(-1), views.level_present.any(-1).reshape(-1)], axis=0
    )
    return torch.from_numpy(imgs), torch.from_numpy(pres)


def level_rows(level_index: int) -> list[int]:
    g = len(GLOBAL_VIEWS)
    return [*range(g), *(g + level_index * len(LEVEL_VIEWS) + i for i in range(len(LEVEL_VIEWS)))]


STUDY_ROWS = list(range(len(GLOBAL_VIEWS)))


class SpineVLM:
    """The model part of the pipeline: views -> network -> constrained decoding -> findings."""

    def __init__(
        self,
        net: SpineVLMModel,
        calibration: dict[str, Any] | None = None,
        model_sha256: str | None = None,
        adapter_sha256: str | None = None,
        name: str = "spine-vlm",
    ) -> None:
        self.net = net.eval()
        self.calibration = calibration or {}
        self.model_sha256 = model_sha256
        self.adapter_sha256 = adapter_sha256
        self.name = name

    @property
    def config(self) -> VLMConfig:
        return self.net.config

    @property
    def temperatures(self) -> dict[str, float]:
        return dict(self.calibration.get("temperatures", {}))

    @property
    def thresholds(self) -> dict[str, float]:
        return dict(self.calibration.get("thresholds", {}))

    def provenance(self) -> dict[str, Any]:
        return {
            "model_name": self.name,
            "model_sha256": self.model_sha256,
            "adapter_sha256": self.adapter_sha256,
            "prompt_version": self.net.template.version,
            "prompt_sha256": self.net.template.sha256,
        }

    # -- the public call ----------------------------------------------------------------------
    def predict(self, study: Study, anatomy: Anatomy) -> StudyFindings:
        views = build_views(study, anatomy, self.config.views)
        return self.predict_views(views, anatomy)

    @torch.inference_mode()
    def predict_views(
        self,
        views: StudyViews,
        anatomy: Anatomy | None = None,
        generator: torch.Generator | None = None,
        temperatures: dict[str, float] | None = None,
        distributions: dict[str, dict[str, dict[Any, float]]] | None = None,
    ) -> StudyFindings:
        """Decode findings from prepared views (`generator`: sample instead of greedy).

        `distributions`, when given, receives level -> field -> {value: probability} over the
        allowed values (for log-loss metrics; single-token vocabularies only)."""
        net = self.net
        temps = self.temperatures if temperatures is None else temperatures
        device = next(net.parameters()).device
        images, present = view_table(views)
        vt = net.encode_views(images.to(device), present.to(device))

        level_specs = [
            level_spec(net, not_assessable_fields(LEVEL_FIELDS, presence_of_level(views, i)))
            for i in range(len(views.levels))
        ]
        seqs = [(lv, [], level_rows(i)) for i, lv in enumerate(views.levels)]
        decoded: list[dict[str, dict[str, Any]]] = []
        if net.constraint.all_single_token and seqs:
            decoded = self._decode(vt, seqs, level_specs, temps, generator)
        else:
            for seq, spec in zip(seqs, level_specs, strict=True):
                decoded += self._decode(vt, [seq], [spec], temps, generator)
        s_spec = study_spec(
            net, not_assessable_fields(STUDY_GRAMMAR_FIELDS, presence_of_study(views))
        )
        study_dec = self._decode(vt, [(None, [], STUDY_ROWS)], [s_spec], temps, generator)[0]
        if distributions is not None:
            for level, fields in zip(views.levels, decoded, strict=True):
                distributions[level] = {
                    f: fd["_distribution"] for f, fd in fields.items() if "_distribution" in fd
                }
        return self._assemble(views, decoded, study_dec, anatomy)

    def _decode(
        self,
        view_tokens: torch.Tensor,
        seqs: list[tuple[str | None, list[int], list[int]]],
        specs: list[SequenceSpec],
        temps: dict[str, float],
        generator: torch.Generator | None,
    ) -> list[dict[str, dict[str, Any]]]:
        net = self.net
        batch = sequence_batch(net, seqs)
        device = view_tokens.device
        if bool((batch["attention_mask"] == 0).any()):  # prompts of unequal length: one by one
            return [
                d
                for seq, spec in zip(seqs, specs, strict=True)
                for d in self._decode(view_tokens, [seq], [spec], temps, generator)
            ]
        embeds = net.embed(batch["ids"].to(device), batch["view_rows"].to(device), view_tokens)
        out = net.decoder(inputs_embeds=embeds, use_cache=True, logits_to_keep=1)
        state = {"cache": out.cache}

        def step(ids: torch.Tensor) -> torch.Tensor:
            o = net.decoder(
                input_ids=ids.to(device), cache=state["cache"], use_cache=True, logits_to_keep=1
            )
            state["cache"] = o.cache
            return o.logits[:, -1]

        return constrained_decode(
            step, out.logits[:, -1], specs, net.constraint, temps, generator=generator
        )

    def _assemble(
        self,
        views: StudyViews,
        decoded: list[dict[str, dict[str, Any]]],
        study_dec: dict[str, dict[str, Any]],
        anatomy: Anatomy | None,
    ) -> StudyFindings:
        levels: dict[str, LevelFindings] = {}
        for level, fields in zip(views.levels, decoded, strict=True):
            levels[level] = LevelFindings.model_validate({"level": level, **_clean(fields)})
        if anatomy is not None:
            for lv in anatomy.levels:
                if lv in REPORTED_LEVELS and lv not in levels:
                    levels[lv] = not_assessable_level(lv, "disc not found in the segmentation")
            for lv in anatomy.missing:
                if lv in REPORTED_LEVELS and lv not in levels:
                    levels[lv] = not_assessable_level(lv, "outside the field of view")
        ordered = [levels[lv] for lv in LEVELS if lv in levels]
        study = StudyLevelFindings.model_validate(
            {
                "lumbar_vertebrae": anatomy.lumbar_vertebrae if anatomy is not None else None,
                **_clean(study_dec),
            }
        )
        return StudyFindings(study=study, levels=ordered)

    def indeterminate(self, findings: StudyFindings) -> list[dict[str, Any]]:
        """Statements whose calibrated probability is below their field's abstention threshold:
        the report shows them as "indeterminate" rather than as a finding."""
        out: list[dict[str, Any]] = []
        thresholds = self.thresholds
        for lf in findings.levels:
            for f in LEVEL_FIELDS:
                fd = getattr(lf, f)
                t = thresholds.get(f)
                if t is not None and fd.probability is not None and fd.probability < t:
                    out.append(
                        {
                            "level": lf.level,
                            "field": f,
                            "value": fd.value,
                            "probability": fd.probability,
                            "threshold": t,
                        }
                    )
        return out


def _clean(fields: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, fd in fields.items():
        out[name] = {k: v for k, v in fd.items() if not k.startswith("_") and v is not None}
    return out


# -- building, saving and loading ---------------------------------------------------------------
def new_model(config: VLMConfig | None = None, tokenizer: SpineTokenizer | None = None) -> SpineVLM:
    """A randomly initialised model (for training, and for tests of the decoder)."""
    from reporter.vlm.prompt import PromptTemplate
    from reporter.vlm.vocabulary import build_default_tokenizer

    config = config or VLMConfig()
    tokenizer = tokenizer or build_default_tokenizer(PromptTemplate.load(config.prompt_file))
    return SpineVLM(SpineVLMModel(config, tokenizer))


def save_model(model: SpineVLM, folder: Path, card: str | None = None) -> str:
    """Write a model folder (see reporter.vlm.io); returns the weights' sha256."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / io.CONFIG).write_text(model.config.to_json() + "\n")
    model.net.tokenizer.save(folder / io.TOKENIZER)
    io.save_weights(model.net, folder / io.WEIGHTS, metadata={"format": "spine-vlm"})
    if model.calibration:
        io.write_json(folder / io.CALIBRATION, model.calibration)
    elif (folder / io.CALIBRATION).exists():
        (folder / io.CALIBRATION).unlink()
    if card is not None:
        (folder / "MODEL_CARD.md").write_text(card)
    files = io.write_manifest(folder)
    model.model_sha256 = files[io.WEIGHTS]
    return files[io.WEIGHTS]


def load_model(path: Path | str | None = None, adapter: Path | str | None = None) -> SpineVLM:
    """Load a model folder (None = the embedded default); `adapter`: a LoRA adapter folder."""
    folder = Path(path) if path is not None else DEFAULT_MODEL_DIR
    files = io.verify_folder(folder, (io.CONFIG, io.WEIGHTS, io.TOKENIZER))
    config = VLMConfig.from_json((folder / io.CONFIG).read_text())
    tokenizer = SpineTokenizer.load(folder / io.TOKENIZER)
    net = SpineVLMModel(config, tokenizer)
    io.load_weights(net, folder / io.WEIGHTS)
    calibration = io.read_json(folder / io.CALIBRATION) if io.CALIBRATION in files else {}
    name = "spine-vlm-default" if path is None else folder.name
    model = SpineVLM(net, calibration, model_sha256=files[io.WEIGHTS], name=name)
    if adapter is not None:
        from reporter.vlm.adapters import apply_adapter

        apply_adapter(model, Path(adapter))
    if not isinstance(model.net, SpineVLMModel):
        raise ModelFileError("the loaded network is not a spine VLM")
    return model
