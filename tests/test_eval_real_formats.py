"""`spine-report eval` on the real-data formats (issue 16 item 5): lumbar3d-2d, sudirman,
spider-slices, and the localisation / coverage metrics of spider and lumbar3d.

Unit tests check the metric arithmetic on masks and boxes drawn here; end-to-end tests run tiny
folders made from a phantom's mid-sagittal slice through the harness (the real VLM and report),
with the anatomy fixed by the test so every structure metric has one right value; real-data
tests run a few cases of ../shared/data/real and skip when it is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from reporter.contracts import labels as L
from reporter.contracts.anatomy import Anatomy
from reporter.contracts.findings import StudyFindings
from reporter.conversions import from_pfirrmann_grades
from reporter.datasets import detect_format, open_dataset
from reporter.datasets.image_truth import DiscBoxes, ImageMask
from reporter.datasets.lumbar3d_2d import orientation_of, to_8bit
from reporter.datasets.sudirman import class_key, group_disc_boxes
from reporter.errors import InputDataError
from reporter.evaluation.harness import EvalConfig, run_dataset
from reporter.evaluation.image_scoring import (
    labels_on_image,
    mask_disc_detection,
    pooled_dice,
    score_disc_boxes,
    score_named_mask,
)
from reporter.evaluation.scoring import (
    StudyRecord,
    compute_metrics,
    graded_discs_assessed,
    level_naming,
)
from reporter.ingest.image2d_nets import apply_orientation, undo_orientation

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
D = L.disc_label


# --- metric arithmetic on drawn truth -----------------------------------------------------------


def test_disc_boxes_of_one_disc_merge_and_neighbours_do_not() -> None:
    # Two boxes on one disc (IoU 0.6) become their enclosing box; a neighbour that touches
    # (IoU ~0.05) stays apart; groups come out cranio-caudal.
    low = (10.0, 100.0, 50.0, 120.0)
    same = (14.0, 102.0, 56.0, 122.0)
    high = (12.0, 60.0, 52.0, 101.5)
    assert group_disc_boxes([low, high, same]) == [high, (10.0, 100.0, 56.0, 122.0)]
    assert class_key("Lumbar Disc Bulge (LDB)") == "LDB"
    assert class_key("Normal IVD") == "Normal IVD"
    assert class_key("Spinal Stenosis (SS)") == "SS"
    assert class_key("Herniation") is None


def test_disc_boxes_detection_and_naming_of_the_three_lowest() -> None:
    # Five disc groups cranio-caudal; predicted disc centres: one in each of boxes 0, 2 and 4,
    # two in box 3, none in box 1. Box 4 (L5-S1) holds L5-S1, box 3 two discs (wrong),
    # box 2 (L3-L4) holds a disc named L2-L3 (wrong).
    groups = [(0.0, y, 40.0, y + 10.0) for y in (0.0, 20.0, 40.0, 60.0, 80.0)]
    pred = np.zeros((100, 40), dtype=np.int16)
    pred[3:7, 10:20] = D("T12-L1")  # centre (4.5, 14.5) -> box coordinates (15, 5): box 0
    pred[43:47, 10:20] = D("L2-L3")  # box 2
    pred[61:63, 10:20] = D("L3-L4")  # box 3, twice
    pred[67:69, 10:20] = D("L4-L5")
    pred[83:87, 10:20] = D("L5-S1")  # box 4
    rec = StudyRecord(case_id="x")
    score_disc_boxes(rec, DiscBoxes(groups=groups, series_index=0), pred)
    assert rec.detected == [True, False, True, False, True]
    assert rec.naming == [1, 3]
    failed = StudyRecord(case_id="y")
    score_disc_boxes(failed, DiscBoxes(groups=groups[:2], series_index=0), None)
    assert failed.detected == [False, False]
    assert failed.naming == [0, 2]  # fewer than three groups: only those are named


def test_disc_box_uses_pixel_centres() -> None:
    # A one-pixel disc at row 9, column 9 has its centre at (9.5, 9.5) in box coordinates.
    pred = np.zeros((20, 20), dtype=np.int16)
    pred[9, 9] = D("L5-S1")
    inside, outside = (0.0, 0.0, 9.5, 9.5), (0.0, 0.0, 9.4, 9.4)
    for box, want in ((inside, [True]), (outside, [False])):
        rec = StudyRecord(case_id="x")
        score_disc_boxes(rec, DiscBoxes(groups=[box], series_index=0), pred)
        assert rec.detected == want


def _class_mask() -> np.ndarray:
    mask = np.zeros((60, 40), dtype=np.int16)
    mask[0:10, 5:35] = 1  # vertebra, 300 px
    mask[12:16, 5:35] = 2  # disc A, 120 px
    mask[30:34, 5:35] = 2  # disc B, 120 px
    mask[50:52, 5:10] = 2  # 10 px: below MIN_DISC_PX, not a disc
    mask[20:28, 36:40] = 3  # canal, 32 px
    return mask


def test_class_mask_dice_pools_levels_and_a_missing_canal_scores_zero() -> None:
    mask = _class_mask()
    pred = np.zeros_like(mask)
    pred[0:5, 5:35] = L.vertebra_label("L4")  # 150 px, inside the truth vertebra
    pred[5:10, 5:35] = L.vertebra_label("L5")  # another 150 px: pooled, the two are the class
    pred[12:16, 5:35] = D("L4-L5")  # disc A exactly
    out = pooled_dice(mask, pred)
    assert out["vertebra"] == [1.0]
    assert out["disc"] == [pytest.approx(2 * 120 / (250 + 120))]  # truth: A, B and the 10 px
    assert out["canal"] == [0.0]  # no canal label predicted
    assert pooled_dice(mask, None) == {"vertebra": [0.0], "disc": [0.0], "canal": [0.0]}


def test_class_mask_disc_detection_needs_exactly_one_centre_within_two_pixels() -> None:
    mask = _class_mask()
    pred = np.zeros_like(mask)
    pred[17, 19:22] = D("L4-L5")  # centre (17, 20): 2 px below disc A (rows 12-15)
    pred[30:32, 6:8] = D("L5-S1")  # in disc B ...
    pred[32:34, 30:32] = D("L3-L4")  # ... and a second centre in disc B: not detected
    assert mask_disc_detection(mask, pred) == [True, False]
    pred2 = np.zeros_like(mask)
    pred2[19, 19] = D("L4-L5")  # 4 px below disc A: outside the 2 px dilation
    pred2[31, 20] = D("L5-S1")
    assert mask_disc_detection(mask, pred2) == [False, True]
    assert mask_disc_detection(mask, None) == [False, False]


def test_level_naming_counts_vertebrae_when_asked() -> None:
    gt = np.zeros((1, 30, 10), dtype=np.int16)
    gt[0, 0:8] = L.vertebra_label("L4")
    gt[0, 10:12] = D("L4-L5")
    gt[0, 14:22] = L.vertebra_label("L5")
    pred = gt.copy()
    pred[0, 14:22] = L.vertebra_label("L4")  # L5 named L4
    aff = np.eye(4)

    def anat(x: np.ndarray) -> Anatomy:
        return Anatomy(reference_series_uid="s", labels=x, affine=aff, source="ground_truth")

    assert level_naming(anat(gt), anat(pred)) == [1, 1]  # discs only: the phantom definition
    assert level_naming(anat(gt), anat(pred), vertebrae=True) == [2, 3]
    assert level_naming(anat(gt), None, vertebrae=True) == [0, 3]


def test_named_mask_is_compared_on_the_slice_after_undoing_both_orientations() -> None:
    # Truth on the slice (1 mm pixels); the file shows it turned by code 5. The prediction,
    # on the file's pixels, is the truth moved 3 px caudally with L2 missing and L3 moved
    # 12 px anteriorly: L1, L4 at 3 mm, L3 at about 12 mm (named but not detected), L2 absent.
    gt = np.zeros((120, 80), dtype=np.int16)
    for i, name in enumerate(("L1", "L2", "L3", "L4")):
        gt[10 + 25 * i : 30 + 25 * i, 20:60] = L.vertebra_label(name)
    moved = np.roll(gt, 3, axis=0)
    moved[moved == L.vertebra_label("L2")] = 0
    l3 = moved == L.vertebra_label("L3")
    moved[l3] = 0
    moved[np.roll(l3, -12, axis=1)] = L.vertebra_label("L3")
    truth = ImageMask(mask=gt, series_index=0, labels="named", orientation=5, spacing_mm=1.0)
    rec = StudyRecord(case_id="x")
    score_named_mask(rec, truth, apply_orientation(moved, 5))
    assert rec.detected == [True, False, False, True]
    assert rec.localisation_mm == pytest.approx([3.0, np.hypot(3.0, 12.0), 3.0], abs=1e-3)
    assert rec.naming == [3, 4]
    assert rec.dice["vertebra"][1] == 0.0
    # The same prediction left in the slice's own frame is wrong: the orientation is undone.
    wrong = StudyRecord(case_id="w")
    score_named_mask(wrong, truth, moved)
    assert wrong.detected != rec.detected or wrong.localisation_mm != rec.localisation_mm


def test_graded_discs_assessed_counts_assessed_non_indeterminate_grades() -> None:
    truth = from_pfirrmann_grades({"L3-L4": 2, "L4-L5": 3, "L5-S1": 4})
    data = from_pfirrmann_grades({"L3-L4": 2, "L4-L5": 5, "L5-S1": 3}).model_dump(
        mode="json", exclude_none=True
    )
    data["levels"][0]["pfirrmann"] = {"not_assessable": "withheld"}
    rendered = StudyFindings.model_validate(data)
    # A wrong grade still counts as assessed; an indeterminate one does not.
    got = graded_discs_assessed(truth, rendered, [("L5-S1", "pfirrmann")])
    assert got == [False, True, False]
    assert graded_discs_assessed(truth, None) == [False, False, False]


def test_metrics_count_failed_studies_as_wrong() -> None:
    ok = StudyRecord(
        case_id="a",
        detected=[True, True, False],
        localisation_mm=[1.0, 2.0, 30.0],
        graded_assessed=[True, False],
        naming=[2, 3],
    )
    failed = StudyRecord(
        case_id="b", error="boom", detected=[False], graded_assessed=[False], naming=[0, 1]
    )
    m = compute_metrics([ok, failed], peak_rss_mb=None)
    assert m["n_failed"] == 1
    assert m["localisation"]["detect_rate"] == 0.5
    assert m["localisation"]["median_error_mm"] == 2.0
    assert m["coverage"]["graded_discs_assessed"] == pytest.approx(1 / 3)
    assert m["level_naming_accuracy"] == 0.5


def test_labels_on_image_undo_the_detected_orientation() -> None:
    from reporter.ingest.image2d import study_from_image

    rng = np.random.default_rng(0)
    img = rng.normal(100, 20, (64, 48)).astype(np.float32)
    on_file = np.zeros((64, 48), dtype=np.int16)
    on_file[5:9, 30:40] = D("L4-L5")  # asymmetric: every orientation moves it
    for code in range(8):
        study = study_from_image(apply_orientation(img, 0), orientation=code)
        series = study.series[0]
        anatomy = Anatomy(
            reference_series_uid=series.series_uid,
            labels=undo_orientation(on_file, code)[None],
            affine=series.affine,
            source="builtin_segmenter",
        )
        assert np.array_equal(labels_on_image(anatomy, study, 0), on_file)


def test_lumbar3d_2d_orientation_is_fixed_per_case_and_scaling_is_robust() -> None:
    codes = {orientation_of(f"vb3_{i:02d}") for i in range(40)}
    assert codes == set(range(8))
    assert orientation_of("vb3_01") == orientation_of("vb3_01")
    img = np.linspace(0, 1000, 10_000).reshape(100, 100)
    img[0, 0] = 1e9  # one outlier does not set the scale
    out = to_8bit(img)
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    assert 100 < int(out[50, 50]) < 155


# --- readers on tiny folders ----------------------------------------------------------------------


def _png(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr, dtype=np.uint8)).save(path)


def _csv(path: Path, header: str, rows: list[str]) -> None:
    path.write_text("\n".join([header, *rows]) + "\n")


def test_sudirman_reader_warns_per_bad_row_and_falls_back_to_t1_boxes(tmp_path: Path) -> None:
    img = np.full((64, 64), 80, dtype=np.uint8)
    for name in ("7_t1.png", "7_t2.png", "8_t1.png", "8_t2.png", "notes.png"):
        _png(tmp_path / "images" / name, img)
    _csv(
        tmp_path / "boxes.csv",
        "image,class,x0,y0,x1,y1",
        [
            "7_t2.png,Normal IVD,10,10,30,20",
            "7_t2.png,Spinal Stenosis (SS),30,10,35,20",  # not a disc
            "7_t2.png,Degenerative Disc Disease (DDD),10,30,30,40",
            "7_t2.png,Lumbar Disc Bulge (LDB),11,31,31,41",  # same disc as the DDD box
            "7_t2.png,Normal IVD,ten,10,30,20",  # line 6: bad number
            "8_t1.png,Normal IVD,10,10,30,20",  # patient 8's T2 has no boxes: T1's are used
            "9_t2.png,Normal IVD,10,10,30,20",  # line 8: no such image
        ],
    )
    _csv(
        tmp_path / "pfirrmann.csv",
        "patient,level,grade",
        ["7,L3-L4,2", "7,L4-L5,3", "7,L5-S1,7", "8,L5-S1,4"],
    )
    assert detect_format(tmp_path) == "sudirman"
    ds = open_dataset(tmp_path, "sudirman")
    assert [c.case_id for c in ds] == ["7", "8"]
    assert [c.patient_id for c in ds] == ["sudirman-7", "sudirman-8"]
    text = "\n".join(ds.warnings)
    assert "images/notes.png" in text
    assert "boxes.csv line 6" in text
    assert "boxes.csv lines 8-8: image 9_t2.png is not in images/" in text
    assert "pfirrmann.csv line 4" in text
    assert len(ds.warnings) == 4
    seven, eight = ds["7"].image_truth, ds["8"].image_truth
    assert seven.series_index == 0 and seven.image == "7_t2.png"
    assert seven.groups == [(10.0, 10.0, 30.0, 20.0), (10.0, 30.0, 31.0, 41.0)]
    assert eight.series_index == 1 and eight.image == "8_t1.png"
    grades = {lf.level: lf.pfirrmann.value for lf in ds["7"].findings.levels}
    assert grades == {"L3-L4": 2, "L4-L5": 3}


def test_spider_slices_reader_pairs_images_with_masks(tmp_path: Path) -> None:
    img = np.full((64, 48), 80, dtype=np.uint8)
    _png(tmp_path / "images" / "12_t2_SPACE_slice07.png", img)
    _png(tmp_path / "images" / "12_t2_SPACE_slice09.png", img)  # no mask
    _png(tmp_path / "masks" / "12_t2_SPACE_slice07.png", np.zeros((64, 48)))
    _png(tmp_path / "masks" / "13_t2_SPACE_slice01.png", np.zeros((64, 48)))  # no image
    assert detect_format(tmp_path) == "spider-slices"
    ds = open_dataset(tmp_path, "spider-slices")
    assert ds.case_ids == ["12_t2_SPACE_slice07"]
    assert ds[0].patient_id == "spider-12"
    assert len(ds.warnings) == 2 and "slice09" in ds.warnings[0] and "13_" in ds.warnings[1]
    _png(tmp_path / "masks" / "12_t2_SPACE_slice07.png", np.full((64, 48), 7))
    with pytest.raises(InputDataError, match="expected 0 background"):
        _ = open_dataset(tmp_path, "spider-slices")[0].image_truth


# --- end to end on phantom slices, with the anatomy fixed by the test ----------------------------


@pytest.fixture(scope="module")
def slice_t2(phantom) -> tuple[np.ndarray, np.ndarray]:
    """The phantom's mid-sagittal T2 slice (8-bit, standard display) and its label map."""
    series = phantom.study.get("sag_t2")
    k = series.shape[0] // 2
    return to_8bit(series.pixels[k]), np.asarray(phantom.anatomy.labels[k], dtype=np.int16)


def _fixed_anatomy(study, on_file: np.ndarray, index: int = 0) -> Anatomy:
    """An anatomy that lands exactly on `on_file` in the pixels of series `index`'s image,
    whatever orientation the 2-D path detected."""
    from reporter.anatomy.naming import name_labels

    series = study.series[index]
    code = int(study.input_notes[series.series_uid]["orientation"]["code"])
    labels = undo_orientation(on_file, code)[None].astype(np.int16)
    naming = name_labels(labels, series.affine, "fixed by the test")
    return Anatomy(
        reference_series_uid=series.series_uid,
        labels=labels,
        affine=series.affine.copy(),
        source="builtin_segmenter",
        vertebrae=naming.vertebrae,
        levels=naming.levels,
        lumbar_vertebrae=naming.lumbar_vertebrae,
        naming_uncertain=True,
    )


def _bbox(mask: np.ndarray) -> tuple[float, float, float, float]:
    rr, cc = np.nonzero(mask)
    return float(cc.min()), float(rr.min()), float(cc.max() + 1), float(rr.max() + 1)


def test_sudirman_end_to_end_counts_boxes_names_and_the_failed_patient(
    tmp_path: Path, slice_t2, monkeypatch: pytest.MonkeyPatch
) -> None:
    img, lab = slice_t2
    discs = ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    _png(tmp_path / "images" / "1_t2.png", img)
    _png(tmp_path / "images" / "1_t1.png", 255 - img)
    (tmp_path / "images" / "2_t2.png").write_bytes(b"not an image")  # patient 2 fails
    rows = [f"1_t2.png,Normal IVD,{','.join(map(str, _bbox(lab == D(lv))))}" for lv in discs]
    rows += ["2_t2.png,Normal IVD,10,10,30,20", "2_t2.png,Normal IVD,10,40,30,50"]
    _csv(tmp_path / "boxes.csv", "image,class,x0,y0,x1,y1", rows)
    _csv(
        tmp_path / "pfirrmann.csv",
        "patient,level,grade",
        [f"{p},{lv},3" for p in (1, 2) for lv in ("L3-L4", "L4-L5", "L5-S1")],
    )
    # The prediction: every disc where the phantom has it, but L1-L2 missing and L3-L4
    # named L2-L3 (L2-L3 itself removed): 3 of 5 boxes detected, 2 of 3 lowest named.
    pred = np.where(np.isin(lab, [D(lv) for lv in discs]), lab, 0)
    pred[pred == D("L1-L2")] = 0
    pred[pred == D("L2-L3")] = 0
    pred[pred == D("L3-L4")] = D("L2-L3")
    monkeypatch.setattr("reporter.pipeline.study_anatomy", lambda s: _fixed_anatomy(s, pred))
    res = run_dataset(tmp_path, "sudirman", tmp_path / "out", EvalConfig(injected=False))
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["n_studies"] == 2 and m["n_failed"] == 1
    # Patient 1: L1-L2 and L2-L3 boxes empty (L2-L3's disc is gone); patient 2: 2 boxes lost.
    assert m["localisation"]["detect_rate"] == pytest.approx(3 / 7)
    assert m["localisation"]["n_structures"] == 7
    assert m["level_naming_accuracy"] == pytest.approx(2 / 5)
    cov = m["coverage"]
    assert cov["n_graded_discs"] == 6
    failed = next(r for r in res.records if r.error)
    assert failed.case_id == "2" and "2_t2.png" in failed.error
    assert failed.graded_assessed == [False, False, False]
    assert cov["graded_discs_assessed"] <= 0.5
    assert m["conditions"]["pfirrmann"]["n"] <= 3  # only patient 1 was reported


def test_spider_slices_end_to_end_dice_and_detection(
    tmp_path: Path, slice_t2, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scipy import ndimage

    img, lab = slice_t2
    classes = np.zeros_like(lab)
    classes[np.vectorize(L.is_vertebra)(lab)] = 1
    classes[np.vectorize(L.is_disc)(lab)] = 2
    classes[lab == L.CANAL] = 3
    _png(tmp_path / "images" / "5_t2_SPACE_slice10.png", img)
    _png(tmp_path / "masks" / "5_t2_SPACE_slice10.png", classes)
    (tmp_path / "images" / "6_t2_SPACE_slice10.png").write_bytes(b"broken")  # fails
    _png(tmp_path / "masks" / "6_t2_SPACE_slice10.png", classes)
    # The prediction: the phantom's vertebrae and discs as they are, minus the L4-L5 disc, and
    # no canal: vertebra Dice 1, canal 0, and every disc but L4-L5 detected.
    pred = np.where(np.vectorize(L.is_vertebra)(lab) | np.vectorize(L.is_disc)(lab), lab, 0)
    pred[pred == D("L4-L5")] = 0
    monkeypatch.setattr("reporter.pipeline.study_anatomy", lambda s: _fixed_anatomy(s, pred))
    run_dataset(tmp_path, "spider-slices", tmp_path / "out", EvalConfig(injected=False))
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["n_failed"] == 1
    comps, _ = ndimage.label(classes == 2)
    n_discs = int((np.bincount(comps.ravel())[1:] >= 20).sum())
    assert n_discs >= 5
    # Detected: the ok slice's discs but L4-L5; the failed slice's none.
    assert m["localisation"]["detect_rate"] == pytest.approx((n_discs - 1) / (2 * n_discs))
    dice = m["segmentation"]["dice"]
    assert dice["vertebra"] == pytest.approx(0.5)  # 1 on the ok slice, 0 on the failed one
    assert dice["canal"] == 0.0
    a, b = classes == 2, np.vectorize(L.is_disc)(pred)
    assert dice["disc"] == pytest.approx(2 * (a & b).sum() / (a.sum() + b.sum()) / 2)


def test_lumbar3d_2d_end_to_end_localises_in_mm_on_the_slice(
    tmp_path: Path, phantom, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nibabel as nib

    series = phantom.study.get("sag_t2")
    # Phantom sagittal stacks are (left-right, sup->inf, ant->post); lumbar3d volumes are
    # (sup->inf, ant->post, left-right).
    vol = np.transpose(series.pixels, (1, 2, 0)).astype(np.float32)
    lab = np.transpose(np.asarray(phantom.anatomy.labels), (1, 2, 0))
    levels = ("L5-S1", "L4-L5", "L3-L4", "L2-L3", "L1-L2")  # the ivd files' order
    seg = np.zeros(lab.shape, dtype=np.int16)
    for value, lv in enumerate(levels, start=1):
        seg[lab == D(lv)] = value
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "ivd_90.nii.gz")
    nib.save(nib.Nifti1Image(seg, np.eye(4)), tmp_path / "ivd_90_seg.nii.gz")
    (tmp_path / "ivd_90_seg.json").write_text(
        json.dumps({"labels": {str(i): lv for i, lv in enumerate(levels, 1)}, "contrast": "T2"})
    )
    nib.save(nib.Nifti1Image(seg, np.eye(4)), tmp_path / "ivd_91_seg.nii.gz")  # no volume
    code = orientation_of("ivd_90")
    # The prediction on the slice: every disc 3 px caudal of the truth, then written the way the
    # file was: 5 discs detected at exactly 3 mm, all named.
    mid = np.where(np.isin(lab, [D(lv) for lv in levels]), lab, 0)[:, :, lab.shape[2] // 2]
    on_file = apply_orientation(np.roll(mid, 3, axis=0), code)
    monkeypatch.setattr("reporter.pipeline.study_anatomy", lambda s: _fixed_anatomy(s, on_file))
    warned: list[str] = []
    run_dataset(
        tmp_path, "lumbar3d-2d", tmp_path / "out", EvalConfig(injected=False), warn=warned.append
    )
    assert len(warned) == 1 and "ivd_91_seg.nii.gz" in warned[0]
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["n_failed"] == 0
    assert m["localisation"] == {
        "detect_rate": 1.0,
        "median_error_mm": 3.0,
        "n_measured": 5,
        "n_structures": 5,
    }
    assert m["level_naming_accuracy"] == 1.0
    assert 0.0 < m["segmentation"]["dice"]["disc"] < 1.0


# --- real data (skipped without ../shared/data/real) --------------------------------------------


def _needs(name: str) -> Path:
    path = REAL / name
    if not path.is_dir():
        pytest.skip(f"../shared/data/real/{name} absent")
    return path


@pytest.mark.parametrize(
    ("folder", "fmt", "limit"),
    [("sudirman_sagittal", "sudirman", 2), ("spider_slices", "spider-slices", 2)],
)
def test_real_2d_sets_report_their_structure_metrics(
    tmp_path: Path, folder: str, fmt: str, limit: int
) -> None:
    data = _needs(folder)
    res = run_dataset(data, fmt, tmp_path, EvalConfig(injected=False), limit=limit, split="test")
    m = res.metrics
    cases = [c for c in open_dataset(data, fmt) if c.split == "test"][:limit]
    loc = m["localisation"]
    if fmt == "sudirman":
        assert loc["n_structures"] == sum(len(c.image_truth.groups) for c in cases)
        assert m["coverage"]["n_graded_discs"] == 3 * len(cases)
        assert m["conditions"]["pfirrmann"]["n"] <= 3 * len(cases)
    else:
        assert set(m["segmentation"]["dice"]) == {"vertebra", "disc", "canal"}
        assert m["segmentation"]["dice"]["vertebra"] is not None
    assert loc["detect_rate"] is not None and 0.0 <= loc["detect_rate"] <= 1.0
    assert m["n_failed"] == sum(r.error is not None for r in res.records)


def test_real_lumbar3d_2d_and_spider_coverage(tmp_path: Path) -> None:
    l3d, spider = _needs("lumbar3d"), _needs("spider")
    m = run_dataset(
        l3d, "lumbar3d-2d", tmp_path / "l", EvalConfig(injected=False), limit=1, split="test"
    ).metrics
    assert m["localisation"]["n_structures"] == 5  # the test volume's five labelled structures
    assert m["localisation"]["median_error_mm"] is not None
    assert m["level_naming_accuracy"] is not None
    s = run_dataset(
        spider, "spider", tmp_path / "s", EvalConfig(injected=False), limit=1, split="test"
    ).metrics
    assert s["coverage"]["n_graded_discs"] >= 1
    assert "n_failed" in s
