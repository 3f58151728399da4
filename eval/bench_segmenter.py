"""Benchmark of the built-in segmenter: prints numbers, writes them as JSON.

Phantoms: Dice per generic class on held-out phantom studies (evaluation seeds >= 1_000_000,
never trained on) per site, on the sagittal T2 the segmenter reads, and level naming accuracy
on standard and transitional anatomy.
Real: Dice of vertebral bodies and discs on the held-out lumbar3d volumes (fixed patient split in
reporter.anatomy.segmenter_data.LUMBAR3D_HELDOUT), for one or more weight folders (e.g. before
and after fine-tuning on real volumes).

    python eval/bench_segmenter.py --phantoms 100 --sites site-a,site-b,site-c \
        --real ../shared/data/real/lumbar3d --weights reporter/weights/segmenter --out OUT.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from reporter.anatomy import labels as lab
from reporter.anatomy import segmenter_data as sd
from reporter.anatomy.segmenter import (
    anatomy_from_generic,
    load_segmenter,
    segmentation_series,
)

EVAL_SEED_START = 1_000_000
REPORTED = {
    "vertebra": (sd.VERTEBRA, sd.SACRUM),  # all vertebral bodies, sacrum included
    "disc": (sd.DISC,),
    "canal": (sd.CANAL,),
    "cord": (sd.CORD,),
    "foramen": (sd.FORAMEN,),
    "root": (sd.ROOT,),
    "posterior_elements": (sd.POSTERIOR,),
    "sacrum": (sd.SACRUM,),
}


def dice(pred: np.ndarray, true: np.ndarray) -> float | None:
    denom = int(pred.sum()) + int(true.sum())
    if denom == 0:
        return None
    return 2.0 * int((pred & true).sum()) / denom


def naming_correct(pred: np.ndarray, true: np.ndarray) -> bool:
    """Every ground-truth vertebra and disc that the prediction finds carries the right name,
    and every lumbar disc of the truth is found."""
    ok = True
    for value in np.unique(true):
        v = int(value)
        if not (lab.is_vertebra(v) or lab.is_disc(v)):
            continue
        overlap = pred[true == v]
        overlap = overlap[(overlap > 0) & np.isin(overlap, list(_named_values()))]
        if overlap.size == 0:
            if lab.is_disc(v) and lab.label_name(v).startswith("L"):
                ok = False
            continue
        if int(np.bincount(overlap).argmax()) != v:
            ok = False
    return ok


def _named_values() -> set[int]:
    return {v for v in lab.ALL_LABELS if lab.is_vertebra(v) or lab.is_disc(v)}


def bench_phantoms(weights: list[str], sites: list[str], n: int, log) -> dict:
    from reporter.synth import generate_study

    models = {w: load_segmenter(w) for w in weights}
    results: dict = {}
    for w, model in models.items():
        per_site: dict = {}
        for site in sites:
            scores: dict[str, list[float]] = {k: [] for k in REPORTED}
            naming: dict[str, list[bool]] = {"standard": [], "transitional": []}
            t0 = time.monotonic()
            for i in range(n):
                seed = EVAL_SEED_START + i
                ph = generate_study(seed, site=site)
                series = segmentation_series(ph.study)
                if series.series_uid == ph.anatomy.reference_series_uid:
                    truth = ph.anatomy.labels
                else:
                    truth = ph.anatomy.extra_labels[f"{series.series_uid}#{series.stack_index}"]
                generic, _ = model.predict_series(series.pixels, series.affine)
                true_generic = sd.to_generic(truth)
                for name, classes in REPORTED.items():
                    d = dice(np.isin(generic, classes), np.isin(true_generic, classes))
                    if d is not None:
                        scores[name].append(d)
                anat = anatomy_from_generic(generic, series)
                kind = (
                    "transitional"
                    if ph.meta.get("transitional", "none") != "none"
                    or ph.meta.get("n_lumbar", 5) != 5
                    else "standard"
                )
                naming[kind].append(naming_correct(anat.labels, truth))
            site_res = {
                "n_studies": n,
                "seconds_per_study": round((time.monotonic() - t0) / max(n, 1), 2),
                "dice_mean": {k: _mean(v) for k, v in scores.items()},
                "dice_min": {k: (round(min(v), 4) if v else None) for k, v in scores.items()},
                "naming_accuracy": {
                    k: (round(float(np.mean(v)), 4) if v else None) for k, v in naming.items()
                },
                "naming_n": {k: len(v) for k, v in naming.items()},
            }
            per_site[site] = site_res
            log(f"[{Path(w).name}] {site}: {json.dumps(site_res)}")
        results[w] = per_site
    return results


def bench_real(weights: list[str], folder: Path, log, all_volumes: bool = False) -> dict:
    vols = [v for v in sd.load_lumbar3d_folder(folder) if v.heldout or all_volumes]
    results: dict = {}
    for w in weights:
        model = load_segmenter(w)
        per_vol = {}
        for vol in vols:
            st = vol.stack
            generic, _ = model.predict_series(vol.pixels, vol.affine)
            # lumbar3d is stored 1 mm, rows superior->inferior: its grid is the canonical one.
            assert generic.shape == st.labels.shape
            rows = np.zeros(generic.shape, dtype=bool)
            if st.valid_rows is not None:
                rows[:, st.valid_rows[0] : st.valid_rows[1]] = True
            if vol.structure == "vertebra":
                pred = np.isin(generic, (sd.VERTEBRA, sd.SACRUM)) & rows
                true = st.labels == sd.VERTEBRA
            else:
                pred = (generic == sd.DISC) & rows
                true = st.labels == sd.DISC
            per_vol[vol.name] = {"structure": vol.structure, "dice": round(dice(pred, true), 4)}
        summary = {
            s: _mean([r["dice"] for r in per_vol.values() if r["structure"] == s])
            for s in ("vertebra", "disc")
        }
        results[w] = {"per_volume": per_vol, "dice_mean": summary}
        log(f"[{Path(w).name}] real held-out: {json.dumps(results[w])}")
    return results


def _mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", action="append", help="segmenter folder(s); default embedded")
    ap.add_argument("--phantoms", type=int, default=0, help="studies per site")
    ap.add_argument("--sites", default="site-a,site-b,site-c")
    ap.add_argument("--real", type=Path, default=None, help="lumbar3d folder")
    ap.add_argument("--all-real", action="store_true", help="also the training volumes")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from reporter.anatomy.segmenter import default_weights_path

    weights = args.weights or [str(default_weights_path())]
    out: dict = {"weights": {w: load_segmenter(w).sha256 for w in weights}}
    if args.phantoms:
        out["phantoms"] = bench_phantoms(weights, args.sites.split(","), args.phantoms, print)
    if args.real:
        out["real_lumbar3d"] = bench_real(weights, args.real, print, args.all_real)
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
