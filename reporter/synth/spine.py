"""The drawn spine: a curve with a moving frame, and every structure's size and place along it.

Coordinates. `s` is arc length (mm) along the anterior-column curve, increasing caudally; `u` is
lateral (+ = patient left, LPS +x), `v` is antero-posterior (+ = posterior). Every structure is
defined analytically in (s, u, v), so any series grid can be rasterized at its voxel centres and
ground truth can be measured on exact cross-sections (reporter.synth.groundtruth).

The curve carries the lordosis (concentrated in the discs, as in vivo), an optional scoliotic
C-curve, and slips (the part of the spine above a slipped level is translated).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reporter.synth import tissues as tx
from reporter.synth.priors import LevelTargets, StudyTargets

DS = 0.25  # mm, step of the curve tables

# Normal body height (mm), half width, half depth by vertebra (adult means; Zhou SH et al.,
# Clin Biomech 2000;15:390 and Panjabi MM et al., Spine 1992;17:299), scaled per patient.
BODY = {
    "T9": (20.0, 16.0, 13.0), "T10": (21.0, 17.0, 13.5), "T11": (22.0, 18.0, 14.0),
    "T12": (24.0, 19.5, 14.5), "L1": (25.5, 20.5, 15.0), "L2": (26.5, 21.5, 15.5),
    "L3": (27.0, 22.5, 16.0), "L4": (27.0, 23.5, 16.5), "L5": (26.0, 24.5, 16.5),
    "L6": (25.5, 24.5, 16.5), "S1": (30.0, 25.0, 16.0),
}  # fmt: skip
# Expected disc height at the centre over the mean adjacent body depth (2 x half depth).
# A level's height index is its drawn centre height over this times that depth (rules.json:
# disc_narrowing). Thoracic discs are thin; L4-L5 is the tallest lumbar disc.
DISC_HEIGHT_TO_DEPTH = {
    "T9-T10": 0.20, "T10-T11": 0.21, "T11-T12": 0.22, "T12-L1": 0.24, "L1-L2": 0.27,
    "L2-L3": 0.30, "L3-L4": 0.32, "L4-L5": 0.34, "L5-L6": 0.33, "L4-S1": 0.32,
    "L5-S1": 0.32, "L6-S1": 0.31,
}  # fmt: skip
HEIGHT_INDEX_RANGE = {
    "none": (0.90, 1.08), "mild": (0.73, 0.82), "moderate": (0.53, 0.67), "severe": (0.32, 0.46),
}  # fmt: skip
NUCLEUS_RATIO_RANGE = {1: (0.86, 1.05), 2: (0.64, 0.76), 3: (0.42, 0.56), 4: (0.23, 0.34),
                       5: (0.08, 0.16)}  # fmt: skip
NUCLEUS_SOFTNESS = {1: 0.08, 2: 0.14, 3: 0.35, 4: 0.6, 5: 0.9}
CANAL_AREA_RANGE = {"none": (130.0, 230.0), "mild": (80.0, 96.0), "moderate": (54.0, 71.0),
                    "severe": (24.0, 45.0)}  # fmt: skip
RECESS_DEPTH_RANGE = {"mild": (4.15, 4.85), "moderate": (3.15, 3.85), "severe": (1.4, 2.8)}
SLIP_PERCENT_RANGE = {0: (0.0, 0.0), 1: (12.0, 22.0), 2: (29.0, 45.0), 3: (54.0, 70.0),
                      4: (79.0, 90.0)}  # fmt: skip
# Modic band tissues (PD, T1 at 1.5 T, T2): 1 oedema, 2 fat, 3 sclerosis (Modic 1988).
MODIC_TISSUE = {1: (0.95, 1150.0, 150.0), 2: (0.97, 290.0, 125.0), 3: (0.30, 700.0, 35.0)}


@dataclass
class Vertebra:
    name: str
    s_top: float
    s_bot: float
    half_width: float
    half_depth: float
    kind: str  # "thoracic" | "lumbar" | "sacrum"
    conc_sup: float = 1.2  # mm, central depression of the superior endplate
    conc_inf: float = 1.2
    band_sup: tuple[int, float] = (0, 0.0)  # (tissue id or 0, thickness mm), superior endplate
    band_inf: tuple[int, float] = (0, 0.0)
    schmorl_sup: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # depth, r, du, dv
    schmorl_inf: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    @property
    def height(self) -> float:
        return self.s_bot - self.s_top


@dataclass
class Disc:
    level: str
    upper: int  # index into SpineModel.vertebrae
    lower: int
    s_top: float  # rim of the upper vertebra's inferior endplate
    s_bot: float
    expected_height: float
    nucleus_tissue: int = tx.NUCLEUS
    nucleus_scale: float = 0.6
    softness: float = 0.1
    bulge_mm: float = 0.6
    hern_ext: float = 0.0
    hern_theta: float = 0.0  # rad from posterior midline, + toward patient left
    hern_halfwidth: float = 0.3
    sac_scale: float = 1.0
    flavum_extra: float = 0.0
    recess_front: tuple[float, float] = (np.inf, np.inf)  # SAP front (mm behind B) left, right
    # What the canal and recess were aimed at; calibrate() measures and corrects once.
    canal_target_area: float | None = None
    recess_target: tuple[float | None, float | None] = (None, None)
    # Foraminal fat thickness (cranial, caudal, anterior, posterior) and root scale (s, v) per side.
    fat: tuple[tuple[float, ...], tuple[float, ...]] = ((2.6, 6.0, 2.6, 3.0),) * 2
    root_scale: tuple[tuple[float, float], tuple[float, float]] = ((1.0, 1.0), (1.0, 1.0))
    fat_normal: tuple[float, ...] = (2.6, 6.0, 2.6, 3.0)  # the patient's unnarrowed foramen
    root_radius: float = 2.8
    slip_mm: float = 0.0  # + anterior displacement of the upper vertebra

    @property
    def s_mid(self) -> float:
        return 0.5 * (self.s_top + self.s_bot)


@dataclass
class SpineModel:
    vertebrae: list[Vertebra]
    discs: list[Disc]
    n_lumbar: int
    transitional: str
    canal_half_width: float  # bony canal, lateral semi-axis
    canal_half_depth: float  # bony canal AP semi-axis
    sac_half_width: float
    sac_half_depth: float
    flavum_mm: float
    s_conus: float
    s_sac_end: float
    cord_radius: float
    skin_posterior: float  # v of the posterior skin
    subcut_fat: float
    body_half_width: float
    body_anterior: float  # v of the anterior abdominal wall (negative)
    tissues: list[tx.Tissue]
    lordosis_deg: float
    scoliosis_cobb_deg: float
    s_bifurcation: float
    screw_void_mm: float
    l1_tilt_deg: float  # sagittal tilt of the L1 superior endplate from horizontal (supine)
    origin: np.ndarray
    # Pedicle screws of a post-operative study: (vertebra index, side +1 left / -1 right).
    screws: list[tuple[int, float]] = field(default_factory=list)
    # Tissue texture: random plane waves (wave vectors in rad/mm, phases).
    waves: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    phases: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # Curve tables (filled by build_curve)
    s0: float = 0.0
    c: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    t: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    nrm: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    lat: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    tables: dict[str, np.ndarray] = field(default_factory=dict)

    def vertebra(self, name: str) -> Vertebra:
        return next(v for v in self.vertebrae if v.name == name)

    def disc(self, level: str) -> Disc:
        return next(d for d in self.discs if d.level == level)

    def idx(self, s: np.ndarray | float) -> np.ndarray:
        i = np.rint((np.asarray(s, dtype=np.float32) - self.s0) / DS).astype(np.int32)
        return np.clip(i, 0, len(self.c) - 1)

    def point(self, s: float, u: float = 0.0, v: float = 0.0) -> np.ndarray:
        i = int(self.idx(s))
        return self.c[i] + u * self.lat[i] + v * self.nrm[i]


def vertebra_names(n_lumbar: int) -> list[str]:
    return ["T9", "T10", "T11", "T12"] + [f"L{i}" for i in range(1, n_lumbar + 1)] + ["S1"]


def build_spine(rng: np.random.Generator, st: StudyTargets, field_t: float) -> SpineModel:
    """Sizes and places of everything, aimed at the targets in `st` (levels filled)."""
    names = vertebra_names(st.n_lumbar)
    size = rng.normal(1.0, 0.06) * (1.04 if st.sex == "M" else 0.96)
    tissues = list(tx.BASE_TISSUES)

    verts: list[Vertebra] = []
    heights: list[float] = []
    for nm in names:
        h, a, b = BODY[nm]
        if st.n_lumbar == 6 and nm.startswith("L"):
            h *= 0.95
        k = size * rng.normal(1.0, 0.025)
        vt = Vertebra(nm, 0.0, 0.0, a * k, b * k, _kind(nm))
        vt.conc_sup, vt.conc_inf = (float(x) for x in rng.uniform(0.8, 1.6, 2))
        verts.append(vt)
        heights.append(h * size * rng.normal(1.0, 0.03))
    if st.transitional == "lumbarized_S1":
        heights[-1] *= 0.9

    discs: list[Disc] = []
    s = 0.0
    for i, vt in enumerate(verts):
        vt.s_top = s
        vt.s_bot = s + heights[i]
        s = vt.s_bot
        if i + 1 < len(verts):
            nxt = verts[i + 1]
            level = f"{vt.name}-{nxt.name}"
            expected = DISC_HEIGHT_TO_DEPTH[level] * (vt.half_depth + nxt.half_depth)
            lt = st.levels.get(level)
            narrowing = lt.narrowing if lt is not None else "none"
            if lt is not None and lt.pfirrmann == 5:
                narrowing = "severe"
            lo, hi = HEIGHT_INDEX_RANGE[narrowing]
            if st.transitional == "sacralized_L5" and level == "L5-S1":
                lo, hi = 0.55, 0.68  # rudimentary disc of a partly fused L5
            h_c = expected * rng.uniform(lo, hi)
            # The centre height is the rim gap plus both endplate concavities.
            conc = vt.conc_inf + nxt.conc_sup
            if conc > 0.6 * h_c:
                f = 0.6 * h_c / conc
                vt.conc_inf *= f
                nxt.conc_sup *= f
            gap = h_c - vt.conc_inf - nxt.conc_sup
            discs.append(Disc(level, i, i + 1, s, s + gap, expected))
            s += gap

    model = SpineModel(
        vertebrae=verts,
        discs=discs,
        n_lumbar=st.n_lumbar,
        transitional=st.transitional,
        canal_half_width=size * rng.uniform(10.5, 12.5),
        canal_half_depth=size * rng.uniform(7.5, 9.0),
        sac_half_width=size * rng.uniform(8.6, 10.2),
        sac_half_depth=size * rng.uniform(6.0, 7.2),
        flavum_mm=float(rng.uniform(2.0, 3.0)),
        s_conus=0.0,
        s_sac_end=0.0,
        cord_radius=float(rng.uniform(3.6, 4.4)),
        skin_posterior=float(rng.uniform(105.0, 150.0)),
        subcut_fat=float(rng.uniform(8.0, 30.0)),
        body_half_width=float(rng.uniform(140.0, 185.0)),
        body_anterior=float(-rng.uniform(150.0, 230.0)),
        tissues=tissues,
        lordosis_deg=st.lordosis_deg,
        scoliosis_cobb_deg=st.scoliosis_cobb_deg,
        s_bifurcation=0.0,
        screw_void_mm=float(rng.uniform(3.5, 5.0)) * (field_t / 1.5) ** 0.3,
        l1_tilt_deg=float(rng.normal(-6.0, 4.0)),
        origin=np.array([rng.normal(0, 8), rng.normal(0, 8), rng.normal(0, 15)]),
    )
    k = 14
    direc = rng.normal(size=(k, 3))
    direc /= np.linalg.norm(direc, axis=1, keepdims=True)
    model.waves = direc * (2 * np.pi / np.exp(rng.uniform(np.log(6.0), np.log(60.0), (k, 1))))
    model.phases = rng.uniform(0, 2 * np.pi, k)
    if st.postoperative:
        # Instrumented fusion of one lower lumbar segment: screws in both pedicles of 2 vertebrae.
        lumbar = [i for i, v in enumerate(verts) if v.kind == "lumbar"]
        top = lumbar[-2] if rng.random() < 0.6 else lumbar[-3]
        model.screws = [(i, side) for i in (top, top + 1) for side in (1.0, -1.0)]
    l4 = model.vertebrae[-3]
    model.s_bifurcation = l4.s_top + float(rng.uniform(0.0, 1.0)) * l4.height
    l1 = model.vertebra("L1")
    model.s_conus = l1.s_top + l1.height * 0.75 + float(rng.normal(0.0, 9.0))
    sac = model.vertebra("S1")
    model.s_sac_end = sac.s_top + 45.0 + float(rng.normal(0.0, 6.0))

    for d in discs:
        lt = st.levels.get(d.level)
        _draw_disc(rng, model, d, lt, field_t)
    return model


def _kind(name: str) -> str:
    return "sacrum" if name == "S1" else "thoracic" if name.startswith("T") else "lumbar"


def _new_tissue(model: SpineModel, t: tx.Tissue) -> int:
    model.tissues.append(t)
    if len(model.tissues) > 250:
        raise ValueError("too many tissues in one phantom")
    return len(model.tissues) - 1


def _draw_disc(
    rng: np.random.Generator, m: SpineModel, d: Disc, lt: LevelTargets | None, field_t: float
) -> None:
    """Turn one level's targets into drawn parameters (nucleus, bulge, canal, foramina...)."""
    up, lo = m.vertebrae[d.upper], m.vertebrae[d.lower]
    if lt is None:
        # Thoracic discs above the graded range: healthy-looking.
        lt = LevelTargets(pfirrmann=2 if up.kind == "thoracic" else 3)
    pf = lt.pfirrmann
    d.softness = NUCLEUS_SOFTNESS[pf] * rng.uniform(0.8, 1.2)
    d.nucleus_scale = rng.uniform(0.55, 0.68) * (0.85 if pf >= 4 else 1.0)
    # The nucleus tissue is solved for the target nucleus/CSF ratio on the site's T2 (see
    # reporter.synth.phantom._solve_nucleus); here only its degeneration-dependent PD and T1.
    lo_r, hi_r = NUCLEUS_RATIO_RANGE[pf]
    ratio = float(rng.uniform(lo_r, hi_r))
    pd = {1: 0.95, 2: 0.92, 3: 0.85, 4: 0.72, 5: 0.6}[pf]
    t1 = {1: 1200.0, 2: 1150.0, 3: 1050.0, 4: 950.0, 5: 900.0}[pf]
    d.nucleus_tissue = _new_tissue(m, tx.Tissue(f"nucleus_{d.level}", pd, t1, -ratio))

    # Bulge and herniation (Fardon 2014 definitions; measured back in groundtruth).
    d.bulge_mm = float(rng.uniform(0.2, 1.4))
    if lt.herniation == "bulge":
        d.bulge_mm = float(rng.uniform(2.4, 4.0))
    elif lt.herniation in ("protrusion", "extrusion"):
        zone = lt.zone or "central"
        side = 1.0 if zone.endswith("left") else -1.0
        base = {"central": 0.0, "paracentral": 0.38, "foraminal": 0.85, "extraforaminal": 1.25}
        key = zone.replace("_left", "").replace("_right", "")
        d.hern_theta = side * (base[key] + rng.uniform(-0.08, 0.08))
        if lt.herniation == "protrusion":
            d.hern_ext = float(rng.uniform(3.0, 5.5))
            d.hern_halfwidth = float(rng.uniform(0.35, 0.55))
        else:
            d.hern_ext = float(rng.uniform(6.5, 10.0))
            d.hern_halfwidth = float(rng.uniform(0.10, 0.15))

    # Canal: the dural sac is scaled at the disc towards the target area.
    lo_a, hi_a = CANAL_AREA_RANGE[lt.canal]
    normal = np.pi * m.sac_half_width * m.sac_half_depth
    target = rng.uniform(lo_a, hi_a)
    d.sac_scale = float(min(1.0, np.sqrt(target / normal)))
    d.canal_target_area = float(target) if lt.canal != "none" else None
    d.flavum_extra = (1.0 - d.sac_scale) * 5.0

    # Lateral recess: front of the superior articular process, mm behind the body wall.
    fronts = []
    for sev in lt.subarticular:
        if sev == "none":
            fronts.append(np.inf)
        else:
            a, b = RECESS_DEPTH_RANGE[sev]
            fronts.append(float(rng.uniform(a, b)))
    d.recess_front = (fronts[0], fronts[1])
    d.recess_target = tuple(None if not np.isfinite(f) else f for f in fronts)  # type: ignore[assignment]

    # Foramina (Lee 2010): fat thickness per sector and root deformation.
    caudal = (lo.s_top + 1.5) - (up.s_top + 0.45 * up.height)
    normal_fat = (2.6, max(caudal - 2 * d.root_radius - 2.6 - 1.0, 2.0), 2.6, 3.0)
    fats, roots = [], []
    for grade in lt.foraminal:
        f = np.array(normal_fat) * rng.uniform(0.8, 1.0, 4)
        k = (1.0, 1.0)
        lost = rng.uniform(0.04, 0.1, 4)
        if grade == 0 and rng.random() < 0.3:
            j = int(rng.integers(4))
            f[j] = normal_fat[j] * lost[j]
        elif grade == 1:
            pair = (0, 1) if rng.random() < 0.5 else (2, 3)
            for j in pair:
                f[j] = normal_fat[j] * lost[j]
        elif grade >= 2:
            f = np.array(normal_fat) * lost
            if grade == 3:
                ratio = rng.uniform(0.3, 0.5)
                ks = rng.uniform(0.45, 0.8)
                k = (ks, ratio / ks)
        fats.append(tuple(float(x) for x in f))
        roots.append((float(k[0]), float(k[1])))
    d.fat = (fats[0], fats[1])
    d.fat_normal = tuple(float(x) for x in normal_fat)
    d.root_scale = (roots[0], roots[1])

    # Slip (Meyerding): percent of the lower endplate length (2 x half depth).
    if lt.slip_grade:
        lo_p, hi_p = SLIP_PERCENT_RANGE[lt.slip_grade]
        pct = rng.uniform(lo_p, hi_p)
        sign = -1.0 if lt.slip_direction == "retro" else 1.0
        d.slip_mm = float(sign * pct / 100.0 * 2.0 * lo.half_depth)

    # Modic bands and Schmorl nodes on the two endplates of this disc.
    for mtype, which in ((lt.modic_upper, "inf"), (lt.modic_lower, "sup")):
        vt = up if which == "inf" else lo
        if mtype:
            p, t1m, t2m = MODIC_TISSUE[mtype]
            tis = tx.Tissue(
                f"modic{mtype}_{vt.name}_{which}",
                p * rng.uniform(0.95, 1.05),
                t1m * rng.uniform(0.92, 1.08),
                t2m * rng.uniform(0.92, 1.08),
                0.15 if mtype == 2 else 0.3,
            )
            band = (_new_tissue(m, tis), float(rng.uniform(3.0, 8.0)))
            if which == "inf":
                vt.band_inf = band
            else:
                vt.band_sup = band
    for present, which in ((lt.schmorl_upper, "inf"), (lt.schmorl_lower, "sup")):
        if present:
            vt = up if which == "inf" else lo
            node = (
                float(rng.uniform(2.5, 5.0)),
                float(rng.uniform(2.5, 4.5)),
                float(rng.uniform(-5, 5)),
                float(rng.uniform(-5, 4)),
            )
            if which == "inf":
                vt.schmorl_inf = node
            else:
                vt.schmorl_sup = node


def disc_plane(m: SpineModel, d: Disc) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The mid-disc plane as axial images parallel to the disc see it: centre, caudal normal
    (mean of the two endplate directions), lateral (+ = left) and posterior unit vectors, in LPS.
    Under a slip the curve is sheared across the disc, so this is not the curve frame at s_mid."""
    iu, il = int(m.idx(d.s_top - 0.5)), int(m.idx(d.s_bot + 0.5))
    t = m.t[iu].astype(float) + m.t[il].astype(float)
    t /= np.linalg.norm(t)
    centre = 0.5 * (m.c[iu].astype(float) + m.c[il].astype(float))
    y = np.array([0.0, 1.0, 0.0])
    n = y - (y @ t) * t
    n /= np.linalg.norm(n)
    return centre, t, np.cross(t, n), n
