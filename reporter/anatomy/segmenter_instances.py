"""From the segmenter's generic classes to named structures.

The network says "vertebra", "sacrum", "disc", ...; this module splits those into instances,
drops what cannot be a mobile level (fragments, remnant discs inside the sacrum), estimates the
number of lumbar-type vertebrae, and hands the ordering and naming to reporter.anatomy.naming.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from reporter.anatomy import naming as nm
from reporter.anatomy import segmenter_data as sd
from reporter.anatomy.enumeration import UNCERTAIN_BELOW, Enumeration, estimate_lumbar_count
from reporter.anatomy.spine_parts import (
    MERGED_HEIGHT_RATIO,
    carve_lumbosacral_disc,
    merged_body,
    split_spine,
)
from reporter.contracts import labels as lab
from reporter.contracts.anatomy import Anatomy
from reporter.contracts.study import Series


def anatomy_from_generic(
    generic: np.ndarray,
    series: Series,
    detail: str = "",
    enumerate_count: bool = True,
    calibration: Mapping[str, float] | None = None,
) -> Anatomy:
    """Generic class map on `series`' grid -> Anatomy with named vertebrae and discs.

    `enumerate_count` weighs 4 / 5 / 6 lumbar vertebrae on the conus tip and the spinous step
    (estimate_lumbar_count) with the `calibration` of the weights that made `generic` (their
    enumeration.json, reporter.anatomy.enumeration_file); uncalibrated weights (None) keep five
    lumbar vertebrae at low confidence. Names are marked
    uncertain where the evidence leans towards a count it does not prove.
    """
    affine = np.asarray(series.affine, dtype=float)
    voxel_ml = float(np.prod(series.spacing)) / 1000.0
    mobile, discs, sacrum, axis = split_spine(generic, affine, voxel_ml)
    sacrum, discs = carve_lumbosacral_disc(
        sacrum, mobile[0] if mobile else None, discs, affine, axis
    )
    enum = Enumeration()
    if sacrum is not None and enumerate_count and calibration is not None:
        enum = estimate_lumbar_count(mobile, generic, affine, axis, calibration)
    n_lumbar, confidence = enum.n_lumbar, enum.confidence
    if mobile or discs or sacrum is not None:
        named, naming = nm.name_instances(
            [v.mask for v in mobile],
            [d.mask for d in discs],
            sacrum.mask if sacrum is not None else None,
            affine,
            n_lumbar=n_lumbar,
        )
    else:  # nothing spinal found: say so rather than name anything
        named = np.zeros(generic.shape, dtype=np.int16)
        naming = nm.Naming(
            naming_uncertain=True,
            confidence=0.0,
            convention="no vertebra, disc or sacrum found",
            missing=nm.lumbar_sequence(5)[3:],
        )
    if enum.posterior is not None and confidence < UNCERTAIN_BELOW:
        # The count is the best call but not a safe one: level names may be off by one.
        naming.naming_uncertain = True
        leaning = ", ".join(f"{k} lumbar {p:.3f}" for k, p in sorted(enum.posterior.items()))
        naming.convention += f"; lumbar count uncertain ({leaning})"
    merged = merged_body(mobile, affine, axis)
    if merged is not None:
        naming.naming_uncertain = True
        naming.convention += (
            f"; vertebra {merged + 1} above the sacrum is {MERGED_HEIGHT_RATIO:g}+ times the"
            " median body height (two bodies merged?)"
        )
    out = _tissues(generic, affine)
    structures = named > 0
    out[structures] = named[structures]
    return Anatomy(
        reference_series_uid=series.series_uid,
        reference_stack_index=series.stack_index,
        labels=out,
        affine=affine,
        source="builtin_segmenter",
        source_detail=detail,
        vertebrae=naming.vertebrae,
        levels=naming.levels,
        lumbar_vertebrae=naming.lumbar_vertebrae,
        transitional=naming.transitional,
        enumeration_confidence=min(naming.confidence, confidence),
        naming_uncertain=naming.naming_uncertain,
        naming_convention=naming.convention,
        missing=naming.missing,
    )


def _tissues(generic: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Non-level classes in our convention; foramina and roots get their side from the slice."""
    out = np.zeros(generic.shape, dtype=np.int16)
    out[generic == sd.CANAL] = lab.CANAL
    out[generic == sd.CORD] = lab.CORD
    out[generic == sd.POSTERIOR] = lab.POSTERIOR_ELEMENTS
    left = _left_slices(generic, affine)[:, None, None]
    out[(generic == sd.FORAMEN) & left] = lab.FORAMEN_LEFT
    out[(generic == sd.FORAMEN) & ~left] = lab.FORAMEN_RIGHT
    out[(generic == sd.ROOT) & left] = lab.ROOT_LEFT
    out[(generic == sd.ROOT) & ~left] = lab.ROOT_RIGHT
    return out


def _left_slices(generic: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Per slice: does it lie on the patient's left of the canal (LPS +x)?"""
    n = generic.shape[0]
    mid = np.array([[k, generic.shape[1] / 2, generic.shape[2] / 2] for k in range(n)])
    x = (mid @ affine[:3, :3].T + affine[:3, 3])[:, 0]
    canal = np.nonzero(generic == sd.CANAL)[0]
    centre = float(np.mean(x[canal])) if canal.size else float(np.mean(x))
    return x > centre
