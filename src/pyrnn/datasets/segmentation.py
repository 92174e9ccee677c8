"""A segmentation task made offline from real data: the bundled handwritten digits placed at
random positions on cluttered, noisy canvases, with their stroke masks as labels.

Legend: N = images, S = canvas side (pixels), k = upscaling factor of a digit (8x8 -> 8k x 8k).

Each canvas starts as low-amplitude Gaussian noise; clutter is drawn first (straight strokes of
random length, angle and brightness, never part of the mask), then 1 to ``max_digits`` digits,
each an 8x8 UCI digit upscaled by bilinear interpolation to 8k x 8k (k drawn in [2, 3]) and
pasted with a random brightness at a random place, the brighter pixel winning where they overlap.
The label of a pixel is 1 where a digit's upscaled intensity is at least ``threshold`` of its
maximum (its stroke), else 0. The train and test splits use disjoint digit images (the first
1400 and the other 397 of the 1797), so a test canvas never shows a digit seen in training.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_choice, check_float, check_int, check_seed
from . import load_digits  # defined before pyrnn.datasets imports this module

__all__ = ["make_digit_segmentation"]

#: digit images 0..1399 feed the train split, 1400..1796 the test split
_TRAIN_DIGITS = 1400


def _upscale(image, k):
    """(8, 8) -> (8k, 8k) by bilinear interpolation at the pixel centres (align_corners=False)."""
    n = image.shape[0]
    pos = (np.arange(n * k) + 0.5) / k - 0.5  # output pixel centres in input coordinates
    lo = np.clip(np.floor(pos).astype(int), 0, n - 1)
    hi = np.clip(lo + 1, 0, n - 1)
    w = np.clip(pos - lo, 0.0, 1.0)
    rows = image[lo] * (1 - w)[:, None] + image[hi] * w[:, None]
    return rows[:, lo] * (1 - w)[None, :] + rows[:, hi] * w[None, :]


def _stroke(canvas, rng, brightness):
    """A straight stroke 1-2 pixels wide between two random points."""
    S = canvas.shape[0]
    (y0, x0), (y1, x1) = rng.uniform(0, S - 1, (2, 2))
    steps = int(max(abs(y1 - y0), abs(x1 - x0))) * 2 + 1
    ys = np.linspace(y0, y1, steps).round().astype(int)
    xs = np.linspace(x0, x1, steps).round().astype(int)
    width = rng.integers(1, 3)
    for dy in range(width):
        yy = np.clip(ys + dy, 0, S - 1)
        canvas[yy, xs] = np.maximum(canvas[yy, xs], brightness)


def make_digit_segmentation(n, size=64, max_digits=3, clutter=4, noise=0.08, threshold=0.35, split="train",
                            seed=None):
    """Cluttered, noisy canvases of handwritten digits and their stroke masks.

    Parameters
    ----------
    n : int
        N, number of canvases.
    size : int, default 64
        S, canvas side, at least 24 (one digit at the largest scale fits).
    max_digits : int, default 3
        Digits per canvas, drawn uniformly in [1, max_digits].
    clutter : int, default 4
        Clutter strokes per canvas, drawn uniformly in [0, clutter] (not part of the mask).
    noise : float, default 0.08
        Standard deviation of the Gaussian noise added to every pixel.
    threshold : float in (0, 1), default 0.35
        A digit pixel belongs to the mask where its upscaled intensity is at least this fraction
        of the digit's maximum.
    split : "train" or "test"
        Which digit images to draw from (disjoint sets).
    seed : int or None

    Returns
    -------
    images : float32 (N, S, S, 1) in [0, 1], channels-last as the image layers take them
    masks : int64 (N, S, S) of 0 (background) and 1 (digit stroke)
    """
    n = check_int("n", n, 1)
    size = check_int("size", size, 24, 4096)
    max_digits = check_int("max_digits", max_digits, 1, 16)
    clutter = check_int("clutter", clutter, 0, 64)
    noise = check_float("noise", noise, 0.0, 1.0)
    threshold = check_float("threshold", threshold, above=0.0, below=1.0)
    check_choice("split", split, ("train", "test"))
    rng = np.random.default_rng(check_seed("seed", seed))
    digits, _ = load_digits()
    pool = digits[:_TRAIN_DIGITS] if split == "train" else digits[_TRAIN_DIGITS:]
    images = np.empty((n, size, size), np.float64)
    masks = np.zeros((n, size, size), np.int64)
    for i in range(n):
        canvas = np.zeros((size, size))
        for _ in range(rng.integers(0, clutter + 1)):
            _stroke(canvas, rng, rng.uniform(0.3, 0.9))
        for _ in range(rng.integers(1, max_digits + 1)):
            k = int(rng.integers(2, 4))
            digit = _upscale(pool[rng.integers(len(pool))] / 16.0, k)
            peak = digit.max()
            if peak <= 0:
                continue
            side = digit.shape[0]
            y, x = rng.integers(0, size - side + 1, 2)
            patch = digit / peak * rng.uniform(0.7, 1.0)
            window = canvas[y : y + side, x : x + side]
            np.maximum(window, patch, out=window)
            masks[i, y : y + side, x : x + side] |= (digit >= threshold * peak).astype(np.int64)
        images[i] = canvas + rng.normal(0.0, noise, canvas.shape)
    return np.clip(images, 0.0, 1.0).astype(np.float32)[..., None], masks
