"""The package's own label convention for anatomy label maps (phantoms, segmenter, grounding).

Vertebrae and discs get one value per named structure so that level names survive resampling;
other tissues have fixed values. Imported label maps (SPIDER, TotalSpineSeg, ...) are translated
into this convention by `reporter.anatomy.importers`.
"""

from __future__ import annotations

from reporter.contracts.findings import LEVELS, VERTEBRAE

BACKGROUND = 0
CANAL = 1  # thecal sac / CSF space
CORD = 2  # spinal cord and conus medullaris (cauda equina is drawn inside CANAL)
FORAMEN_LEFT = 3  # perineural fat of the left neural foramen
FORAMEN_RIGHT = 4
ROOT_LEFT = 5  # exiting nerve root in the left foramen
ROOT_RIGHT = 6
POSTERIOR_ELEMENTS = 7  # pedicles, laminae, facets, spinous processes
LIGAMENTUM_FLAVUM = 8
MUSCLE = 9
SUBCUTANEOUS_FAT = 10

VERTEBRA_BASE = 20  # 20 + index in VERTEBRAE: T9=20 ... L6=29, S1 (sacrum)=30
DISC_BASE = 40  # 40 + index in LEVELS: T9-T10=40 ... L6-S1=51

TISSUE_NAMES: dict[int, str] = {
    CANAL: "canal",
    CORD: "cord",
    FORAMEN_LEFT: "foramen_left",
    FORAMEN_RIGHT: "foramen_right",
    ROOT_LEFT: "root_left",
    ROOT_RIGHT: "root_right",
    POSTERIOR_ELEMENTS: "posterior_elements",
    LIGAMENTUM_FLAVUM: "ligamentum_flavum",
    MUSCLE: "muscle",
    SUBCUTANEOUS_FAT: "subcutaneous_fat",
}


def vertebra_label(name: str) -> int:
    return VERTEBRA_BASE + VERTEBRAE.index(name)


def disc_label(level: str) -> int:
    return DISC_BASE + LEVELS.index(level)


def label_name(value: int) -> str:
    if value in TISSUE_NAMES:
        return TISSUE_NAMES[value]
    if VERTEBRA_BASE <= value < VERTEBRA_BASE + len(VERTEBRAE):
        return VERTEBRAE[value - VERTEBRA_BASE]
    if DISC_BASE <= value < DISC_BASE + len(LEVELS):
        return LEVELS[value - DISC_BASE]
    raise ValueError(f"Argument 'value' is not a label of this convention: {value}.")


def is_vertebra(value: int) -> bool:
    return VERTEBRA_BASE <= value < VERTEBRA_BASE + len(VERTEBRAE)


def is_disc(value: int) -> bool:
    return DISC_BASE <= value < DISC_BASE + len(LEVELS)


ALL_LABELS: dict[int, str] = {
    **TISSUE_NAMES,
    **{vertebra_label(v): v for v in VERTEBRAE},
    **{disc_label(lv): lv for lv in LEVELS},
}
