"""Real data: the lumbar3d label maps import with exactly their stated level names, and the
imported vertebral bodies and discs have heights inside published normal ranges.

Ranges (mid-sagittal central height):
- lumbar vertebral bodies 20-34 mm: adult L1-L5 body heights are about 24-30 mm (Panjabi MM et
  al., Human lumbar vertebrae: quantitative three-dimensional anatomy, Spine 1992;17:299-306),
  widened by about 2 SD;
- lumbar discs 4.5-18 mm: on MRI, healthy middle disc heights run from 7.9 mm (L1-L2) to 12.0 mm
  (L4-L5) and posterior heights from 5.5 to 8.1 mm (Mansur DI et al., Morphometric study of
  lumbar intervertebral spaces by using MRI, J Lumbini Med Coll 2021;9); middle heights up to
  13.8 +- 2.0 mm (L4-L5) in healthy adults (Measuring dimensions of lumbar intervertebral discs
  in normal subjects, Anat Sci J 2013). The lower bound admits the posterior height minus one
  voxel, because a conservative mask's central height sits between the two.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from reporter.anatomy import segment
from reporter.contracts import labels as L
from reporter.contracts.study import Series, Study
from reporter.geometry import nifti_to_lps_affine
from reporter.grounding.measure import central_heights_mm

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "lumbar3d"
SEGS = sorted(REAL.glob("*_seg.nii.gz")) if REAL.is_dir() else []
BODY_MM = (20.0, 34.0)
DISC_MM = (4.5, 18.0)

pytestmark = [
    pytest.mark.real,
    pytest.mark.skipif(not SEGS, reason="../shared/data/real/lumbar3d is not available"),
]


def _study(image: Path) -> Study:
    img = nib.load(str(image))
    series = Series(
        series_uid="2.25.1",
        study_uid="2.25.0",
        plane="sagittal",
        weighting="T2",
        role="sag_t2",
        pixels=np.asarray(img.dataobj, dtype=np.float32),
        affine=nifti_to_lps_affine(img.affine),
    )
    return Study(study_uid="2.25.0", series=[series])


@pytest.mark.parametrize("seg", SEGS, ids=[p.name.split("_seg")[0] for p in SEGS])
def test_lumbar3d_masks_import_with_their_stated_names_and_normal_heights(seg: Path) -> None:
    stated = json.loads(seg.with_name(seg.name.replace(".nii.gz", ".json")).read_text())["labels"]
    names = sorted(set(stated.values()))
    anatomy = segment(_study(seg.with_name(seg.name.replace("_seg", ""))), seg_path=seg)
    vertebrae = [n for n in names if "-" not in n]
    discs = [n for n in names if "-" in n]
    if vertebrae:
        assert anatomy.vertebrae == sorted(vertebrae, key=lambda n: int(n[1:]))
    if discs:
        assert sorted(anatomy.levels) == sorted(discs)
    assert not anatomy.naming_uncertain
    values = [L.vertebra_label(n) for n in vertebrae] + [L.disc_label(n) for n in discs]
    heights = central_heights_mm(anatomy.labels, anatomy.affine, values)
    assert set(heights) == set(values)
    for value, h in heights.items():
        lo, hi = BODY_MM if L.is_vertebra(value) else DISC_MM
        assert lo <= h <= hi, f"{L.label_name(value)}: {h:.1f} mm outside {lo}-{hi} mm"
