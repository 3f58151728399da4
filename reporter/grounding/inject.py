"""Plant known errors into ground-truth findings, to measure the checker alone.

The error kinds are the ways a report goes wrong that grounding exists to catch:
- `grade_off`: a graded field moved by two or more steps (canal moderate where it is none);
- `adjacent_level`: a finding shifted to the neighbouring level (the two levels swap values);
- `nonexistent_level`: findings reported at a level this spine does not have (L5-L6 with five
  lumbar vertebrae; the lumbosacral level renamed);
- `modic_swap`: the wrong Modic type (1 <-> 2, 3 -> 2; type 1 or 2 where there is none);
- `wrong_side`: left and right exchanged (foraminal / subarticular stenosis, herniation zone).

Every planted statement differs from the truth by construction; which statements were altered
is returned so recall (altered and flagged) and false flags (unaltered and flagged) can be counted.
The injector never looks at images or measurements: it plants errors by definition, not by
what the checker can see.
"""

from __future__ import annotations

import itertools
import random
from typing import Any, Literal, NamedTuple

from reporter.contracts.findings import (
    LEVEL_FIELDS,
    SEVERITIES,
    StudyFindings,
    field_values,
    is_abnormal,
    lumbar_levels,
    split_level,
)

ErrorKind = Literal["grade_off", "adjacent_level", "nonexistent_level", "modic_swap", "wrong_side"]
ALL_KINDS: tuple[ErrorKind, ...] = (
    "grade_off",
    "adjacent_level",
    "nonexistent_level",
    "modic_swap",
    "wrong_side",
)
# Fields on an ordered scale, where "two steps off" means something.
GRADED_FIELDS: tuple[str, ...] = (
    "pfirrmann",
    "disc_narrowing",
    "canal_stenosis",
    "foraminal_stenosis_left",
    "foraminal_stenosis_right",
    "subarticular_stenosis_left",
    "subarticular_stenosis_right",
    "spondylolisthesis",
)
SIDED_PAIRS: tuple[tuple[str, str], ...] = (
    ("foraminal_stenosis_left", "foraminal_stenosis_right"),
    ("subarticular_stenosis_left", "subarticular_stenosis_right"),
)
MODIC_SWAP = {1: 2, 2: 1, 3: 2}


class PlantedError(NamedTuple):
    level: str
    field: str
    kind: ErrorKind
    truth: Any
    claimed: Any


class Injection(NamedTuple):
    """Unpacks as `(findings, planted)`."""

    findings: StudyFindings
    planted: list[PlantedError]


def _steps(field: str, a: Any, b: Any) -> int:
    scale = list(field_values(field))
    return abs(scale.index(a) - scale.index(b))


def _far_values(field: str, value: Any, min_steps: int = 2) -> list[Any]:
    return [v for v in field_values(field) if _steps(field, v, value) >= min_steps]


def _set(lf: dict[str, Any], field: str, value: Any) -> None:
    """Write a value into a level dict, keeping the companion fields consistent."""
    entry = {"value": value}
    if field == "spondylolisthesis":
        entry["direction"] = "antero" if value else None
        old = lf.get(field) or {}
        if value and old.get("direction"):
            entry["direction"] = old["direction"]
    lf[field] = {k: v for k, v in entry.items() if v is not None}


def _value(lf: dict[str, Any], field: str) -> Any:
    entry = lf.get(field) or {}
    return entry.get("value")


def _assessed(lf: dict[str, Any], field: str) -> bool:
    entry = lf.get(field) or {}
    return entry.get("not_assessable") is None and entry.get("value") is not None


class _Planter:
    def __init__(self, findings: StudyFindings, rng: random.Random) -> None:
        self.data = findings.model_dump(mode="json", exclude_none=True)
        self.truth = findings
        self.rng = rng
        self.planted: list[PlantedError] = []
        self.used: set[tuple[str, str]] = set()
        self.renamed: set[str] = set()  # levels whose name was replaced (no further edits)

    # helpers
    def levels(self) -> list[dict[str, Any]]:
        return [lf for lf in self.data["levels"] if lf["level"] not in self.renamed]

    def free(self, lf: dict[str, Any], field: str) -> bool:
        return (lf["level"], field) not in self.used and _assessed(lf, field)

    def record(self, lf: dict[str, Any], field: str, kind: ErrorKind, truth: Any) -> None:
        self.used.add((lf["level"], field))
        self.planted.append(PlantedError(lf["level"], field, kind, truth, _value(lf, field)))

    # kinds
    def grade_off(self) -> bool:
        options = [(lf, f) for lf in self.levels() for f in GRADED_FIELDS if self.free(lf, f)]
        self.rng.shuffle(options)
        for lf, f in options:
            far = _far_values(f, _value(lf, f))
            if far:
                truth = _value(lf, f)
                _set(lf, f, self.rng.choice(far))
                self.record(lf, f, "grade_off", truth)
                return True
        return False

    def adjacent_level(self) -> bool:
        lvls = self.levels()
        options = []
        for a, b in itertools.pairwise(lvls):
            for f in (*GRADED_FIELDS, "modic_upper", "modic_lower"):
                if not (self.free(a, f) and self.free(b, f)):
                    continue
                va, vb = _value(a, f), _value(b, f)
                if not (is_abnormal(f, va) or is_abnormal(f, vb)):
                    continue
                differs = _steps(f, va, vb) >= 2 if f in GRADED_FIELDS else va != vb
                if differs:
                    options.append((a, b, f))
        if not options:
            return False
        a, b, f = self.rng.choice(options)
        va, vb = _value(a, f), _value(b, f)
        # The finding moves: each level now states what its neighbour has.
        da, db = dict(a.get(f, {})), dict(b.get(f, {}))
        a[f], b[f] = db, da
        self.record(a, f, "adjacent_level", va)
        self.record(b, f, "adjacent_level", vb)
        return True

    def nonexistent_level(self) -> bool:
        n = self.truth.study.lumbar_vertebrae or 5
        lvls = self.data["levels"]
        if not lvls or n not in (4, 5, 6):
            return False
        last = lvls[-1]
        if split_level(last["level"])[1] != "S1" or last["level"] in self.renamed:
            return False
        # A name that keeps the level order valid but that this spine does not have.
        fake = {5: "L5-L6", 4: "L5-S1", 6: "L5-S1"}[n]
        # With six lumbar vertebrae L5-S1 may not follow L5-L6 (same upper vertebra): the
        # invented level replaces both.
        if n == 6 and len(lvls) >= 2 and lvls[-2]["level"] == "L5-L6":
            lvls.pop(-2)
        if fake in lumbar_levels(n) or any(lf["level"] == fake for lf in lvls):
            return False
        truth_level = last["level"]
        last["level"] = fake
        self.renamed.add(fake)
        # Only findings are reported at the invented level: normal fields are left unstated, and
        # one abnormal finding is made up where the real level had none.
        abnormal = [
            f for f in LEVEL_FIELDS if _assessed(last, f) and is_abnormal(f, _value(last, f))
        ]
        if not abnormal:
            f = self.rng.choice(["canal_stenosis", "foraminal_stenosis_left", "modic_upper"])
            _set(last, f, {"canal_stenosis": "moderate", "foraminal_stenosis_left": 2}.get(f, 1))
            abnormal = [f]
        for f in LEVEL_FIELDS:
            if f not in abnormal:
                last[f] = {"not_assessable": "not reported"}
        for f in abnormal:
            self.used.add((fake, f))
            truth_lf = self.truth.level(truth_level)
            truth_value = getattr(truth_lf, f).value if truth_lf is not None else None
            self.planted.append(
                PlantedError(fake, f, "nonexistent_level", truth_value, _value(last, f))
            )
        return True

    def modic_swap(self) -> bool:
        options = [
            (lf, f)
            for lf in self.levels()
            for f in ("modic_upper", "modic_lower")
            if self.free(lf, f)
        ]
        changed = [(lf, f) for lf, f in options if _value(lf, f) in MODIC_SWAP]
        pool = changed or options
        if not pool:
            return False
        lf, f = self.rng.choice(pool)
        truth = _value(lf, f)
        _set(lf, f, MODIC_SWAP[truth] if truth in MODIC_SWAP else self.rng.choice([1, 2]))
        self.record(lf, f, "modic_swap", truth)
        return True

    def wrong_side(self) -> bool:
        options = []
        for lf in self.levels():
            for left, right in SIDED_PAIRS:
                if (
                    self.free(lf, left)
                    and self.free(lf, right)
                    and _steps(left, _value(lf, left), _value(lf, right)) >= 2
                ):
                    options.append((lf, left, right))
            h = lf.get("herniation", {})
            zone = h.get("zone", "")
            if (lf["level"], "herniation") not in self.used and zone.endswith(("_left", "_right")):
                options.append((lf, "herniation", ""))
        if not options:
            return False
        lf, left, right = self.rng.choice(options)
        if left == "herniation":
            h = lf["herniation"]
            truth = f"{h['value']} ({h['zone']})"
            side, other = (
                ("_left", "_right") if h["zone"].endswith("_left") else ("_right", "_left")
            )
            h["zone"] = h["zone"][: -len(side)] + other
            self.used.add((lf["level"], "herniation"))
            self.planted.append(
                PlantedError(
                    lf["level"], "herniation", "wrong_side", truth, f"{h['value']} ({h['zone']})"
                )
            )
            return True
        vl, vr = _value(lf, left), _value(lf, right)
        lf[left], lf[right] = dict(lf[right]), dict(lf[left])
        self.record(lf, left, "wrong_side", vl)
        self.record(lf, right, "wrong_side", vr)
        return True


def inject_errors(
    findings: StudyFindings,
    seed: int = 0,
    kinds: tuple[ErrorKind, ...] = ALL_KINDS,
    per_kind: int = 1,
) -> Injection:
    """Plant `per_kind` errors of each kind in `kinds` (where the findings allow one; a kind
    with no suitable statement falls back to `grade_off`). Returns the altered findings and
    the list of altered statements. `findings` itself is not modified."""
    rng = random.Random(seed)
    p = _Planter(findings, rng)
    order = list(kinds) * per_kind
    rng.shuffle(order)
    # The renaming kind goes first: the renamed level is then off limits to the other kinds,
    # so no planted statement is renamed away afterwards.
    order.sort(key=lambda k: k != "nonexistent_level")
    for kind in order:
        if not getattr(p, kind)():
            p.grade_off()
    altered = StudyFindings.model_validate(p.data)
    return Injection(altered, p.planted)


def severity_steps(a: str, b: str) -> int:
    return abs(SEVERITIES.index(a) - SEVERITIES.index(b))
