"""The faster paths of issue 19 item 5 give exactly what the code they replaced gave.

Each shortcut (work on a bounding box, bincount instead of ndimage.center_of_mass, per-grid
caches) is compared bit for bit with the whole-volume computation it stands for, on random
label maps full of ties. Behaviour only: nothing here measures time.
"""

from __future__ import annotations

import base64
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from scipy import ndimage

from reporter import masks
from reporter.anatomy import segmenter_data as sd
from reporter.anatomy import spine_parts as sp
from reporter.contracts import labels as L
from reporter.grounding.measures.frame import THECAL, Grid
from reporter.render.keyimages import _outline, _thicken

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "eval"))
import check_outputs_equal as coe


def _random_boxes(rng: np.random.Generator, shape: tuple[int, ...], n: int) -> np.ndarray:
    m = np.zeros(shape, bool)
    for _ in range(n):
        a = [int(rng.integers(0, s)) for s in shape]
        b = [min(s, x + int(rng.integers(1, 12))) for x, s in zip(a, shape, strict=True)]
        m[a[0] : b[0], a[1] : b[1], a[2] : b[2]] = True
    return m


def _shape(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(x) for x in rng.integers(2, 28, 3))  # type: ignore[return-value]


def test_centres_are_center_of_mass_bit_for_bit() -> None:
    rng = np.random.default_rng(19)
    for _ in range(150):
        comp, n = ndimage.label(rng.random(_shape(rng)) < rng.uniform(0.05, 0.6))
        if n == 0:
            assert sp._centres(comp, 0) == []
            continue
        ref = ndimage.center_of_mass(np.ones_like(comp), comp, range(1, n + 1))
        got = sp._centres(comp, n)
        assert len(got) == len(ref)
        for a, b in zip(got, ref, strict=True):
            assert np.array_equal(np.asarray(a), np.asarray(b))


def test_touches_is_the_whole_volume_dilation() -> None:
    rng = np.random.default_rng(5)
    for t in range(150):
        shape = _shape(rng)
        mask = (
            _random_boxes(rng, shape, int(rng.integers(0, 5))) if t % 9 else np.zeros(shape, bool)
        )
        other = rng.random(shape) < 0.3
        reach = int(rng.integers(1, 5))
        grown = ndimage.binary_dilation(mask, structure=np.ones((1, 3, 3), bool), iterations=reach)
        assert sp._touches(mask, other, reach) == int((grown & other).sum())


def _instances_whole_volume(
    generic: np.ndarray, cls: int, affine: np.ndarray, voxel_ml: float
) -> list[sp.Instance]:
    """reporter.anatomy.spine_parts.instances as it was, on the whole volume."""
    kind = {sd.VERTEBRA: "vertebra", sd.SACRUM: "sacrum", sd.DISC: "disc"}[cls]
    mask = generic == cls
    if not mask.any():
        return []
    core = mask
    if cls == sd.VERTEBRA:
        spacing = float(np.linalg.norm(affine[:3, 1]))
        steps = max(1, round(sp.ERODE_MM / max(spacing, 1e-3)))
        core = ndimage.binary_erosion(mask, structure=sp._IN_PLANE, iterations=steps)
    comp, n = ndimage.label(core)
    if n == 0:
        comp, n = ndimage.label(mask)
    elif core is not mask:
        _, (kk, jj, ii) = ndimage.distance_transform_edt(comp == 0, return_indices=True)
        comp = np.where(mask, comp[kk, jj, ii], 0)
    counts = np.bincount(comp.ravel())
    centres = ndimage.center_of_mass(np.ones_like(comp), comp, range(1, n + 1))
    min_voxels = max(4, int(0.3 / voxel_ml))
    found = [
        sp.Instance(
            kind, comp == i, np.asarray(c) @ affine[:3, :3].T + affine[:3, 3], int(counts[i])
        )
        for i, c in enumerate(centres, start=1)
        if counts[i] >= min_voxels
    ]
    return [m for m in sp._merge_fragments(found) if m.voxels * voxel_ml >= sp.MIN_ML[kind]]


@pytest.mark.parametrize("cls", [sd.VERTEBRA, sd.DISC, sd.SACRUM])
def test_instances_match_the_whole_volume_computation(cls: int) -> None:
    rng = np.random.default_rng(cls)
    affine = np.diag([4.0, 1.0, 1.0, 1.0])  # 1 mm pixels: 3 erosion steps for vertebrae
    voxel_ml = 4.0 / 1000.0
    for _ in range(40):
        shape = (int(rng.integers(2, 8)), int(rng.integers(20, 60)), int(rng.integers(20, 60)))
        generic = np.zeros(shape, np.uint8)
        generic[_random_boxes(rng, shape, int(rng.integers(1, 7)))] = cls
        generic[rng.random(shape) < 0.05] = 0  # holes: many ties for the nearest component
        got = sp.instances(generic, cls, affine, voxel_ml)
        ref = _instances_whole_volume(generic, cls, affine, voxel_ml)
        assert len(got) == len(ref)
        for a, b in zip(got, ref, strict=True):
            assert (a.kind, a.voxels) == (b.kind, b.voxels)
            assert np.array_equal(a.mask, b.mask)
            assert np.array_equal(a.centroid, b.centroid)


class _FakeSeries:
    affine = np.array(
        [[0.0, 0.0, 0.9, -10.0], [0.0, 0.9, 0.0, 5.0], [4.0, 0.0, 0.0, 2.0], [0, 0, 0, 1]]
    )


def test_grid_caches_are_the_argwhere_they_replace() -> None:
    rng = np.random.default_rng(3)
    labels = rng.choice([0, L.CANAL, L.CORD, L.vertebra_label("L4")], size=(5, 30, 30))
    grid = Grid(_FakeSeries(), labels)  # type: ignore[arg-type]
    for value in (L.CANAL, L.vertebra_label("L4"), L.vertebra_label("L5")):
        assert np.array_equal(grid.voxels(value), np.argwhere(labels == value))
        assert grid.voxels(value) is grid.voxels(value)  # found once
    idx = np.argwhere(np.isin(labels, THECAL))
    aff = _FakeSeries.affine
    assert np.array_equal(grid.thecal_points(), idx @ aff[:3, :3].T + aff[:3, 3])


def _ds(uid: str, ref: str, value: str) -> Dataset:
    ds = Dataset()
    ds.SOPInstanceUID = uid
    item = Dataset()
    item.ReferencedSOPInstanceUID = ref
    ds.ReferencedSOPSequence = [item]
    ds.SoftwareVersions = value
    ds.ContentTime = "120000"
    return ds


def test_output_check_allows_a_consistent_uid_renaming_only() -> None:
    same: list[str] = []
    coe._compare_ds(_ds("1.2.3", "1.2.3", "0.1.0+gabcdef123456"), _ds("1.9", "1.9", "0.1.0"),
                    coe._UidMap(), "", same)  # fmt: skip
    assert same == []  # renamed consistently; code version and time aside
    broken: list[str] = []
    coe._compare_ds(_ds("1.2.3", "1.2.3", "0.1.0"), _ds("1.9", "1.8", "0.1.0"), coe._UidMap(),
                    "", broken)  # fmt: skip
    assert broken  # the reference no longer points at the object
    changed: list[str] = []
    coe._compare_ds(_ds("1.2.3", "1.2.3", "0.1.0"), _ds("1.2.3", "1.2.3", "0.2.0"), coe._UidMap(),
                    "", changed)  # fmt: skip
    assert changed


def test_output_check_reads_a_report_folder(tmp_path: Path) -> None:
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "findings.json").write_text('{"x": 1}')
        (folder / "report.txt").write_text("spine-reporter 0.1.0+g0123456789ab\n")
        (folder / "provenance.json").write_text(f'{{"started_at": "{name}", "study": 1}}')
    (tmp_path / "b" / "report.txt").write_text("spine-reporter 0.1.0\n")
    assert coe.compare_folder(tmp_path / "a", tmp_path / "b") == []
    (tmp_path / "b" / "findings.json").write_text('{"x": 2}')
    assert coe.compare_folder(tmp_path / "a", tmp_path / "b") == [
        "findings.json: not byte-identical"
    ]


def test_key_image_outlines_are_scipys_erosion_and_dilation() -> None:
    rng = np.random.default_rng(23)
    masks = [np.zeros((5, 5), bool), np.ones((5, 5), bool), np.ones((1, 1), bool)]
    masks += [np.ones((1, 9), bool), np.ones((9, 1), bool)]
    for _ in range(150):
        m = rng.random((int(rng.integers(1, 40)), int(rng.integers(1, 40)))) > rng.random()
        masks.append(ndimage.binary_opening(m) if rng.random() < 0.7 else m)
    for mask in masks:
        want = mask & ~ndimage.binary_erosion(mask, iterations=1, border_value=0)
        assert np.array_equal(_outline(mask), want)
        assert np.array_equal(_thicken(want), ndimage.binary_dilation(want))


def _png_uri(pixels: np.ndarray, level: int) -> str:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=level)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def test_output_check_reads_key_images_as_pixels(tmp_path: Path) -> None:
    """A key image saved at another zlib level is the same image; one changed pixel is not."""
    pixels = np.random.default_rng(3).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    changed = pixels.copy()
    changed[5, 5] ^= 1
    pages = {
        "a": _png_uri(pixels, 6),
        "b": _png_uri(pixels, 1),
        "c": _png_uri(changed, 1),
    }
    for name, uri in pages.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "findings.json").write_text("{}")
        (folder / "report.txt").write_text("r\n")
        (folder / "provenance.json").write_text("{}")
        (folder / "report.html").write_text(f'<p>x</p><img src="{uri}">')
    assert pages["a"] != pages["b"]
    assert coe.compare_folder(tmp_path / "a", tmp_path / "b") == []
    assert coe.compare_folder(tmp_path / "a", tmp_path / "c") == [
        "report.html: differs (times masked, key images as pixels)"
    ]


def test_distance_within_is_the_whole_volume_distance_up_to_its_reach() -> None:
    rng = np.random.default_rng(31)
    for t in range(120):
        shape = _shape(rng)
        mask = _random_boxes(rng, shape, int(rng.integers(1, 4)))
        spacing = rng.uniform(0.3, 5.0, 3)
        reach = float(rng.uniform(0.0, 12.0)) if t % 10 else 0.0
        full = ndimage.distance_transform_edt(~mask, sampling=spacing)
        got = sp.distance_within(mask, spacing, reach)
        near = full <= reach
        assert np.array_equal(got[near], full[near])
        assert np.all(got[~near] > reach)
        for cut in (reach, reach * rng.uniform(0, 1), 0.0):
            assert np.array_equal(got <= cut, full <= cut)


@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
def test_mask_voxels_and_boxes_are_argwhere_and_the_axis_scan(ndim: int) -> None:
    rng = np.random.default_rng(41 + ndim)
    for t in range(120):
        shape = tuple(int(x) for x in rng.integers(1, 14, ndim))
        mask = rng.random(shape) < (rng.uniform(0.0, 0.3) if t % 7 else 0.0)
        if t % 3 == 0 and mask.size:  # one compact blob
            mask = np.zeros(shape, bool)
            lo = [int(rng.integers(0, s)) for s in shape]
            mask[tuple(slice(a, a + int(rng.integers(1, 5))) for a in lo)] = True
        got = masks.voxels(mask)
        want = np.argwhere(mask)
        assert got.dtype == want.dtype and np.array_equal(got, want)
        margin = tuple(int(x) for x in rng.integers(0, 4, ndim))
        box = masks.bounding_box(mask, margin)
        if not mask.any():
            assert box is None
            continue
        assert box == tuple(
            slice(max(int(want[:, a].min()) - m, 0), min(int(want[:, a].max()) + m + 1, n))
            for a, (m, n) in enumerate(zip(margin, shape, strict=True))
        )
