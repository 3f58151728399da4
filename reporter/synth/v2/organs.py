"""Abdominal and pelvic contents of a v2 phantom: liver, bowel loops (wall around gas, fluid or
faeces), bladder. Each is an ellipsoid in spine coordinates (s, u, v), so it rides the lordosis;
they only replace the generic abdominal filling (`mesentery`), never the spine or muscle."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reporter.synth.spine import SpineModel
from reporter.synth.v2.params import CLASS_ID, PARAMS, EngineParams


@dataclass(frozen=True)
class Ellipsoid:
    cls: int  # class id of the inside
    centre: tuple[float, float, float]  # s, u, v (mm)
    radii: tuple[float, float, float]
    wall_cls: int = -1  # class of a shell of `wall` mm, -1 for none
    wall: float = 0.0


def draw_organs(
    rng: np.random.Generator, m: SpineModel, params: EngineParams = PARAMS
) -> list[Ellipsoid]:
    """The organs of one phantom, in painting order (later ones win where they overlap)."""
    a = params.anatomy
    out: list[Ellipsoid] = []
    t12, l1, s1 = m.vertebra("T12"), m.vertebra("L1"), m.vertebra("S1")
    depth = -m.body_anterior  # abdomen depth in front of the spine (mm)
    b_l = s1.half_depth
    if rng.random() < a.liver_p:
        rs = float(rng.uniform(70.0, 110.0))
        rv = float(rng.uniform(0.28, 0.4)) * depth
        out.append(
            Ellipsoid(
                CLASS_ID["liver"],
                (
                    t12.s_top + float(rng.uniform(-40.0, 5.0)),
                    -float(rng.uniform(20.0, 70.0)),
                    -b_l - 12.0 - rv,
                ),
                (rs, float(rng.uniform(80.0, 120.0)), rv),
            )
        )
    kinds = list(a.bowel_kind_p)
    p = np.array([a.bowel_kind_p[k] for k in kinds])
    p = p / p.sum()
    n = int(rng.integers(a.bowel_loops[0], a.bowel_loops[1] + 1))
    s_lo, s_hi = l1.s_top - 10.0, s1.s_top + 120.0
    for _ in range(n):
        r = float(rng.uniform(*a.bowel_radius_mm))
        centre = (
            float(rng.uniform(s_lo, s_hi)),
            float(rng.normal(0.0, 30.0)),
            float(rng.uniform(m.body_anterior + m.subcut_fat + r, -b_l - 20.0 - 0.5 * r)),
        )
        radii = (r * float(rng.uniform(0.7, 1.6)), r, r * float(rng.uniform(0.7, 1.3)))
        kind = CLASS_ID[kinds[int(rng.choice(len(kinds), p=p))]]
        wall = float(rng.uniform(*a.bowel_wall_mm))
        out.append(Ellipsoid(kind, centre, radii, CLASS_ID["bowel_wall"], wall))
    if rng.random() < a.bladder_p:
        out.append(
            Ellipsoid(
                CLASS_ID["bladder"],
                (
                    s1.s_top + float(rng.uniform(85.0, 125.0)),
                    float(rng.normal(0.0, 10.0)),
                    -b_l - float(rng.uniform(55.0, 85.0)),
                ),
                (
                    float(rng.uniform(25.0, 45.0)),
                    float(rng.uniform(30.0, 50.0)),
                    float(rng.uniform(22.0, 40.0)),
                ),
                CLASS_ID["bowel_wall"],
                2.0,
            )
        )
    return out


def paint_organs(
    organs: list[Ellipsoid], s: np.ndarray, u: np.ndarray, v: np.ndarray, cls: np.ndarray
) -> None:
    """Overwrite `cls` (in place) inside each organ, on points that hold abdominal filling."""
    free = np.nonzero(cls == CLASS_ID["mesentery"])[0]
    if not free.size:
        return
    fs, fu, fv = s[free], u[free], v[free]
    out = cls[free]
    # A sagittal slice spans a narrow band of u: most bowel loops miss it entirely.
    box = [(float(a.min()), float(a.max())) for a in (fs, fu, fv)]
    for o in organs:
        (cs, cu, cv), (rs, ru, rv) = o.centre, o.radii
        spans = zip(box, o.centre, o.radii, strict=True)
        if any(c + r < lo or c - r > hi for (lo, hi), c, r in spans):
            continue
        reach = max(rs, ru, rv)
        near = np.nonzero((np.abs(fs - cs) < rs) & (np.abs(fu - cu) < ru) & (np.abs(fv - cv) < rv))[
            0
        ]
        if not near.size or reach <= 0:
            continue
        q = ((fs[near] - cs) / rs) ** 2 + ((fu[near] - cu) / ru) ** 2 + ((fv[near] - cv) / rv) ** 2
        inside = q <= 1.0
        if o.wall_cls >= 0 and o.wall > 0:
            k = 1.0 - o.wall / min(rs, ru, rv)
            core = q <= max(k, 0.05) ** 2
            out[near[inside & ~core]] = o.wall_cls
            out[near[core]] = o.cls
        else:
            out[near[inside]] = o.cls
    cls[free] = out
