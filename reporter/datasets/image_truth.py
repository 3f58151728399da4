"""Truth drawn on the pixels of one input image (2-D formats), as the readers hand it to the
evaluation (reporter.evaluation.image_scoring).

A 2-D case's Study is made by reporter.ingest.image2d, which turns each image to the standard
display by the orientation it detects; the truth here stays on the image as it was given (or, for
lumbar3d-2d, on the slice before it was turned), so scoring can undo the *detected* orientation
and a wrong detection costs what it would cost a user.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

# A disc box: (x0, y0, x1, y1) in pixels, origin at the image's top-left corner, y down.
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class ImageMask:
    """A label mask of one image of the case's Study.

    `labels` is ``"named"`` (reporter.contracts.labels values: one per vertebra and disc) or
    ``"classes"`` (``CLASS_VALUES``: vertebrae, discs and canal pooled, no level names).
    The image file shows `mask` turned by `orientation` (a code of
    reporter.ingest.image2d_nets.apply_orientation; 0: the mask is on the file's own pixels).
    `spacing_mm`: the true pixel spacing where known (never given to the pipeline)."""

    mask: np.ndarray = field(repr=False)  # (rows, cols) integer labels
    series_index: int  # the series of the case's Study read from that image
    labels: Literal["named", "classes"]
    orientation: int = 0
    spacing_mm: float | None = None
    source: str = ""


# Values of a "classes" mask (the spider_slices layout).
CLASS_VALUES: dict[str, int] = {"vertebra": 1, "disc": 2, "canal": 3}


@dataclass(frozen=True)
class DiscBoxes:
    """The disc boxes of one image of the case's Study, one group per disc (overlapping boxes
    of one disc merged into their enclosing box), cranio-caudal (by vertical centre)."""

    groups: list[Box]
    series_index: int
    image: str = ""
