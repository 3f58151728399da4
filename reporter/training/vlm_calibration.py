"""Calibration: temperature scaling per slot, fitted on the validation split, saved with the model.

Temperature scaling (Guo et al., ICML 2017) divides a field's logits by one scalar T fitted to
minimise the negative log-likelihood of held-out truth; it changes confidence, never the ranking
of values, so accuracy is untouched. Fitted on phantoms of the validation seeds
(100_000..199_999) only, with teacher forcing: the logits are those the decoder sees when the
earlier values are right.

The abstention threshold per field is the lowest calibrated probability at which the field's
retained statements reach `target_accuracy` on the validation split; below it a statement is
shown as "indeterminate" (SpineVLM.indeterminate). For ordered grades a retained statement counts
as right when it is within `ORDINAL_TOLERANCE` grades of the truth: Pfirrmann readers disagree by
one grade routinely (inter-reader kappa about 0.7-0.8), so an exact-grade target withheld 87 %
of real Pfirrmann grades while a grade two off, the error that misleads, stayed rare.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import torch

from reporter.contracts.findings import LEVEL_FIELDS
from reporter.training.vlm_batches import Augment, Batcher
from reporter.training.vlm_data import ShardSet

# Field -> grades of disagreement still counted as right when the threshold is fitted.
ORDINAL_TOLERANCE = {"pfirrmann": 1}
TEMPERATURE_GRID = np.exp(np.linspace(np.log(0.25), np.log(6.0), 81))
THRESHOLD_GRID = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)


@torch.inference_mode()
def collect_logits(
    model: Any, data: ShardSet, batch_studies: int = 16, values: dict[str, list[str]] | None = None
) -> dict[str, list[tuple[np.ndarray, int]]]:
    """slot name -> [(logits over the allowed tokens, index of the true one)] on `data`.
    `values`, when given, is filled with slot name -> the text of each allowed token, in order."""
    net = model.net.eval()
    device = next(net.parameters()).device
    batcher = Batcher(net, data, Augment.none())
    out: dict[str, list[tuple[np.ndarray, int]]] = defaultdict(list)
    rng = np.random.default_rng(0)
    for start in range(0, len(data), batch_studies):
        ids = list(range(start, min(len(data), start + batch_studies)))
        b = batcher.batch(ids, rng)
        logits = net(
            b["ids"].to(device), b["attention_mask"].to(device), b["view_rows"].to(device),
            b["images"].to(device), b["present"].to(device),
        ).float().cpu()  # fmt: skip
        rows = logits[b["sup_batch"], b["sup_pos"] - 1]
        for k, name in enumerate(b["sup_names"]):
            allowed = torch.nonzero(b["sup_allowed"][k]).flatten()
            target = int((allowed == b["sup_target"][k]).nonzero()[0, 0])
            out[name].append((rows[k, allowed].numpy(), target))
            if values is not None and name not in values:
                values[name] = [net.tokenizer.decode([int(i)]).strip() for i in allowed]
    return out


def _nll(items: list[tuple[np.ndarray, int]], t: float) -> float:
    total = 0.0
    for z, y in items:
        s = z / t
        s = s - s.max()
        total -= float(s[y] - np.log(np.exp(s).sum()))
    return total / max(1, len(items))


def fit_temperature(items: list[tuple[np.ndarray, int]]) -> float:
    if len(items) < 20:  # too little evidence to move away from the raw model
        return 1.0
    losses = [_nll(items, float(t)) for t in TEMPERATURE_GRID]
    return float(TEMPERATURE_GRID[int(np.argmin(losses))])


def _grade(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def fit_threshold(
    items: list[tuple[np.ndarray, int]],
    t: float,
    target_accuracy: float,
    tolerance: int = 0,
    values: list[str] | None = None,
) -> float:
    """Lowest grid probability whose retained statements reach `target_accuracy`; with a
    `tolerance`, a prediction within that many grades of the truth counts as right (`values`:
    the text of each allowed token; tokens that are not numbers must match exactly)."""
    grades = [_grade(v) for v in values] if values else None
    conf, correct = [], []
    for z, y in items:
        p = np.exp((z - z.max()) / t)
        p /= p.sum()
        conf.append(float(p.max()))
        guess = int(np.argmax(p))
        ok = guess == y
        if not ok and tolerance and grades is not None:
            g, truth = grades[guess], grades[y]
            ok = g is not None and truth is not None and abs(g - truth) <= tolerance
        correct.append(ok)
    c, ok = np.array(conf), np.array(correct)
    for th in THRESHOLD_GRID:
        keep = c >= th
        if keep.any() and ok[keep].mean() >= target_accuracy:
            return th
    return THRESHOLD_GRID[-1]


def fit_calibration(model: Any, data: ShardSet, target_accuracy: float = 0.9) -> dict[str, Any]:
    values: dict[str, list[str]] = {}
    items = collect_logits(model, data, values=values)
    temps = {name: fit_temperature(v) for name, v in items.items()}
    thresholds = {
        f: fit_threshold(
            items[f], temps[f], target_accuracy, ORDINAL_TOLERANCE.get(f, 0), values.get(f)
        )
        for f in LEVEL_FIELDS
        if f in items
    }
    nll = {
        name: {"before": round(_nll(v, 1.0), 4), "after": round(_nll(v, temps[name]), 4)}
        for name, v in items.items()
    }
    return {
        "method": "temperature scaling per slot (teacher-forced NLL, grid search)",
        "fitted_on": {"studies": len(data), "seeds": _seed_range(data)},
        "temperatures": temps,
        "thresholds": thresholds,
        "target_accuracy": target_accuracy,
        "ordinal_tolerance": dict(ORDINAL_TOLERANCE),
        "nll": nll,
    }


def _seed_range(data: ShardSet) -> list[int] | None:
    seeds = [m["seed"] for m in data.meta if "seed" in m]
    return [min(seeds), max(seeds)] if seeds else None
