"""Scoring a model on cached studies with ground truth: the numbers of the model card and bench.

Metric definitions come from reporter.evaluation.metrics (one implementation for the project).
Conditions pool their sides / endplates: foraminal = left + right, modic = upper + lower.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from typing import Any

import numpy as np

from reporter.contracts.findings import LEVEL_FIELDS, StudyFindings, field_values
from reporter.evaluation.metrics import (
    RsnaRow,
    condition_metrics,
    expected_calibration_error,
    rsna_weighted_log_loss,
)
from reporter.training.vlm_data import ShardSet, decode_targets, shard_views
from reporter.vlm.decoding import level_grammar

CONDITIONS: dict[str, tuple[str, ...]] = {
    "canal_stenosis": ("canal_stenosis",),
    "foraminal_stenosis": ("foraminal_stenosis_left", "foraminal_stenosis_right"),
    "pfirrmann": ("pfirrmann",),
    "modic": ("modic_upper", "modic_lower"),
    "subarticular_stenosis": ("subarticular_stenosis_left", "subarticular_stenosis_right"),
    "spondylolisthesis": ("spondylolisthesis",),
    "herniation": ("herniation",),
}
_RSNA = {
    "canal_stenosis": "spinal",
    "foraminal_stenosis_left": "foraminal",
    "foraminal_stenosis_right": "foraminal",
    "subarticular_stenosis_left": "subarticular",
    "subarticular_stenosis_right": "subarticular",
}
_RSNA_CLASS = {"none": 0, "mild": 0, "moderate": 1, "severe": 2, 0: 0, 1: 0, 2: 1, 3: 2}


def evaluate(model: Any, data: ShardSet, limit: int | None = None) -> dict[str, Any]:
    grammar = level_grammar()
    pairs: dict[str, tuple[list[Any], list[Any]]] = defaultdict(lambda: ([], []))
    conf: list[float] = []
    correct: list[bool] = []
    rsna: list[RsnaRow] = []
    valid = 0
    n = len(data) if limit is None else min(limit, len(data))
    seconds: list[float] = []
    for i in range(n):
        views = shard_views(data, i)
        dists: dict[str, dict[str, dict[Any, float]]] = {}
        t0 = time.perf_counter()
        pred = model.predict_views(views, distributions=dists)
        seconds.append(time.perf_counter() - t0)
        StudyFindings.model_validate_json(pred.to_json())
        valid += 1
        rows = data.levels_of[i]
        for li, level in enumerate(views.levels):
            truth = decode_targets(grammar, data.level_codes[rows[li]])
            lf = pred.level(level)
            for f in LEVEL_FIELDS:
                t, p = truth[f], getattr(lf, f)
                if "value" not in t or p.not_assessable is not None:
                    continue
                pairs[f][0].append(t["value"])
                pairs[f][1].append(p.value)
                conf.append(float(p.probability))
                correct.append(p.value == t["value"])
                if f in _RSNA and f in dists.get(level, {}):
                    probs = [0.0, 0.0, 0.0]
                    for v, q in dists[level][f].items():
                        probs[_RSNA_CLASS[v]] += q
                    label = ("normal_mild", "moderate", "severe")[_RSNA_CLASS[t["value"]]]
                    rsna.append(RsnaRow(i, _RSNA[f], label, (probs[0], probs[1], probs[2])))
    fields = {f: condition_metrics(t, p, list(field_values(f))) for f, (t, p) in pairs.items()}
    conditions = {}
    for name, members in CONDITIONS.items():
        t = [v for m in members for v in pairs[m][0]]
        p = [v for m in members for v in pairs[m][1]]
        if t:
            conditions[name] = condition_metrics(t, p, list(field_values(members[0])))
    return {
        "n_studies": n,
        "schema_valid_rate": valid / n if n else math.nan,
        "conditions": conditions,
        "fields": fields,
        "rsna_weighted_log_loss": rsna_weighted_log_loss(rsna)["score"] if rsna else math.nan,
        "calibration": {"ece": expected_calibration_error(conf, correct), "n": len(conf)},
        "seconds_per_study_from_views": float(np.median(seconds)) if seconds else math.nan,
    }


def table(metrics: dict[str, Any]) -> str:
    lines = [f"{'condition':24s} {'qwk':>6s} {'acc':>6s} {'bacc':>6s} {'n':>6s}"]
    for name, m in metrics["conditions"].items():
        lines.append(
            f"{name:24s} {m['qwk']:6.3f} {m['accuracy']:6.3f} {m['balanced_accuracy']:6.3f} "
            f"{m['n']:6d}"
        )
    lines.append("")
    lines.append(f"{'field':28s} {'acc':>6s} {'qwk':>6s}")
    for name, m in metrics["fields"].items():
        lines.append(f"{name:28s} {m['accuracy']:6.3f} {m['qwk']:6.3f}")
    lines.append(
        f"schema_valid_rate {metrics['schema_valid_rate']:.3f}  "
        f"ECE {metrics['calibration']['ece']:.4f}  "
        f"RSNA wLL {metrics['rsna_weighted_log_loss']:.4f}"
    )
    return "\n".join(lines)
