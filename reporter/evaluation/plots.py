"""Evaluation figures (matplotlib, Agg backend: no display needed): a reliability diagram, one
confusion matrix per condition, and per-site bars of kappa and hallucination rates."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from reporter.contracts.findings import field_values
from reporter.evaluation import metrics as M
from reporter.evaluation.scoring import ALL_CONDITIONS, CONDITIONS, StudyRecord


def write_all(out_dir: Path, metrics: dict[str, Any], records: Sequence[StudyRecord]) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    ok = [r for r in records if r.error is None]
    paths = [reliability_diagram(out_dir / "reliability.png", ok)]
    for cond in ALL_CONDITIONS:
        pairs = [p for r in ok for p in r.pairs.get(cond, [])]
        if pairs:
            paths.append(confusion_plot(out_dir / f"confusion_{cond}.png", cond, pairs))
    paths.append(site_bars(out_dir / "by_site.png", metrics))
    return paths


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def reliability_diagram(path: Path, records: Sequence[StudyRecord]) -> Path:
    pts = [c for r in records for c in r.calibration]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    if pts:
        conf = [p[0] for p in pts]
        ok = [bool(p[1]) for p in pts]
        bins = M.reliability_bins(conf, ok)
        used = [b for b in bins if b.count]
        width = 1.0 / M.ECE_BINS
        ax.bar(
            [b.lo + width / 2 for b in used],
            [b.accuracy for b in used],
            width=width * 0.9,
            color="#4c72b0",
            edgecolor="black",
            lw=0.5,
            label="accuracy",
        )
        ax.plot(
            [b.mean_confidence for b in used],
            [b.mean_confidence for b in used],
            "o",
            color="#dd8452",
            ms=4,
            label="mean confidence",
        )
        ece = M.expected_calibration_error(conf, ok)
        ax.set_title(f"Reliability ({len(pts)} statements, ECE {ece:.3f}, {M.ECE_BINS} bins)")
    else:
        ax.set_title("Reliability (no statements with probabilities)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("stated probability")
    ax.set_ylabel("fraction correct")
    ax.legend(loc="upper left", fontsize=8)
    ax.title.set_fontsize(9)
    return _save(fig, path)


def confusion_plot(path: Path, cond: str, pairs: Sequence[Sequence[Any]]) -> Path:
    labels = list(field_values(ALL_CONDITIONS[cond][0]))
    cm = M.confusion_matrix([p[0] for p in pairs], [p[1] for p in pairs], labels)
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(labels), 1.0 + 0.7 * len(labels)))
    # Row-normalised colour (recall per true class), raw counts as text.
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if norm[i, j] > 0.6 else "black",
            )
    names = [str(v) for v in labels]
    ax.set_xticks(range(len(labels)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("truth")
    kappa = M.quadratic_weighted_kappa([p[0] for p in pairs], [p[1] for p in pairs], labels)
    ax.set_title(f"{cond} (QWK {kappa:.3f})", fontsize=9)
    return _save(fig, path)


def site_bars(path: Path, metrics: dict[str, Any]) -> Path:
    sites = sorted(metrics.get("by_site", {}))
    conds = list(CONDITIONS)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / max(len(sites), 1)
    for k, site in enumerate(sites):
        block = metrics["by_site"][site]
        kappas = [
            np.nan if block["conditions"][c]["qwk"] is None else block["conditions"][c]["qwk"]
            for c in conds
        ]
        ax1.bar(np.arange(len(conds)) + k * width, kappas, width, label=site)
        hall = block["hallucination"]
        vals = [hall.get("raw_rate"), hall.get("after_grounding_rate")]
        ax2.bar(
            np.arange(2) + k * width,
            [np.nan if v is None else 100 * v for v in vals],
            width,
            label=site,
        )
    ax1.set_xticks(np.arange(len(conds)) + 0.4 - width / 2, conds, rotation=30, ha="right")
    ax1.set_ylabel("quadratic weighted kappa")
    ax1.set_ylim(min(0, ax1.get_ylim()[0]), 1)
    ax1.legend(fontsize=8)
    ax1.set_title("Kappa per condition and site", fontsize=10)
    ax2.set_xticks(np.arange(2) + 0.4 - width / 2, ["raw", "after grounding"])
    ax2.set_ylabel("% of positive statements hallucinated")
    ax2.legend(fontsize=8)
    ax2.set_title("Hallucination per site", fontsize=10)
    return _save(fig, path)
