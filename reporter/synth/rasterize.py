"""Analytic rasterization: labels and tissues at arbitrary points, vectorized.

`project` turns patient LPS points into spine coordinates (s, u, v) (reporter.synth.spine);
`sample` evaluates every structure there. Structures are written from the lowest priority to the
highest, so what wins where they meet is explicit: bone and disc over foramen contents over the
superior articular process over cord over dural sac over flavum over epidural fat over the posterior
arch over muscle over fat over viscera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reporter.contracts import labels as lb
from reporter.synth import tissues as tx
from reporter.synth.curve import SACRAL_REMNANTS
from reporter.synth.spine import SpineModel

F32 = np.float32


@dataclass
class Sampled:
    label: np.ndarray  # int16
    tissue: np.ndarray  # uint8
    nucleus: np.ndarray  # float32, fraction of the disc voxel that is nucleus (1 elsewhere)


def project(m: SpineModel, pts: np.ndarray, iterations: int = 6) -> tuple[np.ndarray, ...]:
    """(N, 3) LPS mm -> s, u, v (float32): nearest point on the curve by Newton steps from z.

    Far from the spine on the concave (posterior) side the nearest point is not unique; there the
    Newton steps do not converge, and the point is placed in the horizontal plane of the curve
    point at its own height instead (good enough for skin, fat and muscle)."""
    pts = np.asarray(pts, dtype=F32)
    zc = m.c[:, 2]
    sgrid = (m.s0 + np.arange(len(zc)) * 0.25).astype(F32)
    s_z = np.interp(-pts[:, 2], -zc, sgrid).astype(F32)  # z falls monotonically with s
    s = s_z
    for _ in range(iterations):
        i = m.idx(s)
        d = pts - m.c[i]
        s = s + np.einsum("ij,ij->i", d, m.t[i])
    i = m.idx(s)
    d = pts - m.c[i]
    u = np.einsum("ij,ij->i", d, m.lat[i])
    v = np.einsum("ij,ij->i", d, m.nrm[i])
    bad = np.abs(np.einsum("ij,ij->i", d, m.t[i])) > 1.0
    if bad.any():
        iz = m.idx(s_z[bad])
        dz = pts[bad] - m.c[iz]
        s[bad] = s_z[bad]
        u[bad] = dz[:, 0]
        v[bad] = dz[:, 1]
    return s.astype(F32), u.astype(F32), v.astype(F32)


def sample(m: SpineModel, s: np.ndarray, u: np.ndarray, v: np.ndarray) -> Sampled:
    s, u, v = (np.asarray(a, dtype=F32) for a in (s, u, v))
    n = s.shape[0]
    T = m.tables
    i = m.idx(s)
    A, B = T["A"][i], T["B"][i]
    au = np.abs(u)
    label = np.zeros(n, np.int16)
    tissue = np.full(n, tx.AIR, np.uint8)
    nuc = np.ones(n, F32)

    # --- body wall, subcutaneous fat, viscera, muscle ----------------------------------------
    # The back bulges out over the sacrum (buttocks) instead of following the lordosis in.
    sac_top = m.vertebrae[-1].s_top
    skin = m.skin_posterior + 0.6 * np.clip(s - sac_top + 20.0, 0.0, None)
    vcen = 0.5 * (skin + m.body_anterior)
    bd = 0.5 * (skin - m.body_anterior)
    bw = m.body_half_width
    dv0 = v - vcen
    inside = (u / bw) ** 2 + (dv0 / bd) ** 2 <= 1.0
    f = m.subcut_fat
    inner = (u / (bw - f)) ** 2 + (dv0 / (bd - f)) ** 2 <= 1.0
    tissue[inside] = tx.SUBCUT_FAT
    label[inside] = lb.SUBCUTANEOUS_FAT
    tissue[inner] = tx.VISCERA
    label[inner] = lb.BACKGROUND
    # Muscles and great vessels, only where they can be.
    zone = np.nonzero(inner & (au < 100.0) & (v > -B - 40.0))[0]
    if zone.size:
        uz, vz, az, bz, auz, sz = u[zone], v[zone], A[zone], B[zone], au[zone], s[zone]
        vb = vz - bz
        # Erector spinae / multifidus either side of the spinous processes, quadratus laterally.
        mus = ((auz - 26.0) / 25.0) ** 2 + ((vb - 42.0) / 34.0) ** 2 <= 1.0
        mus |= ((auz - 58.0) / 16.0) ** 2 + ((vb - 12.0) / 12.0) ** 2 <= 1.0
        ps = T["psoas"][i[zone]]
        half = np.maximum(0.5 * ps, 0.5)
        psoas = ((auz - (az - 4.0 + half)) / half) ** 2 + (
            (vz - 0.15 * bz) / (0.95 * bz + 2.0)
        ) ** 2
        mus |= (ps > 0) & (psoas <= 1.0)
        zm = zone[mus]
        tissue[zm] = tx.MUSCLE
        label[zm] = lb.MUSCLE
        # Aorta (flow void) left-anterior of the bodies down to its bifurcation near L4; IVC.
        above = sz < m.s_bifurcation
        aorta = above & (((uz - 0.45 * az) / 11.0) ** 2 + ((vz + bz + 13.0) / 11.0) ** 2 <= 1.0)
        tissue[zone[aorta]] = tx.AIR
        ivc = above & (((uz + az + 4.0) / 11.0) ** 2 + ((vz + 0.8 * bz + 8.0) / 8.0) ** 2 <= 1.0)
        tissue[zone[ivc]] = tx.VESSEL

    # The spine proper: the posterior arch and canal, then bodies and discs (which win), each
    # evaluated only on the points that can hold them.
    post = np.nonzero(inner & (au < 70.0) & (v > B - 3.0) & (v < B + 70.0))[0]
    if post.size:
        _posterior(m, post, s, u, v, i, B, label, tissue)
    ant = np.nonzero(inner & (au < A + 32.0) & (v > -B - 12.0) & (v < B + 16.0))[0]
    if ant.size:
        _anterior(m, ant, s, u, v, i, A, B, label, tissue, nuc)
    if m.screws:
        _screws(m, s, u, v, tissue)
    return Sampled(label, tissue, nuc)


def _screws(m: SpineModel, s: np.ndarray, u: np.ndarray, v: np.ndarray, tissue: np.ndarray) -> None:
    """Pedicle screws: a signal void around each (susceptibility, larger than the metal, larger
    at higher field), converging from the pedicle entry into the body; the label is unchanged."""
    for vi, side in m.screws:
        vt = m.vertebrae[vi]
        s0 = vt.s_top + 0.3 * vt.height
        ib = int(m.idx(s0))
        a_bc, b = float(m.tables["a_bc"][ib]), float(m.tables["B"][ib])
        entry = np.array([side * (a_bc + 4.0), b + 14.0])
        tip = np.array([side * 4.0, -0.5 * b])
        axis = tip - entry
        length = float(np.linalg.norm(axis))
        axis /= length
        du, dv = u - entry[0], v - entry[1]
        t = np.clip(du * axis[0] + dv * axis[1], 0.0, length)
        d2 = (du - t * axis[0]) ** 2 + (dv - t * axis[1]) ** 2 + ((s - s0) * 0.9) ** 2
        r = m.screw_void_mm
        tissue[d2 <= r * r] = tx.METAL


def _posterior(m, near, s_all, u_all, v_all, i_all, B_all, label_all, tissue_all):
    T = m.tables
    s, u, v, i, B = (x[near] for x in (s_all, u_all, v_all, i_all, B_all))
    label = label_all[near]
    tissue = tissue_all[near]
    au = np.abs(u)
    a_bc, b_bc = T["a_bc"][i], T["b_bc"][i]
    vbc = B + b_bc

    def put(mask: np.ndarray, lab: int, tis: int) -> None:
        label[mask] = lab
        tissue[mask] = tis

    # --- posterior arch ------------------------------------------------------------------------
    in_canal = (v >= B) & (au <= a_bc)
    post = v > vbc
    in_canal &= ~post | ((u / a_bc) ** 2 + ((v - vbc) / b_bc) ** 2 <= 1.0)
    ring = (
        (~in_canal) & (v > vbc - 2.0) & ((u / (a_bc + 6)) ** 2 + ((v - vbc) / (b_bc + 6)) ** 2 <= 1)
    )
    lam = T["lam"][i]
    put(ring & lam, lb.POSTERIOR_ELEMENTS, tx.POST_BONE)
    flz = T["flav"][i] > 0
    put(ring & ~lam & flz, lb.LIGAMENTUM_FLAVUM, tx.FLAVUM)
    sp = T["sp"][i]
    spin = (sp > 0) & (au < 3.5 - 0.02 * (v - vbc)) & (v > vbc) & (v < vbc + b_bc + 6 + sp)
    put(spin, lb.POSTERIOR_ELEMENTS, tx.POST_BONE)
    ped = T["ped"][i] & (au >= a_bc - 0.5) & (au < a_bc + 7.0) & (v > B - 2.0) & (v < vbc + 4.0)
    put(ped, lb.POSTERIOR_ELEMENTS, tx.POST_BONE)
    tp = T["tp"][i]
    tpm = (tp > 0) & (au >= a_bc + 5.0) & (au < a_bc + 7.0 + tp) & (np.abs(v - vbc - 2.0) < 3.5)
    put(tpm, lb.POSTERIOR_ELEMENTS, tx.POST_BONE)
    fac = T["fac"][i] & (au >= a_bc - 0.5) & (au < a_bc + 13.0) & (v > B + 12.5) & (v < B + 26.0)
    put(fac, lb.POSTERIOR_ELEMENTS, tx.POST_BONE)
    joint = fac & (np.abs(v - B - 19.0 - 0.5 * (au - a_bc - 6.0)) < 0.5)
    tissue[joint] = tx.FACET_FLUID

    # --- canal contents ----------------------------------------------------------------------
    put(in_canal, lb.BACKGROUND, tx.FAT)  # epidural fat
    tf = T["flav"][i]
    vc = T["vc"][i]
    flav = in_canal & (tf > 0) & (v > vc) & (au > 1.0)
    inner_a, inner_b = np.maximum(a_bc - tf, 0.5), np.maximum(b_bc - tf, 0.5)
    flav &= (u / inner_a) ** 2 + ((v - vbc) / inner_b) ** 2 > 1.0
    put(flav, lb.LIGAMENTUM_FLAVUM, tx.FLAVUM)
    a_s, b_s = T["a_sac"][i], T["b_sac"][i]
    sac = (
        in_canal
        & (a_s > 0.2)
        & ((u / np.maximum(a_s, 0.2)) ** 2 + ((v - vc) / np.maximum(b_s, 0.2)) ** 2 <= 1.0)
    )
    put(sac, lb.CANAL, tx.CSF)
    # Cauda equina: nerve roots lying dorsally in the sac (supine), below the conus.
    cauda = sac & (s > m.s_conus)
    if cauda.any():
        ci = np.nonzero(cauda)[0]
        du = u[ci] / np.maximum(a_s[ci], 0.5)
        dv = (v[ci] - vc[ci]) / np.maximum(b_s[ci], 0.5)
        hit = np.zeros(ci.size, bool)
        for k in range(9):
            cu = -0.6 + 0.15 * k
            cv = 0.35 + 0.3 * (1 - (cu / 0.7) ** 2) ** 0.5 * (0.5 if k % 2 else 0.9)
            hit |= (du - cu) ** 2 + (dv - cv) ** 2 <= 0.012
        tissue[ci[hit]] = tx.ROOT
    cr = T["cord"][i]
    cord = (
        sac
        & (cr > 0.3)
        & ((u / np.maximum(cr, 0.3)) ** 2 + ((v - vc) / np.maximum(0.8 * cr, 0.3)) ** 2 <= 1.0)
    )
    put(cord, lb.CORD, tx.CORD)
    # Superior articular process encroaching on the lateral recess (subarticular stenosis).
    for side, key in ((1.0, "sap_l"), (-1.0, "sap_r")):
        front = T[key][i]
        sap = np.isfinite(front) & (u * side >= a_bc - 5.0) & (u * side <= a_bc + 0.5)
        sap &= (v >= B + front) & (v <= vbc + b_bc)
        put(sap, lb.POSTERIOR_ELEMENTS, tx.POST_BONE)

    # --- foramina ------------------------------------------------------------------------------
    fd = T["fdi"][i]
    zone = (fd >= 0) & (au >= a_bc + 0.5) & (au < a_bc + 9.0) & (v >= B) & (v < B + 12.5)
    zi = np.nonzero(zone)[0]
    if zi.size:
        _foramen(m, zi, fd[zi], s[zi], u[zi], v[zi] - B[zi], label, tissue)

    label_all[near] = label
    tissue_all[near] = tissue


def _anterior(m, near, s_all, u_all, v_all, i_all, A_all, B_all, label_all, tissue_all, nuc_all):
    """Vertebral bodies and discs on the points in front of / around the canal."""
    T = m.tables
    s, u, v, i, A, B = (x[near] for x in (s_all, u_all, v_all, i_all, A_all, B_all))
    label = label_all[near]
    tissue = tissue_all[near]
    nuc = nuc_all[near]
    au = np.abs(u)
    bv = np.where(v < 0, B, 1.25 * B)
    q2 = (u / A) ** 2 + (v / bv) ** 2
    in_xs = (q2 <= 1.0) & (v <= B)
    vi = T["vi"][i]
    di = T["di"][i]
    ala = T["ala"][i]
    cand = np.nonzero(in_xs | (di >= 0) | ((ala > 0) & (au < A + ala)))[0]
    if cand.size:
        _bodies_discs(m, cand, s, u, v, A, B, q2, in_xs, vi, di, ala, label, tissue, nuc)
    label_all[near] = label
    tissue_all[near] = tissue
    nuc_all[near] = nuc


def _foramen(m, zi, fd, s, u, vb, label, tissue):
    """Perineural fat (Lee 2010 sectors) and the exiting root inside the foraminal zone."""
    left = u > 0
    lab_frame = lb.POSTERIOR_ELEMENTS
    label[zi] = lab_frame
    tissue[zi] = tx.LIGAMENT
    geo = foramen_params(m)
    sr, vr, r = geo["s_root"][fd], geo["v_root"][fd], geo["r_root"][fd]
    side = np.where(left, 0, 1)
    fat = geo["fat"][fd, side]  # (n, 4)
    ks, kv = geo["root"][fd, side, 0], geo["root"][fd, side, 1]
    ds, dv = s - sr, vb - vr
    ss = r * ks + np.where(ds < 0, fat[:, 0], fat[:, 1])
    sv = r * kv + np.where(dv < 0, fat[:, 2], fat[:, 3])
    in_fat = (ds / ss) ** 2 + (dv / sv) ** 2 <= 1.0
    in_root = (ds / (r * ks)) ** 2 + (dv / (r * kv)) ** 2 <= 1.0
    lab = np.where(left, lb.FORAMEN_LEFT, lb.FORAMEN_RIGHT).astype(np.int16)
    label[zi[in_fat]] = lab[in_fat]
    tissue[zi[in_fat]] = tx.FAT
    lab = np.where(left, lb.ROOT_LEFT, lb.ROOT_RIGHT).astype(np.int16)
    label[zi[in_root]] = lab[in_root]
    tissue[zi[in_root]] = tx.ROOT


def foramen_params(m: SpineModel) -> dict[str, np.ndarray]:
    """Root centre (s, v behind the body wall), radius, fat thicknesses and root scale per disc."""
    cached = m.tables.get("_foramen_s_root")
    if cached is not None:
        return {k: m.tables[f"_foramen_{k}"] for k in ("s_root", "v_root", "r_root", "fat", "root")}
    out: dict[str, np.ndarray] = {}
    s_root, v_root, r_root, fat, root = [], [], [], [], []
    for d in m.discs:
        up = m.vertebrae[d.upper]
        r = d.root_radius
        s_root.append(up.s_top + 0.45 * up.height + 2.6 + r + 0.5)
        v_root.append(1.0 + r + 2.6)
        r_root.append(r)
        fat.append(d.fat)
        root.append(d.root_scale)
    out["s_root"] = np.array(s_root, F32)
    out["v_root"] = np.array(v_root, F32)
    out["r_root"] = np.array(r_root, F32)
    out["fat"] = np.array(fat, F32)
    out["root"] = np.array(root, F32)
    for k, val in out.items():
        m.tables[f"_foramen_{k}"] = val
    return out


def _bodies_discs(m, c, s_, u_, v_, A_, B_, q2_, in_xs_, vi_, di_, ala_, label, tissue, nuc):
    s, u, v, A, B, q2, in_xs, vi, di, ala = (
        x[c] for x in (s_, u_, v_, A_, B_, q2_, in_xs_, vi_, di_, ala_)
    )
    P = _per_vertebra(m)
    D = _per_disc(m)
    nv = len(m.vertebrae)
    vic = np.clip(vi, 0, nv - 1)
    lab = np.zeros(c.size, np.int16)
    tis = np.zeros(c.size, np.uint8)
    nf = np.ones(c.size, F32)
    hit = np.zeros(c.size, bool)

    # Vertebral bodies with concave endplates.
    inv = in_xs & (vi >= 0)
    flat = np.maximum(1.0 - q2, 0.0)
    e_top = s - (P["s_top"][vic] + P["conc_sup"][vic] * flat)
    e_bot = (P["s_bot"][vic] - P["conc_inf"][vic] * flat) - s
    body = inv & (e_top >= 0) & (e_bot >= 0)
    is_sac = P["sacrum"][vic]
    # Sacral ala and lateral masses.
    alam = (vi >= 0) & is_sac & (ala > 0) & (np.abs(u) < A + ala) & (v > -0.4 * B) & (v < B + 14.0)
    alam &= np.abs(u) > m.tables["a_bc"][m.idx(s)] + 1.0
    alam &= e_top >= 0
    body |= alam
    lab[body] = P["label"][vic[body]]
    tis[body] = tx.MARROW
    e = np.minimum(e_top, e_bot)
    cortex = body & ((e < 0.7) | ((q2 > 0.92) & ~alam) | (v > B - 0.7) & ~alam)
    # Modic bands: marrow next to the endplate, most of its width.
    for key_t, key_w, dist in (
        ("band_sup_t", "band_sup_w", e_top),
        ("band_inf_t", "band_inf_w", e_bot),
    ):
        bt = P[key_t][vic]
        band = body & (bt > 0) & (dist < P[key_w][vic]) & (q2 < 0.9) & ~alam
        tis[band] = bt[band]
    tis[cortex] = tx.CORTEX
    # Schmorl nodes: disc material through the endplate with a sclerotic rim.
    for pre, dist in (("sch_sup", e_top), ("sch_inf", e_bot)):
        depth = P[f"{pre}_d"][vic]
        has = body & (depth > 0)
        if has.any():
            rr = np.maximum(P[f"{pre}_r"][vic], 0.1)
            rho = (
                (dist / np.maximum(depth, 0.1)) ** 2
                + ((u - P[f"{pre}_u"][vic]) / rr) ** 2
                + ((v - P[f"{pre}_v"][vic]) / rr) ** 2
            )
            tis[has & (rho <= 1.8)] = tx.CORTEX
            tis[has & (rho <= 1.0)] = tx.NUCLEUS
    # Fused sacral segments: thin dark remnant discs (a real disc when S1 is lumbarized).
    if is_sac.any():
        rel = s - P["s_top"][vic]
        for k, rem in enumerate(SACRAL_REMNANTS):
            half = 3.0 if (k == 0 and m.transitional == "lumbarized_S1") else 0.7
            line = body & is_sac & (np.abs(rel - rem) < half) & ~alam
            tis[line] = tx.ANNULUS if half > 1 else tx.CORTEX
    hit |= body

    # Discs: the rim gap plus the endplate concavities, bulge and focal herniation beyond.
    up_conc = inv & ~body & (e_top < 0) & (vi > 0)
    lo_conc = inv & ~body & (e_bot < 0) & (vi < nv - 1)
    dj = np.where(up_conc, vi - 1, np.where(lo_conc, vi, di)).astype(np.int32)
    cand = (dj >= 0) & ~hit & (up_conc | lo_conc | (di >= 0))
    if cand.any():
        k = np.nonzero(cand)[0]
        j = dj[k]
        uu, vv, ss = u[k], v[k], s[k]
        theta = np.arctan2(uu, vv)
        a, b = A[k], B[k]
        bvk = np.where(vv < 0, b, 1.25 * b)
        rad = 1.0 / np.sqrt((np.sin(theta) / a) ** 2 + (np.cos(theta) / bvk) ** 2)
        cth = np.cos(theta)
        rad = np.where(cth > 1e-3, np.minimum(rad, b / np.maximum(cth, 1e-3)), rad)
        h_half = 0.5 * D["gap"][j]
        z = np.clip((ss - D["s_mid"][j]) / np.maximum(h_half, 0.3), -1.0, 1.0)
        taper = 1.0 - 0.6 * z * z
        dth = np.angle(np.exp(1j * (theta - D["h_theta"][j])))
        bump = np.clip(1.0 - (dth / D["h_hw"][j]) ** 2, 0.0, 1.0)
        ext = D["bulge"][j] * taper + D["h_ext"][j] * bump * (1.0 - 0.3 * z * z)
        r = np.sqrt(uu * uu + vv * vv)
        ok = r <= rad + ext
        k, j, ok_r, rad_k, r_k = k[ok], j[ok], r[ok], rad[ok], r[ok]
        lab[k] = D["label"][j]
        tis[k] = D["nucleus"][j]
        qn = ok_r / np.maximum(rad_k, 0.1) / D["ns"][j]
        zc = (s[k] - D["s_cen"][j]) / np.maximum(0.4 * D["h_c"][j], 0.3)
        rho = np.sqrt(qn * qn + zc * zc)
        frac = np.clip(0.5 + (1.0 - rho) / (2.0 * D["soft"][j]), 0.0, 1.0)
        # Intranuclear cleft: the thin dark horizontal band of adult discs (grade 2 and up).
        cleft = np.where(D["soft"][j] > 0.12, 0.55, 0.0) * np.exp(-((zc / 0.13) ** 2))
        frac = frac * (1.0 - cleft)
        frac = np.where(r_k > rad_k + 0.5, np.maximum(frac, 0.55 * (D["h_ext"][j] > 0)), frac)
        nf[k] = frac
        hit[k] = True

    sel = np.nonzero(hit)[0]
    label[c[sel]] = lab[sel]
    tissue[c[sel]] = tis[sel]
    nuc[c[sel]] = nf[sel]


def _per_vertebra(m: SpineModel) -> dict[str, np.ndarray]:
    if "_pv_label" in m.tables:
        return {k[4:]: val for k, val in m.tables.items() if k.startswith("_pv_")}
    vs = m.vertebrae
    P = {
        "label": np.array([lb.vertebra_label(v.name) for v in vs], np.int16),
        "s_top": np.array([v.s_top for v in vs], F32),
        "s_bot": np.array([v.s_bot for v in vs], F32),
        "conc_sup": np.array([v.conc_sup for v in vs], F32),
        "conc_inf": np.array([v.conc_inf for v in vs], F32),
        "sacrum": np.array([v.kind == "sacrum" for v in vs]),
        "band_sup_t": np.array([v.band_sup[0] for v in vs], np.uint8),
        "band_sup_w": np.array([v.band_sup[1] for v in vs], F32),
        "band_inf_t": np.array([v.band_inf[0] for v in vs], np.uint8),
        "band_inf_w": np.array([v.band_inf[1] for v in vs], F32),
    }
    for pre, attr in (("sch_sup", "schmorl_sup"), ("sch_inf", "schmorl_inf")):
        arr = np.array([getattr(v, attr) for v in vs], F32)
        P[f"{pre}_d"], P[f"{pre}_r"], P[f"{pre}_u"], P[f"{pre}_v"] = arr.T
    for k, val in P.items():
        m.tables[f"_pv_{k}"] = val
    return P


def _per_disc(m: SpineModel) -> dict[str, np.ndarray]:
    if "_pd_label" in m.tables:
        return {k[4:]: val for k, val in m.tables.items() if k.startswith("_pd_")}
    ds = m.discs
    vs = m.vertebrae
    gap = np.array([d.s_bot - d.s_top for d in ds], F32)
    ci = np.array([vs[d.upper].conc_inf for d in ds], F32)
    cs = np.array([vs[d.lower].conc_sup for d in ds], F32)
    top = np.array([d.s_top for d in ds], F32)
    P = {
        "label": np.array([lb.disc_label(d.level) for d in ds], np.int16),
        "nucleus": np.array([d.nucleus_tissue for d in ds], np.uint8),
        "gap": gap,
        "s_mid": top + 0.5 * gap,
        "h_c": gap + ci + cs,
        "s_cen": top - ci + 0.5 * (gap + ci + cs),
        "ns": np.array([d.nucleus_scale for d in ds], F32),
        "soft": np.array([d.softness for d in ds], F32),
        "bulge": np.array([d.bulge_mm for d in ds], F32),
        "h_ext": np.array([d.hern_ext for d in ds], F32),
        "h_theta": np.array([d.hern_theta for d in ds], F32),
        "h_hw": np.array([d.hern_halfwidth for d in ds], F32),
    }
    for k, val in P.items():
        m.tables[f"_pd_{k}"] = val
    return P
