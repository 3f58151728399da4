"""Training loop of the built-in segmenter (read top to bottom: data, augmentation, loss, loop).

Data: phantoms generated on the fly by reporter.synth.generate_study (a rolling pool, one new
study every few steps, sites cycling through the domain-randomized "random" site and the
training sites), optionally mixed with the real lumbar3d volumes of the fixed training split
(reporter.anatomy.segmenter_data.LUMBAR3D_HELDOUT is never trained on).

Real volumes label one structure type each, so the loss is a partial-label (marginal) DiceCE:
classes a sample does not annotate are merged into background before MONAI's DiceCELoss, and
rows outside the labelled span are masked out (a vb3 volume leaves T12 and the sacrum unlabelled).

Checkpoints are safetensors + JSON (never pickle) and a run resumes from them exactly where it
stopped (weights, optimizer moments, step, data seed).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from reporter.anatomy import segmenter_data as sd
from reporter.anatomy.segmenter import SegmenterConfig, build_network, load_segmenter, save_weights
from reporter.errors import InputDataError, ModelFileError, OutputError

CHECKPOINT_FILE = "checkpoint.safetensors"
STATE_FILE = "train_state.json"
# Training seeds (reporter/synth/seeds.py): 0..99_999; this loop uses a window of it.
TRAIN_SEED_START = 0
TRAIN_SEED_END = 100_000


@dataclass
class TrainConfig:
    steps: int = 3000
    batch_size: int = 8
    crop: int = 192
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    sites: tuple[str, ...] = ("random", "site-a", "random", "site-b")
    pool_size: int = 24  # phantom studies held in memory
    refresh_every: int = 6  # steps between two newly generated phantoms
    real_fraction: float = 0.35  # share of a batch from real volumes when --real is given
    gmm_prob: float = 0.3  # SynthSeg-style random intensities per tissue label
    checkpoint_every: int = 200
    threads: int = 1
    init: str | None = None  # start from these weights (fine-tuning)
    # Neighbour slices on each side as extra input channels (2.5-D); None: those of --init
    # (0 without it). A 2-D --init grows into a 2.5-D model by `inflate_input`.
    context_slices: int | None = None
    model: SegmenterConfig = field(default_factory=SegmenterConfig)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_json()
        return d


# --- data ----------------------------------------------------------------------------------


class PhantomPool:
    """A rolling pool of phantom slice stacks; generating a study is the expensive part."""

    def __init__(
        self,
        generate: Callable[[int, str], object],
        sites: tuple[str, ...],
        size: int,
        first_seed: int,
    ) -> None:
        self.generate = generate
        self.sites = sites
        self.size = size
        self.next_seed = first_seed
        self.stacks: list[sd.SliceStack] = []
        self.generated = 0
        self.stride = 1  # seeds advance by the number of parallel pools

    def add_one(self) -> None:
        seed = TRAIN_SEED_START + (self.next_seed % (TRAIN_SEED_END - TRAIN_SEED_START))
        site = self.sites[(self.next_seed // self.stride) % len(self.sites)]
        self.next_seed += self.stride
        new = sd.phantom_stacks(self.generate(seed, site))
        self.generated += 1
        self.stacks.extend(new)
        # Keep roughly `size` studies (two stacks each): drop the oldest.
        excess = len(self.stacks) - 2 * self.size
        if excess > 0:
            del self.stacks[:excess]

    def fill(self, progress: Callable[[int], None] | None = None) -> None:
        while len(self.stacks) < 2 * self.size:
            before = len(self.stacks)
            self.add_one()
            if len(self.stacks) == before:
                raise InputDataError("the phantom generator returned no sagittal series")
            if progress:
                progress(self.generated)


def default_generator() -> Callable[[int, str], object]:
    try:
        from reporter.synth import generate_study
    except ImportError as exc:
        raise InputDataError(f"the phantom generator is not available: {exc}") from None
    return lambda seed, site: generate_study(seed, site=site)


@dataclass
class Batch:
    image: torch.Tensor  # (B, C, S, S): the centre slice with its neighbours
    labels: torch.Tensor  # (B, 1, S, S) long, generic classes
    annotated: torch.Tensor  # (B, K) bool
    valid: torch.Tensor  # (B, 1, S, S) bool


def sample_crop(
    stack: sd.SliceStack,
    rng: np.random.Generator,
    crop: int,
    gmm_prob: float,
    context_slices: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One (image (C, crop, crop), labels, valid) crop from a stack, centred near the spine most
    of the time; the image channels are the slice and its neighbours (C = 2*context_slices+1)."""
    k = int(rng.choice(len(stack.image), p=stack.slice_weights))
    idx = sd.context_indices(len(stack.image), k, context_slices, sd.context_offset(stack.slice_mm))
    img, lbl = stack.image[idx], stack.labels[k]
    h, w = lbl.shape
    valid = np.ones((h, w), dtype=bool)
    if stack.valid_rows is not None:
        valid[:] = False
        valid[stack.valid_rows[0] : stack.valid_rows[1]] = True
    fg = np.argwhere(lbl > 0)
    if fg.size and rng.random() < 0.8:
        cy, cx = fg[rng.integers(len(fg))]
    else:
        cy, cx = rng.integers(h), rng.integers(w)
    cy += int(rng.integers(-crop // 4, crop // 4 + 1))
    cx += int(rng.integers(-crop // 4, crop // 4 + 1))
    y0, x0 = int(cy) - crop // 2, int(cx) - crop // 2

    def cut(a: np.ndarray, fill: float) -> np.ndarray:
        out = np.full((*a.shape[:-2], crop, crop), fill, dtype=a.dtype)
        ys, xs = max(0, y0), max(0, x0)
        ye, xe = min(h, y0 + crop), min(w, x0 + crop)
        if ye > ys and xe > xs:
            out[..., ys - y0 : ye - y0, xs - x0 : xe - x0] = a[..., ys:ye, xs:xe]
        return out

    image = cut(img, 0.0)
    if stack.tissue is not None and rng.random() < gmm_prob:
        image = gmm_image(cut(stack.tissue[idx], 0), image, rng)
    # Outside the source image nothing is known only for partially labelled sources.
    return image, cut(lbl, 0), cut(valid, stack.valid_rows is None)


def gmm_image(tissue: np.ndarray, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """SynthSeg-style: every tissue label gets a random mean and spread; unlabelled background
    keeps the phantom's own texture at a random gain, so the body outline survives.

    (C, H, W): the neighbour slices share the draw, as slices of one scan share a contrast."""
    values = np.unique(tissue)
    means = rng.uniform(0.0, 1.0, size=int(values.max()) + 1).astype(np.float32)
    stds = rng.uniform(0.0, 0.08, size=means.shape).astype(np.float32)
    # Sub-clusters: a tissue sometimes gets two intensity modes (FetalSynthSeg).
    noise = rng.standard_normal(tissue.shape).astype(np.float32)
    out = means[tissue] + stds[tissue] * noise
    bg = tissue == 0
    out[bg] = image[bg] * rng.uniform(0.2, 1.2)
    sigma = rng.uniform(0.3, 1.2)
    return ndimage.gaussian_filter(out, (0.0, sigma, sigma)).astype(np.float32)


def intensity_augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Contrast, gamma, bias field, resolution loss and noise: the scanner-to-scanner shifts.

    (C, H, W): one draw for all channels (the neighbours come from the same scan), noise apart."""
    x = np.clip(image, 0.0, None)
    x = x ** rng.uniform(0.6, 1.6)
    h, w = x.shape[-2:]
    if rng.random() < 0.7:  # smooth multiplicative bias field
        coarse = rng.normal(0.0, 0.25, size=(4, 4)).astype(np.float32)
        field_ = ndimage.zoom(coarse, (h / 4, w / 4), order=3)[:h, :w]
        x = x * np.exp(field_)
    if rng.random() < 0.25:  # thicker slices / lower in-plane resolution
        sig = rng.uniform(0.5, 1.8, size=2) * (rng.random(2) < 0.7)
        x = ndimage.gaussian_filter(x, (0.0, *sig))
    x = x * rng.uniform(0.7, 1.3) + rng.uniform(-0.1, 0.1)
    if rng.random() < 0.8:  # Rician-like noise
        s = rng.uniform(0.0, 0.06)
        x = np.hypot(x + rng.normal(0, s, x.shape), rng.normal(0, s, x.shape))
    return x.astype(np.float32)


def spatial_augment(batch: Batch, rng: np.random.Generator) -> Batch:
    """Random rotation, scale and anisotropic stretch, the same for image, labels and mask."""
    b = batch.image.shape[0]
    theta = np.zeros((b, 2, 3), dtype=np.float32)
    for i in range(b):
        a = math.radians(rng.uniform(-15, 15))
        s = rng.uniform(0.85, 1.2) * np.exp(rng.normal(0, 0.08, size=2))
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        theta[i, :, :2] = rot @ np.diag(1.0 / s)
        theta[i, :, 2] = rng.uniform(-0.1, 0.1, size=2)
    grid = F.affine_grid(torch.from_numpy(theta), list(batch.image.shape), align_corners=False)
    image = F.grid_sample(batch.image, grid, mode="bilinear", align_corners=False)
    labels = F.grid_sample(batch.labels.float(), grid, mode="nearest", align_corners=False)
    valid = F.grid_sample(batch.valid.float(), grid, mode="nearest", align_corners=False)
    return Batch(image, labels.long(), batch.annotated, valid > 0.5)


def make_batch(
    phantom: list[sd.SliceStack],
    real: list[sd.SliceStack],
    cfg: TrainConfig,
    rng: np.random.Generator,
) -> Batch:
    imgs, lbls, valids, ann = [], [], [], []
    n_real = round(cfg.batch_size * cfg.real_fraction) if real else 0
    if not phantom:
        n_real = cfg.batch_size
    ctx = cfg.model.context_slices
    for i in range(cfg.batch_size):
        pool = real if i < n_real else phantom
        stack = pool[int(rng.integers(len(pool)))]
        image, label, valid = sample_crop(stack, rng, cfg.crop, cfg.gmm_prob, ctx)
        if ctx and rng.random() < 0.5:
            # Series run left-to-right or right-to-left: the neighbours' order carries nothing.
            image = image[::-1].copy()
        imgs.append(intensity_augment(image, rng))
        lbls.append(label)
        valids.append(valid)
        mask = np.zeros(sd.N_CLASSES, dtype=bool)
        mask[list(stack.annotated)] = True
        mask[sd.BACKGROUND] = True
        ann.append(mask)
    batch = Batch(
        image=torch.from_numpy(np.stack(imgs)),
        labels=torch.from_numpy(np.stack(lbls).astype(np.int64))[:, None],
        annotated=torch.from_numpy(np.stack(ann)),
        valid=torch.from_numpy(np.stack(valids))[:, None],
    )
    return spatial_augment(batch, rng)


# --- loss ----------------------------------------------------------------------------------


class PartialDiceCE(torch.nn.Module):
    """MONAI DiceCELoss on marginalized log-probabilities.

    For each sample, classes it does not annotate are summed into background (their pixels
    may be any of them); masked-out pixels become certain background on both sides, so they
    add neither gradient nor error. With full labels this is plain DiceCE.
    """

    def __init__(self) -> None:
        super().__init__()
        from monai.losses import DiceCELoss

        # batch=True: Dice over the whole batch per class, stable when a crop lacks a class.
        self.dice_ce = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)

    def forward(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        logp = F.log_softmax(logits, dim=1)
        ann = batch.annotated[:, :, None, None]  # (B, K, 1, 1)
        off = torch.full_like(logp, -30.0)
        merged_bg = torch.logsumexp(torch.where(ann, off, logp), dim=1)
        merged_bg = torch.logaddexp(merged_bg, logp[:, 0])
        lp = torch.where(ann, logp, off)
        lp = torch.cat([merged_bg[:, None], lp[:, 1:]], dim=1)
        certain_bg = torch.full_like(lp, -30.0)
        certain_bg[:, 0] = 0.0
        lp = torch.where(batch.valid, lp, certain_bg)
        target = torch.where(batch.valid, batch.labels, torch.zeros_like(batch.labels))
        return self.dice_ce(lp, target)


# --- checkpoints ---------------------------------------------------------------------------


def save_checkpoint(
    out: Path, net: torch.nn.Module, opt: torch.optim.Optimizer, state: dict[str, Any]
) -> None:
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().contiguous() for k, v in net.state_dict().items()}
    opt_state = opt.state_dict()
    for pid, st in opt_state["state"].items():
        for name, value in st.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"opt.{pid}.{name}"] = t.detach().contiguous()
    tmp = out / (CHECKPOINT_FILE + ".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(out / CHECKPOINT_FILE)
    (out / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")


def load_checkpoint(out: Path, net: torch.nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
    from safetensors.torch import load_file

    path = out / CHECKPOINT_FILE
    if not path.is_file() or not (out / STATE_FILE).is_file():
        raise ModelFileError(f"no checkpoint to resume in {out}")
    tensors = load_file(str(path))
    net.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    opt_state = opt.state_dict()
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            opt_state["state"].setdefault(int(pid), {})[name] = value
    opt.load_state_dict(opt_state)
    return json.loads((out / STATE_FILE).read_text())


# --- 2-D -> 2.5-D ----------------------------------------------------------------------------


def resolve_context(cfg: TrainConfig, init: SegmenterConfig | None) -> TrainConfig:
    """The model's input channels: --context-slices if given, else those of the init weights."""
    ctx = cfg.context_slices
    if ctx is None:
        ctx = init.context_slices if init is not None else cfg.model.context_slices
    if ctx < 0:
        raise InputDataError(f"context slices must be 0 or more, got {ctx}")
    if init is not None and init.in_channels not in (1, 2 * ctx + 1):
        raise InputDataError(
            f"--init weights take {init.in_channels} input channels; they can start a model of "
            f"{2 * ctx + 1} only from a 2-D (1-channel) model"
        )
    return replace(cfg, context_slices=ctx, model=replace(cfg.model, in_channels=2 * ctx + 1))


def inflate_input(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Weights of a 1-channel model fitted to a model with more input channels.

    Every tensor that reads the input (the first convolution and its residual shortcut) puts
    the old kernel on the centre channel and zeros on the neighbours, so the grown network
    starts out computing exactly what the 2-D one did and training adds the neighbours' use.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        want = target.get(key)
        if want is None or want.shape == value.shape:
            out[key] = value
            continue
        if (
            value.ndim < 2
            or value.shape[1] != 1
            or value.shape[:1] + value.shape[2:] != (want.shape[:1] + want.shape[2:])
        ):
            raise InputDataError(f"cannot fit the --init tensor {key} {tuple(value.shape)} "
                                 f"to {tuple(want.shape)}")  # fmt: skip
        grown = torch.zeros_like(want)
        grown[:, want.shape[1] // 2] = value[:, 0]
        out[key] = grown
    return out


# --- the loop --------------------------------------------------------------------------------


class BatchStream(torch.utils.data.IterableDataset):
    """Endless batches; each DataLoader worker keeps its own phantom pool and seed stream.

    With `workers=0` it runs in the training process (the CPU path); with workers the phantom
    generation, the expensive part, runs in parallel.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        real: list[sd.SliceStack],
        generate: Callable[[int, str], object] | None,
        first_seed: int,
        rng_key: int,
    ) -> None:
        self.cfg, self.real, self.generate = cfg, real, generate
        self.first_seed, self.rng_key = first_seed, rng_key
        self.pool: PhantomPool | None = None

    def _setup(self) -> np.random.Generator:
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        if info is not None:
            torch.set_num_threads(1)
        if self.generate is not None:
            # Workers draw disjoint seeds: worker w takes first_seed + w, + w + nw, ...
            self.pool = PhantomPool(
                self.generate,
                self.cfg.sites,
                max(2, self.cfg.pool_size // nw),
                first_seed=self.first_seed * nw + wid,
            )
            self.pool.stride = nw
            self.pool.fill()
        return np.random.default_rng([self.cfg.seed, self.rng_key, wid])

    def __iter__(self):  # type: ignore[no-untyped-def]
        rng = self._setup()
        n = 0
        while True:
            if self.pool is not None and n > 0 and n % self.cfg.refresh_every == 0:
                self.pool.add_one()
            n += 1
            yield make_batch(self.pool.stacks if self.pool else [], self.real, self.cfg, rng)


def lr_at(step: int, cfg: TrainConfig, time_fraction: float = 0.0) -> float:
    """Warm-up, then cosine decay to 2%; under a wall-clock budget the schedule follows
    whichever runs out first, steps or time, so a time-capped run still anneals."""
    warm = min(100, cfg.steps // 10)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    t = max((step - warm) / max(1, cfg.steps - warm), time_fraction)
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def _to(batch: Batch, device: torch.device) -> Batch:
    return Batch(
        batch.image.to(device, non_blocking=True),
        batch.labels.to(device, non_blocking=True),
        batch.annotated.to(device, non_blocking=True),
        batch.valid.to(device, non_blocking=True),
    )


def train(
    out_dir: Path,
    cfg: TrainConfig,
    real_dir: Path | None = None,
    resume: bool = False,
    generate: Callable[[int, str], object] | None = None,
    phantoms: bool = True,
    log: Callable[[str], None] = print,
    device: str = "cpu",
    workers: int = 0,
    max_minutes: float | None = None,
) -> dict[str, Any]:
    """Train and write out_dir/{model.safetensors, config.json, train_log.json}.

    `max_minutes` stops early (and says so in the config) when a wall-clock budget runs out.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    torch.set_num_threads(cfg.threads)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {out_dir}: {exc}") from None
    dev = torch.device(device)
    torch.manual_seed(cfg.seed)
    init = load_segmenter(cfg.init) if cfg.init else None
    cfg = resolve_context(cfg, init.config if init is not None else None)
    net = build_network(cfg.model)
    if init is not None:
        net.load_state_dict(inflate_input(init.network.state_dict(), net.state_dict()))
    net.to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    state: dict[str, Any] = {"step": 0, "losses": [], "config": cfg.to_json()}
    if resume:
        state = load_checkpoint(out_dir, net, opt)
        log(f"resuming at step {state['step']}")

    real: list[sd.SliceStack] = []
    real_names: list[str] = []
    if real_dir is not None:
        for vol in sd.load_lumbar3d_folder(real_dir):
            if not vol.heldout:
                real.append(vol.stack)
                real_names.append(vol.name)
        log(f"real volumes for training: {', '.join(real_names)}")
    gen = (generate or default_generator()) if phantoms else None
    if gen is None and not real:
        raise InputDataError("nothing to train on: no phantoms and no real volumes")
    # A resumed run continues with fresh phantoms and a fresh sample order, never repeats.
    first_seed = cfg.seed * 10_000 + state["step"] // max(1, cfg.refresh_every)
    stream = BatchStream(cfg, real, gen, first_seed, rng_key=state["step"])
    loader = torch.utils.data.DataLoader(
        stream,
        batch_size=None,
        num_workers=workers,
        pin_memory=dev.type == "cuda",
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )
    loss_fn = PartialDiceCE().to(dev)
    amp = dev.type == "cuda"
    t0 = time.monotonic()
    t_start = t0
    stopped_early = False
    with Progress(
        TextColumn("[bold]train-segmenter"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        transient=False,
    ) as progress:
        task = progress.add_task("train", total=cfg.steps, loss=float("nan"), note="phantoms")
        progress.update(task, completed=state["step"])
        net.train()
        running = None
        batches = iter(loader)
        while state["step"] < cfg.steps:
            step = state["step"]
            batch = _to(next(batches), dev)
            frac = (time.monotonic() - t_start) / 60 / max_minutes if max_minutes else 0.0
            lr = lr_at(step, cfg, frac)
            for g in opt.param_groups:
                g["lr"] = lr
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                logits = net(batch.image)
            loss = loss_fn(logits.float(), batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            value = float(loss.detach())
            running = value if running is None else 0.95 * running + 0.05 * value
            state["step"] = step + 1
            if state["step"] % 10 == 0:
                state["losses"].append([state["step"], round(running, 5)])
            progress.update(task, advance=1, loss=running, note=f"lr {lr:.1e}")
            out_of_time = max_minutes is not None and frac >= 1.0
            if (
                state["step"] % cfg.checkpoint_every == 0
                or state["step"] == cfg.steps
                or out_of_time
            ):
                state["elapsed_s"] = state.get("elapsed_s", 0.0) + time.monotonic() - t0
                t0 = time.monotonic()
                save_checkpoint(out_dir, net, opt, state)
            if out_of_time:
                stopped_early = True
                log(f"time budget of {max_minutes} min reached at step {state['step']}")
                break
    del batches, loader
    extra = {
        "training": {
            "steps": state["step"],
            "planned_steps": cfg.steps,
            "stopped_early": stopped_early,
            "batch_size": cfg.batch_size,
            "crop": cfg.crop,
            "final_loss": running,
            "real_volumes": real_names,
            "heldout_real": list(sd.LUMBAR3D_HELDOUT),
            "sites": list(cfg.sites) if gen is not None else [],
            "seed": cfg.seed,
            "init": cfg.init,
            "device": dev.type,
            "elapsed_s": round(state.get("elapsed_s", 0.0), 1),
        }
    }
    digest = save_weights(net.cpu(), cfg.model, out_dir, extra)
    (out_dir / "train_log.json").write_text(json.dumps(state, indent=1) + "\n")
    log(f"wrote {out_dir / 'model.safetensors'} sha256 {digest}")
    return {"sha256": digest, **extra["training"]}
