"""Site profiles: scanner, protocol and image quality of the sites phantoms pretend to come from.

site-a and site-b are the training sites; site-c (0.55 T low field, thicker slices, noisier, another
vendor's headers and contrast) is never used for training and plays "the new site" in site-shift
and fine-tuning experiments. `random` is the domain-randomized face (SynthSeg-style intensities)
for segmenter training only.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SequenceProfile:
    tr: float  # ms
    te: float  # ms
    description: str
    flip_angle: float = 90.0
    echo_train_length: int = 1


@dataclass(frozen=True)
class SiteProfile:
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
    artifact_rates: dict[str, float] = field(default_factory=dict)
    domain_randomized: bool = False


SITES: dict[str, SiteProfile] = {
    "site-a": SiteProfile(
        name="site-a",
        field_strength=1.5,
        manufacturer="SIEMENS",
        model_name="MAGNETOM Aera",
        institution="Phantom Site A",
        software_versions="syngo MR E11",
        station_name="AWP00001",
        sag_t1=SequenceProfile(550.0, 11.0, "t1_tse_sag", 150.0, 3),
        sag_t2=SequenceProfile(3500.0, 95.0, "t2_tse_sag", 150.0, 17),
        ax_t2=SequenceProfile(4000.0, 100.0, "t2_tse_tra", 150.0, 17),
        sag_slices=(15, 16),
        sag_thickness=4.0,
        sag_gap=0.4,
        sag_matrix=320,
        sag_fov=300.0,
        ax_thickness=4.0,
        ax_gap=0.4,
        ax_matrix=224,
        ax_fov=200.0,
        ax_slices_per_block=4,
        snr_t1=28.0,
        snr_t2=24.0,
        artifact_rates={"ghosting": 0.10, "gibbs": 0.25, "wrap": 0.05},
    ),
    "site-b": SiteProfile(
        name="site-b",
        field_strength=3.0,
        manufacturer="GE MEDICAL SYSTEMS",
        model_name="DISCOVERY MR750",
        institution="Phantom Site B",
        software_versions="DV26.0_R03",
        station_name="GEMR750",
        sag_t1=SequenceProfile(620.0, 9.0, "SAG T1 FSE", 90.0, 3),
        sag_t2=SequenceProfile(3200.0, 102.0, "SAG T2 FSE", 90.0, 24),
        ax_t2=SequenceProfile(3800.0, 98.0, "AX T2 FSE", 90.0, 20),
        sag_slices=(17, 19),
        sag_thickness=3.0,
        sag_gap=0.5,
        sag_matrix=320,
        sag_fov=280.0,
        ax_thickness=3.5,
        ax_gap=0.5,
        ax_matrix=256,
        ax_fov=180.0,
        ax_slices_per_block=4,
        snr_t1=38.0,
        snr_t2=32.0,
        artifact_rates={"ghosting": 0.15, "gibbs": 0.2, "wrap": 0.05},
    ),
    "site-c": SiteProfile(
        name="site-c",
        field_strength=0.55,
        manufacturer="Philips",
        model_name="Ingenia Low Field",
        institution="Phantom Site C",
        software_versions="5.7.1",
        station_name="PHILIPS-LF1",
        sag_t1=SequenceProfile(450.0, 14.0, "T1W_TSE_SAG", 90.0, 4),
        sag_t2=SequenceProfile(2800.0, 110.0, "T2W_TSE_SAG", 90.0, 16),
        ax_t2=SequenceProfile(3000.0, 110.0, "T2W_TSE_TRA", 90.0, 16),
        sag_slices=(13, 14),
        sag_thickness=5.0,
        sag_gap=0.5,
        sag_matrix=288,
        sag_fov=290.0,
        ax_thickness=5.0,
        ax_gap=0.5,
        ax_matrix=224,
        ax_fov=200.0,
        ax_slices_per_block=3,
        snr_t1=13.0,
        snr_t2=11.0,
        rescale_slope=1.21,
        artifact_rates={"ghosting": 0.25, "gibbs": 0.3, "wrap": 0.08},
    ),
}

# The domain-randomized face: geometry like site-a/b, intensities drawn per label per study.
SITES["random"] = SiteProfile(
    **{
        **SITES["site-a"].__dict__,
        "name": "random",
        "institution": "Phantom Randomized",
        "domain_randomized": True,
    }
)

TRAINING_SITES: tuple[str, ...] = ("site-a", "site-b")
NEW_SITE = "site-c"  # never used for training


def get_site(name: str) -> SiteProfile:
    from reporter.errors import UsageError

    if name not in SITES:
        raise UsageError(f"unknown site {name!r}; expected one of {', '.join(SITES)}")
    return SITES[name]
