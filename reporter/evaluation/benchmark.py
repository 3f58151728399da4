"""Named phantom benchmarks, defined in code as seeds and counts per site.

A benchmark is a list of cases (seed, site, generator overrides); the studies are generated on the
fly by `reporter.synth.generate_study`, so the benchmark is its definition and nothing else is
stored. Every seed lies in the evaluation range (>= EVAL_SEED_START, reporter/synth/seeds.py) and
a test checks that no benchmark seed falls in a training, validation or fine-tune range. The
exception is TUNING_BENCHMARKS (phantom-val): validation seeds only, for choosing thresholds.

phantom-v1 (300 studies)
    site-a   75 studies, seeds 1_000_000 ..  (training site, 1.5 T)
    site-b   75 studies, seeds 1_100_000 ..  (training site, 3 T)
    site-c  150 studies, seeds 1_200_000 ..  (the new site, never in training, 0.55 T)
  Each case's enumeration and field of view are set, by its position i in its site block (so the
  proportions hold per site and in the stratified `--limit` subsets):
    i % 20 == 7    six lumbar-type vertebrae (L6)             16 of 300
    i % 20 == 17   four lumbar-type vertebrae                 13 of 300
    i % 20 == 12   sacralized L5 (five lumbar, transitional)  15 of 300
    i % 20 == 2    sacrum cut by the field of view            16 of 300
    i % 20 == 15   post-operative: pedicle screws with
                   susceptibility voids (metal artifact)      13 of 300
    otherwise      five lumbar vertebrae, standard FOV       227 of 300
  Everything else (age, sex, degeneration, scoliosis) follows the generator's `realistic` priors.
  Other image artifacts (Gibbs ringing, motion ghosting, wrap-around) are drawn per series at
  each site's rates (reporter/synth/sites.py; the generator has no switch to force them); the
  harness tags each study with the artifacts its sagittal series got (from meta.json) and reports
  the metrics per variant (`by_variant`) and with / without sagittal artifacts (`by_artifacts`),
  so their share and effect are stated for every run.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

# The evaluation range of reporter/synth/seeds.py (kept here too so this module imports without
# the generator; the seed-disjointness test checks the two agree).
EVAL_SEED_START = 1_000_000


@dataclass(frozen=True)
class Case:
    seed: int
    site: str
    overrides: tuple[tuple[str, Any], ...] = ()
    tags: tuple[str, ...] = ()

    @property
    def case_id(self) -> str:
        return f"{self.site}-{self.seed}"

    def overrides_dict(self) -> dict[str, Any]:
        return dict(self.overrides)


@dataclass(frozen=True)
class SiteBlock:
    site: str
    first_seed: int
    count: int
    # (tag, modulus, residue, generator overrides): position i matches when i % modulus ==
    # residue; the first match wins, no match gets `standard`.
    variants: tuple[tuple[str, int, int, tuple[tuple[str, Any], ...]], ...] = ()
    standard: tuple[tuple[str, Any], ...] = ()

    def cases(self) -> list[Case]:
        out = []
        for i in range(self.count):
            tag, overrides = "standard", self.standard
            for v_tag, modulus, residue, ov in self.variants:
                if i % modulus == residue:
                    tag, overrides = v_tag, ov
                    break
            out.append(Case(self.first_seed + i, self.site, overrides, (tag,)))
        return out


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    blocks: tuple[SiteBlock, ...]
    priors: str = "realistic"
    notes: dict[str, str] = field(default_factory=dict)

    def cases(self, limit: int | None = None) -> list[Case]:
        """All cases, or a stratified subset of `limit`: the blocks interleaved round-robin in
        proportion to their size, so a short run still covers every site and variant."""
        per_block = [b.cases() for b in self.blocks]
        if limit is None or limit >= sum(map(len, per_block)):
            return [c for cases in per_block for c in cases]
        if limit < 1:
            raise ValueError(f"Argument 'limit' must be at least 1, not {limit}.")
        total = sum(map(len, per_block))
        # Largest-remainder split of `limit` across blocks, then the first n of each.
        shares = [limit * len(c) / total for c in per_block]
        take = [int(s) for s in shares]
        for i in sorted(range(len(shares)), key=lambda i: take[i] - shares[i])[: limit - sum(take)]:
            take[i] += 1
        chosen = [cases[:n] for cases, n in zip(per_block, take, strict=True)]
        return [c for c in itertools.chain(*itertools.zip_longest(*chosen)) if c is not None]

    def seeds(self) -> list[int]:
        return [c.seed for c in self.cases()]


# Overrides understood by reporter.synth.generate_study (STUDY_OVERRIDES there).
def _study(
    n_lumbar: int = 5, transitional: str = "none", fov: str = "standard", postop: bool = False
) -> tuple[tuple[str, Any], ...]:
    return (
        ("n_lumbar", n_lumbar),
        ("transitional", transitional),
        ("fov", fov),
        ("postoperative", postop),
    )


_STANDARD = _study()
_L6 = _study(n_lumbar=6, transitional="L6")
_FOUR = _study(n_lumbar=4)
_SACRALIZED = _study(transitional="sacralized_L5")
_CUT_SACRUM = _study(fov="cut_sacrum")
_POSTOP = _study(postop=True)

# (tag, modulus, residue, overrides): the first match wins; no match -> standard.
_VARIANTS = (
    ("transitional_L6", 20, 7, _L6),
    ("transitional_4_lumbar", 20, 17, _FOUR),
    ("transitional_sacralized_L5", 20, 12, _SACRALIZED),
    ("fov_cut_sacrum", 20, 2, _CUT_SACRUM),
    ("postoperative_metal", 20, 15, _POSTOP),
)

PHANTOM_V1 = Benchmark(
    name="phantom-v1",
    description=(
        "300 phantom studies: 75 site-a + 75 site-b (training sites) + 150 site-c (new site); "
        "per site 5% each of six lumbar vertebrae, four lumbar vertebrae, sacralized L5, a "
        "sacrum cut by the FOV and post-operative metal; other artifacts at each site's rates."
    ),
    blocks=(
        SiteBlock("site-a", 1_000_000, 75, _VARIANTS, _STANDARD),
        SiteBlock("site-b", 1_100_000, 75, _VARIANTS, _STANDARD),
        SiteBlock("site-c", 1_200_000, 150, _VARIANTS, _STANDARD),
    ),
)

# 12 studies for tests and dry runs (own seeds, still >= 1e6): per site one standard, one L6,
# one four-lumbar and one cut-sacrum study, so a dry run touches every branch of phantom-v1.
_SMOKE_VARIANTS = (
    ("transitional_L6", 4, 1, _L6),
    ("transitional_4_lumbar", 4, 2, _FOUR),
    ("fov_cut_sacrum", 4, 3, _CUT_SACRUM),
)
PHANTOM_SMOKE = Benchmark(
    name="phantom-smoke",
    description="12 phantom studies (4 per site: standard, L6, four lumbar, cut sacrum).",
    blocks=(
        SiteBlock("site-a", 1_900_000, 4, _SMOKE_VARIANTS, _STANDARD),
        SiteBlock("site-b", 1_910_000, 4, _SMOKE_VARIANTS, _STANDARD),
        SiteBlock("site-c", 1_920_000, 4, _SMOKE_VARIANTS, _STANDARD),
    ),
)

# The same mix on validation seeds (100000..199999; the VLM's calibration uses 100000..100063):
# for choosing checker tolerances and policies without looking at phantom-v1.
PHANTOM_VAL = Benchmark(
    name="phantom-val",
    description=(
        "90 validation phantom studies (30 per site, the variants of phantom-v1): for tuning, "
        "never for reporting results."
    ),
    blocks=(
        SiteBlock("site-a", 160_000, 30, _VARIANTS, _STANDARD),
        SiteBlock("site-b", 170_000, 30, _VARIANTS, _STANDARD),
        SiteBlock("site-c", 180_000, 30, _VARIANTS, _STANDARD),
    ),
)

BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (PHANTOM_V1, PHANTOM_SMOKE)}
# Validation-seed benchmarks: for tuning only (a test keeps them inside the validation range).
TUNING_BENCHMARKS: dict[str, Benchmark] = {PHANTOM_VAL.name: PHANTOM_VAL}


def get_benchmark(name: str) -> Benchmark:
    known = {**BENCHMARKS, **TUNING_BENCHMARKS}
    try:
        return known[name]
    except KeyError:
        from reporter.errors import UsageError

        raise UsageError(f"unknown benchmark {name!r}; known: {', '.join(sorted(known))}") from None


def iter_benchmark_cases(name: str, limit: int | None = None) -> Iterator[Case]:
    yield from get_benchmark(name).cases(limit)
