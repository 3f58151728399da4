"""Phantom engine benchmarks: speed (CPU seconds per standard study) and prior distributions.

    python eval/bench_synth.py speed --n 20 [--site site-a] [--write] [--engine v1|v2]
                                 [--slices mid|stack] [--json]
    python eval/bench_synth.py priors --priors balanced --n 1000 [--workers 2]
    python eval/bench_synth.py realism [--n 6] [--img docs/img]
    python eval/bench_synth.py montage-v2 [--out docs/img/phantoms]

Speed is CPU time of this process per study (`time.process_time`), i.e. per core, so it does not
depend on how busy a shared machine is; wall time is printed beside it.
"""

# ruff: noqa: E402
from __future__ import annotations

import os

# One core means one thread: numpy's BLAS would otherwise spread small matmuls over all cores.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import collections
import json
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from reporter.contracts.findings import LEVEL_FIELDS, field_values


def speed(
    n: int, site: str, write: bool, start: int, engine: str = "v1", slices: str = "mid",
    as_json: bool = False,
) -> None:  # fmt: skip
    from reporter.synth import generate_study, write_study
    from reporter.synth.v2 import generate_study_v2
    from reporter.synth.v2.batch import write_study_v2

    def gen(seed: int):
        if engine == "v2":
            return generate_study_v2(seed, site=site, slices=slices)
        return generate_study(seed, site=site)

    writer = write_study_v2 if engine == "v2" else write_study
    gen(start - 1)  # warm imports and caches
    cpu, wall, pixels = [], [], []
    tmp = Path(tempfile.mkdtemp(prefix="bench_synth_"))
    try:
        for seed in range(start, start + n):
            c0, w0 = time.process_time(), time.perf_counter()
            ph = gen(seed)
            if write:
                writer(ph, tmp / str(seed))
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
            pixels.append(sum(s.pixels.size for s in ph.study.series))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cpu.sort()
    mean = sum(cpu) / n
    result = {
        "engine": engine,
        "slices": slices if engine == "v2" else "stack (+ axial blocks)",
        "site": site,
        "n": n,
        "write": write,
        "cpu_s_per_study": {"mean": round(mean, 3), "median": round(cpu[n // 2], 3),
                            "max": round(cpu[-1], 3)},
        "studies_per_s_per_core": round(1.0 / mean, 2),
        "wall_s_per_study": round(sum(wall) / n, 3),
        "mean_pixels_per_study": int(np.mean(pixels)),
    }  # fmt: skip
    if as_json:
        print(json.dumps(result, indent=2))
        return
    print(f"engine={engine} slices={result['slices']} site={site} n={n} write={write}")
    print(f"cpu s/study: mean {mean:.3f} median {cpu[n // 2]:.3f} max {cpu[-1]:.3f}")
    print(f"studies per second per core: {1.0 / mean:.2f}")
    print(f"wall s/study (shared machine): mean {sum(wall) / n:.3f}")
    print(f"pixels per study (all series): mean {result['mean_pixels_per_study']}")


def _counts(args: tuple[int, int, str]) -> dict[str, Any]:
    from reporter.synth import generate_study

    start, stop, priors = args
    c: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for seed in range(start, stop):
        ph = generate_study(seed, priors=priors, render=False)
        c["study.transitional"][ph.findings.study.transitional.value] += 1
        c["study.lumbar_vertebrae"][ph.findings.study.lumbar_vertebrae] += 1
        c["study.alignment"][ph.findings.study.alignment.value] += 1
        c["study.fov"][ph.meta["fov"]] += 1
        for lf in ph.findings.levels:
            for f in LEVEL_FIELDS:
                fd = getattr(lf, f)
                if fd.assessed:
                    c[f][fd.value] += 1
                    lvl = "L5-S1" if lf.level.endswith("-S1") else lf.level
                    c[f"{f}@{lvl}"][fd.value] += 1
            if lf.herniation.assessed and lf.herniation.zone:
                c["herniation_zone"][lf.herniation.zone] += 1
    return {k: dict(v) for k, v in c.items()}


def priors_table(n: int, priors: str, workers: int, start: int) -> dict[str, Any]:
    chunks = [(a, min(a + 50, start + n), priors) for a in range(start, start + n, 50)]
    total: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for part in pool.map(_counts, chunks):
            for k, v in part.items():
                total[k].update(v)
    print(f"priors={priors} studies={n} (ground truth measured from the drawn geometry)")
    print(f"{'field':28s} {'levels':>6s}  value: share")
    worst = 1.0
    for f in LEVEL_FIELDS:
        c = total[f]
        tot = sum(c.values())
        shares = {v: c.get(v, 0) / tot for v in field_values(f)}
        worst = min(worst, *shares.values())
        cells = "  ".join(f"{v}: {100 * s:.1f}%" for v, s in shares.items())
        print(f"{f:28s} {tot:6d}  {cells}")
    for k in ("herniation_zone", "study.transitional", "study.lumbar_vertebrae",
              "study.alignment", "study.fov"):  # fmt: skip
        c = total[k]
        tot = sum(c.values())
        cells = "  ".join(f"{v}: {100 * x / tot:.1f}%" for v, x in sorted(c.items(), key=str))
        print(f"{k:28s} {tot:6d}  {cells}")
    print(f"smallest share of any value of any level field: {100 * worst:.2f}%")
    return {k: dict(v) for k, v in total.items()}


REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def _diff_sigma(box: np.ndarray, axis: int) -> float:
    """Noise from neighbour differences inside a homogeneous region (robust to a cropped FOV
    without air): sigma = std(diff) / sqrt(2)."""
    return float(np.std(np.diff(box, axis=axis))) / np.sqrt(2.0)


def real_ivd_metrics() -> list[dict[str, float]]:
    """Disc / CSF / marrow T2 signal ratios and SNR in the real 1.5 T T2 FSE volumes (axes:
    0 superior->inferior, 1 anterior->posterior, 2 left-right; 1 mm)."""
    import nibabel as nib
    from scipy import ndimage

    rows = []
    for path in sorted((REAL / "lumbar3d").glob("ivd_*_seg.nii.gz")):
        a = np.asarray(nib.load(str(path).replace("_seg", "")).dataobj, dtype=float)
        seg = np.asarray(nib.load(str(path)).dataobj).astype(int)
        cents = {k: np.array(ndimage.center_of_mass(seg == k)) for k in range(1, 6)}
        disc, core, csf, marrow, noise = [], [], [], [], []
        for k in range(1, 6):
            mask = seg == k
            disc.append(a[mask].mean())
            er = ndimage.binary_erosion(mask, iterations=2)
            core.append(a[er].mean() if er.any() else a[mask].mean())
            z, y, x = (round(c) for c in cents[k])
            y_post = int(np.nonzero(mask[z, :, x])[0].max()) if mask[z, :, x].any() else y + 15
            box = a[z - 3 : z + 4, y_post + 2 : y_post + 14, x - 2 : x + 3]
            csf.append(np.percentile(box, 95))
            if k < 5:
                mz, my, mx = ((cents[k] + cents[k + 1]) / 2).round().astype(int)
                box = a[mz - 3 : mz + 4, my - 4 : my + 5, mx - 3 : mx + 4]
                marrow.append(np.median(box))
                noise.append(_diff_sigma(box, axis=1))
        sigma = float(np.median(noise))
        rows.append(_ratios(path.name.split("_seg")[0], disc, core, csf, marrow, sigma))
    return rows


def _ratios(name: str, disc: list, core: list, csf: list, marrow: list, sigma: float) -> dict:
    c = float(np.mean(csf))
    return {
        "source": name,
        "disc/CSF": float(np.mean(disc)) / c,
        "disc_core/CSF": float(np.mean(core)) / c,
        "marrow/CSF": float(np.mean(marrow)) / c,
        "SNR_marrow": float(np.mean(marrow)) / sigma,
        "SNR_CSF": c / sigma,
    }


def phantom_t2_metrics(ph: object) -> dict[str, float]:
    """The same measurements on a phantom's sagittal T2, with its ground-truth labels."""
    from scipy import ndimage

    from reporter.contracts import labels as lb

    s = ph.study.get("sag_t2")  # type: ignore[attr-defined]
    lab = ph.anatomy.labels  # type: ignore[attr-defined]
    a = s.pixels.astype(float)
    k0 = a.shape[0] // 2
    mid = slice(k0 - 1, k0 + 2)
    disc, core, csf, marrow = [], [], [], []
    for level in ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"):
        mask = lab == lb.disc_label(level)
        if not mask.any():
            continue
        disc.append(a[mask].mean())
        er = ndimage.binary_erosion(mask, structure=np.ones((1, 5, 5)))
        core.append(a[er].mean() if er.any() else a[mask].mean())
        rows = np.nonzero(mask[k0].any(axis=1))[0]
        sl = lab[mid, rows.min() : rows.max() + 1]
        csf.append(np.percentile(a[mid, rows.min() : rows.max() + 1][sl == lb.CANAL], 95))
    noise = []
    for name in ("L1", "L2", "L3", "L4", "L5"):
        mask = lab[k0] == lb.vertebra_label(name)
        er = ndimage.binary_erosion(mask, structure=np.ones((7, 7)))
        if er.any():
            marrow.append(np.median(a[k0][er]))
            jj, ii = np.nonzero(er)
            jc, ic = int(np.median(jj)), int(np.median(ii))
            noise.append(_diff_sigma(a[k0, jc - 4 : jc + 5, ic - 4 : ic + 5], axis=1))
    sigma = float(np.median(noise))
    return _ratios(f"{ph.meta['site']} seed {ph.meta['seed']}", disc, core, csf, marrow, sigma)  # type: ignore[attr-defined]


def _u8(img: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(img, [1.0, 99.5])
    return (np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)


def _tile(img: np.ndarray, size: int = 256, title: str = "") -> object:
    from PIL import Image, ImageDraw

    im = Image.fromarray(_u8(img))
    im.thumbnail((size, size))
    canvas = Image.new("L", (size, size))
    canvas.paste(im, ((size - im.width) // 2, (size - im.height) // 2))
    if title:
        ImageDraw.Draw(canvas).text((4, 4), title, fill=255)
    return canvas


def montage_site(site: str, seeds: list[int], out: Path) -> None:
    """Real images (top) beside this site's phantoms (bottom), each windowed the same way:
    1st to 99.5th percentile of its own pixels."""
    import nibabel as nib
    from PIL import Image

    from reporter.synth import generate_study

    real = []
    spider = REAL / "spider" / "images"
    for name in ("100_t1", "100_t2", "104_t2"):
        p = spider / f"{name}.png"
        if p.is_file():
            real.append(
                _tile(np.asarray(Image.open(p).convert("L"), float), title=f"SPIDER {name}")
            )
    ivd = REAL / "lumbar3d" / "ivd_20.nii.gz"
    if ivd.is_file():
        a = np.asarray(nib.load(str(ivd)).dataobj, float)
        real.append(_tile(a[:, :, a.shape[2] // 2], title="lumbar3d ivd_20 T2"))
    ph_tiles = []
    for seed in seeds[:2]:
        ph = generate_study(seed, site=site, age=35)
        t1, t2 = ph.study.get("sag_t1"), ph.study.get("sag_t2")
        k = t2.shape[0] // 2
        ph_tiles.append(_tile(t1.pixels[k], title=f"{site} T1 {seed}"))
        ph_tiles.append(_tile(t2.pixels[k], title=f"{site} T2 {seed}"))
    cols = max(len(real), len(ph_tiles))
    img = Image.new("L", (256 * cols, 512))
    for n, t in enumerate(real):
        img.paste(t, (256 * n, 0))
    for n, t in enumerate(ph_tiles):
        img.paste(t, (256 * n, 256))
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)


def realism(n: int, img_dir: Path | None) -> None:
    from reporter.synth import generate_study

    if not (REAL / "lumbar3d").is_dir():
        print(f"real data not found at {REAL}")
        return
    rows = real_ivd_metrics()
    for site in ("site-a", "site-b", "site-c"):
        for seed in range(1_000_300, 1_000_300 + n):
            # Young adults, as the real volunteers (Menezes-Reis 2016).
            rows.append(phantom_t2_metrics(generate_study(seed, site=site, age=30)))
    keys = ["disc/CSF", "disc_core/CSF", "marrow/CSF", "SNR_marrow", "SNR_CSF"]
    print(f"{'source':24s} " + " ".join(f"{k:>13s}" for k in keys))
    groups: dict[str, list[dict]] = collections.defaultdict(list)
    for r in rows:
        groups[r["source"].split(" ")[0].split("_")[0]].append(r)
        print(f"{r['source']:24s} " + " ".join(f"{r[k]:13.3f}" for k in keys))
    print("means:")
    for g, rs in groups.items():
        print(f"{g:24s} " + " ".join(f"{np.mean([r[k] for r in rs]):13.3f}" for k in keys))
    if img_dir is not None:
        for site in ("site-a", "site-b", "site-c"):
            montage_site(site, [1_000_310, 1_000_311], img_dir / f"phantom_{site}.png")
        print(f"montages in {img_dir}")


def montage_v2(out_dir: Path, seeds: tuple[int, ...] = (1_000_320, 1_000_321, 1_000_322)) -> None:
    """Real SPIDER (CC BY 4.0) beside v1 and v2 phantoms, T1 and T2, each tile windowed by the
    same rule (1st to 99.5th percentile of its own pixels); a second sheet shows v2's spread.
    Only SPIDER pixels appear: sudirman is research-use only."""
    from PIL import Image

    from reporter.ingest.image2d_nets import undo_orientation
    from reporter.synth import generate_study
    from reporter.synth.v2 import generate_study_v2

    size = 192
    spider = REAL / "spider" / "images"
    rows: list[list[object]] = [[], [], []]
    for name in ("104_t1", "104_t2", "9_t1", "9_t2"):  # training-split patients
        p = spider / f"{name}.png"
        if p.is_file():
            a = undo_orientation(np.asarray(Image.open(p).convert("L"), float), 6)
            rows[0].append(_tile(a, size, f"SPIDER {name}"))
    for seed in seeds[:2]:
        ph = generate_study(seed, site="site-a")
        for role in ("sag_t1", "sag_t2"):
            s = ph.study.get(role)
            rows[1].append(_tile(s.pixels[s.shape[0] // 2], size, f"v1 {role[-2:]} {seed}"))
        ph2 = generate_study_v2(seed, site="site-a", slices="mid")
        for s in ph2.study.series:
            rows[2].append(_tile(s.pixels[0], size, f"v2 {s.role[-2:]} {seed}"))
    sheet = Image.new("L", (size * 4, size * 3))
    for r, tiles in enumerate(rows):
        for c, t in enumerate(tiles[:4]):
            sheet.paste(t, (size * c, size * r))
    out_dir.mkdir(parents=True, exist_ok=True)
    sheet.save(out_dir / "real_v1_v2.png", optimize=True)
    spread = Image.new("L", (size * 6, size * 2))
    for n, seed in enumerate(range(1_000_330, 1_000_336)):
        ph2 = generate_study_v2(seed, site="site-a", slices="mid")
        for r, s in enumerate(ph2.study.series):
            spread.paste(_tile(s.pixels[0], size, f"v2 {s.role[-2:]} {seed}"), (size * n, size * r))
    spread.save(out_dir / "v2_spread.png", optimize=True)
    print(f"montages in {out_dir}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("speed")
    sp.add_argument("--n", type=int, default=20)
    sp.add_argument("--site", default="site-a")
    sp.add_argument("--write", action="store_true", help="also write DICOM, labels, SEG")
    sp.add_argument("--start", type=int, default=1_000_000)
    sp.add_argument("--engine", choices=("v1", "v2"), default="v1")
    sp.add_argument("--slices", choices=("mid", "stack"), default="mid", help="v2 only")
    sp.add_argument("--json", action="store_true", help="print the figures as JSON")
    mp = sub.add_parser("montage-v2")
    mp.add_argument("--out", type=Path, default=Path("docs/img/phantoms"))
    pp = sub.add_parser("priors")
    pp.add_argument("--priors", default="realistic")
    pp.add_argument("--n", type=int, default=1000)
    pp.add_argument("--workers", type=int, default=1)
    pp.add_argument("--start", type=int, default=1_000_000)
    pp.add_argument("--json", type=Path, help="write the counts here")
    rp = sub.add_parser("realism")
    rp.add_argument("--n", type=int, default=6)
    rp.add_argument("--img", type=Path, default=None, help="write montages here")
    a = ap.parse_args()
    if a.cmd == "speed":
        speed(a.n, a.site, a.write, a.start, a.engine, a.slices, a.json)
    elif a.cmd == "montage-v2":
        montage_v2(a.out)
    elif a.cmd == "realism":
        realism(a.n, a.img)
    else:
        counts = priors_table(a.n, a.priors, a.workers, a.start)
        if a.json:
            a.json.write_text(json.dumps(counts, indent=1, sort_keys=True, default=str))


if __name__ == "__main__":
    main()
