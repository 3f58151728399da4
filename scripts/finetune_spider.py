"""LoRA adaptation of the default VLM to real SPIDER images, and its held-out evaluation.

    python scripts/finetune_spider.py --spider ../shared/data/real/spider \
        --out reporter/weights/adapters/spider [--steps 300] [--work runs/realmri/lora]

1. Every SPIDER patient is read through reporter.datasets (images through
   reporter.ingest.image2d: orientation detected, spacing estimated, T1 registered to T2 by the
   disc centres) and given the 2-D anatomy of reporter.ingest.image2d.anatomy_from_discs.
2. Training patients (reporter.datasets.splits "train") are cached as view shards with the VLM's
   own code (reporter.training.vlm_data.make_example / write_shard) and the adapter is fitted
   with the VLM's LoRA API (reporter.training.vlm_finetune.finetune: peft LoraConfig, its
   Augment for augmentation).
3. The phantom-only default model and the adapted one predict every "test" patient; Pfirrmann
   and Modic (SPIDER grades Modic per disc: compared with modic_upper) balanced accuracy over
   L1-L2 .. L5-S1 are printed and written to OUT/metrics.json and the model card.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from reporter.datasets import open_dataset  # noqa: E402
from reporter.ingest.image2d import anatomy_from_discs  # noqa: E402

LEVELS5 = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")


def balanced_accuracy(y_true: list[int], y_pred: list[int]) -> float:
    try:
        from reporter.evaluation.metrics import balanced_accuracy as ba

        return float(ba(y_true, y_pred))
    except (ImportError, AttributeError):
        yt, yp = np.asarray(y_true), np.asarray(y_pred)
        return float(np.mean([(yp[yt == c] == c).mean() for c in np.unique(yt)]))


def prepared(ds: Any, split: str) -> list[tuple[Any, Any]]:
    """(case, anatomy) for the split's patients: the 2-D disc anatomy where DiscNet found five
    plausible discs, else the built-in segmenter's (what the pipeline would use)."""
    from reporter.anatomy import segment
    from reporter.errors import ReporterError

    out = []
    for case in ds.split(split):
        if case.findings is None:
            continue
        anatomy = anatomy_from_discs(case.study)
        if anatomy is None:
            try:
                anatomy = segment(case.study)
            except ReporterError as exc:
                print(f"no anatomy for {case.case_id}: {exc}", flush=True)
                continue
        out.append((case, anatomy))
    return out


def cache(pairs: list[tuple[Any, Any]], folder: Path) -> int:
    from reporter.training.vlm_data import make_example, write_shard
    from reporter.vlm.config import ViewConfig

    folder.mkdir(parents=True, exist_ok=True)
    examples = []
    for case, anatomy in pairs:
        try:
            examples.append(
                make_example(
                    case.study, anatomy, case.findings, ViewConfig(), {"case": case.case_id}
                )
            )
        except Exception as exc:  # a study the views cannot use: counted, not fatal
            print(f"skip {case.case_id}: {type(exc).__name__}: {exc}", flush=True)
    for i in range(0, len(examples), 32):
        write_shard(folder / f"views-{i // 32:05d}.safetensors", examples[i : i + 32])
    return len(examples)


def evaluate(model: Any, pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    truth: dict[str, list[int]] = {"pfirrmann": [], "modic": []}
    pred: dict[str, list[int]] = {"pfirrmann": [], "modic": []}
    n_na = n_failed = 0
    from reporter.errors import ReporterError

    for case, anatomy in pairs:
        try:
            found = model.predict(case.study, anatomy)
        except ReporterError as exc:  # the views cannot be cut: every disc counts as wrong
            print(f"predict failed for {case.case_id}: {exc}", flush=True)
            n_failed += 1
            found = None
        for lv in LEVELS5:
            t = case.findings.level(lv)
            p = None if found is None else found.level(lv)
            if t is None:
                continue
            for field, attr in (("pfirrmann", "pfirrmann"), ("modic", "modic_upper")):
                tv = getattr(t, attr).value
                pv = None if found is None or p is None else getattr(p, attr).value
                if pv is None:
                    n_na += 1
                    pv = -1  # not assessed counts as wrong
                truth[field].append(int(tv))
                pred[field].append(int(pv))
    return {
        "n_patients": len(pairs),
        "n_discs": len(truth["pfirrmann"]),
        "not_assessed_predictions": n_na,
        "patients_without_views": n_failed,
        "pfirrmann_ba": balanced_accuracy(truth["pfirrmann"], pred["pfirrmann"]),
        "modic_ba": balanced_accuracy(truth["modic"], pred["modic"]),
        # The same over the discs the model did assess (level found and named), for diagnosis.
        **{
            f"{f}_ba_assessed_only": balanced_accuracy(
                [t for t, q in zip(truth[f], pred[f], strict=True) if q >= 0],
                [q for q in pred[f] if q >= 0],
            )
            for f in ("pfirrmann", "modic")
        },
    }


def model_card(m: dict[str, Any]) -> str:
    base, lora, ft = m["phantom_only_default"], m["lora_spider"], m["finetune"]

    def pct(v: float) -> str:
        return f"{100 * v:.1f} %"

    return f"""# LoRA adapter `spider`: the default VLM adapted to real SPIDER images

Use: `spine-report report IMAGE.png --adapter reporter/weights/adapters/spider` (or
`reporter.vlm.load_model(adapter=...)`). Made by `python scripts/finetune_spider.py`.

## Data
SPIDER lumbar spine MRI, official training subset as redistributed by ejd230001/medvisor:
mid-sagittal T1/T2 images with per-disc radiological gradings. **Licence CC BY 4.0.**
Attribution: J. W. van der Graaf et al., "Lumbar spine segmentation in MR images: a dataset and
a public benchmark", *Scientific Data* 11, 264 (2024).
Trained on the {m["train_patients"]} patients of the project's patient-level `train` split
(reporter.datasets.splits); evaluated on the {lora["n_patients"]} `test` patients. Images enter
through reporter.ingest.image2d (orientation detected, spacing estimated from anatomy); anatomy from
the 2-D disc detector, else the built-in segmenter. Augmentation: the VLM's own `Augment`.

## Training
reporter.training.vlm_finetune.finetune (peft LoRA, rank {ft.get("rank", 8)} on decoder \
attention/MLP and the
vision tower's MLPs + projector), {ft["steps"]} steps, {ft["seconds"]} s on {ft["device"]};
{ft["trainable_parameters"]} trainable parameters; adapter {ft["adapter_bytes"] / 1e6:.2f} MB.

## Held-out results (test patients, discs L1-L2 .. L5-S1)
| model | Pfirrmann balanced accuracy | Modic balanced accuracy |
|---|---|---|
| phantom-only default | {pct(base["pfirrmann_ba"])} | {pct(base["modic_ba"])} |
| + this adapter | {pct(lora["pfirrmann_ba"])} | {pct(lora["modic_ba"])} |
| goal: SpineNetV2 external validation | 78 % | 86 % |

SPIDER grades Modic per disc; it is compared with our `modic_upper`. A level the model did not
assess counts as wrong. See scripts/baselines_spider.py for the majority-class and plain-CNN
baselines on the same split. Preliminary research model, not for clinical use.
"""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--spider", type=Path, default=REPO.parent / "shared" / "data" / "real" / "spider"
    )
    ap.add_argument(
        "--out", type=Path, default=REPO / "reporter" / "weights" / "adapters" / "spider"
    )
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "realmri" / "lora")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache-only", action="store_true", help="only cache the training views")
    ap.add_argument(
        "--eval-only", action="store_true", help="evaluate the adapter already in --out"
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    t0 = time.time()
    ds = open_dataset(args.spider, "spider")
    shards = args.work / "train"
    if not any(shards.glob("views-*.safetensors")):
        n_train = cache(prepared(ds, "train"), shards)
        print(f"cached {n_train} training studies ({time.time() - t0:.0f} s)", flush=True)
    if args.cache_only:
        return
    from reporter.training.vlm_data import ShardSet
    from reporter.training.vlm_finetune import finetune
    from reporter.vlm.adapters import apply_adapter
    from reporter.vlm.inference import load_model

    n_train = len(ShardSet.load([shards]))
    test = prepared(ds, "test")
    if args.eval_only:
        summary = json.loads((args.work / "finetune.json").read_text())
    else:
        summary = finetune(None, [shards], args.out, steps=args.steps, rank=args.rank,
                           device="cpu")  # fmt: skip
        summary["rank"] = args.rank
        (args.work / "finetune.json").write_text(json.dumps(summary, indent=2) + "\n")
        (args.out / "README.md").unlink(
            missing_ok=True
        )  # peft's boilerplate; MODEL_CARD.md instead
    print(json.dumps(summary, indent=1), flush=True)
    base = evaluate(load_model(), test)
    adapted = evaluate(apply_adapter(load_model(), args.out), test)
    metrics = {
        "split": "reporter.datasets.splits, patient-level; test patients",
        "train_patients": n_train,
        "finetune": summary,
        "phantom_only_default": base,
        "lora_spider": adapted,
        "goal_spinenetv2": {"pfirrmann_ba": 0.78, "modic_ba": 0.86},
    }
    (args.work / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (args.out / "MODEL_CARD.md").write_text(model_card(metrics))
    print(json.dumps({k: metrics[k] for k in ("phantom_only_default", "lora_spider")}, indent=1))


if __name__ == "__main__":
    main()
