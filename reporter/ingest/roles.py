"""What each usable series is used for.

Role by plane and weighting: sagittal T1 / T2 / STIR -> sag_t1 / sag_t2 / sag_stir, axial T2 / T1
-> ax_t2 / ax_t1; everything else (coronal, oblique, other weightings) -> "other".

When several series compete for one role, the rule is, in order:
1. a slice step of 2-6 mm (the 2-D clinical protocol that reading, grading and our models
   expect) beats thin 3-D or thick sections;
2. the later series (higher SeriesNumber): a repeat is acquired because the earlier one was
   degraded, typically by motion;
3. more slices (more coverage);
4. the SeriesInstanceUID, so the choice never depends on file order.
The losers keep their volume and get role "other"; nothing is dropped.
"""

from __future__ import annotations

from collections import defaultdict

from reporter.contracts.study import Role, Series

_ROLE_OF: dict[tuple[str, str], Role] = {
    ("sagittal", "T1"): "sag_t1",
    ("sagittal", "T2"): "sag_t2",
    ("sagittal", "STIR"): "sag_stir",
    ("axial", "T2"): "ax_t2",
    ("axial", "T1"): "ax_t1",
}
CLINICAL_STEP_MM = (2.0, 6.0)


def candidate_role(plane: str, weighting: str) -> Role:
    return _ROLE_OF.get((plane, weighting), "other")


def _preference(stacks: list[Series]) -> tuple[bool, int, int, str]:
    first = stacks[0]
    step = first.spacing[0]
    clinical = CLINICAL_STEP_MM[0] <= step <= CLINICAL_STEP_MM[1] or first.shape[0] == 1
    return (
        clinical,
        first.series_number if first.series_number is not None else -1,
        sum(s.shape[0] for s in stacks),
        first.series_uid,
    )


def assign_roles(series: list[Series]) -> list[Series]:
    """Set `role` on every stack in place (stacks of one series share it); returns the list."""
    by_uid: dict[str, list[Series]] = defaultdict(list)
    for s in series:
        by_uid[s.series_uid].append(s)
    competing: dict[Role, list[list[Series]]] = defaultdict(list)
    for stacks in by_uid.values():
        role = candidate_role(stacks[0].plane, stacks[0].weighting)
        if any(candidate_role(s.plane, s.weighting) != role for s in stacks):
            role = "other"  # blocks of one series in different planes: no single use
        competing[role].append(stacks)
    for role, groups in competing.items():
        groups.sort(key=_preference, reverse=True)
        for rank, stacks in enumerate(groups):
            for s in stacks:
                s.role = role if (rank == 0 or role == "other") else "other"
    return series
