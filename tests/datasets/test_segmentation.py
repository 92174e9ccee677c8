"""The digit segmentation task: real digits on cluttered, noisy canvases, with stroke masks."""

import numpy as np
import pytest

from pyrnn.datasets import load_digits, make_digit_segmentation
from pyrnn.datasets.segmentation import _TRAIN_DIGITS, _upscale


def test_shapes_dtypes_ranges_and_determinism():
    x, m = make_digit_segmentation(40, seed=0)
    assert x.shape == (40, 64, 64, 1) and x.dtype == np.float32 and m.shape == (40, 64, 64) and m.dtype == np.int64
    assert 0 <= x.min() and x.max() <= 1 and set(np.unique(m)) <= {0, 1}
    assert all(m[i].any() for i in range(40))  # every canvas holds at least one digit
    x2, m2 = make_digit_segmentation(40, seed=0)
    assert np.array_equal(x, x2) and np.array_equal(m, m2)
    assert not np.array_equal(make_digit_segmentation(40, seed=1)[0], x)


def test_masked_pixels_are_bright_and_clutter_is_not_labelled():
    x, m = make_digit_segmentation(200, noise=0.0, seed=3)
    img = x[..., 0]
    assert img[m == 1].min() >= 0.7 * 0.35 - 1e-6  # a stroke pixel: >= brightness * threshold
    lit_background = (img > 0.25) & (m == 0)  # clutter strokes and digit edges below the threshold
    assert lit_background.any()
    x0, m0 = make_digit_segmentation(200, noise=0.0, clutter=0, seed=3)
    assert ((x0[..., 0] > 0.25) & (m0 == 0)).sum() < lit_background.sum()


def test_upscale_is_bilinear_at_pixel_centres():
    torch = pytest.importorskip("torch")
    image = np.random.default_rng(0).uniform(0, 1, (8, 8))
    want = torch.nn.functional.interpolate(torch.tensor(image)[None, None], scale_factor=3, mode="bilinear",
                                           align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(_upscale(image, 3), want, rtol=1e-12, atol=1e-12)


def test_train_and_test_draw_from_disjoint_digit_images():
    digits, _ = load_digits()
    assert 0 < _TRAIN_DIGITS < len(digits)
    # a canvas with one digit, no clutter, no noise: its content comes from its split's images only
    x, _ = make_digit_segmentation(30, max_digits=1, clutter=0, noise=0.0, split="test", seed=5)
    ups = {k: [_upscale(d / 16.0, k) for d in digits[:_TRAIN_DIGITS]] for k in (2, 3)}
    for img in x[..., 0]:
        ys, xs = np.nonzero(img)
        patch = img[ys.min():, xs.min():]
        for k, train in ups.items():
            side = 8 * k
            crop = patch[:side, :side]
            for d in train[:200]:
                if crop.shape == d.shape and d.max() > 0:
                    assert not np.allclose(crop / crop.max(), d / d.max(), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [
        (dict(n=0), ValueError, r"n: expected an integer >= 1, got 0"),
        (dict(n=2, size=16), ValueError, r"size: expected an integer >= 24, got 16"),
        (dict(n=2, split="val"), ValueError, r"split: expected one of \['train', 'test'\], got 'val'"),
        (dict(n=2, threshold=1.0), ValueError, r"threshold: expected a finite number in \(0, 1\), got 1.0"),
        (dict(n=2, seed=-1), ValueError, r"seed: expected an integer >= 0, got -1"),
        (dict(n=2.0), TypeError, r"n: expected an integer, got float 2.0"),
    ],
)
def test_bad_arguments_are_named(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make_digit_segmentation(**kwargs)
