"""Error injection: planted statements differ from the truth, the rest is untouched."""

from __future__ import annotations

import pytest
from grounding_factory import findings

from reporter.contracts.findings import LEVEL_FIELDS, StudyFindings, lumbar_levels
from reporter.grounding.inject import ALL_KINDS, inject_errors

TRUTH = {
    "L3-L4": {"canal_stenosis": "moderate", "foraminal_stenosis_left": 2, "modic_upper": 1},
    "L4-L5": {"herniation": {"value": "protrusion", "zone": "paracentral_left"},
              "disc_bulging": False, "subarticular_stenosis_right": "severe"},
}  # fmt: skip


def _value(f: StudyFindings, level: str, field: str):
    lf = f.level(level)
    if lf is None:
        return None
    finding = getattr(lf, field)
    if field == "herniation" and finding.zone:
        return (finding.value, finding.zone)
    return finding.value


@pytest.mark.parametrize("n_lumbar", [4, 5, 6])
@pytest.mark.parametrize("seed", range(12))
def test_planted_statements_differ_and_the_rest_is_untouched(n_lumbar: int, seed: int) -> None:
    truth = findings(n_lumbar, {k: v for k, v in TRUTH.items() if k in lumbar_levels(n_lumbar)})
    altered, planted = inject_errors(truth, seed=seed)
    assert planted
    keys = {(p.level, p.field) for p in planted}
    assert len(keys) == len(planted)
    for p in planted:
        assert _value(altered, p.level, p.field) != _value(truth, p.level, p.field) or (
            p.kind == "nonexistent_level"
        )
    for lf in altered.levels:
        for field in LEVEL_FIELDS:
            if (lf.level, field) in keys or not getattr(lf, field).assessed:
                continue
            assert _value(altered, lf.level, field) == _value(truth, lf.level, field)


def test_each_kind_can_be_planted_alone() -> None:
    truth = findings(5, TRUTH)
    for kind in ALL_KINDS:
        _, planted = inject_errors(truth, seed=3, kinds=(kind,))
        assert {p.kind for p in planted} == {kind}


def test_nonexistent_level_is_not_part_of_the_spine() -> None:
    truth = findings(5, TRUTH)
    altered, planted = inject_errors(truth, seed=0, kinds=("nonexistent_level",))
    assert all(p.level not in lumbar_levels(5) for p in planted)
    assert altered.levels[-1].level not in lumbar_levels(5)


def test_grade_errors_are_at_least_two_steps_off() -> None:
    from reporter.contracts.findings import field_values

    truth = findings(5, TRUTH)
    for seed in range(20):
        _, planted = inject_errors(truth, seed=seed, kinds=("grade_off",))
        for p in planted:
            scale = list(field_values(p.field))
            assert abs(scale.index(p.truth) - scale.index(p.claimed)) >= 2
