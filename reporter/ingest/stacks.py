"""From the frames of one series to geometric stacks: orientation clusters, order along the
slice normal, uniform spacing, and the (slice, row, col) -> LPS affine of reporter.contracts.study.

Lumbar protocols often acquire axial blocks angled to each disc inside one series. Each block
is a stack of its own (`stack_index`, cranial first). Anything that cannot be one clean stack
per block is reported as a problem, never repaired: interpolating a missing slice or dropping an
odd one out would hand downstream code geometry that the images do not have.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from reporter.contracts.study import Plane
from reporter.ingest.classify import classify_plane, slice_normal
from reporter.ingest.frames import Frame

# IOP components of one block agree to ~1e-5 in practice (written with 4-6 decimals).
ORIENTATION_TOLERANCE = 2e-3
# A step may deviate from the stack's regular step by this much before spacing is "not uniform".
STEP_TOLERANCE_MM = 0.1
STEP_TOLERANCE_REL = 0.1
# Frames of separate parallel blocks must be at least this many per block.
MIN_BLOCK_SLICES = 2
# Voxel edges (pixel spacing, slice step) an MR image can have, mm. Beyond them the header is
# damaged: a spacing of 1e30 mm passes every finite, positive check and overflows the
# segmenter's resampling downstream.
VOXEL_MM_RANGE = (0.01, 50.0)


def implausible_voxel(sizes: Sequence[float]) -> str | None:
    """Why voxel edges of these lengths (mm) cannot be an MR image's; None when they can."""
    lo, hi = VOXEL_MM_RANGE
    if all(np.isfinite(v) and lo <= v <= hi for v in sizes):
        return None
    shown = " x ".join(f"{v:.3g}" for v in sizes)
    return f"voxel size {shown} mm is outside {lo:g}..{hi:g} mm (a damaged header?)"


class StackProblem(ValueError):
    """Why the frames of a series do not form clean stacks; the message is user-facing."""


@dataclass(slots=True)
class Stack:
    frames: list[Frame]
    affine: np.ndarray  # 4x4, (k, j, i, 1) -> LPS mm
    plane: Plane


def _orientation_clusters(frames: Sequence[Frame]) -> list[list[Frame]]:
    clusters: list[list[Frame]] = []
    for f in frames:
        for c in clusters:
            if np.max(np.abs(c[0].iop - f.iop)) <= ORIENTATION_TOLERANCE:  # type: ignore[operator]
                c.append(f)
                break
        else:
            clusters.append([f])
    return clusters


def _split_runs(ordered: list[Frame], positions: np.ndarray) -> list[list[Frame]]:
    """Split parallel blocks at gaps; a gap that is a whole number of steps is missing slices."""
    if len(ordered) < 2:
        return [ordered]
    steps = np.diff(positions)
    step = float(np.min(steps))
    tol = max(STEP_TOLERANCE_MM, STEP_TOLERANCE_REL * step)
    if step <= tol:
        raise StackProblem(
            "several images share one slice position (echoes or phases mixed in one series?)"
        )
    irregular = np.abs(steps - step) > tol
    if not irregular.any():
        return [ordered]
    runs: list[list[Frame]] = [[ordered[0]]]
    for k, gap in enumerate(steps):
        if irregular[k]:
            multiple = gap / step
            if abs(multiple - round(multiple)) * step <= tol:
                raise StackProblem(
                    f"slice spacing not uniform: a gap of {gap:.2f} mm where the step is "
                    f"{step:.2f} mm ({round(multiple) - 1} slice(s) missing?)"
                )
            runs.append([])
        runs[-1].append(ordered[k + 1])
    if any(len(r) < MIN_BLOCK_SLICES for r in runs):
        raise StackProblem(
            f"slice spacing not uniform (steps {steps.min():.2f} to {steps.max():.2f} mm)"
        )
    return runs


def stack_affine(frames: Sequence[Frame], slice_step_mm: float | None = None) -> np.ndarray:
    """Affine of frames already ordered along the normal (layout: reporter.contracts.study)."""
    first = frames[0]
    iop, ipp = first.iop, first.ipp
    assert iop is not None and ipp is not None and first.pixel_spacing is not None
    row_spacing, col_spacing = first.pixel_spacing
    affine = np.eye(4)
    if len(frames) > 1:
        affine[:3, 0] = (frames[-1].ipp - ipp) / (len(frames) - 1)  # type: ignore[operator]
    else:
        affine[:3, 0] = slice_normal(iop) * (slice_step_mm or 1.0)
    affine[:3, 1] = iop[3:] * row_spacing  # down the rows: the IOP column cosine
    affine[:3, 2] = iop[:3] * col_spacing  # along a row: the IOP row cosine
    affine[:3, 3] = ipp
    return affine


def build_stacks(
    frames: Sequence[Frame], slice_step_mm: float | None = None, *, allow_blocks: bool = True
) -> list[Stack]:
    """Clean geometric stacks (cranial block first) or a StackProblem naming what is wrong."""
    if any(f.iop is None or f.ipp is None for f in frames):
        raise StackProblem("ImagePositionPatient / ImageOrientationPatient missing or invalid")
    if any(f.pixel_spacing is None for f in frames):
        raise StackProblem("PixelSpacing missing or invalid")
    matrices = sorted({(f.rows, f.cols) for f in frames})
    if len(matrices) > 1:
        shown = ", ".join(f"{r}x{c}" for r, c in matrices[:4])
        raise StackProblem(f"mixed matrix sizes ({shown})")
    clusters = _orientation_clusters(frames)
    planes = {classify_plane(c[0].iop) for c in clusters}  # type: ignore[arg-type]
    if len(clusters) > 1 and (
        not allow_blocks or len(planes) > 1 or min(len(c) for c in clusters) < MIN_BLOCK_SLICES
    ):
        raise StackProblem(
            f"mixed orientation ({len(clusters)} orientations: {', '.join(sorted(planes))})"
        )
    stacks: list[Stack] = []
    for cluster in clusters:
        normal = slice_normal(cluster[0].iop)  # type: ignore[arg-type]
        positions = np.array([f.ipp @ normal for f in cluster])  # type: ignore[operator]
        order = np.argsort(positions, kind="stable")
        ordered = [cluster[i] for i in order]
        runs = _split_runs(ordered, positions[order])
        for run in runs:
            affine = stack_affine(run, slice_step_mm)
            why = implausible_voxel(np.linalg.norm(affine[:3, :3], axis=0).tolist())
            if why is not None:
                raise StackProblem(why)
            _check_line(run, affine)
            stacks.append(Stack(run, affine, classify_plane(run[0].iop)))  # type: ignore[arg-type]
    if len(stacks) > 1 and len({s.frames[0].pixel_spacing for s in stacks}) > 1:
        raise StackProblem("blocks of the series differ in pixel spacing")
    # Cranial first: the highest centre along LPS z (superior is +z).
    stacks.sort(key=lambda s: -_centre_z(s))
    return stacks


def _centre_z(stack: Stack) -> float:
    """LPS z of the block's centre voxel. Not the mean of the slices' IPP: IPP is a corner,
    and in a tilted block the corners' z differs from the centres' by up to half the FOV times
    the tilt, enough to swap two neighbouring blocks."""
    f0 = stack.frames[0]
    centre = np.array([(len(stack.frames) - 1) / 2, (f0.rows - 1) / 2, (f0.cols - 1) / 2, 1.0])
    return float((stack.affine @ centre)[2])


def _check_line(run: Sequence[Frame], affine: np.ndarray) -> None:
    if len(run) < 3:
        return
    predicted = np.arange(len(run))[:, None] * affine[:3, 0] + affine[:3, 3]
    actual = np.array([f.ipp for f in run])
    residual = float(np.max(np.linalg.norm(actual - predicted, axis=1)))
    step = float(np.linalg.norm(affine[:3, 0]))
    if residual > max(STEP_TOLERANCE_MM, STEP_TOLERANCE_REL * step):
        raise StackProblem(
            f"slice positions are not evenly spaced on one line (off by up to {residual:.2f} mm)"
        )
