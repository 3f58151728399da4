"""Site profiles: scanner, protocol and image quality of the sites phantoms pretend to come from.

The profiles are data (`sites.json` beside this module), validated here on import: a missing or
unknown key is an error naming it. site-a and site-b are the training sites; site-c (0.55 T low
field, thicker slices, noisier, another vendor's headers and contrast) is never used for training
and plays "the new site" in site-shift and fine-tuning experiments. `random` is the
domain-randomized face (SynthSeg-style intensities) for segmenter training only.
"""

from __future__ import annotations

import json
from importlib import resources

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reporter.errors import ModelFileError

_SITES_FILE = "sites.json"


class _Profile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SequenceProfile(_Profile):
    tr: float  # ms
    te: float  # ms
    description: str
    flip_angle: float = 90.0
    echo_train_length: int = 1


class SiteProfile(_Profile):
    name: str
    field_strength: float  # T
    manufacturer: str
    model_name: str
    institution: str
    software_versions: str
    station_name: str
    sag_t1: SequenceProfile
    sag_t2: SequenceProfile
    ax_t2: SequenceProfile
    sag_slices: tuple[int, int]  # min, max slices
    sag_thickness: float  # mm
    sag_gap: float  # mm between slices
    sag_matrix: int
    sag_fov: float  # mm
    ax_thickness: float
    ax_gap: float
    ax_matrix: int
    ax_fov: float
    ax_slices_per_block: int
    snr_t1: float  # mean marrow signal over noise sigma (before bias)
    snr_t2: float
    rescale_slope: float = 1.0
    # Probability of each optional artefact per series.
    artifact_rates: dict[str, float] = Field(default_factory=dict)
    domain_randomized: bool = False


class _Randomized(_Profile):
    based_on: str
    institution: str
    domain_randomized: bool
    bases: tuple[str, ...]  # each randomized study takes the geometry of one, drawn per seed
    artifact_rates: dict[str, float]
    note: str


class _SitesFile(_Profile):
    version: str
    note: str
    sites: dict[str, SiteProfile]
    random: _Randomized
    training_sites: tuple[str, ...]
    new_site: str


def _load() -> _SitesFile:
    text = (resources.files("reporter.synth") / _SITES_FILE).read_text(encoding="utf-8")
    try:
        doc = _SitesFile.model_validate(json.loads(text))
    except (ValueError, ValidationError) as exc:
        first = " ".join(str(exc).split())[:300]
        raise ModelFileError(f"reporter/synth/{_SITES_FILE} is invalid: {first}") from None
    for name in (*doc.training_sites, doc.new_site, doc.random.based_on, *doc.random.bases):
        if name not in doc.sites:
            raise ModelFileError(f"reporter/synth/{_SITES_FILE} names an unknown site {name!r}")
    return doc


_DOC = _load()
SITES: dict[str, SiteProfile] = dict(_DOC.sites)
# The domain-randomized face: geometry like its base site, intensities drawn per label per study.
SITES["random"] = SITES[_DOC.random.based_on].model_copy(
    update={
        "name": "random",
        "institution": _DOC.random.institution,
        "domain_randomized": _DOC.random.domain_randomized,
    }
)
RANDOMIZED_BASES: tuple[str, ...] = _DOC.random.bases
RANDOMIZED_ARTIFACT_RATES: dict[str, float] = dict(_DOC.random.artifact_rates)
TRAINING_SITES: tuple[str, ...] = _DOC.training_sites
NEW_SITE = _DOC.new_site  # never used for training


def get_site(name: str) -> SiteProfile:
    from reporter.errors import UsageError

    if name not in SITES:
        raise UsageError(f"unknown site {name!r}; expected one of {', '.join(SITES)}")
    return SITES[name]
