"""`generate_study_v2`: one v2 phantom (sagittal T1 + T2) with the v1 ground-truth contracts.

Order of the draws, each from its own seeded stream so that none can see another:
1. the acquisition (field of view, resolution, thickness, timing, wrap): `[seed, 20, site]`;
2. the anatomy, exactly as v1 draws it (same seed, same patient): `[seed, 0]`;
3. organs and bowel: `[seed, 22]`;
4. per image contrast, artefacts and noise: `[seed, 21, site]`.
The ground truth (findings, level names, label values) comes from v1's measurements on the same
drawn spine (reporter.synth.groundtruth), so every consumer of v1 studies reads v2 studies.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from reporter.contracts import labels as lb
from reporter.contracts.anatomy import Anatomy
from reporter.contracts.findings import lumbar_levels
from reporter.contracts.study import Series, Study
from reporter.errors import UsageError
from reporter.synth import render
from reporter.synth.curve import build_curve, build_tables
from reporter.synth.groundtruth import calibrate, measure_study
from reporter.synth.headers import slice_headers, uid
from reporter.synth.phantom import Phantom, _apply_overrides, _solve_nucleus
from reporter.synth.priors import LevelTargets, fill_level_targets, sample_targets
from reporter.synth.rasterize import project
from reporter.synth.sites import RANDOMIZED_BASES, SITES, SiteProfile, get_site
from reporter.synth.spine import SpineModel, build_spine
from reporter.synth.v2 import artefacts as af
from reporter.synth.v2.acquisition import (
    Acquisition,
    body_cues,
    draw_acquisition,
    sagittal_grid,
    supersampled,
)
from reporter.synth.v2.deform import Warp, draw_warp
from reporter.synth.v2.intensity import Contrast, draw_contrast
from reporter.synth.v2.organs import draw_organs
from reporter.synth.v2.params import CLASS_ID, CLASS_NAMES, PARAMS
from reporter.synth.v2.tissue_map import Belly, key_tables, sample_tissues

ENGINE_VERSION = "2.0"
SUPERSAMPLE = 2  # in-plane: each pixel is the mean of 2 x 2 finer samples (partial volume)
N_SUB = 3  # through-plane samples across the slice thickness
F32 = np.float32


@dataclass
class PhantomV2(Phantom):
    """A v1 Phantom (same contracts, same writer) plus the v2 tissue class map of the T2 grid
    (class ids: reporter.synth.v2.params.CLASS_NAMES)."""

    tissue_map: np.ndarray | None = field(default=None, repr=False)


def _site(seed: int, site: str) -> SiteProfile:
    """The named site's scanner (vendor headers, field strength, sequence names). v2 randomises
    everything else, so `site` only biases what a DICOM reader sees of the scanner."""
    sp = get_site(site)
    if sp.domain_randomized:
        pick = np.random.default_rng([int(seed), 2])
        sp = SITES[RANDOMIZED_BASES[int(pick.integers(len(RANDOMIZED_BASES)))]]
    return sp


def _anatomy(seed: int, priors: str, field_t: float, overrides: dict[str, Any]):
    """v1's spine for this seed (the same patient as v1 studies of the same seed)."""
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
    m = build_spine(rng, st, field_t)
    build_curve(m, rng)
    return st, levels, m


def _one_slice(g: render.Grid, k: int) -> render.Grid:
    aff = g.affine.copy()
    aff[:3, 3] = g.affine[:3, 3] + k * g.affine[:3, 0]
    return render.Grid(aff, (1, g.shape[1], g.shape[2]), g.thickness)


def _texture(rng: np.random.Generator, g: render.Grid, scale_mm: float) -> np.ndarray:
    """Smooth random field (unit spread, clipped to [-2, 2]) with features of about `scale_mm`
    and half of it: filtered white noise on a coarse lattice, interpolated to the grid. Plane
    waves (v1) give a regular weave that a classifier spots at once."""
    _, nj, ni = g.shape
    px = float(np.linalg.norm(g.affine[:3, 1]))
    step = max(1, int(scale_mm / (2.0 * px)))
    cj, ci = nj // step + 2, ni // step + 2
    field = np.zeros((cj, ci), F32)
    for w, sig in ((1.0, 1.0), (0.6, 0.5)):
        f = ndimage.gaussian_filter(rng.standard_normal((cj, ci), dtype=F32), sig * 2.0)
        field += F32(w) * f / max(float(f.std()), 1e-6)
    field /= max(float(field.std()), 1e-6)
    fine = ndimage.zoom(field, (nj / cj, ni / ci), order=1, grid_mode=True, mode="nearest")
    return np.clip(fine[:nj, :ni], -2.0, 2.0)


class _Maps:
    """Tissue keys per sub-slice at the fine grid and contract labels at the image grid."""

    def __init__(
        self, m: SpineModel, organs, th: tuple[float, float], lig: float, belly: Belly
    ) -> None:
        self.m, self.organs, self.th, self.lig, self.belly = m, organs, th, lig, belly
        self.rim_mm = 1.0
        self.warp = Warp(np.zeros((0, 3), F32), np.zeros(0, F32), np.zeros((0, 3), F32))
        self.tables = key_tables(m)

    def coords(self, g: render.Grid, dk: float, step: int) -> np.ndarray:
        """(3, nj, ni) spine coordinates of the (deformed) anatomy at one slice's pixels:
        projected on every `step`-th row and column, interpolated between (they are smooth)."""
        _, nj, ni = g.shape
        pts = g.centres(float(dk), step)
        shape = pts.shape[:3]
        flat = pts.reshape(-1, 3)
        suv = project(self.m, flat + self.warp(flat))
        co = np.stack([f.reshape(shape) for f in suv])
        return render._upsample(render._upsample(co, nj, step, 2), ni, step, 3)[:, 0]

    def sample(self, g: render.Grid, dk: float, step: int = 4):
        s, u, v = self.coords(g, dk, step)
        pts = g.centres(float(dk)).reshape(-1, 3)
        return sample_tissues(
            self.m, s.ravel(), u.ravel(), v.ravel(), self.organs, self.th, self.lig,
            self.tables, self.belly, (pts[:, 1], pts[:, 2]),
        )  # fmt: skip


def _cortex_rim(ts, shape: tuple[int, int], width_px: int) -> None:
    """The posterior arch is drawn as solid bone: give it a cortical rim, as bodies have."""
    bone = (ts.cls == CLASS_ID["posterior_bone"]).reshape(shape)
    if width_px < 1 or not bone.any():
        return
    rim = (bone & ~ndimage.binary_erosion(bone, iterations=width_px)).ravel()
    ts.cls[rim] = CLASS_ID["cortex"]
    ts.key[rim] = CLASS_ID["cortex"]


def _clean_slice(
    maps: _Maps, g_img: render.Grid, contrasts: list[Contrast], rng: np.random.Generator,
    texture: np.ndarray, mix: np.ndarray,
) -> list[np.ndarray]:  # fmt: skip
    """Noise-free slice for each contrast at the image grid `g_img` (one slice).

    Partial volume: the slice centre is sampled at SUPERSAMPLE x the in-plane resolution and
    averaged down; the off-centre samples across the thickness at the image resolution (what
    they add is through-plane mixing, which the finer grid would not change). `mix` (fine grid,
    0..1) blends each class's two sub-cluster means."""
    f = SUPERSAMPLE
    g_fine = supersampled(g_img, f)
    spacing = float(np.linalg.norm(g_img.affine[:3, 0]))
    px = float(np.linalg.norm(g_img.affine[:3, 1]))
    offs = (np.arange(N_SUB) - (N_SUB - 1) / 2) * (g_img.thickness / N_SUB) / spacing
    _, nj, ni = g_img.shape
    ann = CLASS_ID["annulus"]
    centre = maps.sample(g_fine, 0.0)
    _cortex_rim(centre, (nj * f, ni * f), round(maps.rim_mm * f / px))
    side = [maps.sample(g_img, float(dk)) for dk in offs if abs(dk) > 1e-6]
    for ts in side:
        _cortex_rim(ts, (nj, ni), max(1, round(maps.rim_mm / px)))
    tex = texture.ravel()
    w = mix.ravel()
    w_img = mix.reshape(nj, f, ni, f).mean(axis=(1, 3)).ravel()

    def signal(c: Contrast, ts, wt: np.ndarray) -> np.ndarray:
        m = c.means[ts.key] * (1.0 - wt) + c.second[ts.key] * wt
        a = c.means[ann] * (1.0 - wt) + c.second[ann] * wt
        return m * ts.nucleus + a * (1.0 - ts.nucleus)

    out = []
    for c in contrasts:
        a = signal(c, centre, w)
        a += c.std[centre.cls] * rng.standard_normal(a.size, dtype=F32)
        a *= 1.0 + c.texture[centre.cls] * tex
        img = np.clip(a, 0.0, None).reshape(nj * f, ni * f)
        img = img.reshape(nj, f, ni, f).mean(axis=(1, 3))
        for ts in side:
            img += signal(c, ts, w_img).reshape(nj, ni)
        img /= 1 + len(side)
        out.append((img ** F32(c.gamma)).astype(F32))
    return out


def _quantize(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hi = float(np.percentile(img.ravel()[::3], 99.7)) or 1.0
    stored = np.clip(np.rint(img * (0.7 * 4095 / hi)), 0, 4095).astype(np.uint16)
    return stored, stored.astype(np.float32)


def _inside(g: render.Grid, p: np.ndarray, margin_mm: float) -> bool:
    k, j, i = np.linalg.solve(g.affine, np.append(p, 1.0))[:3]
    px = float(np.linalg.norm(g.affine[:3, 1]))
    mg = margin_mm / px
    n, rows, cols = g.shape
    return bool(mg <= j <= rows - 1 - mg and mg <= i <= cols - 1 - mg and -0.5 <= k <= n - 0.5)


def generate_study_v2(
    seed: int,
    site: str = "site-a",
    priors: str = "realistic",
    slices: str = "stack",
    acquisition: dict[str, Any] | None = None,
    **overrides: Any,
) -> PhantomV2:
    """One v2 phantom: sagittal T1 and T2, `slices` "stack" (a full sagittal stack) or "mid"
    (one mid-sagittal slice per series). `acquisition` replaces drawn acquisition fields
    (for tests and pictures); `overrides` are v1's (age, sex, n_lumbar, levels=...)."""
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise UsageError(f"seed must be a non-negative integer, not {seed!r}")
    sp = _site(seed, site)
    site_key = zlib.crc32(site.encode())
    # 1. Acquisition first, from its own stream: it cannot depend on the anatomy.
    acq = draw_acquisition(np.random.default_rng([int(seed), 20, site_key]), slices)
    if acquisition:
        unknown = set(acquisition) - set(Acquisition.__dataclass_fields__)
        if unknown:
            raise UsageError(f"unknown acquisition field(s): {', '.join(sorted(unknown))}")
        acq = Acquisition(**{**acq.__dict__, **acquisition})
    # 2. Anatomy and ground truth, as v1.
    st, levels, m = _anatomy(seed, priors, sp.field_strength, overrides)
    _solve_nucleus(m, sp)
    build_tables(m)
    calibrate(m)
    rng_org = np.random.default_rng([int(seed), 22])
    organs = draw_organs(rng_org, m)
    a = PARAMS.anatomy
    thoracic = (float(rng_org.uniform(*a.thoracic_vertebra_mm)),
                float(rng_org.uniform(*a.thoracic_disc_mm)))  # fmt: skip
    belly = Belly(
        y_wall=float(m.origin[1] + m.body_anterior),
        bulge=float(rng_org.uniform(*a.belly_sag_mm)),
        z_mid=float(m.origin[2] + rng_org.normal(0.0, 40.0)),
        fat=m.subcut_fat,
    )
    tex_scale = float(rng_org.uniform(*a.texture_scale_mm))
    mix_scale = float(rng_org.uniform(*a.subcluster_scale_mm))
    maps_rim = float(rng_org.uniform(*a.cortex_rim_mm))
    maps = _Maps(m, organs, thoracic, float(rng_org.uniform(*a.all_pll_mm)), belly)
    maps.rim_mm = maps_rim
    maps.warp = draw_warp(
        rng_org,
        float(rng_org.uniform(*a.deform_coarse_mm)),
        float(rng_org.uniform(*a.deform_fine_mm)),
    )

    grid = sagittal_grid(acq, body_cues(m, acq.centre_si_mm))
    phase_axis = 2 if acq.phase_axis == "ap" else 1  # axis of the (slices, rows, cols) array
    wrap_px = round(acq.wrap_fraction * grid.shape[phase_axis])
    ext = (wrap_px, 0) if phase_axis == 1 else (0, wrap_px)
    grid_ext = sagittal_grid(acq, body_cues(m, acq.centre_si_mm), extend=ext)

    assess: dict[str, str | None] = {}
    for d in m.discs:
        ok = _inside(grid, m.point(d.s_mid).astype(float), margin_mm=4.0)
        assess[d.level] = None if ok else "outside the field of view"
    t1s, t2s = sp.sag_t1, sp.sag_t2
    findings, level_meta = measure_study(
        m, levels, assess, sp.field_strength, (t1s.tr, t1s.te), (t2s.tr, t2s.te)
    )

    # 3. Images: both series share the geometry, so one tissue map serves both.
    rng_img = np.random.default_rng([int(seed), 21, site_key])
    contrasts = [
        draw_contrast(rng_img, "T1", m, sp.field_strength, (t1s.tr, t1s.te)),
        draw_contrast(rng_img, "T2", m, sp.field_strength, (t2s.tr, t2s.te)),
    ]
    arts = [af.draw_artefacts(rng_img), af.draw_artefacts(rng_img)]
    n, rows, cols = grid.shape
    pix = [np.zeros(grid.shape, F32), np.zeros(grid.shape, F32)]
    labels = np.zeros(grid.shape, np.int16)
    classes = np.zeros(grid.shape, np.uint8)
    posterior_y = body_cues(m, acq.centre_si_mm)[1]  # the coil lies under the back
    _, rj, ri = grid_ext.shape
    jj, ii = np.meshgrid(np.arange(rj), np.arange(ri), indexing="ij")
    depth = posterior_y - (
        grid_ext.affine[1, 3] + jj * grid_ext.affine[1, 1] + ii * grid_ext.affine[1, 2]
    )
    biases = [af.bias_field(ar, (rj, ri), depth) for ar in arts]
    for k in range(n):
        g_ext = _one_slice(grid_ext, k)
        g_fine = supersampled(g_ext, SUPERSAMPLE)
        tex = _texture(rng_img, g_fine, tex_scale)
        mix = 1.0 / (1.0 + np.exp(-3.0 * _texture(rng_img, g_fine, mix_scale)))
        clean = _clean_slice(maps, g_ext, contrasts, rng_img, tex, mix.astype(F32))
        for si in range(2):
            img = af.form_image(clean[si], arts[si], rng_img, biases[si], wrap_px, phase_axis - 1)
            pix[si][k] = img
        ts = maps.sample(_one_slice(grid, k), 0.0)
        _cortex_rim(ts, (rows, cols), max(1, round(maps.rim_mm / acq.pixel_mm)))
        labels[k] = ts.label.reshape(rows, cols)
        classes[k] = ts.cls.reshape(rows, cols)

    study_uid = uid(seed, site, "study-v2")
    frame_uid = uid(seed, site, "frame-v2")
    series_list: list[Series] = []
    seqs = [
        t1s.model_copy(update={"tr": round(acq.t1_tr, 1), "te": round(acq.t1_te, 1)}),
        t2s.model_copy(update={"tr": round(acq.t2_tr, 1), "te": round(acq.t2_te, 1)}),
    ]
    for si, (role, seq) in enumerate((("sag_t1", seqs[0]), ("sag_t2", seqs[1]))):
        series_uid = uid(seed, site, "series-v2", role)
        stored, pixels = _quantize(pix[si])
        lo, hi = np.percentile(pixels.ravel()[::5], [1, 99.5])
        heads = slice_headers(
            seed=seed, site=sp, study_uid=study_uid, series_uid=series_uid, frame_uid=frame_uid,
            series_number=si + 1, seq=seq, affine=grid.affine, shape=grid.shape,
            thickness=grid.thickness, age=st.age, sex=st.sex, first_instance=1, stack_index=0,
            plane="sagittal", window=((lo + hi) / 2, max(hi - lo, 1.0)),
        )  # fmt: skip
        s = Series(
            series_uid=series_uid, study_uid=study_uid, frame_of_reference_uid=frame_uid,
            series_number=si + 1, description=seq.description, plane="sagittal",
            weighting="T1" if role == "sag_t1" else "T2", role=role, stack_index=0,
            vendor=sp.manufacturer, model_name=sp.model_name, field_strength=sp.field_strength,
            repetition_time=seq.tr, echo_time=seq.te, slice_thickness=grid.thickness,
            pixels=pixels, affine=grid.affine.copy(), sop_class_uid=str(heads[0].SOPClassUID),
            sop_instance_uids=[str(h.SOPInstanceUID) for h in heads], headers=heads,
            transfer_syntax_uid="1.2.840.10008.1.2.1",
        )  # fmt: skip
        s.__dict__["_stored"] = stored
        series_list.append(s)

    sag_t2 = series_list[1]
    present = set(np.unique(labels).tolist())
    vert_present = [v.name for v in m.vertebrae if lb.vertebra_label(v.name) in present]
    lev_present = [d.level for d in m.discs if lb.disc_label(d.level) in present]
    expected_v = ["T12"] + [f"L{i}" for i in range(1, st.n_lumbar + 1)] + ["S1"]
    missing = [v for v in expected_v if v not in vert_present] + [
        lv for lv in levels if lv not in lev_present
    ]
    anatomy = Anatomy(
        reference_series_uid=sag_t2.series_uid,
        reference_stack_index=0,
        labels=labels,
        affine=grid.affine.copy(),
        source="ground_truth",
        source_detail=f"phantom seed={seed} site={site} generator=v{ENGINE_VERSION}",
        vertebrae=vert_present,
        levels=lev_present,
        lumbar_vertebrae=st.n_lumbar,
        transitional=st.transitional,  # type: ignore[arg-type]
        enumeration_confidence=1.0,
        naming_uncertain=False,
        missing=missing,
        extra_labels={},
    )
    study = Study(
        study_uid=study_uid,
        source=f"phantom-v2:{seed}:{site}",
        patient_sex=st.sex,
        patient_age=float(st.age),
        study_date=None,
        series=series_list,
    )
    study.study_date = series_list[0].headers[0].StudyDate
    level_meta.pop("_alignment", None)
    meta = {
        "generator_version": ENGINE_VERSION,
        "engine": "v2",
        "seed": int(seed),
        "site": site,
        "priors": priors,
        "slices": slices,
        "age": st.age,
        "sex": st.sex,
        "n_lumbar": st.n_lumbar,
        "transitional": st.transitional,
        "fov": "random",
        "postoperative": st.postoperative,
        "field_strength": sp.field_strength,
        "acquisition": acq.as_meta(),
        "contrast": {"sag_t1": contrasts[0].mode, "sag_t2": contrasts[1].mode},
        "artifacts": {"sag_t1": arts[0].as_meta(), "sag_t2": arts[1].as_meta()},
        "sequences": {
            "sag_t1": {"tr": seqs[0].tr, "te": seqs[0].te},
            "sag_t2": {"tr": seqs[1].tr, "te": seqs[1].te},
        },
        "tissue_classes": list(CLASS_NAMES),
        "levels": level_meta,
    }
    return PhantomV2(
        study=study, anatomy=anatomy, findings=findings, meta=meta, model=m, tissue_map=classes
    )


def disc_positions(
    seed: int, site: str = "site-a", priors: str = "realistic", slices: str = "mid"
) -> dict[str, tuple[float, float]]:
    """Where each disc centre falls in the v2 image of `seed`, as (row, column) fractions of the
    matrix (outside [0, 1]: cut by the field of view). Anatomy and acquisition only, no pixels:
    for checking that placement does not follow the levels."""
    sp = _site(seed, site)
    acq = draw_acquisition(
        np.random.default_rng([int(seed), 20, zlib.crc32(site.encode())]), slices
    )
    _, _, m = _anatomy(seed, priors, sp.field_strength, {})
    g = sagittal_grid(acq, body_cues(m, acq.centre_si_mm))
    inv = np.linalg.inv(g.affine)
    out = {}
    for d in m.discs:
        _, j, i = (inv @ np.append(m.point(d.s_mid).astype(float), 1.0))[:3]
        out[d.level] = (float(j / (g.shape[1] - 1)), float(i / (g.shape[2] - 1)))
    return out
