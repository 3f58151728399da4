"""Named phantom benchmarks, defined in code as seeds and counts per site.

A benchmark is a list of cases (seed, site, generator overrides); the studies are generated on the
fly by `reporter.synth.generate_study`, so the benchmark is its definition and nothing else is
stored. Every seed lies in the evaluation range (>= EVAL_SEED_START, reporter/synth/seeds.py) and
a test checks that no benchmark seed falls in a training, validation or fine-tune range.

phantom-v1 (300 studies)
    site-a   75 studies, seeds 1_000_000 ..  (training site, 1.5 T)
    site-b   75 studies, seeds 1_100_000 ..  (training site, 3 T)
    site-c  150 studies, seeds 1_200_000 ..  (the new site, never in training, 0.55 T)
  In every site block, by position i in the block (so the proportions hold for any site and for
  the stratified `--limit` subsets):
    i % 20 == 7    -> 6 lumbar-type vertebrae (L6)    16 of 300 (5.3 %)
    i % 20 == 17   -> 4 lumbar-type vertebrae         13 of 300 (4.3 %)
    i % 5  == 3    -> image artifacts forced on       60 of 300 (20 %)
  The rest use the generator's own `realistic` priors (which may add transitional anatomy or
  artifacts at their natural rate; meta.json records what each study got).
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
    # (tag, predicate on position, generator overrides) in priority order: the first match wins.
    variants: tuple[tuple[str, int, int, tuple[tuple[str, Any], ...]], ...] = ()

    def cases(self) -> list[Case]:
        out = []
        for i in range(self.count):
            overrides: tuple[tuple[str, Any], ...] = ()
            tags: list[str] = []
            for tag, modulus, residue, ov in self.variants:
                if i % modulus == residue:
                    overrides += ov
                    tags.append(tag)
            out.append(Case(self.first_seed + i, self.site, overrides, tuple(tags)))
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


# Overrides understood by reporter.synth.generate_study.
_L6 = (("n_lumbar", 6),)
_SACRALIZED = (("n_lumbar", 4),)
_ARTIFACTS = (("artifacts", True),)

_VARIANTS = (
    ("transitional_L6", 20, 7, _L6),
    ("transitional_4_lumbar", 20, 17, _SACRALIZED),
    ("artifacts", 5, 3, _ARTIFACTS),
)

PHANTOM_V1 = Benchmark(
    name="phantom-v1",
    description=(
        "300 phantom studies: 75 site-a + 75 site-b (training sites) + 150 site-c (new site); "
        "5% six lumbar vertebrae, 5% four lumbar vertebrae, 20% with forced artifacts per site."
    ),
    blocks=(
        SiteBlock("site-a", 1_000_000, 75, _VARIANTS),
        SiteBlock("site-b", 1_100_000, 75, _VARIANTS),
        SiteBlock("site-c", 1_200_000, 150, _VARIANTS),
    ),
)

# 12 studies for tests and dry runs (own seeds, still >= 1e6): per site one standard, one L6,
# one four-lumbar and one artifact study, so a dry run touches every branch of phantom-v1.
_SMOKE_VARIANTS = (
    ("transitional_L6", 4, 1, _L6),
    ("transitional_4_lumbar", 4, 2, _SACRALIZED),
    ("artifacts", 4, 3, _ARTIFACTS),
)
PHANTOM_SMOKE = Benchmark(
    name="phantom-smoke",
    description="12 phantom studies (4 per site: standard, L6, four lumbar, artifacts).",
    blocks=(
        SiteBlock("site-a", 1_900_000, 4, _SMOKE_VARIANTS),
        SiteBlock("site-b", 1_910_000, 4, _SMOKE_VARIANTS),
        SiteBlock("site-c", 1_920_000, 4, _SMOKE_VARIANTS),
    ),
)

BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (PHANTOM_V1, PHANTOM_SMOKE)}


def get_benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        from reporter.errors import UsageError

        raise UsageError(
            f"unknown benchmark {name!r}; known: {', '.join(sorted(BENCHMARKS))}"
        ) from None


def iter_benchmark_cases(name: str, limit: int | None = None) -> Iterator[Case]:
    yield from get_benchmark(name).cases(limit)
