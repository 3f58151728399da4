"""`generate_study`: one phantom lumbar spine MRI study with exact ground truth, in memory."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from reporter.contracts import labels as lb
from reporter.contracts.anatomy import Anatomy
from reporter.contracts.findings import StudyFindings, lumbar_levels
from reporter.contracts.study import Series, Study
from reporter.errors import UsageError
from reporter.synth import render
from reporter.synth import tissues as tx
from reporter.synth.curve import build_curve, build_tables
from reporter.synth.groundtruth import calibrate, measure_study
from reporter.synth.headers import slice_headers, uid
from reporter.synth.priors import LevelTargets, fill_level_targets, sample_targets
from reporter.synth.sites import (
    RANDOMIZED_ARTIFACT_RATES,
    RANDOMIZED_BASES,
    SITES,
    SequenceProfile,
    SiteProfile,
    get_site,
)
from reporter.synth.spine import SpineModel, build_spine, disc_plane

GENERATOR_VERSION = "1.0"
STUDY_OVERRIDES = ("age", "sex", "n_lumbar", "transitional", "fov", "lordosis_deg",
                   "scoliosis_cobb_deg", "postoperative")  # fmt: skip


@dataclass
class Phantom:
    study: Study
    anatomy: Anatomy
    findings: StudyFindings
    meta: dict[str, Any]
    model: SpineModel | None = field(default=None, repr=False)


def _solve_nucleus(m: SpineModel, sp: SiteProfile) -> None:
    """Give each disc's nucleus the T2 that makes its noise-free nucleus/CSF ratio on the site's
    sagittal T2 equal the drawn target (stored as a negative T2 placeholder by build_spine)."""
    tr, te = sp.sag_t2.tr, sp.sag_t2.te
    pd_c, t1_c, t2_c = tx.relaxation(m.tissues[tx.CSF], sp.field_strength)
    csf = float(tx.spin_echo(pd_c, t1_c, t2_c, tr, te))
    for d in m.discs:
        t = m.tissues[d.nucleus_tissue]
        if t.t2 > 0:
            continue
        ratio = -t.t2
        _, t1, _ = tx.relaxation(t, sp.field_strength)
        sat = 1.0 - np.exp(-tr / t1)
        pd = t.pd
        x = ratio * csf / (pd * sat)
        if x > 0.93:
            pd = ratio * csf / (0.93 * sat)
            x = 0.93
        m.tissues[d.nucleus_tissue] = replace(t, pd=float(pd), t2=float(-te / np.log(x)))


def _apply_overrides(st: Any, overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    level_over = overrides.pop("levels", {}) or {}
    for key in list(overrides):
        if key in STUDY_OVERRIDES:
            setattr(st, key, overrides.pop(key))
    if st.transitional == "L6":
        st.n_lumbar = 6
    if overrides:
        raise UsageError(f"unknown generate_study override(s): {', '.join(sorted(overrides))}")
    return level_over


def _sag_grid(m: SpineModel, sp: SiteProfile, rng: np.random.Generator, fov: str) -> render.Grid:
    n = int(rng.integers(sp.sag_slices[0], sp.sag_slices[1] + 1))
    spacing = sp.sag_thickness + sp.sag_gap
    lumbar = [v for v in m.vertebrae if v.kind == "lumbar"]
    mid = lumbar[len(lumbar) // 2]
    cm = m.point(0.5 * (mid.s_top + mid.s_bot))
    z_t12l1 = m.point(m.disc("T12-L1").s_mid)[2]
    s1 = m.vertebra("S1")
    z_s1 = m.point(s1.s_top)[2]
    half = sp.sag_fov / 2
    if fov == "missing_t12_l1":
        zc = m.point(m.vertebra("L1").s_top + 6.0)[2] - half
    elif fov == "cut_sacrum":
        zc = m.point(s1.s_top + float(rng.uniform(8.0, 14.0)))[2] + half
    else:
        zc = 0.5 * (z_t12l1 + z_s1) - 12.0 + float(rng.normal(0.0, 6.0))
    centre = np.array([cm[0] + rng.normal(0, 1.5), cm[1] + 28.0 + rng.normal(0, 4), zc])
    return render.grid_from_frame(
        centre,
        np.array([0.0, 1.0, 0.0]),
        np.array([0.0, 0.0, -1.0]),
        n,
        spacing,
        sp.sag_matrix,
        sp.sag_fov,
        sp.sag_thickness,
    )


def _axial_grids(
    m: SpineModel, sp: SiteProfile, levels: list[str]
) -> list[tuple[str, render.Grid]]:
    out = []
    spacing = sp.ax_thickness + sp.ax_gap
    for level in levels:
        d = m.disc(level)
        centre, t, lat, post = disc_plane(m, d)
        row, col = _block_frame(-t, lat)
        n_sl = sp.ax_slices_per_block
        # A slice passes through the dural sac at the disc (the middle slice, or for an even
        # count the one just caudal of it); when the tilt is limited the plane pivots there.
        vc = float(m.tables["vc"][int(m.idx(d.s_mid))])
        normal = np.cross(row, col)
        centre = centre + vc * post + (22.0 - vc) * col
        centre = centre + (0.5 * spacing * normal if n_sl % 2 == 0 else 0.0)
        g = render.grid_from_frame(
            centre,
            row,
            col,
            n_sl,
            spacing,
            sp.ax_matrix,
            sp.ax_fov,
            sp.ax_thickness,
        )
        out.append((level, g))
    return out


MAX_BLOCK_TILT_DEG = 39.0  # ingest calls a plane more than 40 degrees off axial oblique


def _block_frame(normal: np.ndarray, lateral: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IOP row / column cosines of an axial block parallel to a disc (normal pointing cranially),
    the tilt from true axial limited to MAX_BLOCK_TILT_DEG."""
    z = np.array([0.0, 0.0, 1.0])
    n = normal / np.linalg.norm(normal)
    tilt = np.degrees(np.arccos(np.clip(n @ z, -1.0, 1.0)))
    if tilt > MAX_BLOCK_TILT_DEG:
        w = n - (n @ z) * z
        w /= np.linalg.norm(w)
        a = np.radians(MAX_BLOCK_TILT_DEG)
        n = np.cos(a) * z + np.sin(a) * w
    row = lateral - (lateral @ n) * n
    row /= np.linalg.norm(row)
    col = np.cross(n, row)
    return row, col


def _inside(g: render.Grid, p: np.ndarray, margin: float = 0.0) -> bool:
    """Whether `p` lies within the in-plane field of view, `margin` mm from its edges."""
    k, j, i = np.linalg.solve(g.affine, np.append(p, 1.0))[:3]
    px = float(np.linalg.norm(g.affine[:3, 1]))
    m = margin / px
    _, rows, cols = g.shape
    return bool(m <= j <= rows - 1 - m and m <= i <= cols - 1 - m and -0.5 <= k <= g.shape[0] - 0.5)


def _domain_random_signal(n: int, rng: np.random.Generator) -> np.ndarray:
    """SynthSeg-style: an independent random mean intensity for every tissue class."""
    sig = rng.uniform(0.02, 1.0, n).astype(np.float32)
    sig[tx.AIR] = rng.uniform(0.0, 0.05)
    return sig


def _randomize_contrast(
    clean: np.ndarray, smp: render.Sampling, n_tissues: int, rng: np.random.Generator
) -> np.ndarray:
    """SynthSeg-style: per-tissue Gaussian spread around the random mean, then a random gamma,
    so a segmenter learns shape rather than one scanner's contrast."""
    std = rng.uniform(0.0, 0.08, n_tissues).astype(np.float32)
    mid = smp.tissues[len(smp.tissues) // 2].reshape(clean.shape)
    out = clean + std[mid] * rng.standard_normal(clean.shape, dtype=np.float32)
    out = np.clip(out, 0.0, None)
    gamma = float(np.exp(rng.normal(0.0, 0.3)))
    peak = float(out.max()) or 1.0
    return ((out / peak) ** gamma * peak).astype(np.float32)


def _form_image(
    clean: np.ndarray,
    g: render.Grid,
    sp: SiteProfile,
    snr: float,
    ref: float,
    rng: np.random.Generator,
    bias: np.ndarray,
    plane: str,
) -> tuple[np.ndarray, dict[str, Any]]:
    arts: dict[str, Any] = {}
    img = clean * bias
    phase_axis = 2 if plane == "sagittal" else 1
    rates = sp.artifact_rates
    if rng.random() < rates.get("gibbs", 0.0):
        keep = float(rng.uniform(0.6, 0.8))
        img = render.gibbs(img, keep, phase_axis)
        arts["gibbs"] = round(keep, 3)
    if rng.random() < rates.get("ghosting", 0.0):
        amp = float(rng.uniform(0.03, 0.09))
        shift = int(rng.integers(img.shape[phase_axis] // 6, img.shape[phase_axis] // 3))
        img = render.ghost(img, amp, shift, phase_axis)
        arts["ghosting"] = {"amplitude": round(amp, 3), "shift": shift}
    if rng.random() < rates.get("wrap", 0.0):
        frac = float(rng.uniform(0.04, 0.1))
        img = render.wrap(img, frac, phase_axis)
        arts["wrap"] = round(frac, 3)
    sigma = ref / snr
    img = render.add_noise(img, sigma, rng)
    arts["noise_sigma"] = round(float(sigma), 6)
    return img, arts


def _quantize(img: np.ndarray, slope: float, bits: int) -> tuple[np.ndarray, np.ndarray]:
    hi = float(np.percentile(img.ravel()[::7], 99.7)) or 1.0
    scale = 0.7 * (2**bits - 1) / hi
    stored = np.clip(np.rint(img * scale / slope), 0, 2**bits - 1).astype(np.uint16)
    return stored, (stored.astype(np.float32) * np.float32(slope))


def landmarks(m: SpineModel, levels: list[str]) -> dict[str, dict[str, list[float]]]:
    """Patient LPS points (mm) per level where each condition is judged: the dural sac centre at
    the disc, the exiting root in each foramen, each lateral recess (RSNA 2024 coordinates)."""
    from reporter.synth.rasterize import foramen_params

    geo = foramen_params(m)
    out: dict[str, dict[str, list[float]]] = {}
    for level in levels:
        j = next(k for k, d in enumerate(m.discs) if d.level == level)
        d = m.discs[j]
        i = int(m.idx(d.s_mid))
        b, a_bc, vc = (float(m.tables[k][i]) for k in ("B", "a_bc", "vc"))
        sr = float(geo["s_root"][j])
        ir = int(m.idx(sr))
        br, ar = float(m.tables["B"][ir]), float(m.tables["a_bc"][ir])
        vr = br + float(geo["v_root"][j])

        def pt(s: float, u: float, v: float) -> list[float]:
            return [round(float(x), 3) for x in m.point(s, u, v)]

        centre, _, lat, post = disc_plane(m, d)

        def inplane(
            u: float, v: float, c: np.ndarray = centre, a: np.ndarray = lat, p: np.ndarray = post
        ) -> list[float]:
            return [round(float(x), 3) for x in c + u * a + v * p]

        out[level] = {
            "disc_centre": inplane(0.0, 0.0),
            "canal": inplane(0.0, vc),
            "foramen_left": pt(sr, ar + 4.75, vr),
            "foramen_right": pt(sr, -(ar + 4.75), vr),
            "subarticular_left": inplane(a_bc - 2.0, b + 3.0),
            "subarticular_right": inplane(-(a_bc - 2.0), b + 3.0),
        }
    return out


def generate_study(
    seed: int, site: str = "site-a", priors: str = "realistic", **overrides: Any
) -> Phantom:
    """One phantom study. The same (seed, site, priors, overrides) gives the same phantom; the
    anatomy depends only on the seed and priors, so one seed seen at two sites is one patient."""
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise UsageError(f"seed must be a non-negative integer, not {seed!r}")
    sp = get_site(site)
    if sp.domain_randomized:
        # Geometry and protocol of a random physical site; intensities randomized per series.
        pick = np.random.default_rng([int(seed), 2])
        base = SITES[RANDOMIZED_BASES[int(pick.integers(len(RANDOMIZED_BASES)))]]
        sp = base.model_copy(
            update={
                "name": "random",
                "institution": sp.institution,
                "domain_randomized": True,
                "artifact_rates": dict(RANDOMIZED_ARTIFACT_RATES),
            }
        )
    render_images = bool(overrides.pop("render", True))
    rng = np.random.default_rng([int(seed), 0])
    st = sample_targets(rng, [], priors)
    level_over = _apply_overrides(st, dict(overrides))
    levels = lumbar_levels(st.n_lumbar)
    fill_level_targets(rng, st, levels, priors)
    for level, over in level_over.items():
        if level not in st.levels:
            raise UsageError(f"override for level {level!r}, which this phantom does not have")
        for k, v in over.items():
            if not hasattr(LevelTargets, k):
                raise UsageError(f"unknown level target {k!r}")
            setattr(st.levels[level], k, v)
    m = build_spine(rng, st, sp.field_strength)
    build_curve(m, rng)
    _solve_nucleus(m, sp)
    build_tables(m)
    calibrate(m)

    rng_img = np.random.default_rng([int(seed), 1, zlib.crc32(site.encode())])
    sag = _sag_grid(m, sp, rng_img, st.fov)
    assess: dict[str, str | None] = {}
    in_fov = []
    for d in m.discs:
        ok = _inside(sag, m.point(d.s_mid).astype(float), margin=4.0)
        if ok:
            in_fov.append(d.level)
        assess[d.level] = None if ok else "outside the field of view"
    t1s, t2s = sp.sag_t1, sp.sag_t2
    findings, level_meta = measure_study(
        m, levels, assess, sp.field_strength, (t1s.tr, t1s.te), (t2s.tr, t2s.te)
    )
    # Axial blocks through the lumbar discs (T12-L1 is covered by the sagittals only).
    ax_levels = [lv for lv in levels if lv in in_fov and not lv.startswith("T")]
    axials = _axial_grids(m, sp, ax_levels)

    study_uid = uid(seed, site, "study")
    frame_uid = uid(seed, site, "frame")
    series_list: list[Series] = []
    artifacts: dict[str, Any] = {}
    labels_by_key: dict[str, np.ndarray] = {}
    posterior_y = float(m.point(0.0, 0.0, m.skin_posterior)[1])
    bias_cache: dict[int, np.ndarray] = {}

    def make_series(role: str, seq: SequenceProfile, number: int, stacks: list[render.Grid],
                    smps: list[render.Sampling | None], plane: str) -> None:  # fmt: skip
        series_uid = uid(seed, site, "series", role)
        first = 1
        for si, (g, smp) in enumerate(zip(stacks, smps, strict=True)):
            if smp is not None:
                if sp.domain_randomized:
                    sig = _domain_random_signal(len(m.tissues), rng_img)
                else:
                    sig = tx.tissue_signal(m.tissues, sp.field_strength, seq.tr, seq.te)
                clean = render.noise_free(sig, smp, g.shape)
                if sp.domain_randomized:
                    clean = _randomize_contrast(clean, smp, len(m.tissues), rng_img)
                ref = float(sig[tx.MARROW]) if not sp.domain_randomized else float(sig.mean())
                snr = sp.snr_t1 if "T1" in seq.description.upper() else sp.snr_t2
                if id(g) not in bias_cache:  # one coil sensitivity per geometry
                    strength = 1.0 if sp.field_strength >= 1.0 else 1.4
                    bias_cache[id(g)] = render.bias_field(g, rng_img, posterior_y, strength)
                img, arts = _form_image(clean, g, sp, snr, ref, rng_img, bias_cache[id(g)], plane)
                artifacts[f"{role}#{si}"] = arts
                stored, pixels = _quantize(
                    img, sp.rescale_slope, 12 if sp.manufacturer != "Philips" else 15
                )
            else:
                stored = np.zeros(g.shape, np.uint16)
                pixels = stored.astype(np.float32)
            lo, hi = (
                np.percentile(pixels.ravel()[::7], [1, 99.5]) if smp is not None else (0.0, 1.0)
            )
            heads = slice_headers(
                seed=seed, site=sp, study_uid=study_uid, series_uid=series_uid, frame_uid=frame_uid,
                series_number=number, seq=seq, affine=g.affine, shape=g.shape,
                thickness=g.thickness, age=st.age, sex=st.sex, first_instance=first,
                stack_index=si, plane=plane, window=((lo + hi) / 2, max(hi - lo, 1.0)),
            )  # fmt: skip
            first += g.shape[0]
            weighting = "T1" if role == "sag_t1" else "T2"
            s = Series(
                series_uid=series_uid,
                study_uid=study_uid,
                frame_of_reference_uid=frame_uid,
                series_number=number,
                description=seq.description,
                plane=plane,
                weighting=weighting,
                role=role,
                stack_index=si,
                vendor=sp.manufacturer,
                model_name=sp.model_name,
                field_strength=sp.field_strength,
                repetition_time=seq.tr,
                echo_time=seq.te,
                slice_thickness=g.thickness,
                pixels=pixels,
                affine=g.affine.copy(),
                sop_class_uid=str(heads[0].SOPClassUID),
                sop_instance_uids=[str(h.SOPInstanceUID) for h in heads],
                headers=heads,
                transfer_syntax_uid="1.2.840.10008.1.2.1",
            )
            s.__dict__["_stored"] = stored
            series_list.append(s)
            if smp is not None:
                labels_by_key[f"{series_uid}#{si}"] = smp.label

    smp_sag = render.rasterize_grid(m, sag) if render_images else None
    make_series("sag_t1", t1s, 1, [sag], [smp_sag], "sagittal")
    make_series("sag_t2", t2s, 2, [sag], [smp_sag], "sagittal")
    ax_smps = [render.rasterize_grid(m, g) if render_images else None for _, g in axials]
    if axials:
        make_series("ax_t2", sp.ax_t2, 3, [g for _, g in axials], ax_smps, "axial")

    sag_t2 = next(s for s in series_list if s.role == "sag_t2")
    ref_label = smp_sag.label if smp_sag is not None else np.zeros(sag.shape, np.int16)
    present = set(np.unique(ref_label).tolist())
    vert_present = [v.name for v in m.vertebrae if lb.vertebra_label(v.name) in present]
    lev_present = [d.level for d in m.discs if lb.disc_label(d.level) in present]
    expected_v = ["T12"] + [f"L{i}" for i in range(1, st.n_lumbar + 1)] + ["S1"]
    if not render_images:
        vert_present = [v.name for v in m.vertebrae]
        lev_present = [d.level for d in m.discs if assess.get(d.level) is None]
    missing = [v for v in expected_v if v not in vert_present] + [
        lv for lv in levels if lv not in lev_present
    ]
    extra = {k: v for k, v in labels_by_key.items() if k != f"{sag_t2.series_uid}#0"}
    anatomy = Anatomy(
        reference_series_uid=sag_t2.series_uid,
        reference_stack_index=0,
        labels=ref_label,
        affine=sag.affine.copy(),
        source="ground_truth",
        source_detail=f"phantom seed={seed} site={site} generator={GENERATOR_VERSION}",
        vertebrae=vert_present,
        levels=lev_present,
        lumbar_vertebrae=st.n_lumbar,
        transitional=st.transitional,  # type: ignore[arg-type]
        enumeration_confidence=1.0,
        naming_uncertain=False,
        missing=missing,
        extra_labels=extra,
    )
    study = Study(
        study_uid=study_uid,
        source=f"phantom:{seed}:{site}",
        patient_sex=st.sex,
        patient_age=float(st.age),
        study_date=None,
        series=series_list,
    )
    study.study_date = series_list[0].headers[0].StudyDate
    align = level_meta.pop("_alignment")
    meta = {
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "site": site,
        "priors": priors,
        "age": st.age,
        "sex": st.sex,
        "n_lumbar": st.n_lumbar,
        "transitional": st.transitional,
        "fov": st.fov,
        "postoperative": st.postoperative,
        "alignment": align,
        "artifacts": artifacts,
        "field_strength": sp.field_strength,
        "sequences": {
            "sag_t1": {"tr": t1s.tr, "te": t1s.te},
            "sag_t2": {"tr": t2s.tr, "te": t2s.te},
            "ax_t2": {"tr": sp.ax_t2.tr, "te": sp.ax_t2.te},
        },
        "axial_blocks": [lv for lv, _ in axials],
        "landmarks": landmarks(m, [lv for lv in levels if assess.get(lv) is None]),
        "conus_level_s_mm": round(m.s_conus, 2),
        "targets": {lv: vars(t) for lv, t in st.levels.items()},
        "levels": level_meta,
    }
    return Phantom(study=study, anatomy=anatomy, findings=findings, meta=meta, model=m)
