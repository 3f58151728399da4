"""The v2 tissue map: every class a sagittal lumbar MRI shows, at arbitrary points.

v1's analytic spine (reporter.synth.rasterize.sample) gives bodies, discs, canal, posterior arch,
muscles, vessels and fat, with the contract label map (vertebra / disc names) that the ground
truth is measured on. v2 keeps those labels unchanged and refines the *tissue* classes: psoas apart
from the back muscles, the aorta as its own class, the longitudinal and interspinous ligaments,
unnamed thoracic vertebrae above T9 (so a field of view may reach the mid-thoracic spine), and
abdominal organs and bowel in place of v1's uniform viscera.

Each point gets an intensity `key`: its class id, or for v1's per-study tissues (each disc's
nucleus, Modic bands) a key of its own, so a degenerated disc can differ from a healthy one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reporter.contracts import labels as lb
from reporter.synth import tissues as tx
from reporter.synth.rasterize import sample
from reporter.synth.spine import SpineModel
from reporter.synth.v2.organs import Ellipsoid, paint_organs
from reporter.synth.v2.params import CLASS_ID, CLASS_NAMES

F32 = np.float32
DERIVED_KEY0 = 32  # keys of v1 per-study tissues: DERIVED_KEY0 + (tissue id - first derived id)
N_BASE_TISSUES = len(tx.BASE_TISSUES)
N_KEYS = 256

_V1_TO_CLASS = {
    tx.AIR: "air", tx.VISCERA: "mesentery", tx.SUBCUT_FAT: "subcut_fat",
    tx.MUSCLE: "paraspinal_muscle", tx.CORTEX: "cortex", tx.MARROW: "marrow",
    tx.ANNULUS: "annulus", tx.NUCLEUS: "nucleus", tx.CSF: "csf", tx.CORD: "cord",
    tx.ROOT: "cauda_equina", tx.FAT: "epidural_fat", tx.FLAVUM: "ligamentum_flavum",
    tx.POST_BONE: "posterior_bone", tx.LIGAMENT: "ligament", tx.FACET_FLUID: "facet_fluid",
    tx.METAL: "metal", tx.VESSEL: "ivc",
}  # fmt: skip


@dataclass
class TissueSample:
    key: np.ndarray  # uint8 intensity key per point
    cls: np.ndarray  # uint8 class id per point (CLASS_NAMES)
    nucleus: np.ndarray  # float32 nucleus fraction of disc points (1 elsewhere)
    label: np.ndarray  # int16 contract label (reporter.contracts.labels)


def key_tables(m: SpineModel) -> tuple[np.ndarray, np.ndarray]:
    """(v1 tissue id -> key, key -> class id)."""
    to_key = np.zeros(256, np.uint8)
    key_cls = np.zeros(N_KEYS, np.uint8)
    for k in range(len(CLASS_NAMES)):
        key_cls[k] = k
    for tid, name in _V1_TO_CLASS.items():
        to_key[tid] = CLASS_ID[name]
    for tid in range(N_BASE_TISSUES, min(len(m.tissues), N_BASE_TISSUES + N_KEYS - DERIVED_KEY0)):
        key = DERIVED_KEY0 + tid - N_BASE_TISSUES
        to_key[tid] = key
        name = m.tissues[tid].name
        key_cls[key] = CLASS_ID["nucleus"] if name.startswith("nucleus") else CLASS_ID["marrow"]
    return to_key, key_cls


def _inner_body(m: SpineModel, s: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside the body wall, below the subcutaneous fat (v1's outline, rasterize.sample)."""
    sac_top = m.vertebrae[-1].s_top
    skin = m.skin_posterior + 0.6 * np.clip(s - sac_top + 20.0, 0.0, None)
    vcen = 0.5 * (skin + m.body_anterior)
    bd = 0.5 * (skin - m.body_anterior)
    f = m.subcut_fat
    return (u / (m.body_half_width - f)) ** 2 + ((v - vcen) / (bd - f)) ** 2 <= 1.0


def _thoracic_extension(
    m: SpineModel, th: tuple[float, float], s, u, v, cls, key, nuc, label
) -> None:
    """Unnamed vertebrae and discs above T9, repeating T9's size (label: background)."""
    t9 = m.vertebrae[0]
    pts = np.nonzero(s < t9.s_top)[0]
    if not pts.size:
        return
    hv, hd = th
    ss, uu, vv = s[pts], u[pts], v[pts]
    a, b = t9.half_width, t9.half_depth
    i0 = int(m.idx(t9.s_top))
    a_bc, b_bc = float(m.tables["a_bc"][i0]), float(m.tables["b_bc"][i0])
    phase = np.mod(t9.s_top - ss, hv + hd)  # 0 at T9's top endplate, growing cranially
    in_disc = phase < hd
    q2 = (uu / a) ** 2 + (vv / b) ** 2
    xs = (q2 <= 1.0) & (vv <= b)
    vert = xs & ~in_disc
    edge = np.minimum(phase - hd, hv - (phase - hd))
    cortex = vert & ((edge < 0.8) | (q2 > 0.9))
    disc = xs & in_disc
    zc = (phase - 0.5 * hd) / (0.5 * hd)
    rho = np.sqrt(q2 / 0.36 + (zc / 0.8) ** 2)
    frac = np.clip(0.5 + (1.0 - rho) / 0.3, 0.0, 1.0).astype(F32)
    vbc = b + b_bc
    in_canal = (
        (vv >= b)
        & (np.abs(uu) <= a_bc)
        & ((vv <= vbc) | ((uu / a_bc) ** 2 + ((vv - vbc) / b_bc) ** 2 <= 1.0))
    )
    arch_zone = (phase > hd + 0.2 * hv) | (phase < 0.3 * hd)
    ring = arch_zone & ~in_canal & (vv > vbc - 2.0)
    ring &= (uu / (a_bc + 6.0)) ** 2 + ((vv - vbc) / (b_bc + 6.0)) ** 2 <= 1.0
    spin = arch_zone & (np.abs(uu) < 3.5) & (vv > vbc) & (vv < vbc + b_bc + 30.0)
    soft = np.isin(cls[pts], [CLASS_ID["paraspinal_muscle"], CLASS_ID["mesentery"],
                              CLASS_ID["epidural_fat"], CLASS_ID["ligamentum_flavum"]])  # fmt: skip
    bone = (ring | spin) & soft
    for mask, c in (
        (bone, "posterior_bone"),
        (vert, "thoracic_marrow"),
        (cortex, "cortex"),
    ):
        idx = pts[mask]
        cls[idx] = CLASS_ID[c]
        key[idx] = CLASS_ID["marrow"] if c == "thoracic_marrow" else CLASS_ID[c]
        label[idx] = lb.BACKGROUND
    idx = pts[disc]
    cls[idx] = np.where(frac[disc] >= 0.5, CLASS_ID["nucleus"], CLASS_ID["annulus"])
    key[idx] = CLASS_ID["nucleus"]
    nuc[idx] = frac[disc]
    label[idx] = lb.BACKGROUND


def _ligaments(m: SpineModel, w: float, s, u, v, cls, key) -> None:
    """Anterior and posterior longitudinal ligaments along the bodies and discs; interspinous and
    supraspinous ligament in the midline behind the laminae."""
    i = m.idx(s)
    a_, b_ = m.tables["A"][i], m.tables["B"][i]
    vbc = b_ + m.tables["b_bc"][i]
    au = np.abs(u)
    column = s < m.vertebra("S1").s_top + 40.0
    soft_front = np.isin(cls, [CLASS_ID["mesentery"], CLASS_ID["psoas"], CLASS_ID["aorta"]])
    front = column & soft_front & (au < 0.7 * a_) & (v < -b_) & (v >= -b_ - w)
    back = column & (cls == CLASS_ID["epidural_fat"]) & (au < 0.45 * a_) & (v > b_)
    back &= v <= b_ + 0.8 * w
    mid = column & (cls == CLASS_ID["paraspinal_muscle"]) & (au < 2.0) & (v > vbc + 4.0)
    for mask in (front, back, mid):
        cls[mask] = CLASS_ID["ligament"]
        key[mask] = CLASS_ID["ligament"]


@dataclass(frozen=True)
class Belly:
    """The anterior abdominal wall in the patient frame: v1 draws the body round the spine's
    curve, which swings the wall through the pelvis where the sacrum turns; a supine belly is a
    gentle arc instead, furthest forward at `z_mid`."""

    y_wall: float  # patient y of the wall at z_mid (negative: anterior)
    bulge: float  # mm the wall recedes 250 mm above / below z_mid
    z_mid: float
    fat: float  # subcutaneous fat thickness (mm)

    def y_at(self, z: np.ndarray) -> np.ndarray:
        return self.y_wall + self.bulge * np.clip(((z - self.z_mid) / 250.0) ** 2, 0.0, 1.0)


def _belly(belly: Belly, y: np.ndarray, z: np.ndarray, v: np.ndarray, cls, key, label) -> None:
    wall = belly.y_at(z)
    outside = y < wall
    fat = ~outside & (y < wall + belly.fat)
    fill = ~outside & ~fat & (v < 0) & np.isin(cls, [CLASS_ID["air"], CLASS_ID["subcut_fat"]])
    for mask, c, lab in (
        (outside, "air", lb.BACKGROUND),
        (fat, "subcut_fat", lb.SUBCUTANEOUS_FAT),
        (fill, "mesentery", lb.BACKGROUND),
    ):
        cls[mask] = CLASS_ID[c]
        key[mask] = CLASS_ID[c]
        label[mask] = lab


def sample_tissues(
    m: SpineModel,
    s: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    organs: list[Ellipsoid],
    thoracic: tuple[float, float],
    ligament_mm: float,
    tables: tuple[np.ndarray, np.ndarray],
    belly: Belly | None = None,
    yz: tuple[np.ndarray, np.ndarray] | None = None,
) -> TissueSample:
    """Classes, intensity keys, nucleus fractions and contract labels at points (s, u, v)."""
    sm = sample(m, s, u, v)
    to_key, key_cls = tables
    key = to_key[sm.tissue]
    cls = key_cls[key]
    label = sm.label.copy()
    nuc = sm.nucleus.copy()
    disc = np.nonzero(cls == CLASS_ID["nucleus"])[0]
    cls[disc[nuc[disc] < 0.5]] = CLASS_ID["annulus"]
    inner = _inner_body(m, s, u, v)
    aorta = inner & (sm.tissue == tx.AIR)
    cls[aorta] = CLASS_ID["aorta"]
    key[aorta] = CLASS_ID["aorta"]
    b_col = m.tables["B"][m.idx(s)]
    # v1 fills the body with viscera wherever no muscle ellipse reaches, including the midline
    # of the back; behind the vertebral bodies that is muscle. (A thin midline band of fat or
    # ligament here turns into cracks under the deformation: a 1 mm shift crosses it.)
    back = (cls == CLASS_ID["mesentery"]) & (v > b_col)
    cls[back] = CLASS_ID["paraspinal_muscle"]
    key[back] = CLASS_ID["paraspinal_muscle"]
    psoas = (sm.tissue == tx.MUSCLE) & (v < b_col)
    cls[psoas] = CLASS_ID["psoas"]
    key[psoas] = CLASS_ID["psoas"]
    _thoracic_extension(m, thoracic, s, u, v, cls, key, nuc, label)
    _ligaments(m, ligament_mm, s, u, v, cls, key)
    if belly is not None and yz is not None:
        _belly(belly, yz[0], yz[1], v, cls, key, label)
    before = cls.copy()
    paint_organs(organs, s, u, v, cls)
    moved = cls != before
    key[moved] = cls[moved]
    return TissueSample(key, cls, nuc, label)
