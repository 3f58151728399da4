"""What the real-label training scripts share: their command-line options and a checkpoint that
lets a wall-clock-budgeted run stop anywhere and resume (the session may end mid-run)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from reporter.training.image2d_train import TimeSchedule


def add_common_args(ap: argparse.ArgumentParser, *, width: int, batch: int) -> None:
    ap.add_argument("--real", type=Path, required=True, help="../shared/data/real")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seconds", type=float, default=1500.0, help="wall-clock training budget")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--width", type=int, default=width)
    ap.add_argument("--batch", type=int, default=batch)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint-every", type=float, default=120.0)


class Checkpoint:
    """OUT/checkpoint.safetensors (+ .json with the step and the elapsed training seconds)."""

    def __init__(self, out: Path, every_s: float) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.weights, self.state = out / "checkpoint.safetensors", out / "checkpoint.json"
        self.every_s, self.last = every_s, time.time()

    def resume(self, net: torch.nn.Module, sched: TimeSchedule) -> int:
        """Load the last checkpoint into `net`, move the schedule on; the step reached (0: none)."""
        if not (self.weights.is_file() and self.state.is_file()):
            return 0
        net.load_state_dict(load_file(self.weights))
        st = json.loads(self.state.read_text())
        sched.t0 -= float(st["elapsed_s"])  # the schedule continues where it stopped
        print(f"resumed at step {st['step']} ({st['elapsed_s']:.0f} s done)", flush=True)
        return int(st["step"])

    def maybe_save(self, net: torch.nn.Module, step: int, sched: TimeSchedule) -> None:
        if time.time() - self.last < self.every_s:
            return
        state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        save_file(state, self.weights)
        self.state.write_text(json.dumps({"step": step, "elapsed_s": time.time() - sched.t0}))
        self.last = time.time()
