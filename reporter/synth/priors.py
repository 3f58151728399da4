"""Priors: what each phantom should show, drawn per study and per disc level.

These are *targets*. The generator draws geometry and tissue that aim at them; the ground truth
is then measured back from what was drawn (reporter.synth.groundtruth), so a target that the
geometry cannot honour never becomes a wrong label.

`realistic` follows published prevalence by age and level:
- Disc degeneration, signal loss, height loss, bulge, protrusion and spondylolisthesis by age:
  Brinjikji W, et al. Systematic literature review of imaging features of spinal degeneration in
  asymptomatic populations. AJNR 2015;36:811-816 (e.g. disc degeneration 37% at 20 y, 80% at 50 y,
  96% at 80 y; protrusion 29% -> 43%; spondylolisthesis 3% -> 50%).
- Level distribution of degeneration (L4-L5 and L5-S1 most, rising caudally): Cheung KMC, et al.
  Prevalence and pattern of lumbar magnetic resonance imaging changes in a population study of one
  thousand forty-three individuals. Spine 2009;34:934-940.
- Modic changes (type 2 most common, then 1, type 3 rare; mostly L4-L5 / L5-S1, with disc
  degeneration): Jensen TS, et al. Eur Spine J 2008;17:1407-1422.
- Canal stenosis by age (relative 22.5% / absolute 7.3% overall, 47% / 19% at 60-69 y):
  Kalichman L, et al. Spine J 2009;9:545-550.
- Degenerative spondylolisthesis (11.5% overall, L4-L5 most, grade 1 dominant, more in women and
  with age): Kalichman L, et al. Spine 2009;34:199-205; Meyerding 1932 for grades.
- Herniation zones (paracentral most common, then central, foraminal, extraforaminal):
  Fardon DF, et al. Spine J 2014;14:2525-2545; Kreiner DS, et al. Spine J 2014;14:180-191.
- Foraminal stenosis mostly at L4-L5 / L5-S1: Jenis LG, An HS. Spine 2000;25:389-394; grade mix
  matching the RSNA 2024 lumbar dataset labels (about 75% normal/mild): Richards TJ, et al.
  Radiology: AI 2025;7:e240565.
- Schmorl nodes (about 20-30% of adults, mostly thoracolumbar T11-L2): Williams FMK, et al.
  Arthritis Rheum 2007;57:855-860; Mok FPS, et al. Spine J 2010;10:200-208.
- Transitional / numerical variants (LSTV 4-30%, six lumbar-type 2-8%, four 1-2%):
  Apazidis A, et al. Spine J 2011;11:858-862; Tins BJ, Balain B. Skeletal Radiol 2016;45:1041.
- Lordosis L1-S1 about 50 +- 10 degrees standing (Been E, Kalichman L. Spine J 2014;14:87-97),
  some 5-10 degrees less supine in the scanner; drawn as 45 +- 10.
- Adult scoliosis (prevalence rising with age, degenerative): Schwab F, et al. Spine
  2005;30:1082-1085.

`balanced` draws every value of every field often enough (>= 2% of levels over 1,000 studies) that
every class can be learned and evaluated; it is not a prevalence model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reporter.contracts.findings import SEVERITIES

PRIORS = ("realistic", "balanced")

ZONES = (
    "central",
    "paracentral_left",
    "paracentral_right",
    "foraminal_left",
    "foraminal_right",
    "extraforaminal_left",
    "extraforaminal_right",
)


@dataclass
class LevelTargets:
    pfirrmann: int = 2
    narrowing: str = "none"
    herniation: str = "none"
    zone: str | None = None
    canal: str = "none"
    foraminal: tuple[int, int] = (0, 0)  # left, right
    subarticular: tuple[str, str] = ("none", "none")
    modic_upper: int = 0  # inferior endplate of the vertebra above
    modic_lower: int = 0  # superior endplate of the vertebra below
    schmorl_upper: bool = False
    schmorl_lower: bool = False
    slip_grade: int = 0
    slip_direction: str | None = None


@dataclass
class StudyTargets:
    age: int
    sex: str
    n_lumbar: int
    transitional: str
    fov: str  # "standard" | "missing_t12_l1" | "cut_sacrum"
    lordosis_deg: float
    scoliosis_cobb_deg: float
    postoperative: bool
    levels: dict[str, LevelTargets] = field(default_factory=dict)


# Relative degeneration propensity by level, rising caudally (Cheung 2009).
_LEVEL_WEIGHT = {
    "T12-L1": -1.1, "L1-L2": -0.8, "L2-L3": -0.45, "L3-L4": -0.1,
    "L4-L5": 0.5, "L5-L6": 0.35, "L5-S1": 0.45, "L4-S1": 0.45, "L6-S1": 0.4,
}  # fmt: skip
# Slip share by level (Kalichman 2009: L4-L5 most, then L5-S1, L3-L4).
_SLIP_LEVEL = {"L4-L5": 1.0, "L5-S1": 0.35, "L4-S1": 0.45, "L6-S1": 0.35, "L3-L4": 0.15}


def _choice(rng: np.random.Generator, values: Any, p: Any) -> Any:
    p = np.asarray(p, dtype=float)
    return values[int(rng.choice(len(values), p=p / p.sum()))]


def _sev_from_score(x: float, cuts: tuple[float, float, float]) -> str:
    return SEVERITIES[int(np.searchsorted(np.asarray(cuts), x))]


def _zone(rng: np.random.Generator) -> str:
    # Paracentral about half, central a quarter, foraminal a fifth, extraforaminal rare.
    return _choice(rng, ZONES, [0.25, 0.25, 0.25, 0.09, 0.09, 0.035, 0.035])


def _study_common(
    rng: np.random.Generator, balanced: bool
) -> tuple[int, str, int, str, str, float, float]:
    if balanced:
        age = int(rng.integers(20, 90))
    else:
        age = int(np.clip(round(rng.normal(52.0, 15.0)), 18, 92))
    sex = "F" if rng.random() < 0.5 else "M"
    if balanced:
        variant = _choice(rng, ["none", "4", "L6", "sacralized_L5", "lumbarized_S1"],
                          [0.5, 0.125, 0.125, 0.125, 0.125])  # fmt: skip
        fov = _choice(rng, ["standard", "missing_t12_l1", "cut_sacrum"], [0.8, 0.1, 0.1])
    else:
        variant = _choice(rng, ["none", "4", "L6", "sacralized_L5", "lumbarized_S1"],
                          [0.895, 0.015, 0.03, 0.04, 0.02])  # fmt: skip
        fov = _choice(rng, ["standard", "missing_t12_l1", "cut_sacrum"], [0.91, 0.05, 0.04])
    n_lumbar = 4 if variant == "4" else 6 if variant == "L6" else 5
    transitional = "none" if variant == "4" else variant
    lordosis = float(np.clip(rng.normal(45.0, 10.0), 15.0, 85.0))
    if balanced:
        lordosis = float(rng.uniform(15.0, 85.0))
    p_scol = 0.3 if balanced else 0.03 + 0.12 * max(age - 40, 0) / 50
    cobb = float(rng.uniform(10.0, 30.0)) if rng.random() < p_scol else float(rng.uniform(0, 4))
    return age, sex, n_lumbar, transitional, fov, lordosis, cobb


def sample_targets(rng: np.random.Generator, levels: list[str], priors: str) -> StudyTargets:
    if priors not in PRIORS:
        from reporter.errors import UsageError

        raise UsageError(f"unknown priors {priors!r}; expected one of {', '.join(PRIORS)}")
    balanced = priors == "balanced"
    age, sex, n_lumbar, transitional, fov, lordosis, cobb = _study_common(rng, balanced)
    postop = rng.random() < (0.06 if balanced else 0.02 + 0.04 * (age > 55))
    st = StudyTargets(age, sex, n_lumbar, transitional, fov, lordosis, cobb, bool(postop))
    return st


def fill_level_targets(
    rng: np.random.Generator, st: StudyTargets, levels: list[str], priors: str
) -> None:
    """Per-level targets for `levels` (the study's disc levels after enumeration)."""
    balanced = priors == "balanced"
    latent = rng.normal(0.0, 0.7)
    slip_level = None
    if not balanced:
        p_slip = 0.02 + 0.25 * max(st.age - 35, 0) / 55 * (1.3 if st.sex == "F" else 0.8)
        if rng.random() < p_slip:
            cands = [lv for lv in levels if lv in _SLIP_LEVEL]
            slip_level = _choice(rng, cands, [_SLIP_LEVEL[c] for c in cands]) if cands else None
    for lv in levels:
        t = LevelTargets()
        if balanced:
            _balanced_level(rng, t, lv)
        else:
            _realistic_level(rng, t, lv, st.age, latent, lv == slip_level)
        st.levels[lv] = t


def _realistic_level(
    rng: np.random.Generator, t: LevelTargets, lv: str, age: int, latent: float, slip: bool
) -> None:
    w = _LEVEL_WEIGHT.get(lv, 0.0)
    d = 0.045 * (age - 45) + w + latent + rng.normal(0.0, 0.6)
    t.pfirrmann = int(np.searchsorted(np.array([-0.9, 0.3, 1.2, 2.0]), d)) + 1
    pf = t.pfirrmann
    t.narrowing = _choice(
        rng,
        SEVERITIES,
        {1: [0.97, 0.03, 0, 0], 2: [0.9, 0.1, 0, 0], 3: [0.6, 0.33, 0.07, 0],
         4: [0.15, 0.4, 0.4, 0.05], 5: [0, 0, 0.3, 0.7]}[pf],
    )  # fmt: skip
    t.herniation = _choice(
        rng,
        ["none", "bulge", "protrusion", "extrusion"],
        {1: [0.95, 0.05, 0, 0], 2: [0.75, 0.17, 0.07, 0.01], 3: [0.4, 0.35, 0.2, 0.05],
         4: [0.25, 0.4, 0.27, 0.08], 5: [0.3, 0.5, 0.15, 0.05]}[pf],
    )  # fmt: skip
    if t.herniation in ("protrusion", "extrusion"):
        t.zone = _zone(rng)
    hern = {"none": 0.0, "bulge": 0.3, "protrusion": 0.6, "extrusion": 1.2}[t.herniation]
    central = t.zone in ("central", "paracentral_left", "paracentral_right")
    c = 0.5 * d + 0.02 * (age - 60) + hern * (1.0 if central else 0.3) + rng.normal(0, 0.6)
    t.canal = _sev_from_score(c, (1.2, 1.8, 2.4))
    fl = []
    for side in ("left", "right"):
        f = 0.55 * d + w * 0.5 + rng.normal(0, 0.6) + (1.0 if t.zone == f"foraminal_{side}" else 0)
        fl.append(int(np.searchsorted(np.array([1.2, 1.9, 2.6]), f)))
    t.foraminal = (fl[0], fl[1])
    sa = []
    for side in ("left", "right"):
        s = 0.5 * d + 0.3 * c + rng.normal(0, 0.6) + (0.8 if t.zone == f"paracentral_{side}" else 0)
        sa.append(_sev_from_score(s, (1.4, 2.0, 2.6)))
    t.subarticular = (sa[0], sa[1])
    p_modic = 0.02 + {1: 0, 2: 0.01, 3: 0.06, 4: 0.2, 5: 0.35}[pf]
    if rng.random() < p_modic:
        mtype = _choice(rng, [1, 2, 3], [0.35, 0.6, 0.05])
        where = rng.random()
        t.modic_upper = mtype if where < 0.7 else 0
        t.modic_lower = mtype if where > 0.3 else 0
    p_schmorl = 0.09 if lv in ("T12-L1", "L1-L2") else 0.04
    t.schmorl_upper = bool(rng.random() < p_schmorl)
    t.schmorl_lower = bool(rng.random() < p_schmorl)
    if slip:
        t.slip_grade = _choice(rng, [1, 2, 3, 4], [0.88, 0.1, 0.015, 0.005])
        t.slip_direction = "antero"
    elif lv in ("L1-L2", "L2-L3", "L3-L4") and rng.random() < 0.01 + 0.03 * (age > 60):
        t.slip_grade, t.slip_direction = 1, "retro"


def _balanced_level(rng: np.random.Generator, t: LevelTargets, lv: str) -> None:
    t.pfirrmann = int(rng.integers(1, 6))
    allowed = list(SEVERITIES)
    if t.pfirrmann == 5:
        allowed = ["severe"]
    elif t.pfirrmann == 4:
        allowed = ["none", "mild", "moderate"]
    t.narrowing = allowed[int(rng.integers(len(allowed)))]
    t.herniation = ["none", "bulge", "protrusion", "extrusion"][int(rng.integers(4))]
    if t.herniation in ("protrusion", "extrusion"):
        t.zone = ZONES[int(rng.integers(len(ZONES)))]
    t.canal = SEVERITIES[int(rng.integers(4))]
    t.foraminal = (int(rng.integers(4)), int(rng.integers(4)))
    t.subarticular = (SEVERITIES[int(rng.integers(4))], SEVERITIES[int(rng.integers(4))])
    t.modic_upper = int(rng.choice(4, p=[0.4, 0.2, 0.2, 0.2]))
    t.modic_lower = int(rng.choice(4, p=[0.4, 0.2, 0.2, 0.2]))
    t.schmorl_upper = bool(rng.random() < 0.2)
    t.schmorl_lower = bool(rng.random() < 0.2)
    g = int(rng.choice(5, p=[0.7, 0.1, 0.08, 0.07, 0.05]))
    t.slip_grade = g
    t.slip_direction = None if g == 0 else ("retro" if g == 1 and rng.random() < 0.3 else "antero")
