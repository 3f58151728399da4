"""Benchmark of the VLM part: accuracy at the training sites, site-c before/after LoRA, ECE,
warm inference latency per study and peak memory. Prints numbers; writes them as JSON.

    python eval/bench_vlm.py --model reporter/weights/vlm --n-test 300 --site-c-test 100 \
        --finetune-n 50 --workers 2 --out bench_vlm.json

Test phantoms use evaluation seeds (>= 1_000_000; site-c tests from 1_100_000), the LoRA
adaptation set uses fine-tune seeds (200_000..), so no number here comes from a training seed.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

from reporter.evaluation.metrics import nan_to_none
from reporter.evaluation.vlm_shards import evaluate, table
from reporter.training.vlm_data import ShardSet, cache_phantoms
from reporter.training.vlm_finetune import finetune
from reporter.vlm.config import ViewConfig
from reporter.vlm.inference import load_model

TEST_SEED = 1_000_000
SITE_C_TEST_SEED = 1_100_000
LATENCY_SEED = 1_200_000
FINETUNE_SEED = 200_000
KAPPA_CONDITIONS = ("canal_stenosis", "foraminal_stenosis", "pfirrmann", "modic")


def _shards(path: Path, n: int, start: int, sites: list[str], workers: int) -> ShardSet:
    if n <= 0:
        raise SystemExit(f"nothing to cache for {path}")
    cache_phantoms(path, list(range(start, start + n)), sites, ViewConfig(), workers=workers)
    return ShardSet.load([path])


def _kappas(m: dict) -> dict[str, float]:
    return {c: m["conditions"][c]["qwk"] for c in KAPPA_CONDITIONS if c in m["conditions"]}


def latency(model_dir: str | None, adapter: str | None, n: int) -> dict[str, float]:
    """Warm per-study time of model.predict(study, anatomy) (views + network + decoding) on
    the CPU with the process's torch threads, and the process's peak resident memory."""
    from reporter.synth import generate_study

    model = load_model(model_dir, adapter)
    phantoms = [generate_study(LATENCY_SEED + i, site="site-a") for i in range(n)]
    model.predict(phantoms[0].study, phantoms[0].anatomy)  # warm-up
    times = []
    for ph in phantoms:
        t0 = time.perf_counter()
        model.predict(ph.study, ph.anatomy)
        times.append(time.perf_counter() - t0)
    return {
        "median_s": statistics.median(times),
        "max_s": max(times),
        "torch_threads": torch.get_num_threads(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="model folder (default: the embedded one)")
    ap.add_argument("--cache", type=Path, default=Path("runs/bench_vlm"))
    ap.add_argument("--n-test", type=int, default=300)
    ap.add_argument("--site-c-test", type=int, default=100)
    ap.add_argument("--finetune-n", type=int, default=50)
    ap.add_argument("--finetune-steps", type=int, default=300)
    ap.add_argument("--latency-n", type=int, default=10)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    results: dict = {"model": args.model or "embedded default"}

    model = load_model(args.model)
    results["provenance"] = model.provenance()
    dev = torch.device(args.device)
    model.net.to(dev)
    if args.n_test:
        test = _shards(args.cache / "test", args.n_test, TEST_SEED, ["site-a", "site-b"],
                       args.workers)  # fmt: skip
        m = evaluate(model, test)
        results["training_sites"] = m
        print(f"== training sites (site-a/site-b), {m['n_studies']} test studies")
        print(table(m))
    if args.site_c_test:
        site_c = _shards(args.cache / "site-c-test", args.site_c_test, SITE_C_TEST_SEED,
                         ["site-c"], args.workers)  # fmt: skip
        before = evaluate(model, site_c)
        results["site_c_before"] = before
        print(f"== site-c before adaptation, {before['n_studies']} studies")
        print(table(before))
        if args.finetune_n:
            _shards(args.cache / "site-c-finetune", args.finetune_n, FINETUNE_SEED, ["site-c"],
                    args.workers)  # fmt: skip
            adapter = args.cache / "site-c-adapter"
            ft = finetune(
                Path(args.model) if args.model else None, [args.cache / "site-c-finetune"],
                adapter, steps=args.finetune_steps, device=args.device,
            )  # fmt: skip
            results["finetune"] = ft
            print(
                f"== LoRA: {ft['studies']} site-c studies, {ft['steps']} steps, "
                f"{ft['seconds']} s on {ft['device']}, adapter {ft['adapter_bytes']} bytes"
            )
            adapted = load_model(args.model, adapter)
            adapted.net.to(dev)
            after = evaluate(adapted, site_c)
            results["site_c_after"] = after
            print(f"== site-c after LoRA, {after['n_studies']} studies")
            print(table(after))
            if "training_sites" in results:
                ref = _kappas(results["training_sites"])
                got = _kappas(after)
                results["site_c_recovery"] = {c: got[c] / ref[c] for c in ref if ref[c]}
                print("recovery of in-distribution kappa:", {
                    c: round(v, 3) for c, v in results["site_c_recovery"].items()})  # fmt: skip
    if args.latency_n:
        model.net.cpu()
        lat = latency(args.model, None, args.latency_n)
        results["latency"] = lat
        print(f"== latency warm per study (CPU, {lat['torch_threads']} threads): "
              f"median {lat['median_s']:.3f} s, max {lat['max_s']:.3f} s, "
              f"peak RSS {lat['peak_rss_mb']:.0f} MB")  # fmt: skip
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(nan_to_none(results), indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
