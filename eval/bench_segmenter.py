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
    """The levels a report names are right: every ground-truth vertebra T12 ... S1 (L6 where
    present) and disc T12-L1 ... lumbosacral is found and the predicted structure overlapping it
    most carries its name. Lower thoracic structures cut by the top of the field of view are
    not counted."""
    named = _named_values()
    for value in np.unique(true):
        v = int(value)
        if not (lab.is_vertebra(v) or lab.is_disc(v)) or v not in _COUNTED:
            continue
        overlap = pred[true == v]
        overlap = overlap[np.isin(overlap, list(named))]
        if overlap.size == 0 or int(np.bincount(overlap).argmax()) != v:
            return False
    return True


_COUNTED = {
    *(lab.vertebra_label(n) for n in ("T12", "L1", "L2", "L3", "L4", "L5", "L6", "S1")),
    *(lab.disc_label(lv) for lv in lab.LEVELS if not lv.startswith(("T9", "T10", "T11"))),
}


def _named_values() -> set[int]:
    return {v for v in lab.ALL_LABELS if lab.is_vertebra(v) or lab.is_disc(v)}


def _eval_case(job: tuple[int, str, Path | None]) -> dict:
    """Generate one evaluation phantom; return what scoring needs (runs in a worker process).

    With a cache folder the case is kept as npz, so a second benchmark (another model) on the
    same phantoms skips the generation."""
    seed, site, cache = job
    path = cache / f"{site}_{seed}.npz" if cache is not None else None
    if path is not None and path.is_file():
        with np.load(path) as z:
            from reporter.study import Series

            series = Series(
                series_uid=str(z["uid"]), study_uid="cached", plane="sagittal", weighting="T2",
                role="sag_t2", pixels=z["pixels"], affine=z["affine"],
            )  # fmt: skip
            return {"seed": seed, "series": series, "truth": z["truth"], "kind": str(z["kind"])}
    case = _generate_case(seed, site)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path, uid=case["series"].series_uid, pixels=case["series"].pixels,
            affine=case["series"].affine, truth=case["truth"], kind=case["kind"],
        )  # fmt: skip
    return case


def _generate_case(seed: int, site: str) -> dict:
    from reporter.synth import generate_study

    torch.set_num_threads(1)
    ph = generate_study(seed, site=site)
    series = segmentation_series(ph.study)
    if series.series_uid == ph.anatomy.reference_series_uid:
        truth = ph.anatomy.labels
    else:
        truth = ph.anatomy.extra_labels[f"{series.series_uid}#{series.stack_index}"]
    transitional = ph.meta.get("transitional", "none") != "none" or ph.meta.get("n_lumbar", 5) != 5
    return {
        "seed": seed,
        "series": series,
        "truth": np.asarray(truth, dtype=np.int16),
        "kind": "transitional" if transitional else "standard",
        "meta": {k: ph.meta.get(k) for k in ("n_lumbar", "transitional", "fov")},
    }


def bench_phantoms(
    weights: list[str],
    sites: list[str],
    n: int,
    log,
    workers: int = 0,
    device: str = "cpu",
    save_dir: Path | None = None,
    cache: Path | None = None,
) -> dict:
    import multiprocessing as mp

    models = {w: load_segmenter(w).to(device) for w in weights}
    results: dict = {w: {} for w in weights}
    pool = mp.get_context("fork").Pool(workers) if workers else None
    try:
        for site in sites:
            jobs = [(EVAL_SEED_START + i, site, cache) for i in range(n)]
            cases = pool.imap(_eval_case, jobs) if pool else map(_eval_case, jobs)
            scores = {w: {k: [] for k in REPORTED} for w in weights}
            naming = {w: {"standard": [], "transitional": []} for w in weights}
            saved: dict[str, np.ndarray] = {}
            t0 = time.monotonic()
            for case in cases:
                series, truth = case["series"], case["truth"]
                true_generic = sd.to_generic(truth)
                for w, model in models.items():
                    generic, _ = model.predict_series(series.pixels, series.affine)
                    for name, classes in REPORTED.items():
                        d = dice(np.isin(generic, classes), np.isin(true_generic, classes))
                        if d is not None:
                            scores[w][name].append(d)
                    anat = anatomy_from_generic(generic, series)
                    naming[w][case["kind"]].append(naming_correct(anat.labels, truth))
                    if save_dir is not None and w == weights[-1]:
                        saved[f"pred_{case['seed']}"] = generic
                if save_dir is not None:
                    saved[f"truth_{case['seed']}"] = truth
                    saved[f"affine_{case['seed']}"] = np.asarray(series.affine)
                    saved[f"kind_{case['seed']}"] = np.array(case["kind"])
            elapsed = time.monotonic() - t0
            for w in weights:
                site_res = {
                    "n_studies": n,
                    "seconds_per_study": round(elapsed / max(n, 1), 2),
                    "dice_mean": {k: _mean(v) for k, v in scores[w].items()},
                    "dice_min": {
                        k: (round(min(v), 4) if v else None) for k, v in scores[w].items()
                    },
                    "naming_accuracy": {
                        k: (round(float(np.mean(v)), 4) if v else None)
                        for k, v in naming[w].items()
                    },
                    "naming_n": {k: len(v) for k, v in naming[w].items()},
                }
                results[w][site] = site_res
                log(f"[{Path(w).name}] {site}: {json.dumps(site_res)}")
            if save_dir is not None:
                save_dir.mkdir(parents=True, exist_ok=True)
                np.savez_compressed(save_dir / f"preds_{site}.npz", **saved)
    finally:
        if pool is not None:
            pool.terminate()
    return results


def bench_real(
    weights: list[str], folder: Path, log, all_volumes: bool = False, device: str = "cpu"
) -> dict:
    vols = [v for v in sd.load_lumbar3d_folder(folder) if v.heldout or all_volumes]
    results: dict = {}
    for w in weights:
        model = load_segmenter(w).to(device)
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


def rescore_naming(preds_dir: Path, log) -> dict:
    """Level naming again from saved predictions (--save-preds): the naming code can change
    without running the network again."""
    from reporter.study import Series

    out: dict = {}
    for path in sorted(Path(preds_dir).glob("preds_*.npz")):
        site = path.stem[len("preds_") :]
        res: dict[str, list[bool]] = {"standard": [], "transitional": []}
        with np.load(path) as z:
            seeds = sorted(int(k[len("truth_") :]) for k in z.files if k.startswith("truth_"))
            for seed in seeds:
                truth = z[f"truth_{seed}"]
                series = Series(
                    series_uid=str(seed), study_uid="rescore", plane="sagittal",
                    weighting="T2", role="sag_t2", pixels=np.zeros(truth.shape, np.float32),
                    affine=z[f"affine_{seed}"],
                )  # fmt: skip
                anat = anatomy_from_generic(z[f"pred_{seed}"], series)
                res[str(z[f"kind_{seed}"])].append(naming_correct(anat.labels, truth))
        out[site] = {
            "naming_accuracy": {k: (_mean([float(x) for x in v])) for k, v in res.items()},
            "naming_n": {k: len(v) for k, v in res.items()},
        }
        log(f"naming {site}: {json.dumps(out[site])}")
    return out


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
    ap.add_argument("--workers", type=int, default=0, help="processes generating phantoms")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--save-preds", type=Path, default=None, help="folder for npz predictions")
    ap.add_argument("--cache", type=Path, default=None, help="folder caching generated phantoms")
    ap.add_argument("--generate-only", action="store_true", help="fill --cache, score nothing")
    ap.add_argument("--rescore", type=Path, default=None, help="naming from saved predictions")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from reporter.anatomy.segmenter import default_weights_path

    if args.generate_only:
        for i in range(args.phantoms):  # sites interleaved: a cut-short run covers all
            for site in args.sites.split(","):
                _eval_case((EVAL_SEED_START + i, site, args.cache))
                print(f"cached {site} {EVAL_SEED_START + i}", flush=True)
        return
    if args.rescore:
        print(json.dumps(rescore_naming(args.rescore, print), indent=2))
        return
    weights = args.weights or [str(default_weights_path())]
    out: dict = {"weights": {w: load_segmenter(w).sha256 for w in weights}}
    if args.phantoms:
        out["phantoms"] = bench_phantoms(
            weights,
            args.sites.split(","),
            args.phantoms,
            lambda m: print(m, flush=True),
            workers=args.workers,
            device=args.device,
            save_dir=args.save_preds,
            cache=args.cache,
        )
    if args.real:
        out["real_lumbar3d"] = bench_real(weights, args.real, print, args.all_real, args.device)
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
