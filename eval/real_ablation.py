"""Input ablation on real cached views: what each sagittal weighting contributes to the grades.

    python eval/real_ablation.py --model runs/vlm-real3 --model default \
        --shards runs/realvlm --split val [--json]

For every model and every input set (T1+T2 as cached; T2 only: the T1 channel removed and marked
absent, exactly as a study without a T1 series arrives), the model grades the real patients of
the split from their cached views (`python -m reporter.training.real_views` writes them: the
users' path, study_anatomy + build_views) and prints Pfirrmann and Modic balanced accuracy and
QWK with 95 % intervals by patient. Studies, not views, are resampled. This is an input ablation
of one trained model, not a model trained on T2 alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from reporter.evaluation import metrics as M
from reporter.training.vlm_data import ShardSet, decode_targets, shard_views
from reporter.vlm.decoding import level_grammar
from reporter.vlm.views import CHANNELS, StudyViews

INPUTS = {"T1+T2": (), "T2 only": ("T1",)}
FIELDS = {"pfirrmann": ("pfirrmann",), "modic": ("modic_upper", "modic_lower")}


def without(views: StudyViews, channels: tuple[str, ...]) -> StudyViews:
    """The same views with the given channels removed (zero, absent), as if never acquired."""
    g_img, g_pres = views.global_images.copy(), views.global_present.copy()
    l_img, l_pres = views.level_images.copy(), views.level_present.copy()
    for ch in channels:
        c = CHANNELS.index(ch)
        g_img[:, c], g_pres[:, c] = 0.0, False
        l_img[:, :, c], l_pres[:, :, c] = 0.0, False
    return replace(
        views, global_images=g_img, global_present=g_pres, level_images=l_img, level_present=l_pres
    )


def grade(
    model: Any, data: ShardSet, drop: tuple[str, ...]
) -> dict[str, list[tuple[str, Any, Any]]]:
    """field group -> [(patient, truth, prediction)]; a value the model left na counts as wrong."""
    grammar = level_grammar()
    out: dict[str, list[tuple[str, Any, Any]]] = {k: [] for k in FIELDS}
    for i in range(len(data)):
        views = without(shard_views(data, i), drop)
        pred = model.predict_views(views)
        patient = str(data.meta[i].get("case", i))
        rows = data.levels_of[i]
        for li, level in enumerate(views.levels):
            truth = decode_targets(grammar, data.level_codes[rows[li]])
            lf = pred.level(level)
            for group, fields in FIELDS.items():
                for f in fields:
                    if "value" in truth[f]:
                        p = getattr(lf, f)
                        value = p.value if p.not_assessable is None else "unassessed"
                        out[group].append((patient, truth[f]["value"], value))
    return out


def summary(rows: list[tuple[str, Any, Any]], labels: list[Any]) -> dict[str, Any]:
    g = [r[0] for r in rows]
    t = [r[1] for r in rows]
    p = [r[2] for r in rows]
    lab = [*labels, "unassessed"]
    return {
        "n_patients": len(set(g)),
        "n": len(rows),
        "balanced_accuracy": M.balanced_accuracy(t, p, lab),
        "balanced_accuracy_ci95": M.bootstrap_by_group(g, t, p, M.balanced_accuracy, labels=lab),
        "qwk": _qwk(t, p, labels),  # over the values the model stated
    }


def _qwk(t: list[Any], p: list[Any], labels: list[Any]) -> float:
    kept = [(a, b) for a, b in zip(t, p, strict=True) if b != "unassessed"]
    if not kept:
        return float("nan")
    return M.quadratic_weighted_kappa([a for a, _ in kept], [b for _, b in kept], labels)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", required=True, help="model folder or 'default'")
    ap.add_argument("--shards", type=Path, default=Path("runs/realvlm"))
    ap.add_argument("--split", choices=("val", "test"), default="val")
    ap.add_argument("--sets", default="spider,sudirman")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    import torch

    from reporter.contracts.findings import field_values
    from reporter.vlm.inference import load_model

    torch.set_num_threads(2)
    result: dict[str, Any] = {}
    for name in args.model:
        model = load_model(None if name == "default" else Path(name))
        for s in args.sets.split(","):
            folder = args.shards / s / args.split
            if not folder.is_dir():
                print(f"real_ablation: error: {folder} not found", file=sys.stderr)
                return 66
            data = ShardSet.load([folder])
            for label, drop in INPUTS.items():
                graded = grade(model, data, drop)
                for group, rows in graded.items():
                    if rows:
                        labels = list(field_values(FIELDS[group][0]))
                        result[f"{name} | {s} | {label} | {group}"] = summary(rows, labels)
    if args.json:
        print(json.dumps(M.nan_to_none(result), indent=1))
        return 0
    print("| model | set | input | grade | patients | BA [95 % CI] | QWK |")
    print("|---|---|---|---|---|---|---|")
    for key, m in result.items():
        lo, hi = m["balanced_accuracy_ci95"]
        cells = " | ".join(key.split(" | "))
        print(
            f"| {cells} | {m['n_patients']} | {m['balanced_accuracy']:.3f} [{lo:.3f}, {hi:.3f}] "
            f"| {m['qwk']:.3f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
