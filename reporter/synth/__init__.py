"""The phantom data engine: synthetic lumbar spine MRI studies with exact ground truth.

    from reporter.synth import generate_study, write_study, load_phantom
    ph = generate_study(1_000_001, site="site-a")      # in memory: .study .anatomy .findings .meta
    write_study(ph, "out/study_1000001")              # DICOM, findings.json, meta.json, labels/

Every ground-truth grade is measured back from the drawn geometry and noise-free signal with the
functions in reporter.grounding.grading (see docs/phantoms.md). Seeds: reporter.synth.seeds.
"""

from __future__ import annotations

from reporter.synth.phantom import GENERATOR_VERSION, Phantom, generate_study
from reporter.synth.sites import NEW_SITE, SITES, TRAINING_SITES, SiteProfile, get_site
from reporter.synth.storage import load_phantom, write_study

__all__ = [
    "GENERATOR_VERSION",
    "NEW_SITE",
    "SITES",
    "TRAINING_SITES",
    "Phantom",
    "SiteProfile",
    "generate_study",
    "get_site",
    "load_phantom",
    "write_study",
]
