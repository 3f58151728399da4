"""Phantom engine v2: realism by randomisation (SynthSeg-style), on v1's spine and ground truth.

    from reporter.synth.v2 import generate_study_v2
    ph = generate_study_v2(7, slices="mid")   # a v1 Phantom: .study .anatomy .findings .meta

What is drawn and why: docs/phantoms.md ("Engine v2"). Ranges: params.json beside this module.
"""

from __future__ import annotations

from reporter.synth.v2.params import CLASS_NAMES, PARAMS
from reporter.synth.v2.study import ENGINE_VERSION, generate_study_v2

__all__ = ["CLASS_NAMES", "ENGINE_VERSION", "PARAMS", "generate_study_v2"]
