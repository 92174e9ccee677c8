"""Image CNN architectures, built with the functional API (``pyrnn.Input`` -> layer calls ->
``pyrnn.Model``) from the image layers: LeNet-5, VGG, ResNet and U-Net.

Legend: B = batch, H/W = height/width, C = channels (images are channels-last, (B, H, W, C)),
k = number of classes. Every builder returns a :class:`pyrnn.Model` that trains with ``fit``
and saves with ``model.save`` like any other.
"""

from __future__ import annotations

import numpy as np

from ._checks import check_bool, check_choice, check_int, check_seed
from .layers import (
    Add,
    AvgPool2D,
    BatchNorm2D,
    Concatenate,
    Conv2D,
    ConvTranspose2D,
    Dense,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    ReLU,
    Tanh,
    Upsample2D,
)
from .layers.symbolic import Input
from .models import Model

__all__ = ["lenet5", "vgg", "resnet", "unet"]


class _Seeds:
    """Seeds for the layers of one architecture, drawn from one seed (None: unseeded)."""

    def __init__(self, seed):
        seed = check_seed("seed", seed)
        self.rng = None if seed is None else np.random.default_rng(seed)

    def __call__(self):
        return None if self.rng is None else int(self.rng.integers(2**31))


def _sequence(name, value, what):
    """``value`` as a tuple: not a tuple or list -> TypeError, empty -> ValueError."""
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{name}: expected a non-empty tuple of {what}, got {type(value).__name__} {value!r}")
    if not value:
        raise ValueError(f"{name}: expected a non-empty tuple of {what}, got {value!r}")
    return tuple(value)


def _int_tuple(name, value, minimum=1):
    return tuple(check_int(f"{name}[{i}]", v, minimum) for i, v in enumerate(_sequence(name, value, "integers")))


def lenet5(num_classes=10, in_channels=1, activation="tanh", seed=None):
    """LeNet-5 (LeCun et al. 1998) for 32 x 32 images::

        x (B, 32, 32, C) -> conv 5x5, 6 -> act -> pool 2 -> conv 5x5, 16 -> act -> pool 2
          (B, 28, 28, 6)                (B, 14, 14, 6)  (B, 10, 10, 16)        (B, 5, 5, 16)
          -> Flatten (400) -> Dense 120 -> act -> Dense 84 -> act -> Dense k (logits)

    ``activation="tanh"`` uses average pooling, as the original; ``"relu"`` max pooling. Feed
    28 x 28 images padded by 2 on every side, and the bundled 8 x 8 digits upscaled 4 times.
    """
    num_classes, in_channels = check_int("num_classes", num_classes, 1), check_int("in_channels", in_channels, 1)
    activation = check_choice("activation", activation, ("tanh", "relu"))
    act, pool = (Tanh, AvgPool2D) if activation == "tanh" else (ReLU, MaxPool2D)
    s = _Seeds(seed)
    x = Input(name="image")
    h = pool(2)(act()(Conv2D(in_channels, 6, 5, seed=s())(x)))
    h = pool(2)(act()(Conv2D(6, 16, 5, seed=s())(h)))
    h = act()(Dense(16 * 5 * 5, 120, seed=s())(Flatten()(h)))
    h = act()(Dense(120, 84, seed=s())(h))
    return Model(x, Dense(84, num_classes, seed=s())(h))


def _conv_bn_relu(h, c_in, c_out, s, batch_norm=True, stride=1, relu=True):
    h = Conv2D(c_in, c_out, 3, stride=stride, padding=1, bias=not batch_norm, seed=s())(h)
    if batch_norm:
        h = BatchNorm2D(c_out)(h)
    return ReLU()(h) if relu else h


def vgg(blocks=((2, 32), (2, 64), (2, 128)), num_classes=10, in_channels=3, batch_norm=False, seed=None):
    """VGG (Simonyan and Zisserman 2014): blocks of the same pattern::

        x (B, H, W, C) -> [ (conv 3x3 pad 1 (-> BN) -> ReLU) x n  ->  max pool 2 ]  for each (n, width)
          -> global average pool (B, width) -> Dense k (logits)

    The global-average-pool head works for any input size (32 x 32 by default halves to 4 x 4).
    """
    blocks = tuple(_int_tuple(f"blocks[{i}]", b) for i, b in enumerate(_sequence("blocks", blocks, "(convolutions, width) pairs")))
    if any(len(b) != 2 for b in blocks):
        raise ValueError(f"blocks: expected (convolutions, width) pairs, got {blocks!r}")
    num_classes, c = check_int("num_classes", num_classes, 1), check_int("in_channels", in_channels, 1)
    batch_norm = check_bool("batch_norm", batch_norm)
    s = _Seeds(seed)
    x = Input(name="image")
    h = x
    for n, width in blocks:
        for _ in range(n):
            h, c = _conv_bn_relu(h, c, width, s, batch_norm), width
        h = MaxPool2D(2)(h)
    return Model(x, Dense(c, num_classes, seed=s())(GlobalAvgPool2D()(h)))


def _basic_block(h, c_in, c_out, stride, s):
    """conv 3x3 (stride) -> BN -> ReLU -> conv 3x3 -> BN, plus the block's input (a 1x1 projection
    with BN where the shape changes), then ReLU: the input skips two layers and is added back."""
    y = _conv_bn_relu(h, c_in, c_out, s, stride=stride)
    y = _conv_bn_relu(y, c_out, c_out, s, relu=False)
    skip = h
    if stride != 1 or c_in != c_out:
        skip = BatchNorm2D(c_out)(Conv2D(c_in, c_out, 1, stride=stride, bias=False, seed=s())(h))
    return ReLU()(Add()(y, skip))


def resnet(depths=(2, 2, 2, 2), widths=(64, 128, 256, 512), num_classes=10, in_channels=3, stem="cifar", seed=None):
    """ResNet with basic blocks (He et al. 2015); ``depths=(2, 2, 2, 2)`` is ResNet-18's shape::

        x -> stem -> stage 1 .. stage n -> global average pool -> Dense k (logits)
        stem "cifar":    conv 3x3, widths[0] -> BN -> ReLU
        stem "imagenet": conv 7x7 stride 2 -> BN -> ReLU -> max pool 3x3 stride 2
        stage i: depths[i] basic blocks of widths[i]; the first block of every stage but the
                 first halves H and W (stride 2) and projects its skip with a 1x1 conv + BN

        basic block:  x -> conv3x3 -> BN -> ReLU -> conv3x3 -> BN -> (+ x) -> ReLU

    A torch ResNet built the same way with torchvision's module names (``conv1``, ``bn1``,
    ``layer1.0.conv1``, ..., ``fc``) loads with ``pyrnn.interop.load_torch(model, torch_model,
    names=pyrnn.interop.resnet_names(model))`` (and ``interop.to_torch`` goes back).
    """
    depths, widths = _int_tuple("depths", depths), _int_tuple("widths", widths)
    if len(depths) != len(widths):
        raise ValueError(f"widths: expected one width per stage ({len(depths)}), got {len(widths)}")
    num_classes, c = check_int("num_classes", num_classes, 1), check_int("in_channels", in_channels, 1)
    stem = check_choice("stem", stem, ("cifar", "imagenet"))
    s = _Seeds(seed)
    x = Input(name="image")
    if stem == "cifar":
        h = _conv_bn_relu(x, c, widths[0], s)
    else:
        h = ReLU()(BatchNorm2D(widths[0])(Conv2D(c, widths[0], 7, stride=2, padding=3, bias=False, seed=s())(x)))
        h = MaxPool2D(3, stride=2, padding=1)(h)
    c = widths[0]
    for i, (depth, width) in enumerate(zip(depths, widths)):
        for j in range(depth):
            h, c = _basic_block(h, c, width, 2 if (i > 0 and j == 0) else 1, s), width
    return Model(x, Dense(c, num_classes, seed=s())(GlobalAvgPool2D()(h)))


def _double_conv(h, c_in, c_out, s):
    return _conv_bn_relu(_conv_bn_relu(h, c_in, c_out, s), c_out, c_out, s)


def unet(in_channels=1, num_classes=2, widths=(16, 32, 64), upsample="transpose", seed=None):
    """U-Net (Ronneberger et al. 2015): downsampling, then upsampling, with the encoder's feature
    maps concatenated into the decoder at every scale::

        x (B, H, W, C) ─ double conv w0 ──────────────────────────── concat ─ double conv w0 ─ 1x1 conv k
                          └ pool ─ double conv w1 ───────── concat ─ double conv w1 ─ up ┘
                                    └ pool ─ double conv w2 (bottleneck) ─ up ┘

        double conv: (conv 3x3 pad 1 -> BN -> ReLU) x 2;  up: ConvTranspose2D 2x2 stride 2
        (``upsample="transpose"``) or bilinear x2 then conv 1x1 (``"bilinear"``)

    H and W must be divisible by 2**(len(widths) - 1). The output is per-pixel logits
    (B, H, W, k), for ``CrossEntropyLoss`` with (B, H, W) integer masks.
    """
    widths = _int_tuple("widths", widths)
    if len(widths) < 2:
        raise ValueError(f"widths: expected at least two scales, got {widths!r}")
    c, num_classes = check_int("in_channels", in_channels, 1), check_int("num_classes", num_classes, 1)
    upsample = check_choice("upsample", upsample, ("transpose", "bilinear"))
    s = _Seeds(seed)
    x = Input(name="image")
    h, skips = x, []
    for width in widths[:-1]:
        h, c = _double_conv(h, c, width, s), width
        skips.append((h, width))
        h = MaxPool2D(2)(h)
    h, c = _double_conv(h, c, widths[-1], s), widths[-1]
    for skip, width in reversed(skips):
        if upsample == "transpose":
            h = ConvTranspose2D(c, width, 2, stride=2, seed=s())(h)
        else:
            h = Conv2D(c, width, 1, seed=s())(Upsample2D(2, mode="bilinear")(h))
        h, c = _double_conv(Concatenate(axis=-1)(skip, h), 2 * width, width, s), width
    return Model(x, Conv2D(c, num_classes, 1, seed=s())(h))
