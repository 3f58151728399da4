"""Alignment: slip of one body on the next (Meyerding), from the two bodies' corners."""

from __future__ import annotations

from reporter.grounding.measures.disc import Body


def slip_of(up: Body, lo: Body) -> float | None:
    """Meyerding slip: the upper body's posterior-inferior corner against the lower body's
    posterior-superior corner, along the lower body's superior endplate, in % of its length."""
    corner_u = float((up.face @ lo.e).max())
    return 100.0 * (lo.post_corner - corner_u) / lo.depth
