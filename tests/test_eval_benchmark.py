"""phantom-v1 is defined in code, covers every site and variant, never reuses a training seed."""

from __future__ import annotations

from collections import Counter

import pytest

from reporter.errors import UsageError
from reporter.evaluation import benchmark as B
from reporter.synth import seeds


@pytest.mark.parametrize("name", sorted(B.BENCHMARKS))
def test_benchmark_seeds_never_overlap_training_validation_or_fine_tune(name):
    bench_seeds = B.BENCHMARKS[name].seeds()
    assert len(set(bench_seeds)) == len(bench_seeds), "a seed is used twice"
    for rng in (seeds.TRAINING, seeds.VALIDATION, seeds.FINE_TUNE):
        assert not [s for s in bench_seeds if s in rng], f"{name} reuses seeds of {rng}"
    assert all(seeds.split_of(s) == "evaluation" for s in bench_seeds)
    assert min(bench_seeds) >= seeds.EVALUATION_START


def test_the_benchmark_module_agrees_with_the_seed_contract():
    assert B.EVAL_SEED_START == seeds.EVALUATION_START


def test_benchmarks_do_not_share_seeds():
    seen: dict[int, str] = {}
    for name, bench in B.BENCHMARKS.items():
        for s in bench.seeds():
            assert s not in seen, f"seed {s} in both {seen[s]} and {name}"
            seen[s] = name


def test_phantom_v1_has_the_documented_sites_and_proportions():
    cases = B.PHANTOM_V1.cases()
    assert len(cases) == 300
    assert Counter(c.site for c in cases) == {"site-a": 75, "site-b": 75, "site-c": 150}
    tags = Counter(c.tags[0] for c in cases)
    assert tags == {
        "standard": 227,
        "postoperative_metal": 13,
        "transitional_L6": 16,
        "transitional_4_lumbar": 13,
        "transitional_sacralized_L5": 15,
        "fov_cut_sacrum": 16,
    }
    assert all(len(c.tags) == 1 for c in cases)  # a case is exactly one variant
    six = next(c for c in cases if c.tags == ("transitional_L6",))
    assert six.overrides_dict() == {
        "n_lumbar": 6,
        "transitional": "L6",
        "fov": "standard",
        "postoperative": False,
    }
    std = next(c for c in cases if c.tags == ("standard",))
    assert std.overrides_dict()["postoperative"] is False
    assert len({c.case_id for c in cases}) == 300


def test_a_limited_run_is_a_stratified_prefix():
    sub = B.PHANTOM_V1.cases(limit=12)
    assert len(sub) == 12
    assert Counter(c.site for c in sub) == {"site-a": 3, "site-b": 3, "site-c": 6}
    assert B.PHANTOM_V1.cases(limit=12) == sub  # deterministic


def test_an_unknown_benchmark_is_a_usage_error():
    with pytest.raises(UsageError, match="phantom-v1"):
        B.get_benchmark("phantom-v0")


def test_every_benchmark_override_is_one_the_generator_accepts():
    from reporter.synth.phantom import STUDY_OVERRIDES

    for bench in B.BENCHMARKS.values():
        for case in bench.cases():
            assert set(case.overrides_dict()) <= set(STUDY_OVERRIDES), case


@pytest.mark.parametrize("name", sorted(B.TUNING_BENCHMARKS))
def test_tuning_benchmarks_stay_in_the_validation_range(name):
    bench_seeds = B.get_benchmark(name).seeds()
    assert len(set(bench_seeds)) == len(bench_seeds)
    assert all(seeds.split_of(s) == "validation" for s in bench_seeds)
