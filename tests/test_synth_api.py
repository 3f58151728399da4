"""The phantom API contract: roles, label maps on every grid, ground truth, round trip, seeds."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from reporter.contracts import labels as lb
from reporter.contracts.findings import StudyFindings
from reporter.errors import UsageError
from reporter.synth import (
    NEW_SITE,
    SITES,
    TRAINING_SITES,
    generate_study,
    load_phantom,
    write_study,
)
from reporter.synth.seeds import split_of


@pytest.fixture(scope="module")
def phantom():
    return generate_study(1_000_003, site="site-a")


def test_study_has_sagittal_t1_t2_and_axial_t2_with_labels_on_every_grid(phantom):
    roles = [s.role for s in phantom.study.series]
    assert roles.count("sag_t1") == 1 and roles.count("sag_t2") == 1 and "ax_t2" in roles
    an = phantom.anatomy
    t2 = phantom.study.get("sag_t2")
    assert an.reference_series_uid == t2.series_uid
    assert an.labels.shape == t2.pixels.shape
    for s in phantom.study.series:
        key = f"{s.series_uid}#{s.stack_index}"
        if s.role == "sag_t2":
            continue
        assert an.extra_labels[key].shape == s.pixels.shape
    assert 13 <= t2.pixels.shape[0] <= 19
    assert 0.5 <= t2.spacing[1] <= 1.0


def test_anatomy_names_match_drawn_vertebrae(phantom):
    present = set(np.unique(phantom.anatomy.labels).tolist())
    for name in phantom.anatomy.vertebrae:
        assert lb.vertebra_label(name) in present
    for level in phantom.anatomy.levels:
        assert lb.disc_label(level) in present
    assert lb.CANAL in present and lb.FORAMEN_LEFT in present and lb.ROOT_RIGHT in present


def test_findings_are_schema_valid_ground_truth_without_probabilities(phantom):
    again = StudyFindings.model_validate_json(phantom.findings.to_json())
    assert again == phantom.findings
    for lf in phantom.findings.levels:
        assert lf.pfirrmann.probability is None
        if lf.pfirrmann.assessed:
            assert lf.level in phantom.meta["levels"]


def test_same_seed_writes_byte_identical_study(tmp_path: Path, phantom):
    a, b = tmp_path / "a", tmp_path / "b"
    write_study(phantom, a)
    write_study(generate_study(1_000_003, site="site-a"), b)

    def digest(root: Path) -> dict[str, str]:
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    da, db = digest(a), digest(b)
    assert da == db
    assert any(k.startswith("dicom/") for k in da)
    assert {"findings.json", "meta.json", "labels/sag_t2.nii.gz"} <= set(da)


def test_written_study_loads_back_with_same_pixels_geometry_and_findings(tmp_path: Path, phantom):
    write_study(phantom, tmp_path / "s")
    back = load_phantom(tmp_path / "s")
    assert back.findings == phantom.findings
    for s in phantom.study.series:
        # Matched by instance, not stack index: ingest may order angled blocks differently.
        r = next(
            x for x in back.study.series if set(x.sop_instance_uids) == set(s.sop_instance_uids)
        )
        assert r.role == s.role
        np.testing.assert_allclose(r.pixels, s.pixels, atol=1e-3)
        np.testing.assert_allclose(r.affine, s.affine, atol=1e-3)
    np.testing.assert_array_equal(back.anatomy.labels, phantom.anatomy.labels)


def test_site_registry_keeps_new_site_out_of_training():
    assert NEW_SITE not in TRAINING_SITES
    assert set(TRAINING_SITES) | {NEW_SITE} <= set(SITES)


def test_unknown_site_or_override_is_a_usage_error():
    with pytest.raises(UsageError):
        generate_study(1, site="site-z")
    with pytest.raises(UsageError):
        generate_study(1, render=False, colour="blue")


def test_seed_ranges_separate_training_from_evaluation():
    assert split_of(5) == "training"
    assert split_of(150_000) == "validation"
    assert split_of(250_000) == "fine_tune"
    assert split_of(1_000_000) == "evaluation"
