"""The spine VLM, read top to bottom:

    views (per study and per level, 3-channel T2/T1/STIR images at fixed mm per pixel)
      -> open_clip ViT (patch tokens + pooled token)
      -> projector (pool patch tokens to a small grid, 2-layer MLP into the decoder width)
      -> inserted into the prompt embeddings where the template says <image:VIEW>
      -> causal LM (transformers), teacher-forced in training, schema-constrained at inference.

One decoder sequence per disc level (prompt: the study's global views, the level's crops, the
level name) and one for the study-level fields. A view that the study cannot provide (series
missing, level outside the axial stacks) is replaced by a learned "missing view" embedding, and
the fields that need it are forced to not_assessable by the decoder, never guessed.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, PreTrainedModel

from reporter.errors import ModelFileError
from reporter.vlm.config import TextConfig, VisionConfig, VLMConfig
from reporter.vlm.decoding import Constraint, SequenceSpec
from reporter.vlm.prompt import PromptTemplate
from reporter.vlm.tokenizer import SpineTokenizer

IMAGE_PLACEHOLDER = -1  # in layouts: a position that takes an image token, not a text token


def build_vision_tower(cfg: VisionConfig) -> nn.Module:
    """An open_clip visual tower from our JSON config (registered, created without download)."""
    # open_clip logs a warning for every model built without pretrained weights; ours never has.
    logging.getLogger().disabled, was = True, logging.getLogger().disabled
    try:
        visual = _create_visual(cfg)
    finally:
        logging.getLogger().disabled = was
    if cfg.weights is not None:
        from reporter.vlm.io import load_state_dict_file

        visual.load_state_dict(load_state_dict_file(Path(cfg.weights)))
    return visual


def _create_visual(cfg: VisionConfig) -> nn.Module:
    if cfg.open_clip_config is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{cfg.model_name}.json"
            path.write_text(json.dumps(cfg.open_clip_config))
            open_clip.add_model_config(path)
            clip = open_clip.create_model(cfg.model_name, pretrained=None)
    else:
        clip = open_clip.create_model(cfg.model_name, pretrained=None)
    visual = clip.visual
    visual.output_tokens = True
    return visual


def build_decoder(cfg: TextConfig, vocab_size: int) -> PreTrainedModel:
    if cfg.path is not None:
        folder = Path(cfg.path)
        if not folder.is_dir():
            raise ModelFileError(f"decoder folder {folder} does not exist")
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
        if model.get_input_embeddings().num_embeddings < vocab_size:
            model.resize_token_embeddings(vocab_size)
        return model
    llama = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        rms_norm_eps=cfg.rms_norm_eps,
        rope_theta=cfg.rope_theta,
        tie_word_embeddings=cfg.tie_word_embeddings,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    return LlamaForCausalLM(llama)


class Projector(nn.Module):
    """Patch tokens -> pool_grid^2 pooled tokens + the pooled token -> MLP into decoder width."""

    def __init__(self, vision_width: int, embed_dim: int, hidden: int, pool_grid: int) -> None:
        super().__init__()
        self.pool_grid = pool_grid
        self.patch_in = nn.Linear(vision_width, hidden)
        self.pooled_in = nn.Linear(embed_dim, hidden)
        self.mlp = nn.Sequential(nn.GELU(), nn.Linear(hidden, hidden))

    @property
    def tokens_per_view(self) -> int:
        return self.pool_grid**2 + 1

    def forward(self, pooled: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        n, length, width = tokens.shape
        side = round(length**0.5)
        grid = tokens.transpose(1, 2).reshape(n, width, side, side)
        grid = F.adaptive_avg_pool2d(grid, self.pool_grid).flatten(2).transpose(1, 2)
        x = torch.cat([self.pooled_in(pooled)[:, None], self.patch_in(grid)], dim=1)
        return self.mlp(x)


@dataclass
class Layout:
    """Token ids of one prompt, IMAGE_PLACEHOLDER where view tokens go, and which views."""

    ids: list[int]
    views: list[str]  # in order of appearance; each takes tokens_per_view placeholders


class SpineVLMModel(nn.Module):
    """The network; `reporter.vlm.inference.SpineVLM` wraps it with views, decoding, calibration."""

    def __init__(self, config: VLMConfig, tokenizer: SpineTokenizer) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.template = PromptTemplate.load(config.prompt_file)
        self.constraint = Constraint(tokenizer, self.template)
        self.visual = build_vision_tower(config.vision_config)
        self.decoder = build_decoder(config.text_config, tokenizer.vocab_size)
        hidden = self.decoder.config.hidden_size
        oc = config.vision_config.open_clip_config or {}
        width = int(oc.get("vision_cfg", {}).get("width", hidden))
        embed_dim = int(oc.get("embed_dim", width))
        self.projector = Projector(width, embed_dim, hidden, config.projector.pool_grid)
        k = self.projector.tokens_per_view
        self.missing_view = nn.Parameter(torch.zeros(k, hidden))
        self._layouts: dict[str | None, Layout] = {}

    @property
    def tokens_per_view(self) -> int:
        return self.projector.tokens_per_view

    # -- step 1: images -> view tokens in the decoder's width ---------------------------------
    def encode_views(self, images: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) images and (N,) presence -> (N, tokens_per_view, hidden)."""
        out = self.missing_view.expand(images.shape[0], -1, -1).clone()
        if bool(present.any()):
            pooled, tokens = self.visual(images[present])
            out[present] = self.projector(pooled, tokens).to(out.dtype)
        return out

    # -- step 2: the prompt layout of one sequence ---------------------------------------------
    def layout(self, level: str | None) -> Layout:
        if level not in self._layouts:
            ids: list[int] = []
            views: list[str] = []
            for piece in self.template.pieces(level):
                if piece.view is not None:
                    ids += [IMAGE_PLACEHOLDER] * self.tokens_per_view
                    views.append(piece.view)
                else:
                    ids += self.tokenizer.encode(piece.text or "")
            self._layouts[level] = Layout(ids, views)
        return self._layouts[level]

    # -- step 3: embeddings of whole sequences, view tokens spliced in ------------------------
    def embed(
        self, ids: torch.Tensor, view_rows: torch.Tensor, views: torch.Tensor
    ) -> torch.Tensor:
        """ids (B, L) with IMAGE_PLACEHOLDER at image positions; view_rows (B, n_views) index
        into `views` (N, k, hidden). Returns inputs_embeds (B, L, hidden)."""
        is_image = ids == IMAGE_PLACEHOLDER
        emb = self.decoder.get_input_embeddings()(ids.clamp(min=0))
        image_tokens = views[view_rows].flatten(1, 2)  # (B, n_views * k, hidden)
        # Rows have different numbers of views (study: 3, level: 7; view_rows is padded), and
        # masked_scatter consumes its source flat, in order: drop each row's padding first, or
        # every row after a shorter one receives the tokens of other views.
        width = torch.arange(image_tokens.shape[1], device=ids.device)
        keep = width[None, :] < is_image.sum(1, keepdim=True)
        return emb.masked_scatter(is_image[..., None], image_tokens[keep].to(emb.dtype))

    # -- step 4: the causal LM ----------------------------------------------------------------
    def forward(
        self,
        ids: torch.Tensor,
        attention_mask: torch.Tensor,
        view_rows: torch.Tensor,
        images: torch.Tensor,
        present: torch.Tensor,
    ) -> torch.Tensor:
        """Teacher-forced logits (B, L, V) for training and calibration."""
        views = self.encode_views(images, present)
        embeds = self.embed(ids, view_rows, views)
        return self.decoder(inputs_embeds=embeds, attention_mask=attention_mask).logits


def supervised_loss(
    logits: torch.Tensor,
    sup_batch: torch.Tensor,
    sup_pos: torch.Tensor,
    sup_allowed: torch.Tensor,
    sup_target: torch.Tensor,
    temperature: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy on value tokens only, among the tokens the grammar allowed there.

    The token at position p is predicted by the logits at p - 1; `sup_allowed` (n, V) is the
    allowed mask so that training optimises exactly the distribution the decoder reports.
    """
    scores = logits[sup_batch, sup_pos - 1].float()
    if temperature is not None:
        scores = scores / temperature[:, None]
    scores = scores.masked_fill(~sup_allowed, float("-inf"))
    return F.cross_entropy(scores, sup_target, reduction=reduction)


def sequence_batch(
    model: SpineVLMModel,
    sequences: list[tuple[str | None, list[int], list[int]]],
    supervised: list[list[tuple[int, list[int], str]]] | None = None,
) -> dict[str, Any]:
    """Collate sequences into tensors: (level or None for the study sequence, answer ids, the
    row in the image table of each view of the layout, in layout order)."""
    rows: list[list[int]] = []
    all_ids: list[list[int]] = []
    for level, answer, view_rows_of_seq in sequences:
        lay = model.layout(level)
        if len(view_rows_of_seq) != len(lay.views):
            raise ValueError(f"sequence for {level!r} needs {len(lay.views)} view rows")
        all_ids.append(lay.ids + answer)
        rows.append(list(view_rows_of_seq))
    length = max(len(x) for x in all_ids)
    pad = model.tokenizer.pad_id
    ids = torch.full((len(all_ids), length), pad, dtype=torch.long)
    mask = torch.zeros((len(all_ids), length), dtype=torch.long)
    for b, x in enumerate(all_ids):
        ids[b, : len(x)] = torch.tensor(x)
        mask[b, : len(x)] = 1
    width = max(len(r) for r in rows)
    view_rows = torch.tensor([r + [r[-1]] * (width - len(r)) for r in rows], dtype=torch.long)
    out: dict[str, Any] = {"ids": ids, "attention_mask": mask, "view_rows": view_rows}
    if supervised is not None:
        vocab = model.tokenizer.vocab_size
        b_idx, pos, allowed, target, names = [], [], [], [], []
        for b, (sup, (level, _answer, _row)) in enumerate(zip(supervised, sequences, strict=True)):
            offset = len(model.layout(level).ids)
            for p, allowed_ids, name in sup:
                b_idx.append(b)
                pos.append(offset + p)
                row = np.zeros(vocab, dtype=bool)
                row[allowed_ids] = True
                allowed.append(row)
                target.append(all_ids[b][offset + p])
                names.append(name)
        out["sup_batch"] = torch.tensor(b_idx, dtype=torch.long)
        out["sup_pos"] = torch.tensor(pos, dtype=torch.long)
        out["sup_allowed"] = (
            torch.from_numpy(np.stack(allowed))
            if allowed
            else torch.zeros((0, vocab), dtype=torch.bool)
        )
        out["sup_target"] = torch.tensor(target, dtype=torch.long)
        out["sup_names"] = names
    return out


def level_spec(model: SpineVLMModel, not_assessable: dict[str, str]) -> SequenceSpec:
    from reporter.vlm.decoding import level_grammar

    return SequenceSpec(_cached_grammar("level", level_grammar), not_assessable)


def study_spec(model: SpineVLMModel, not_assessable: dict[str, str]) -> SequenceSpec:
    from reporter.vlm.decoding import study_grammar

    return SequenceSpec(_cached_grammar("study", study_grammar), not_assessable)


_GRAMMARS: dict[str, Any] = {}


def _cached_grammar(name: str, build: Any) -> Any:
    if name not in _GRAMMARS:
        _GRAMMARS[name] = build()
    return _GRAMMARS[name]
