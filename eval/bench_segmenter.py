"""Benchmark of the built-in segmenter: prints numbers, writes them as JSON.

Phantoms: Dice per generic class on held-out phantom studies (evaluation seeds >= 1_000_000,
never trained on) per site, on the sagittal T2 the segmenter reads, and level naming accuracy
on standard and transitional anatomy.
Real: Dice of vertebral bodies and discs on the held-out lumbar3d volumes (fixed patient split in
reporter.anatomy.segmenter_data.LUMBAR3D_HELDOUT), for one or more weight folders (e.g. before
and after fine-tuning on real volumes).

    python eval/bench_segmenter.py --phantoms 100 --sites site-a,site-b,site-c \
        --real ../shared/data/real/lumbar3d --weights reporter/weights/segmenter --out OUT.json

Transitional anatomy is rare under the realistic priors (about 1 study in 10), so
`--transitional N` adds N studies per site drawn with a transitional variant forced (cycling
four lumbar, L6, sacralized L5, lumbarized S1; their own seeds, `TRANSITIONAL_SEED_OFFSET` above
the standard ones). Every naming failure is printed with its reasons (`naming_failures`).
Develop on validation seeds (`--seed-start 100000`), report on evaluation seeds (the default).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reporter.anatomy import segmenter_data as sd
from reporter.anatomy.segmenter import (
    anatomy_from_generic,
    load_segmenter,
    segmentation_series,
)
from reporter.contracts import labels as lab

EVAL_SEED_START = 1_000_000
# Forced-variant studies use seeds this far above the standard ones (still inside the same range:
# validation 150_000.., evaluation 1_050_000..), so no patient is in both sets.
TRANSITIONAL_SEED_OFFSET = 50_000
CUT_SEED_OFFSET = 25_000  # studies with the sacrum cut by the field of view
# Forced variants: generate_study overrides (n_lumbar, transitional).
VARIANTS: dict[str, dict] = {
    "none": {},
    "4": {"n_lumbar": 4, "transitional": "none"},
    "L6": {"n_lumbar": 6, "transitional": "L6"},
    "sacralized_L5": {"n_lumbar": 5, "transitional": "sacralized_L5"},
    "lumbarized_S1": {"n_lumbar": 5, "transitional": "lumbarized_S1"},
    "cut_sacrum": {"fov": "cut_sacrum"},
}
KINDS = ("standard", "transitional", "sacrum_cut")
FORCED = ("4", "L6", "sacralized_L5", "lumbarized_S1")
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


def naming_failures(pred: np.ndarray, truth: np.ndarray, anatomy=None, n_lumbar=None) -> list[str]:
    """Why a study's naming is wrong, each reason a short phrase (empty when it is right).

    Reasons: enumeration (4 / 5 / 6 lumbar) wrong; naming marked uncertain; sacrum missed or S1
    taken as a mobile vertebra; a counted vertebra merged with a neighbour or split in two; a
    counted vertebra or disc not found; vertebra names shifted by k levels; a disc misnamed."""
    reasons: list[str] = []
    if anatomy is not None:
        if n_lumbar is not None and anatomy.lumbar_vertebrae != n_lumbar:
            reasons.append(f"enumeration {anatomy.lumbar_vertebrae} for {n_lumbar} lumbar")
        if anatomy.naming_uncertain:
            reasons.append("naming marked uncertain")
    s1 = lab.vertebra_label("S1")
    vert_values = [v for v in lab.ALL_LABELS if lab.is_vertebra(v)]
    if (truth == s1).any():
        on_s1 = pred[truth == s1]
        if (on_s1 == s1).mean() < 0.5:
            mobile = np.isin(on_s1, [v for v in vert_values if v != s1]).mean()
            reasons.append("S1 taken as a mobile vertebra" if mobile > 0.3 else "sacrum missed")
    named = list(_named_values())
    shifts: set[int] = set()
    for value in np.unique(truth):
        v = int(value)
        if v not in _COUNTED:
            continue
        name = lab.label_name(v)
        kind = "vertebra" if lab.is_vertebra(v) else "disc"
        inside = truth == v
        over = pred[inside]
        over = over[np.isin(over, named)]
        if over.size < 0.2 * inside.sum():
            reasons.append(f"{kind} {name} not found")
            continue
        counts = np.bincount(over)
        top = int(counts.argmax())
        if kind == "vertebra":
            big = [k for k in np.nonzero(counts)[0] if lab.is_vertebra(int(k))]
            if sum(counts[k] > 0.25 * over.size for k in big) > 1:
                reasons.append(f"vertebra {name} split")
            # Merged: the predicted structure also covers most of another true vertebra.
            under = truth[pred == top]
            others = [int(u) for u in np.unique(under) if int(u) in _COUNTED and int(u) != v]
            others = [u for u in others if lab.is_vertebra(u)]
            # Most of the other vertebra and a real share of the predicted structure: a
            # vertebra cut by the edge of the field of view does not count as merged.
            if any(
                (under == u).sum() > max(0.3 * (truth == u).sum(), 0.2 * under.size) for u in others
            ):
                reasons.append(f"vertebra {name} merged with a neighbour")
        if top == v:
            continue
        if kind == "vertebra" and lab.is_vertebra(top):
            shifts.add((top - lab.VERTEBRA_BASE) - (v - lab.VERTEBRA_BASE))
        else:
            reasons.append(f"{kind} {name} labelled {lab.label_name(top)}")
    if shifts:  # misnamed discs follow from shifted vertebra names: one reason, not ten
        reasons = [r for r in reasons if not (r.startswith("disc") and "labelled" in r)]
    reasons += [f"vertebra names shifted by {k:+d}" for k in sorted(shifts)]
    return list(dict.fromkeys(reasons))


_COUNTED = {
    *(lab.vertebra_label(n) for n in ("T12", "L1", "L2", "L3", "L4", "L5", "L6", "S1")),
    *(lab.disc_label(lv) for lv in lab.LEVELS if not lv.startswith(("T9", "T10", "T11"))),
}


def _named_values() -> set[int]:
    return {v for v in lab.ALL_LABELS if lab.is_vertebra(v) or lab.is_disc(v)}


def _eval_case(job: tuple[int, str, str, Path | None]) -> dict:
    """Generate one evaluation phantom; return what scoring needs (runs in a worker process).

    With a cache folder the case is kept as npz, so a second benchmark (another model) on the
    same phantoms skips the generation."""
    seed, site, variant, cache = job
    path = cache / f"{site}_{seed}_{variant}.npz" if cache is not None else None
    if path is not None and path.is_file():
        with np.load(path) as z:
            from reporter.contracts.study import Series

            series = Series(
                series_uid=str(z["uid"]), study_uid="cached", plane="sagittal", weighting="T2",
                role="sag_t2", pixels=z["pixels"], affine=z["affine"],
            )  # fmt: skip
            meta = json.loads(str(z["meta"]))
            return {"seed": seed, "site": site, "variant": variant, "series": series,
                    "truth": z["truth"], "kind": _kind(meta), "meta": meta}  # fmt: skip
    case = _generate_case(seed, site, variant)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path, uid=case["series"].series_uid, pixels=case["series"].pixels,
            affine=case["series"].affine, truth=case["truth"], meta=json.dumps(case["meta"]),
        )  # fmt: skip
    return case


def _kind(meta: dict) -> str:
    """sacrum_cut (names cannot be anchored: they must be marked uncertain), transitional
    (4 or 6 lumbar-type vertebrae, sacralized L5, lumbarized S1) or standard."""
    if meta.get("fov") == "cut_sacrum":
        return "sacrum_cut"
    transitional = meta.get("transitional", "none") != "none" or meta.get("n_lumbar", 5) != 5
    return "transitional" if transitional else "standard"


def _generate_case(seed: int, site: str, variant: str = "none") -> dict:
    from reporter.synth import generate_study

    torch.set_num_threads(1)
    ph = generate_study(seed, site=site, **VARIANTS[variant])
    series = segmentation_series(ph.study)
    if series.series_uid == ph.anatomy.reference_series_uid:
        truth = ph.anatomy.labels
    else:
        truth = ph.anatomy.extra_labels[f"{series.series_uid}#{series.stack_index}"]
    meta = {k: ph.meta.get(k) for k in ("n_lumbar", "transitional", "fov")}
    return {
        "seed": seed,
        "site": site,
        "variant": variant,
        "series": series,
        "truth": np.asarray(truth, dtype=np.int16),
        "kind": _kind(meta),
        "meta": meta,
    }


def _jobs(
    site: str, n: int, n_transitional: int, seed_start: int, cache: Path | None, n_cut: int = 0
) -> list:
    jobs = [(seed_start + i, site, "none", cache) for i in range(n)]
    start = seed_start + TRANSITIONAL_SEED_OFFSET
    jobs += [(start + i, site, FORCED[i % len(FORCED)], cache) for i in range(n_transitional)]
    start = seed_start + CUT_SEED_OFFSET
    jobs += [(start + i, site, "cut_sacrum", cache) for i in range(n_cut)]
    return jobs


def score_naming(
    generic: np.ndarray, case: dict, calibration: dict | None
) -> tuple[bool, list[str], object]:
    """(correct, failure reasons, Anatomy) of the naming built from one generic class map, with
    the enumeration calibration of the weights that made it."""
    anat = anatomy_from_generic(generic, case["series"], calibration=calibration)
    ok = naming_correct(anat.labels, case["truth"])
    why = [] if ok else naming_failures(anat.labels, case["truth"], anat, case["meta"]["n_lumbar"])
    return ok, why, anat


def _failure_line(case: dict, why: list[str]) -> str:
    m = case["meta"]
    return (
        f"  FAIL {case['site']} seed {case['seed']} (n_lumbar {m['n_lumbar']}, "
        f"{m['transitional']}, fov {m['fov']}): {'; '.join(why) or 'unclassified'}"
    )


def _breakdown(failures: list[list[str]]) -> dict[str, int]:
    """Failure reasons counted over studies, digits folded ('vertebra L3 split' -> '... split')."""
    import re

    counts: dict[str, int] = {}
    for why in failures:
        for r in dict.fromkeys(re.sub(r"\b[TLS]\d+(-[TLS]\d+)?\b", "X", r) for r in why):
            counts[r] = counts.get(r, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def bench_phantoms(
    weights: list[str],
    sites: list[str],
    n: int,
    log,
    workers: int = 0,
    device: str = "cpu",
    save_dir: Path | None = None,
    cache: Path | None = None,
    n_transitional: int = 0,
    seed_start: int = EVAL_SEED_START,
    n_cut: int = 0,
    naming_on: bool = True,
) -> dict:
    import multiprocessing as mp

    models = {w: load_segmenter(w).to(device) for w in weights}
    results: dict = {w: {} for w in weights}
    pool = mp.get_context("fork").Pool(workers) if workers else None
    try:
        for site in sites:
            jobs = _jobs(site, n, n_transitional, seed_start, cache, n_cut)
            cases = pool.imap(_eval_case, jobs) if pool else map(_eval_case, jobs)
            scores = {w: {k: [] for k in REPORTED} for w in weights}
            naming = {w: {k: [] for k in KINDS} for w in weights}
            uncertain = {w: {k: [] for k in KINDS} for w in weights}
            silent = {w: {k: [] for k in KINDS} for w in weights}  # wrong, not marked uncertain
            failures: dict[str, list[list[str]]] = {w: [] for w in weights}
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
                    if naming_on:
                        ok, why, anat = score_naming(generic, case, model.enumeration)
                        naming[w][case["kind"]].append(ok)
                        uncertain[w][case["kind"]].append(float(anat.naming_uncertain))
                        silent[w][case["kind"]].append(float(not ok and not anat.naming_uncertain))
                        if not ok:
                            failures[w].append(why)
                            log(f"[{Path(w).name}]" + _failure_line(case, why))
                    if save_dir is not None:
                        # One folder per model when several are compared.
                        folder = save_dir / f"w{weights.index(w)}" if len(weights) > 1 else save_dir
                        folder.mkdir(parents=True, exist_ok=True)
                        np.savez_compressed(
                            folder / f"{site}_{case['seed']}_{case['variant']}.npz",
                            pred=generic, truth=truth, affine=np.asarray(series.affine),
                            meta=json.dumps(case["meta"]), sha256=model.sha256,
                        )  # fmt: skip
            elapsed = time.monotonic() - t0
            for w in weights:
                site_res = {
                    "n_studies": len(jobs),
                    "seconds_per_study": round(elapsed / max(len(jobs), 1), 2),
                    "dice_mean": {k: _mean(v) for k, v in scores[w].items()},
                    "dice_min": {
                        k: (round(min(v), 4) if v else None) for k, v in scores[w].items()
                    },
                    "naming_accuracy": {
                        k: _mean([float(x) for x in v]) for k, v in naming[w].items()
                    },
                    "naming_n": {k: len(v) for k, v in naming[w].items()},
                    "naming_uncertain_share": {k: _mean(v) for k, v in uncertain[w].items()},
                    "naming_wrong_not_flagged": {k: int(sum(v)) for k, v in silent[w].items()},
                    "naming_failures": _breakdown(failures[w]),
                }
                results[w][site] = site_res
                log(f"[{Path(w).name}] {site}: {json.dumps(site_res)}")
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


def rescore_naming(preds_dir: Path, log, segmenter: Any) -> dict:
    """Level naming again from saved predictions (--save-preds) made by `segmenter`'s weights
    (with their enumeration calibration): the naming code can change without running the
    network again."""
    from reporter.contracts.study import Series

    out: dict = {}
    by_site: dict[str, list[Path]] = {}
    for path in sorted(Path(preds_dir).glob("*.npz")):
        by_site.setdefault(path.stem.split("_")[0], []).append(path)
    for site, paths in by_site.items():
        res: dict[str, list[float]] = {k: [] for k in KINDS}
        uncertain: dict[str, list[float]] = {k: [] for k in KINDS}
        silent: dict[str, list[float]] = {k: [] for k in KINDS}
        failures = []
        for path in paths:
            _, seed, variant = path.stem.split("_", 2)
            with np.load(path) as z:
                truth, pred, meta = z["truth"], z["pred"], json.loads(str(z["meta"]))
                made_by = str(z["sha256"]) if "sha256" in z.files else segmenter.sha256
                if made_by != segmenter.sha256:
                    raise SystemExit(
                        f"{path.name} was predicted by weights {made_by[:12]}..., not by "
                        f"--weights ({segmenter.sha256[:12]}...): their calibrations differ"
                    )
                series = Series(
                    series_uid=seed, study_uid="rescore", plane="sagittal", weighting="T2",
                    role="sag_t2", pixels=np.zeros(truth.shape, np.float32), affine=z["affine"],
                )  # fmt: skip
            case = {"seed": int(seed), "site": site, "variant": variant, "series": series,
                    "truth": truth, "meta": meta}  # fmt: skip
            ok, why, anat = score_naming(pred, case, segmenter.enumeration)
            res[_kind(meta)].append(float(ok))
            uncertain[_kind(meta)].append(float(anat.naming_uncertain))
            silent[_kind(meta)].append(float(not ok and not anat.naming_uncertain))
            if not ok:
                failures.append(why)
                log(_failure_line(case, why))
        out[site] = {
            "naming_accuracy": {k: _mean(v) for k, v in res.items()},
            "naming_n": {k: len(v) for k, v in res.items()},
            "naming_uncertain_share": {k: _mean(v) for k, v in uncertain.items()},
            "naming_wrong_not_flagged": {k: int(sum(v)) for k, v in silent.items()},
            "naming_failures": _breakdown(failures),
        }
        log(f"naming {site}: {json.dumps(out[site])}")
    return out


def calibrate_enumeration(preds_dir: Path, log) -> dict:
    """The constants of reporter.anatomy.segmenter_instances.estimate_lumbar_count, measured on
    saved predictions of VALIDATION phantoms (--save-preds with --seed-start 100000) against
    the true lumbar count: conus tip minus the true L1 centroid along the spine, and spinous
    reach and transverse-process volume (log ratio) of vertebrae above L4 relative to L2..L4,
    lumbar and thoracic. Robust spreads (1.4826 x MAD), so a few failed segmentations do not
    widen them. Studies with the sacrum cut are skipped (no count is estimated for them)."""
    from reporter.anatomy import enumeration as en
    from reporter.anatomy import spine_parts as sp

    conus: list[float] = []
    lumbar: list[float] = []
    thoracic: list[float] = []
    tp_lumbar: list[float] = []
    tp_thoracic: list[float] = []
    for path in sorted(Path(preds_dir).glob("*.npz")):
        with np.load(path) as z:
            pred, affine, meta = z["pred"], z["affine"], json.loads(str(z["meta"]))
        if int(path.stem.split("_")[1]) >= EVAL_SEED_START:
            raise SystemExit("calibrate on validation seeds, not evaluation seeds")
        n = meta["n_lumbar"]
        if meta.get("fov") == "cut_sacrum":
            continue
        voxel_ml = float(np.prod(np.linalg.norm(affine[:3, :3], axis=0))) / 1000.0
        mobile, axis = sp.mobile_vertebrae(pred, affine, voxel_ml)
        if len(mobile) < n + 1:
            continue
        tip = en.conus_tip(pred == sd.CORD, affine, axis)
        if tip is not None:
            conus.append(tip - float(mobile[n - 1].centroid @ axis))
        reach = en.spinous_reach(mobile, pred, affine)
        if len(reach) >= 5 and None not in reach[1:4]:
            base = float(np.mean(reach[1:4]))  # type: ignore[arg-type]
            for j in range(4, min(len(reach), 7)):
                if reach[j] is not None:
                    (lumbar if j < n else thoracic).append(reach[j] - base)  # type: ignore[operator]
        ratio = en.transverse_ratio(en.transverse_volume(mobile, pred, affine, axis))
        for j in range(4, min(len(ratio), 7)):
            if ratio[j] is not None:
                (tp_lumbar if j < n else tp_thoracic).append(ratio[j])  # type: ignore[arg-type]

    def robust(x: list[float]) -> dict:
        arr = np.asarray(x)
        med = float(np.median(arr))
        mad = float(np.median(np.abs(arr - med)))
        return {"median": round(med, 2), "sd": round(1.4826 * mad, 2), "n": int(arr.size)}

    out = {"conus_minus_l1": robust(conus), "reach_lumbar": robust(lumbar),
           "reach_thoracic": robust(thoracic), "transverse_lumbar": robust(tp_lumbar),
           "transverse_thoracic": robust(tp_thoracic)}  # fmt: skip
    log(json.dumps(out))
    return out


def _mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", action="append", help="segmenter folder(s); default embedded")
    ap.add_argument("--phantoms", type=int, default=0, help="studies per site")
    ap.add_argument(
        "--transitional", type=int, default=0, help="extra forced-variant studies per site"
    )
    ap.add_argument(
        "--cut-sacrum", type=int, default=0, help="extra studies per site with the sacrum cut"
    )
    ap.add_argument(
        "--seed-start", type=int, default=EVAL_SEED_START, help="100000 to develop on validation"
    )
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
    ap.add_argument(
        "--calibrate-enumeration", type=Path, default=None, help="saved validation predictions"
    )
    ap.add_argument(
        "--no-naming",
        action="store_true",
        help="Dice only (naming is the slow part; score it later with --save-preds + --rescore, "
        "e.g. once new weights have their enumeration calibrated)",
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from reporter.anatomy.segmenter import default_weights_path

    if args.generate_only:
        jobs = [_jobs(site, args.phantoms, args.transitional, args.seed_start, args.cache,
                      args.cut_sacrum) for site in args.sites.split(",")]  # fmt: skip
        for row in itertools.zip_longest(*jobs):  # sites interleaved: a cut-short run covers all
            for job in (j for j in row if j is not None):
                _eval_case(job)
                print(f"cached {job[1]} {job[0]} {job[2]}", flush=True)
        return
    if args.calibrate_enumeration:
        calibrate_enumeration(args.calibrate_enumeration, print)
        return
    if args.rescore:
        # Predictions saved without their weights' sha256 are taken as made by --weights.
        segmenter = load_segmenter(args.weights[0] if args.weights else None)
        print(json.dumps(rescore_naming(args.rescore, print, segmenter), indent=2))
        return
    weights = args.weights or [str(default_weights_path())]
    out: dict = {"weights": {w: load_segmenter(w).sha256 for w in weights}}
    if args.phantoms or args.transitional or args.cut_sacrum:
        out["phantoms"] = bench_phantoms(
            weights,
            args.sites.split(","),
            args.phantoms,
            lambda m: print(m, flush=True),
            workers=args.workers,
            device=args.device,
            save_dir=args.save_preds,
            cache=args.cache,
            n_transitional=args.transitional,
            seed_start=args.seed_start,
            n_cut=args.cut_sacrum,
            naming_on=not args.no_naming,
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
