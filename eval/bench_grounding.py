"""Benchmark: the grounding checker alone on ground-truth findings with planted errors.

For each phantom (evaluation seeds >= 1_000_000), the ground-truth findings get planted errors
(reporter.grounding.inject: grade off by >= 2 steps, adjacent level, non-existent level, swapped
Modic type, wrong side) and the checker judges them on the phantom's ground-truth segmentation
(or, with --segmenter, on the built-in segmenter's). Prints flag recall on the planted statements
and the false-flag rate on the untouched ones, overall and per error kind and field.

    python eval/bench_grounding.py --n 40 [--site site-a] [--seed 1000000] [--segmenter]
"""

from __future__ import annotations

import argparse
import collections
import json
import time
from typing import Any


def run(n: int, site: str, seed0: int, segmenter: bool, verbose: bool) -> dict[str, Any]:
    from reporter.anatomy import segment
    from reporter.grounding import check, measure
    from reporter.grounding.inject import inject_errors
    from reporter.synth.phantom import generate_study
    from reporter.synth.seeds import split_of

    planted_flags: list[bool] = []
    true_flags: list[bool] = []
    by_kind: dict[str, list[bool]] = collections.defaultdict(list)
    false_by_field: collections.Counter[str] = collections.Counter()
    unverifiable_true = 0
    examples: list[str] = []
    t0 = time.perf_counter()
    for i in range(n):
        seed = seed0 + i
        ph = generate_study(seed, site=site)
        anatomy = segment(ph.study) if segmenter else ph.anatomy
        measures = measure(ph.study, anatomy)
        altered, planted = inject_errors(ph.findings, seed=seed)
        result = check(altered, ph.study, anatomy, measurements=measures)
        kinds = {(p.level, p.field): p.kind for p in planted}
        for v in result.verdicts:
            if v.level is None:
                continue
            flagged = v.verdict == "contradicted"
            key = (v.level, v.field)
            if key in kinds:
                planted_flags.append(flagged)
                by_kind[kinds[key]].append(flagged)
                if not flagged and verbose:
                    examples.append(f"missed {seed} {v.level} {v.field} {v.claimed}: {v.reason}")
            else:
                true_flags.append(flagged)
                unverifiable_true += v.verdict == "unverifiable"
                if flagged:
                    false_by_field[v.field] += 1
                    if verbose:
                        examples.append(f"false {seed} {v.level} {v.field} {v.claimed}: {v.reason}")
    rate = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
    return {
        "n_studies": n,
        "site": site,
        "anatomy": "builtin_segmenter" if segmenter else "ground_truth",
        "seeds": [seed0, seed0 + n - 1],
        "split": split_of(seed0),
        "flag_recall": round(rate(planted_flags), 4),
        "false_flag_rate": round(rate(true_flags), 4),
        "n_planted": len(planted_flags),
        "n_untouched": len(true_flags),
        "untouched_unverifiable_rate": round(unverifiable_true / max(len(true_flags), 1), 4),
        "recall_by_kind": {k: round(rate(v), 4) for k, v in sorted(by_kind.items())},
        "false_flags_by_field": dict(false_by_field.most_common()),
        "seconds": round(time.perf_counter() - t0, 1),
        "examples": examples[:60],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--site", default="site-a")
    ap.add_argument("--seed", type=int, default=1_000_000)
    ap.add_argument("--segmenter", action="store_true", help="use the built-in segmenter")
    ap.add_argument("--verbose", action="store_true", help="list missed and false flags")
    args = ap.parse_args()
    from reporter.synth.seeds import split_of

    # Validation seeds tune the checker's tolerances; evaluation seeds report its numbers.
    # Training seeds (the segmenter's and the VLM's) are never measured here.
    split = split_of(args.seed)
    if split not in ("validation", "evaluation") or split_of(args.seed + args.n - 1) != split:
        raise SystemExit(
            "seeds must be validation (100000..199999, for tuning) or evaluation (>= 1000000, "
            "for reporting) -- reporter/synth/seeds.py"
        )
    import torch

    torch.set_num_threads(1)
    out = run(args.n, args.site, args.seed, args.segmenter, args.verbose)
    examples = out.pop("examples")
    print(json.dumps(out, indent=2))
    for line in examples:
        print(line)


if __name__ == "__main__":
    main()
