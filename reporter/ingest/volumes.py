"""Pixel volumes of geometric stacks: every image decoded once into float32 (rescaled), and
damaged images left out when the rest of the stack can still be used (never repaired)."""

from __future__ import annotations

import numpy as np

from reporter.ingest import fastread as fast
from reporter.ingest.pixels import PixelDataError, read_pixels
from reporter.ingest.stacks import Stack, stack_affine

# A series with damaged images is used without them only if this many consecutive slices (and at
# least half the series) remain; fewer would not show a lumbar spine from side to side.
MIN_SALVAGED_SLICES = 3


def good_run(n: int, bad: list[int]) -> list[int]:
    """The longest run of consecutive slice indices in range(n) not in `bad` (the first of equal
    runs): a sub-stack keeps regular geometry; a gap would not."""
    best: list[int] = []
    run: list[int] = []
    for k in range(n):
        if k in bad:
            run = []
            continue
        run.append(k)
        if len(run) > len(best):
            best = list(run)
    return best


def decode_stacks(stacks: list[Stack]) -> tuple[list[Stack], list[np.ndarray], str | None]:
    """float32 volumes (rescaled) for every stack; each file read and decoded once.

    An image whose pixels cannot be decoded (a truncated file) is left out with the stack cut to
    its longest run of good slices, when that run keeps at least half the stack and
    MIN_SALVAGED_SLICES slices; otherwise the series is unusable (PixelDataError). The third
    value says what was left out (None when nothing was).

    Single-frame native data goes through one reused staging buffer (see read_pixels); a
    multi-frame object is decoded once and kept until all its stacks are filled."""
    staging: dict[tuple[str, int], np.ndarray] = {}
    multiframe: dict[int, np.ndarray] = {}
    header_damage: dict[int, str | None] = {}
    volumes = []
    kept: list[Stack] = []
    damage: list[str] = []
    for stack in stacks:
        f0 = stack.frames[0]
        n = len(stack.frames)
        volume = np.empty((n, f0.rows, f0.cols), dtype=np.float32)
        bad: list[int] = []
        first_problem = ""
        for k, f in enumerate(stack.frames):
            try:
                # An image whose header lacks a reference UID or has essential values of the
                # wrong VR is damaged like one whose pixels are: the SEG / SR writers need those
                # values. Other attributes of the wrong VR are dropped from the header.
                if id(f.ds) not in header_damage:
                    header_damage[id(f.ds)] = fast.vet_header(f.ds)
                if header_damage[id(f.ds)]:
                    raise PixelDataError(str(header_damage[id(f.ds)]))
                if f.frame is None:
                    images = read_pixels(f.ds, f.path, f.pixel_offset, staging)
                    if images.shape[0] != 1:
                        raise PixelDataError(
                            f"{images.shape[0]} frames without per-frame geometry "
                            "(not an enhanced MR object)"
                        )
                    image = images[0]
                else:
                    key = id(f.ds)
                    if key not in multiframe:
                        multiframe[key] = read_pixels(f.ds, f.path, f.pixel_offset)
                    image = multiframe[key][f.frame]
                if (f.rows, f.cols) != image.shape:
                    raise PixelDataError("pixels do not match the matrix")
            except PixelDataError as exc:
                bad.append(k)
                first_problem = first_problem or f"{exc} (instance {f.sop_uid})"
                continue
            plane = volume[k]
            plane[...] = image
            if f.slope != 1.0:
                plane *= f.slope
            if f.intercept != 0.0:
                plane += f.intercept
        if bad:
            run = good_run(n, bad)
            if len(run) < max(MIN_SALVAGED_SLICES, -(-n // 2)) or n == 1:
                more = f"; {len(bad)} of {n} images damaged" if len(bad) > 1 else ""
                raise PixelDataError(first_problem + more)
            frames = [stack.frames[k] for k in run]
            stack = Stack(frames=frames, affine=stack_affine(frames), plane=stack.plane)
            volume = np.ascontiguousarray(volume[run[0] : run[-1] + 1])
            damage.append(
                f"{len(bad)} damaged image(s) left out ({first_problem}); slices "
                f"{run[0] + 1}-{run[-1] + 1} of {n} used"
            )
        if _photometric(f0.ds) == "MONOCHROME1":
            volume = volume.max() + volume.min() - volume  # bright = high signal, as MONOCHROME2
        volumes.append(volume)
        kept.append(stack)
    return kept, volumes, "; ".join(damage) or None


def _photometric(ds: object) -> str:
    """PhotometricInterpretation, or "" when absent or damaged (pydicom converts lazily)."""
    try:
        return str(ds.get("PhotometricInterpretation", "") or "").strip()  # type: ignore[attr-defined]
    except Exception:
        return ""
