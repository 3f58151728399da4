"""Training data for the VLM: views + ground-truth targets, cached once as safetensors shards.

Generating a phantom and cutting its views costs about a second of CPU; a training run reads each
study dozens of times. So studies are turned into `Example`s once (in parallel processes) and
written as shards (`views-00000.safetensors`: float16 images, presence, integer target codes; the
shard's metadata holds seeds and sites as JSON) that training memory-maps and re-reads for free.

Target codes per slot of the grammar: 0 = "na" (not assessable / qualifier absent), i + 1 = the
slot's i-th schema value, -1 = unknown (the ground truth said not_assessable: nothing is taught).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from reporter.contracts.anatomy import Anatomy
from reporter.contracts.findings import LEVELS, StudyFindings
from reporter.contracts.study import Study
from reporter.errors import InputDataError, InputMissingError
from reporter.vlm.config import ViewConfig
from reporter.vlm.decoding import SchemaGrammar, level_grammar, study_grammar
from reporter.vlm.views import GLOBAL_VIEWS, LEVEL_VIEWS, StudyViews, build_views

SHARD_GLOB = "views-*.safetensors"
UNKNOWN = -1


def encode_targets(grammar: SchemaGrammar, finding: dict[str, Any]) -> np.ndarray:
    """Finding dicts (field -> {"value":..., qualifier...} | {"not_assessable":...}) -> codes."""
    codes = np.full(len(grammar.slots), UNKNOWN, dtype=np.int16)
    for i, slot in enumerate(grammar.slots):
        fd = finding.get(slot.field)
        if not fd or fd.get("not_assessable") is not None:
            continue
        v = fd.get("value") if slot.qualifier is None else fd.get(slot.qualifier)
        codes[i] = 0 if v is None else slot.values.index(v) + 1
    return codes


def decode_targets(grammar: SchemaGrammar, codes: np.ndarray) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for i, slot in enumerate(grammar.slots):
        c = int(codes[i])
        if slot.qualifier is None:
            if c <= 0:
                out[slot.field] = {"not_assessable": "unknown"}
            else:
                out[slot.field] = {"value": slot.values[c - 1]}
        elif "value" in out[slot.field]:
            out[slot.field][slot.qualifier] = None if c <= 0 else slot.values[c - 1]
    return out


@dataclass
class Example:
    views: StudyViews
    level_codes: np.ndarray  # (n_levels, n_level_slots)
    study_codes: np.ndarray  # (n_study_slots,)
    meta: dict[str, Any] = field(default_factory=dict)


def make_example(
    study: Study,
    anatomy: Anatomy,
    findings: StudyFindings,
    cfg: ViewConfig,
    meta: dict[str, Any] | None = None,
) -> Example:
    views = build_views(study, anatomy, cfg)
    lg, sg = level_grammar(), study_grammar()
    by_level = {lf.level: lf.model_dump() for lf in findings.levels}
    codes = (
        np.stack([encode_targets(lg, by_level.get(lv, {})) for lv in views.levels])
        if views.levels
        else np.zeros((0, len(lg.slots)), np.int16)
    )
    study_codes = encode_targets(sg, findings.study.model_dump())
    return Example(views, codes, study_codes, dict(meta or {}))


# -- sources ------------------------------------------------------------------------------------
def phantom_example(seed: int, site: str, cfg: ViewConfig, priors: str = "realistic") -> Example:
    from reporter.synth import generate_study

    ph = generate_study(seed, site=site, priors=priors)
    meta = {"seed": seed, "site": site, "priors": priors}
    return make_example(ph.study, ph.anatomy, ph.findings, cfg, meta)


def folder_examples(root: Path, cfg: ViewConfig) -> Iterator[Example]:
    """Studies of a dataset folder with ground truth (phantom folders, RSNA 2024 format)."""
    cases = _open_dataset(root)
    for case in cases:
        if case.findings is None:
            continue
        anatomy = case.anatomy
        if anatomy is None:  # e.g. RSNA 2024: no label maps, so levels come from the segmenter
            from reporter.anatomy import segment

            anatomy = segment(case.study)
        yield make_example(case.study, anatomy, case.findings, cfg, {"case": case.case_id})


def _open_dataset(root: Path) -> Iterable[Any]:
    """The datasets area's loaders (phantom folders, RSNA 2024, SPIDER, lumbar3d)."""
    from reporter.datasets import open_dataset

    return open_dataset(root)


# -- shards -------------------------------------------------------------------------------------
def write_shard(path: Path, examples: list[Example]) -> None:
    g_img = np.stack([e.views.global_images for e in examples]).astype(np.float16)
    g_pres = np.stack([e.views.global_present for e in examples]).astype(np.uint8)
    l_img = np.concatenate([e.views.level_images for e in examples]).astype(np.float16)
    l_pres = np.concatenate([e.views.level_present for e in examples]).astype(np.uint8)
    l_study = np.concatenate(
        [np.full(len(e.views.levels), i, np.int32) for i, e in enumerate(examples)]
    )
    l_name = np.concatenate(
        [np.array([LEVELS.index(lv) for lv in e.views.levels], np.int32) for e in examples]
    )
    l_codes = np.concatenate([e.level_codes for e in examples]).astype(np.int16)
    s_codes = np.stack([e.study_codes for e in examples]).astype(np.int16)
    tensors = {
        "global_images": g_img,
        "global_present": g_pres,
        "level_images": l_img,
        "level_present": l_pres,
        "level_study": l_study,
        "level_name": l_name,
        "level_codes": l_codes,
        "study_codes": s_codes,
    }
    meta = {"meta": json.dumps([e.meta for e in examples])}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)


@dataclass
class ShardSet:
    """All cached examples of some shard files, concatenated in memory."""

    global_images: np.ndarray
    global_present: np.ndarray
    level_images: np.ndarray
    level_present: np.ndarray
    level_study: np.ndarray
    level_name: np.ndarray
    level_codes: np.ndarray
    study_codes: np.ndarray
    meta: list[dict[str, Any]]
    levels_of: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.study_codes)

    @classmethod
    def load(cls, folders: Iterable[Path]) -> ShardSet:
        files = sorted(f for d in folders for f in Path(d).glob(SHARD_GLOB))
        if not files:
            raise InputMissingError("no cached view shards (views-*.safetensors) found")
        parts: dict[str, list[np.ndarray]] = {}
        meta: list[dict[str, Any]] = []
        offset = 0
        for f in files:
            t = load_file(str(f))
            from safetensors import safe_open

            with safe_open(str(f), "np") as fh:
                meta += json.loads((fh.metadata() or {}).get("meta", "[]"))
            t["level_study"] = t["level_study"] + offset
            offset += len(t["study_codes"])
            for k, v in t.items():
                parts.setdefault(k, []).append(v)
        cat = {k: np.concatenate(v) for k, v in parts.items()}
        out = cls(**cat, meta=meta)
        order = np.argsort(out.level_study, kind="stable")
        bounds = np.searchsorted(out.level_study[order], np.arange(len(out) + 1))
        out.levels_of = [order[bounds[i] : bounds[i + 1]] for i in range(len(out))]
        return out


def _phantom_worker(
    args: tuple[list[int], str, str, ViewConfig, Path, int],
) -> tuple[int, list[str]]:
    seeds, site, priors, cfg, out_dir, shard_id = args
    torch.set_num_threads(1)
    examples, errors = [], []
    for seed in seeds:
        try:
            examples.append(phantom_example(seed, site, cfg, priors))
        except (InputDataError, ValueError) as exc:  # a phantom the views cannot use: skip it
            errors.append(f"seed {seed}: {exc}")
    if examples:
        write_shard(out_dir / f"views-{shard_id:05d}.safetensors", examples)
    return len(examples), errors


def cache_phantoms(
    out_dir: Path,
    seeds: list[int],
    sites: list[str],
    cfg: ViewConfig,
    workers: int = 1,
    shard_size: int = 16,
    progress: Callable[[int], None] | None = None,
    priors: tuple[str, ...] = ("realistic",),
    time_limit_s: float | None = None,
) -> tuple[int, list[str]]:
    """Generate phantoms and cache their views as shards of `shard_size` consecutive seeds.

    Shard k gets site sites[k % len(sites)] and priors priors[(k // len(sites)) % len(priors)].
    Shards already present are kept, so an interrupted caching run resumes where it stopped.
    With `time_limit_s` no new shard starts after that many seconds (the seeds actually used are
    in each shard's metadata).
    """
    import time

    t0 = time.time()
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    for shard_id, start in enumerate(range(0, len(seeds), shard_size)):
        chunk = seeds[start : start + shard_size]
        if (out_dir / f"views-{shard_id:05d}.safetensors").exists():
            continue
        site = sites[shard_id % len(sites)]
        prior = priors[(shard_id // len(sites)) % len(priors)]
        jobs.append((chunk, site, prior, cfg, out_dir, shard_id))
    done, errors = 0, []

    def expired() -> bool:
        return time_limit_s is not None and time.time() - t0 > time_limit_s

    if workers <= 1:
        for job in jobs:
            if expired():
                break
            n, errs = _phantom_worker(job)
            done, errors = done + n, errors + errs
            if progress:
                progress(n)
    else:
        ctx = mp.get_context("spawn")
        pool = ctx.Pool(workers)
        try:
            # Keep `workers` shards in flight; after the time limit start no new one, but let
            # those under way finish (a shard is a few seconds of work).
            queue = list(jobs)
            running = []
            while queue or running:
                while queue and len(running) < workers and not expired():
                    running.append(pool.apply_async(_phantom_worker, (queue.pop(0),)))
                if expired():
                    queue.clear()
                if not running:
                    break
                ready = [r for r in running if r.ready()]
                if not ready:
                    time.sleep(0.05)
                    continue
                for r in ready:
                    running.remove(r)
                    n, errs = r.get()
                    done, errors = done + n, errors + errs
                    if progress:
                        progress(n)
        finally:
            pool.terminate()
            pool.join()
        for tmp in out_dir.glob("*.tmp"):  # shards cut off mid-write by the time limit
            tmp.unlink()
    return done, errors


def cache_folder(out_dir: Path, root: Path, cfg: ViewConfig, shard_size: int = 32) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    batch: list[Example] = []
    n = shard = 0
    for ex in folder_examples(root, cfg):
        batch.append(ex)
        if len(batch) == shard_size:
            write_shard(out_dir / f"views-{shard:05d}.safetensors", batch)
            n, shard, batch = n + len(batch), shard + 1, []
    if batch:
        write_shard(out_dir / f"views-{shard:05d}.safetensors", batch)
        n += len(batch)
    return n


def shard_views(data: ShardSet, i: int) -> StudyViews:
    """The cached views of study `i` (float32), as `build_views` would have returned them."""
    rows = data.levels_of[i]
    return StudyViews(
        global_images=data.global_images[i].astype(np.float32),
        global_present=data.global_present[i].astype(bool),
        levels=[LEVELS[int(k)] for k in data.level_name[rows]],
        level_images=data.level_images[rows].astype(np.float32),
        level_present=data.level_present[rows].astype(bool),
        warnings=[],
    )


__all__ = [
    "GLOBAL_VIEWS",
    "LEVEL_VIEWS",
    "Example",
    "ShardSet",
    "cache_folder",
    "cache_phantoms",
    "decode_targets",
    "encode_targets",
    "make_example",
    "shard_views",
]
