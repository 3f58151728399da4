"""Plane, weighting and localizer rules on their own (vendor naming, angle tolerance)."""

from __future__ import annotations

import pytest
from dicom_factory import orientation

from reporter.ingest.classify import (
    classify_plane,
    classify_weighting,
    looks_like_localizer,
    weighting_hint,
)


@pytest.mark.parametrize(
    ("plane", "angle", "expected"),
    [
        ("sagittal", 0.0, "sagittal"),
        ("sagittal", 25.0, "sagittal"),
        ("axial", 0.0, "axial"),
        ("axial", -35.0, "axial"),  # an L5-S1 block angled along the disc
        ("axial", 39.0, "axial"),
        ("axial", 50.0, "oblique"),
        ("coronal", 10.0, "coronal"),
        ("coronal", 60.0, "axial"),
    ],
)
def test_plane_follows_the_normal_within_40_degrees(
    plane: str, angle: float, expected: str
) -> None:
    assert classify_plane(orientation(plane, angle)) == expected


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("t2_tse_sag_384", "T2"),  # Siemens
        ("SAG T2 FSE", "T2"),  # GE
        ("T2W_TSE", "T2"),  # Philips
        ("sT1W_TSE", "T1"),
        ("SAG T1 FLAIR", "T1"),
        ("t2_tirm_sag", "STIR"),
        ("Sag STIR", "STIR"),
        ("T12 level", None),
        ("ax pd", "other"),
        ("", None),
    ],
)
def test_description_hints_cover_vendor_naming(description: str, expected: str | None) -> None:
    assert weighting_hint(description) == expected


def test_physics_wins_over_a_contradicting_description_and_says_so() -> None:
    weighting, note = classify_weighting(4000.0, 110.0, None, ("SE",), "sag T1")
    assert weighting == "T2" and note is not None and "T1" in note


def test_gradient_echo_t2_star_is_other() -> None:
    assert classify_weighting(600.0, 20.0, None, ("GR",), "", flip_angle=20.0)[0] == "other"


def test_localizer_by_image_type_or_short_named_series() -> None:
    assert looks_like_localizer(("ORIGINAL", "PRIMARY", "LOCALIZER"), "t2_sag", 200)
    assert looks_like_localizer(("ORIGINAL", "PRIMARY"), "Survey", 9)
    assert not looks_like_localizer(("ORIGINAL", "PRIMARY"), "Survey", 40)
    assert not looks_like_localizer(("ORIGINAL", "PRIMARY"), "T2 BLOCK L4", 12)
