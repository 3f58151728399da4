"""The spine curve (lordosis, scoliosis, slips) and the per-arc-length tables of the rasterizer."""

from __future__ import annotations

import numpy as np

from reporter.synth.spine import DS, SpineModel

SACRUM_LENGTH = 100.0  # mm along the curve, S1 top to the tip drawn
SACRAL_REMNANTS = (30.0, 52.0, 70.0, 86.0)  # fused S1-S2 ... S4-S5 disc remnants, mm below S1 top
TP_LENGTH = {"L1": 15.0, "L2": 18.0, "L3": 22.0, "L4": 20.0, "L5": 18.0, "L6": 18.0}


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def build_curve(m: SpineModel, rng: np.random.Generator) -> None:
    """Fill m.c / m.t / m.nrm / m.lat: the anterior-column curve and its frame."""
    sac = m.vertebra("S1")
    sac.s_bot = sac.s_top + SACRUM_LENGTH
    s0 = m.vertebrae[0].s_top - 80.0
    s1 = sac.s_bot + 90.0
    s = np.arange(s0, s1 + DS, DS)
    m.s0 = float(s0)

    # Sagittal angle density (deg/mm): lordosis spread over the lumbar segments, mostly in the
    # discs (Been & Kalichman 2014), slight kyphosis above L1, sacral kyphosis below S1.
    dens = np.full_like(s, -0.04)
    lumbar = [i for i, v in enumerate(m.vertebrae) if v.kind == "lumbar"]
    w = np.linspace(1.0, 4.5, len(lumbar)) ** 1.3
    w = w / w.sum() * m.lordosis_deg
    for wi, i in zip(w, lumbar, strict=True):
        vt, d = m.vertebrae[i], m.discs[i]
        dens[(s >= vt.s_top) & (s < vt.s_bot)] = 0.35 * wi / vt.height
        dens[(s >= d.s_top) & (s < d.s_bot)] = 0.65 * wi / max(d.s_bot - d.s_top, 0.5)
    tl = m.discs[lumbar[0] - 1]
    dens[(s >= tl.s_top) & (s < tl.s_bot)] = 0.0
    in_sac = (s >= sac.s_top) & (s < sac.s_bot)
    dens[in_sac] = 22.0 / SACRUM_LENGTH
    dens[s >= sac.s_bot] = 0.0
    alpha = np.cumsum(dens) * DS
    k_l1 = int(np.searchsorted(s, m.vertebrae[lumbar[0]].s_top))
    alpha = alpha - alpha[k_l1] + m.l1_tilt_deg

    beta = np.zeros_like(s)
    if m.scoliosis_cobb_deg > 0.5:
        a, b = m.vertebra("T12").s_top, m.vertebrae[lumbar[-1]].s_bot
        sign = 1.0 if rng.random() < 0.5 else -1.0
        inside = (s >= a) & (s <= b)
        beta[inside] = (
            sign * 0.5 * m.scoliosis_cobb_deg * np.sin(2 * np.pi * (s[inside] - a) / (b - a))
        )
    ar, br = np.deg2rad(alpha), np.deg2rad(beta)
    t = np.stack([np.sin(br), np.sin(ar) * np.cos(br), -np.cos(ar) * np.cos(br)], axis=1)
    c = np.cumsum(t, axis=0) * DS
    mid = m.vertebrae[lumbar[len(lumbar) // 2]]
    k_mid = int(np.searchsorted(s, 0.5 * (mid.s_top + mid.s_bot)))
    c = c - c[k_mid] + m.origin

    # Slips: everything above a slipped disc is translated (anterior = -posterior normal).
    for d in m.discs:
        if d.slip_mm == 0.0:
            continue
        k = int(np.searchsorted(s, d.s_mid))
        yhat = np.array([0.0, 1.0, 0.0])
        n_d = _unit(yhat - (yhat @ t[k]) * t[k])
        gap = d.s_bot - d.s_top
        a, b = d.s_top + 0.1 * gap, d.s_bot - 0.1 * gap
        x = np.clip((s - a) / max(b - a, 1e-3), 0.0, 1.0)
        ramp = 1.0 - x * x * (3 - 2 * x)
        c = c - d.slip_mm * ramp[:, None] * n_d[None, :]
    t = _unit(np.gradient(c, DS, axis=0))
    yhat = np.array([0.0, 1.0, 0.0])
    nrm = _unit(yhat[None, :] - (t @ yhat)[:, None] * t)
    lat = np.cross(t, nrm)
    m.c, m.t, m.nrm, m.lat = (a.astype(np.float32) for a in (c, t, nrm, lat))


def build_tables(m: SpineModel) -> None:
    """Per-arc-length parameters (sizes, zones) sampled every DS mm, read by the rasterizer."""
    n = len(m.c)
    s = (m.s0 + np.arange(n) * DS).astype(np.float32)
    T: dict[str, np.ndarray] = {}
    vi = np.full(n, -1, np.int16)
    di = np.full(n, -1, np.int16)
    for i, vt in enumerate(m.vertebrae):
        vi[(s >= vt.s_top) & (s < vt.s_bot)] = i
    for j, d in enumerate(m.discs):
        di[(s >= d.s_top) & (s < d.s_bot)] = j
    T["vi"], T["di"] = vi, di

    sac = m.vertebra("S1")
    ks, kw, kd = [], [], []
    for vt in m.vertebrae[:-1]:
        ks += [vt.s_top, vt.s_bot]
        kw += [vt.half_width] * 2
        kd += [vt.half_depth] * 2
    ks += [sac.s_top, sac.s_top + 30, sac.s_bot]
    kw += [sac.half_width, sac.half_width * 0.8, sac.half_width * 0.3]
    kd += [sac.half_depth, sac.half_depth * 0.8, sac.half_depth * 0.45]
    T["A"] = np.interp(s, ks, kw).astype(np.float32)
    T["B"] = np.interp(s, ks, kd).astype(np.float32)

    taper = np.interp(s, [sac.s_top, sac.s_bot], [1.0, 0.45]).astype(np.float32)
    thor = np.interp(s, [m.vertebra("T12").s_top, m.vertebra("L1").s_top], [0.88, 1.0])
    T["a_bc"] = (m.canal_half_width * taper * thor).astype(np.float32)
    T["b_bc"] = (m.canal_half_depth * np.interp(s, [sac.s_top, sac.s_bot], [1.0, 0.5])).astype(
        np.float32
    )

    k = np.ones(n, np.float32)
    flav = np.zeros(n, np.float32)
    fac = np.zeros(n, bool)
    sap_l = np.full(n, np.inf, np.float32)
    sap_r = np.full(n, np.inf, np.float32)
    fdi = np.full(n, -1, np.int16)
    for j, d in enumerate(m.discs):
        up, lo = m.vertebrae[d.upper], m.vertebrae[d.lower]
        # Hourglass: narrowest over the disc and 3 mm beyond (flavum and facets), easing off
        # over 8 mm.
        dist = np.maximum(np.maximum(d.s_top - 3.0 - s, s - d.s_bot - 3.0), 0.0)
        prof = np.clip(1.0 - dist / 8.0, 0.0, 1.0)
        k = np.minimum(k, 1.0 - (1.0 - d.sac_scale) * prof)
        zone = (s >= d.s_top - 4.0) & (s < lo.s_top + 0.25 * lo.height + 2.0)
        flav[zone] = np.maximum(flav[zone], m.flavum_mm + d.flavum_extra * prof[zone])
        fac[(s >= d.s_mid - 10.0) & (s < d.s_mid + 9.0)] = True
        sz = (s >= d.s_mid - 5.0) & (s < d.s_mid + 8.0)
        sap_l[sz] = np.minimum(sap_l[sz], d.recess_front[0])
        sap_r[sz] = np.minimum(sap_r[sz], d.recess_front[1])
        fz = (s >= up.s_top + 0.45 * up.height) & (s < lo.s_top + 1.5)
        fdi[fz] = j
    T["fac"], T["sap_l"], T["sap_r"], T["fdi"], T["flav"] = fac, sap_l, sap_r, fdi, flav
    sac_end = np.clip((m.s_sac_end - s) / 10.0, 0.0, 1.0).astype(np.float32)
    T["a_sac"] = (m.sac_half_width * k**0.7 * sac_end * np.minimum(taper * 1.1, 1.0)).astype(
        np.float32
    )
    T["b_sac"] = (m.sac_half_depth * k**1.3 * sac_end).astype(np.float32)
    T["vc"] = (T["B"] + 1.0 + m.sac_half_depth * np.minimum(taper * 1.1, 1.0)).astype(np.float32)
    T["cord"] = (m.cord_radius * np.sqrt(np.clip((m.s_conus - s) / 25.0, 0.0, 1.0))).astype(
        np.float32
    )

    lam = np.zeros(n, bool)
    ped = np.zeros(n, bool)
    tp = np.zeros(n, np.float32)
    sp = np.zeros(n, np.float32)
    for j, vt in enumerate(m.vertebrae):
        if vt.kind == "sacrum":
            lam[(s >= vt.s_top + 6.0) & (s < vt.s_top + 80.0)] = True
            sp[(s >= vt.s_top + 10.0) & (s < vt.s_top + 60.0)] = 8.0
            ped[(s >= vt.s_top + 1.5) & (s < vt.s_top + 12.0)] = True
            continue
        gap_below = (m.discs[j].s_bot - m.discs[j].s_top) if j < len(m.discs) else 0.0
        lam[(s >= vt.s_top + 0.25 * vt.height) & (s < vt.s_bot + 0.3 * gap_below)] = True
        ped[(s >= vt.s_top + 1.5) & (s < vt.s_top + 0.45 * vt.height)] = True
        length = TP_LENGTH.get(vt.name, 12.0)
        tz = (s >= vt.s_top + 3.0) & (s < vt.s_top + 0.42 * vt.height)
        if m.transitional == "sacralized_L5" and vt.name == "L5":
            length, tz = 34.0, (s >= vt.s_top + 2.0) & (s < vt.s_bot + 4.0)
        tp[tz] = length
        sz = (s >= vt.s_top + 0.3 * vt.height) & (s < vt.s_bot + 0.4 * gap_below)
        sp[sz] = 32.0 if vt.kind == "lumbar" else 26.0
    T["lam"], T["ped"], T["tp"], T["sp"] = lam, ped, tp, sp
    ala = np.clip(1.0 - (s - sac.s_top) / 45.0, 0.0, 1.0) * ((s >= sac.s_top) & (s < sac.s_bot))
    T["ala"] = (ala * 30.0).astype(np.float32)
    l1 = m.vertebra("L1")
    lowest = m.vertebrae[-2]
    T["psoas"] = np.interp(
        s, [l1.s_top, lowest.s_bot, sac.s_top + 30.0], [4.0, 38.0, 0.0], left=0.0, right=0.0
    ).astype(np.float32)
    m.tables = T
