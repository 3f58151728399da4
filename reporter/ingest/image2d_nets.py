"""The two small networks behind 2-D image input (reporter.ingest.image2d).

`OrientNet` looks at a whole image in whatever orientation it arrived and says which of the eight
flips/rotations (the dihedral group D4) maps the standard sagittal display -- superior at the top,
anterior at the left -- onto it, and whether the image is T1- or T2-weighted. `DiscNet` looks at
an image already turned to the standard display and puts one heatmap on each lumbar disc,
L1-L2 ... L5-S1 (one channel each), plus (from weights v2 on) a sixth channel on every disc in
view, thoracic ones included, so the discs above L1-L2 are found and named by counting up.

Both are deliberately small (CPU inference in well under a second). Weights ship as safetensors
with a JSON config under reporter/weights/image2d/ and are trained by
reporter.training.image2d_train on real images (SPIDER training patients, lumbar3d volumes).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

# Orientation codes: image = rot90(fliplr(canonical) if code >= 4 else canonical, k=code % 4),
# with numpy's rot90 (counter-clockwise). Code 0 is the standard display.
N_ORIENTATIONS = 8
DISC_LEVELS: tuple[str, ...] = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")
WEIGHTINGS: tuple[str, ...] = ("T1", "T2")
ORIENT_SIZE = 96
DISC_SIZE = 160
ANY_DISC = len(DISC_LEVELS)  # index of the "every disc in view" channel (6-channel weights)
# Cranial discs are kept only while they continue the chain: each step no longer than this times
# the median lumbar step (a gap means a missed disc, and counting past it would misname).
MAX_CRANIAL_STEP = 1.6


def apply_orientation(img: np.ndarray, code: int) -> np.ndarray:
    """The canonical image `img` as it looks in orientation `code`."""
    out = np.fliplr(img) if code >= 4 else img
    return np.ascontiguousarray(np.rot90(out, k=code % 4))


def undo_orientation(img: np.ndarray, code: int) -> np.ndarray:
    """Back to the standard display from an image seen in orientation `code`."""
    out = np.rot90(img, k=-(code % 4))
    return np.ascontiguousarray(np.fliplr(out) if code >= 4 else out)


def compose(a: int, b: int) -> int:
    """The code of applying `a` first, then `b` (found by acting on a probe image)."""
    probe = np.arange(6).reshape(2, 3)
    target = apply_orientation(apply_orientation(probe, a), b)
    for c in range(N_ORIENTATIONS):
        got = apply_orientation(probe, c)
        if got.shape == target.shape and np.array_equal(got, target):
            return c
    raise AssertionError("D4 is closed under composition")


def describe_orientation(code: int) -> str:
    """Where superior and anterior point in an image of orientation `code`, in words."""
    # Mark the top-centre (superior) and left-centre (anterior) of a canonical probe.
    probe = np.zeros((5, 5), dtype=int)
    probe[0, 2] = 1  # superior
    probe[2, 0] = 2  # anterior
    seen = apply_orientation(probe, code)
    sides = {(0, 2): "top", (4, 2): "bottom", (2, 0): "left", (2, 4): "right"}
    sup = sides[tuple(int(v) for v in np.argwhere(seen == 1)[0])]
    ant = sides[tuple(int(v) for v in np.argwhere(seen == 2)[0])]
    return f"superior at the {sup}, anterior at the {ant}"


def normalize(img: np.ndarray) -> np.ndarray:
    """Robust 1st-99th percentile scaling to [0, 1]; MR intensities have no absolute unit."""
    img = np.asarray(img, dtype=np.float32)
    lo, hi = np.percentile(img, [1.0, 99.0])
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((img - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def fit_square(img: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Resize so the longer side is `size` and zero-pad to a square (top-left aligned).

    Returns the square, the scale (square px per source px) and the resized (rows, cols)."""
    rows, cols = img.shape
    scale = size / max(rows, cols)
    nr, nc = max(1, round(rows * scale)), max(1, round(cols * scale))
    t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))[None, None]
    small = F.interpolate(t, size=(nr, nc), mode="bilinear", align_corners=False, antialias=True)
    out = np.zeros((size, size), dtype=np.float32)
    out[:nr, :nc] = small[0, 0].numpy()
    return out, scale, (nr, nc)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class OrientNet(nn.Module):
    """Image (any orientation) -> logits over 8 orientations and over T1/T2."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _block(1, w), nn.MaxPool2d(2),
            _block(w, 2 * w), nn.MaxPool2d(2),
            _block(2 * w, 4 * w), nn.MaxPool2d(2),
            _block(4 * w, 8 * w), nn.MaxPool2d(2),
            _block(8 * w, 8 * w),
        )  # fmt: skip
        # Orientation depends on *where* things are, so keep a coarse spatial map (6x6 at 96 px)
        # rather than pooling it away.
        self.pool = nn.AdaptiveAvgPool2d(3)
        self.orientation = nn.Linear(8 * w * 9, N_ORIENTATIONS)
        self.weighting = nn.Linear(8 * w * 9, len(WEIGHTINGS))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.pool(self.features(x)).flatten(1)
        return self.orientation(h), self.weighting(h)


class DiscNet(nn.Module):
    """Standard-display image -> one heatmap per lumbar disc at half resolution (a small U-Net)."""

    def __init__(self, width: int = 8, n_out: int = len(DISC_LEVELS)) -> None:
        super().__init__()
        w = width
        self.enc1 = _block(1, w)
        self.enc2 = _block(w, 2 * w)
        self.enc3 = _block(2 * w, 4 * w)
        self.enc4 = _block(4 * w, 8 * w)
        self.enc5 = _block(8 * w, 8 * w)
        self.dec4 = _block(16 * w, 4 * w)
        self.dec3 = _block(8 * w, 2 * w)
        self.dec2 = _block(4 * w, 2 * w)
        self.head = nn.Conv2d(2 * w, n_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        e4 = self.enc4(F.max_pool2d(e3, 2))
        # The deepest level sees ~the whole image: which disc is which depends on the sacrum.
        e5 = self.enc5(F.max_pool2d(e4, 2))
        d4 = self.dec4(torch.cat([F.interpolate(e5, scale_factor=2.0), e4], 1))
        d3 = self.dec3(torch.cat([F.interpolate(d4, scale_factor=2.0), e3], 1))
        d2 = self.dec2(torch.cat([F.interpolate(d3, scale_factor=2.0), e2], 1))
        return self.head(d2)  # (B, 5, H/2, W/2) logits


def decode_discs(logits: torch.Tensor, max_peaks: int = 14) -> tuple[np.ndarray, np.ndarray]:
    """Disc positions (5, 2) in heatmap pixels and scores, decoded jointly.

    Per-channel argmax lets two channels claim one disc or a channel jump to a neighbour. Here
    candidate discs are the local maxima of the channel-wise maximum map; the five levels are
    then assigned to candidates in cranio-caudal order (dynamic programming over the sequence,
    maximising the summed channel scores), so names stay distinct and ordered."""
    hm = torch.sigmoid(logits.detach().float())
    anymap = hm.max(0).values
    pooled = F.max_pool2d(anymap[None, None], 5, stride=1, padding=2)[0, 0]
    peaks = torch.nonzero((anymap == pooled) & (anymap > 0.05))
    if len(peaks) < len(DISC_LEVELS):
        return heatmap_peaks(logits)
    vals = anymap[peaks[:, 0], peaks[:, 1]]
    keep = torch.argsort(vals, descending=True)[:max_peaks]
    peaks = peaks[keep]
    peaks = peaks[torch.argsort(peaks[:, 0])]  # cranio-caudal (rows run downward)
    sc = hm[:, peaks[:, 0], peaks[:, 1]].T.numpy()  # (n_peaks, 5)
    n, c = sc.shape
    best = np.full((n, c), -np.inf)
    back = np.zeros((n, c), dtype=int)
    for i in range(n):
        best[i, 0] = sc[i, 0]
        for j in range(1, c):
            if i == 0:
                continue
            prev = int(np.argmax(best[:i, j - 1]))
            best[i, j] = best[prev, j - 1] + sc[i, j]
            back[i, j] = prev
    i = int(np.argmax(best[:, c - 1]))
    chosen = [i]
    for j in range(c - 1, 0, -1):
        i = back[i, j]
        chosen.append(i)
    chosen = chosen[::-1]
    h, w = anymap.shape
    m = anymap.numpy()
    pos = np.zeros((c, 2))
    score = np.zeros(c)
    for j, i in enumerate(chosen):
        r, q = int(peaks[i, 0]), int(peaks[i, 1])
        r0, r1, q0, q1 = max(0, r - 2), min(h, r + 3), max(0, q - 2), min(w, q + 3)
        win = m[r0:r1, q0:q1]
        rr, qq = np.mgrid[r0:r1, q0:q1]
        wsum = float(win.sum()) or 1.0
        pos[j] = (float((rr * win).sum() / wsum), float((qq * win).sum() / wsum))
        score[j] = float(sc[i, j])
    return pos, score


def heatmap_peaks(logits: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per channel: sub-pixel peak (row, col) in heatmap pixels and the peak's sigmoid score.

    A soft-argmax over a window around the hard maximum, so a second bright blob elsewhere does
    not drag the estimate."""
    hm = torch.sigmoid(logits.detach().float())
    c, h, w = hm.shape
    pos = np.zeros((c, 2), dtype=np.float64)
    score = np.zeros(c, dtype=np.float64)
    for ch in range(c):
        m = hm[ch].numpy()
        r, q = np.unravel_index(int(np.argmax(m)), m.shape)
        score[ch] = float(m[r, q])
        r0, r1, q0, q1 = max(0, r - 3), min(h, r + 4), max(0, q - 3), min(w, q + 4)
        win = m[r0:r1, q0:q1]
        wsum = float(win.sum()) or 1.0
        rr, qq = np.mgrid[r0:r1, q0:q1]
        pos[ch] = (float((rr * win).sum() / wsum), float((qq * win).sum() / wsum))
    return pos, score


def decode_chain(
    logits: torch.Tensor, threshold: float = 0.3
) -> tuple[np.ndarray, np.ndarray, list[tuple[float, float, float]]]:
    """Lumbar discs (5, 2) and scores as `decode_discs`, plus the discs cranial to L1-L2 found on
    the every-disc channel: (row, col, score) in heatmap pixels, nearest to L1-L2 first.

    Counting starts from the lumbar assignment and walks up the chain of every-disc peaks; it
    stops at the first step that is too long or turns back, so a missed disc ends the count
    instead of shifting every name above it."""
    pos, score = decode_discs(logits[:ANY_DISC])
    if logits.shape[0] <= ANY_DISC:
        return pos, score, []
    anymap = torch.sigmoid(logits[ANY_DISC].detach().float())
    pooled = F.max_pool2d(anymap[None, None], 5, stride=1, padding=2)[0, 0]
    peaks = torch.nonzero((anymap == pooled) & (anymap > threshold)).numpy().astype(float)
    steps = np.linalg.norm(np.diff(pos, axis=0), axis=1)
    step = float(np.median(steps))
    if step <= 0 or len(peaks) == 0:
        return pos, score, []
    cranial: list[tuple[float, float, float]] = []
    cur, direction = pos[0], pos[0] - pos[1]
    used = np.zeros(len(peaks), dtype=bool)
    while True:
        vec = peaks - cur
        dist = np.linalg.norm(vec, axis=1)
        ahead = (vec @ direction) > 0.5 * np.linalg.norm(direction) * dist
        ok = ~used & ahead & (dist > 0.5 * step) & (dist < MAX_CRANIAL_STEP * step)
        if not ok.any():
            break
        i = int(np.argmin(np.where(ok, dist, np.inf)))
        used[i] = True
        r, c = peaks[i]
        cranial.append((float(r), float(c), float(anymap[int(r), int(c)])))
        direction, cur = peaks[i] - cur, peaks[i]
    return pos, score, cranial


SEG_SIZE = 256
SEG_CLASSES: tuple[str, ...] = ("background", "vertebra", "disc", "canal")


class SegNet2D(nn.Module):
    """Standard-display image -> per-pixel logits over SEG_CLASSES at full input resolution (a
    U-Net of five levels). "vertebra" is bone of any level (body and posterior elements, as in
    SPIDER's masks); levels are assigned afterwards from DiscNet's named disc centres."""

    def __init__(self, width: int = 16, n_out: int = len(SEG_CLASSES)) -> None:
        super().__init__()
        w = width
        self.enc1 = _block(1, w)
        self.enc2 = _block(w, 2 * w)
        self.enc3 = _block(2 * w, 4 * w)
        self.enc4 = _block(4 * w, 8 * w)
        self.enc5 = _block(8 * w, 8 * w)
        self.dec4 = _block(16 * w, 4 * w)
        self.dec3 = _block(8 * w, 2 * w)
        self.dec2 = _block(4 * w, w)
        self.dec1 = _block(2 * w, w)
        self.head = nn.Conv2d(w, n_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        e4 = self.enc4(F.max_pool2d(e3, 2))
        e5 = self.enc5(F.max_pool2d(e4, 2))
        d4 = self.dec4(torch.cat([F.interpolate(e5, scale_factor=2.0), e4], 1))
        d3 = self.dec3(torch.cat([F.interpolate(d4, scale_factor=2.0), e3], 1))
        d2 = self.dec2(torch.cat([F.interpolate(d3, scale_factor=2.0), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2.0), e1], 1))
        return self.head(d1)  # (B, classes, H, W)
