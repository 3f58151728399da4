"""The trade-off of the posterior report policy: hallucinated share of asserted positive
statements against true-positive retention, over the assertion threshold.

Every raw positive statement whose verdict weighed evidence (StudyRecord.positive_posteriors,
filled when the run used the posterior policy) is asserted at threshold t when it is not
contradicted and its posterior of an abnormal value is >= t; retention counts over all true
positive raw statements (StudyRecord.raw_positives), as hallucination.true_positive_retention.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reporter.evaluation.scoring import StudyRecord

THRESHOLDS: tuple[float, ...] = tuple(
    sorted({*np.round(np.linspace(0.0, 1.0, 21), 3), 0.98, 0.99, 0.995, 0.998, 0.999})
)


def curve(records: Sequence[StudyRecord]) -> list[dict[str, float]]:
    """One point per threshold of THRESHOLDS; [] when no statement carries a posterior."""
    rows = [p for r in records if r.error is None for p in r.positive_posteriors]
    if not rows:
        return []
    n_true_raw = sum(not h for r in records if r.error is None for h, _ in r.raw_positives)
    hall = np.array([bool(p[0]) for p in rows])
    post = np.array([float(p[1]) for p in rows])
    contradicted = np.array([bool(p[2]) for p in rows])
    out = []
    for t in THRESHOLDS:
        asserted = ~contradicted & (post >= t)
        n = int(asserted.sum())
        n_hall = int((asserted & hall).sum())
        out.append(
            {
                "assert_at": float(t),
                "n_asserted": n,
                "hallucinated_after": n_hall / n if n else 0.0,
                "true_positive_retention": int((asserted & ~hall).sum()) / n_true_raw
                if n_true_raw
                else float("nan"),
            }
        )
    return out


def table(points: Sequence[dict[str, Any]]) -> str:
    """The curve as a markdown table (printed by the eval and written to summary.md)."""
    lines = [
        "| assert at posterior >= | asserted | hallucinated | retention |",
        "|---|---|---|---|",
    ]
    for p in points:
        lines.append(
            f"| {p['assert_at']:g} | {p['n_asserted']} | {100 * p['hallucinated_after']:.2f}% | "
            f"{100 * p['true_positive_retention']:.1f}% |"
        )
    return "\n".join(lines)


def plot(path: Path, points: Sequence[dict[str, Any]], title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ax.plot(
        [p["true_positive_retention"] for p in points],
        [100 * p["hallucinated_after"] for p in points],
        "o-",
        ms=3,
    )
    for p in points:
        if p["assert_at"] in (0.5, 0.9, 0.99, 0.999):
            ax.annotate(
                f"{p['assert_at']:g}",
                (p["true_positive_retention"], 100 * p["hallucinated_after"]),
                fontsize=7,
            )
    ax.axhline(0.5, ls=":", c="grey")
    ax.axvline(0.9, ls=":", c="grey")
    ax.set_xlabel("true-positive retention")
    ax.set_ylabel("hallucinated share of asserted positives (%)")
    ax.set_title(title or "posterior policy: threshold trade-off", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
