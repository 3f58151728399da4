"""Tissue classes and their relaxation parameters, and the spin-echo signal equation.

Values at 1.5 T are typical literature values (Bottomley et al., Med Phys 1984;11:425 for the field
dependence of T1; Gold et al., AJR 2004;183:343 and de Bazelaire et al., Radiology 2004;230:652 for
musculoskeletal T1/T2 at 1.5 and 3 T). Fat T2 is the *effective* fast-spin-echo value (J-coupling
makes fat bright on FSE T2), which is what clinical lumbar protocols show.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tissue:
    name: str
    pd: float  # proton density, relative to water
    t1: float  # ms at 1.5 T
    t2: float  # ms
    t1_field_exponent: float = 0.3  # T1(B) = T1(1.5 T) * (B / 1.5) ** exponent


# Fixed tissue ids; per-study tissues (nucleus of each disc, Modic bands) are appended after these.
AIR, VISCERA, SUBCUT_FAT, MUSCLE, CORTEX, MARROW, ANNULUS, NUCLEUS, CSF, CORD, ROOT, FAT = range(12)
FLAVUM, POST_BONE, LIGAMENT, FACET_FLUID, METAL, VESSEL = range(12, 18)

BASE_TISSUES: tuple[Tissue, ...] = (
    Tissue("air", 0.0, 1000.0, 1.0),
    Tissue("viscera", 0.80, 800.0, 70.0),
    Tissue("subcutaneous_fat", 0.95, 280.0, 150.0, 0.1),
    Tissue("muscle", 0.70, 1000.0, 38.0),
    Tissue("cortex", 0.05, 1000.0, 5.0),
    Tissue("marrow", 0.82, 420.0, 82.0, 0.15),  # adult fatty-red marrow mix
    Tissue("annulus", 0.55, 900.0, 38.0),
    Tissue("nucleus", 0.92, 1150.0, 130.0),  # template; each disc gets its own copy
    Tissue("csf", 1.00, 4000.0, 2000.0, 0.05),
    Tissue("cord", 0.75, 850.0, 80.0),
    Tissue("root", 0.72, 900.0, 70.0),
    Tissue("fat", 0.95, 280.0, 150.0, 0.1),
    Tissue("ligamentum_flavum", 0.45, 800.0, 45.0),
    Tissue("posterior_bone", 0.75, 480.0, 80.0, 0.15),  # marrow of arch and processes
    Tissue("ligament", 0.25, 800.0, 20.0),
    Tissue("facet_fluid", 0.95, 3000.0, 800.0, 0.05),
    Tissue("metal", 0.0, 1000.0, 1.0),
    Tissue("vessel_slow_flow", 0.45, 1300.0, 60.0),  # IVC: partial flow void, dark-grey
)


def relaxation(tissue: Tissue, field_t: float) -> tuple[float, float, float]:
    t1 = tissue.t1 * (field_t / 1.5) ** tissue.t1_field_exponent
    return tissue.pd, t1, tissue.t2


def spin_echo(
    pd: np.ndarray | float, t1: np.ndarray | float, t2: np.ndarray | float, tr: float, te: float
) -> np.ndarray:
    """S = PD (1 - exp(-TR/T1)) exp(-TE/T2): the spin-echo signal, noise-free."""
    pd, t1, t2 = (np.asarray(a, dtype=float) for a in (pd, t1, t2))
    return pd * (1.0 - np.exp(-tr / t1)) * np.exp(-te / t2)


def tissue_signal(tissues: list[Tissue], field_t: float, tr: float, te: float) -> np.ndarray:
    """Noise-free signal of each tissue id for one sequence."""
    pd, t1, t2 = np.array([relaxation(t, field_t) for t in tissues]).T
    return spin_echo(pd, t1, t2, tr, te).astype(np.float32)
