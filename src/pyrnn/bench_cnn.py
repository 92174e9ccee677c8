"""Benchmarks of the image CNNs against PyTorch, shared by ``python -m pyrnn bench``,
``benchmarks/write_results.py`` (benchmarks/RESULTS.md), ``benchmarks/memory.py`` and the
pytest-benchmark suite (``benchmarks/test_cnn.py``).

Legend: B = batch, H/W = height/width, C = channels, O = output channels, K = kernel size. pyrnn's
images are channels-last (B, H, W, C); PyTorch's tensors are (B, C, H, W), in its default NCHW
memory format or in ``channels_last``.

The rows (:data:`CASES`): the Conv2D layer, LeNet-5, a ResNet basic block, a small VGG and a U-Net,
each an inference forward and one training step; then one epoch of LeNet on the bundled digits
(:data:`DIGITS`). A **training step** is zero_grad, forward, and backward of a fixed upstream
gradient dy: every parameter gradient, and dx for the layer and the block (they sit inside a
network) but not for whole networks (PyTorch's input then needs no gradient; pyrnn's models
compute dx regardless) - no optimizer step, as the recurrent rows. **Inference** is a forward in
eval mode that keeps nothing for backward (``pyrnn.inference()``; torch ``eval()`` and ``no_grad``).

PyTorch runs the same network, written out here as a PyTorch user would (torchvision's style:
in-place ReLUs, ``out += identity``) with pyrnn's weights, on both memory formats; each row's
ratio is PyTorch's faster layout's median over pyrnn's.

**Validation before timing**: every implementation (each pyrnn backend, both torch layouts) is
checked against the PyTorch model in float64: y and, for the training step, dx, every parameter
gradient and the batch norm running statistics (tolerances: :data:`RTOL`).

**Timing**: :func:`alternate` runs the implementations in alternating blocks of calls (the
machine is shared: a busy second lands on every side rather than on one), the order rotated
each round; a row reports each implementation's median over the blocks and their interquartile
range. FLOPs (the Conv2D row): forward ``2*B*HO*WO*O*C*KH*KW``, a training step three times that
(forward, dX, dW).
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass

import numpy as np

from .bench_stats import Timing, alternate, share_of_peak  # noqa: F401 - Timing, alternate: this module's API too

#: the two PyTorch implementations: the memory format of its module and tensors
TORCH_LAYOUTS = {"torch NCHW": False, "torch channels_last": True}
#: tolerances of the validation: y and dx elementwise, to RTOL of the array's largest magnitude;
#: parameter gradients and running statistics (sums over the batch, amplified by batch norm's
#: 1/std where a channel's variance is small: PyTorch's own float32 U-Net step has elements 2 %
#: of the largest off its float64 gradient) as a whole, ||got - want|| <= RTOL_SUMS ||want||
RTOL, RTOL_SUMS = 1e-3, 1e-2


# ----------------------------------------------------------------------- the cases
@dataclass(frozen=True)
class CnnCase:
    """One row: a pyrnn network (``build()``) and the same network in PyTorch (``torch_build(nn)``,
    its layers with weights declared in pyrnn's layer order), on images of ``x_shape`` (B, H, W, C)
    whose outer ``pad`` pixels are zeros (the data is (H - 2 pad, W - 2 pad), padded once, untimed).
    ``input_grad``: the training step computes dx too. ``backends``: pyrnn backends timed besides
    the default one."""

    label: str
    x_shape: tuple
    build: object
    torch_build: object
    input_grad: bool = False
    pad: int = 0
    backends: tuple = ()
    gflop_forward: float | None = None

    def inputs(self, seed=0):
        """Standard-normal float32 x of ``x_shape`` (zero outer ``pad``) and dy of the output's shape."""
        import pyrnn

        rng = np.random.default_rng(seed)
        B, H, W, C = self.x_shape
        p = self.pad
        x = np.pad(rng.standard_normal((B, H - 2 * p, W - 2 * p, C)).astype(np.float32), ((0, 0), (p, p), (p, p), (0, 0)))
        with pyrnn.no_grad():
            y = self.build().forward(x[:1])
        return x, rng.standard_normal((B,) + y.shape[1:]).astype(np.float32)


def _conv_layer():
    import pyrnn

    return pyrnn.Conv2D(32, 64, 3, padding=1, seed=0)


def _torch_conv_layer(nn):
    return nn.Conv2d(32, 64, 3, padding=1)


def _lenet():
    from . import vision

    return vision.lenet5(10, 1, seed=0)


def _torch_lenet(nn):
    return nn.Sequential(nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
                         nn.Flatten(), nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10))


def _basic_block():
    import pyrnn

    from . import vision

    x = pyrnn.Input(name="image")
    return pyrnn.Model(x, vision._basic_block(x, 64, 64, 1, vision._Seeds(0)))


def _torch_basic_block(nn):
    class BasicBlock(nn.Module):  # torchvision.models.resnet.BasicBlock without downsampling
        def __init__(self, c):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
            self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x):
            out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            out += x
            return self.relu(out)

    return BasicBlock(64)


VGG_BLOCKS = ((2, 32), (2, 64), (2, 128))


def _vgg():
    from . import vision

    return vision.vgg(VGG_BLOCKS, 10, 3, seed=0)


def _torch_vgg(nn):
    layers, c = [], 3
    for n, width in VGG_BLOCKS:
        for _ in range(n):
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU(inplace=True)]
            c = width
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10))


UNET_WIDTHS = (16, 32, 64)


def _unet():
    from . import vision

    return vision.unet(1, 2, UNET_WIDTHS, upsample="transpose", seed=0)


def _torch_unet(nn):
    import torch

    def double_conv(c_in, c_out):
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                             nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))

    class Up(nn.Module):
        def __init__(self, c_in, width):
            super().__init__()
            self.up, self.conv = nn.ConvTranspose2d(c_in, width, 2, stride=2), double_conv(2 * width, width)

        def forward(self, x, skip):
            return self.conv(torch.cat([skip, self.up(x)], dim=1))

    class UNet(nn.Module):
        def __init__(self, c, k, widths):
            super().__init__()
            self.down = nn.ModuleList()
            for width in widths:
                self.down.append(double_conv(c, width))
                c = width
            self.ups = nn.ModuleList(Up(w_in, w) for w_in, w in zip(widths[:0:-1], widths[-2::-1]))
            self.head = nn.Conv2d(c if len(widths) == 1 else widths[0], k, 1)
            self.pool = nn.MaxPool2d(2)

        def forward(self, x):
            skips = []
            for i, block in enumerate(self.down):
                x = block(x if i == 0 else self.pool(x))
                skips.append(x)
            for up, skip in zip(self.ups, skips[-2::-1]):
                x = up(x, skip)
            return self.head(x)

    return UNet(1, 2, UNET_WIDTHS)


#: the rows of the performance issue
CASES = [
    CnnCase("Conv2D B=64 28x28 32->64 3x3 pad 1", (64, 28, 28, 32), _conv_layer, _torch_conv_layer, input_grad=True,
            backends=("numba",), gflop_forward=2 * 64 * 28 * 28 * 64 * 32 * 9 / 1e9),
    CnnCase("LeNet-5 B=64 1x28x28 (zero-padded to 32x32)", (64, 32, 32, 1), _lenet, _torch_lenet, pad=2),
    CnnCase("ResNet basic block B=32 64ch 16x16", (32, 16, 16, 64), _basic_block, _torch_basic_block, input_grad=True),
    CnnCase("VGG 32-64-128 B=32 3x32x32", (32, 32, 32, 3), _vgg, _torch_vgg),
    CnnCase("U-Net 16-32-64 B=8 1x64x64", (8, 64, 64, 1), _unet, _torch_unet),
]
CONV2D, LENET, BLOCK, VGG, UNET = CASES


# ---------------------------------------------------------- pyrnn's weights in torch
#: pyrnn layer class -> the torch module class holding the same parameters and buffers
TORCH_TWIN = {"Conv2D": "Conv2d", "ConvTranspose2D": "ConvTranspose2d", "BatchNorm2D": "BatchNorm2d", "Dense": "Linear"}


def _layers(model):
    """The layers of a model, or ``[layer]`` for one layer."""
    return list(model.layers) if hasattr(model, "layers") else [model]


def load_twin(model, mod):
    """Copy the weights and buffers of a pyrnn layer or model into torch module ``mod``, pairing
    pyrnn's layers that have any (in ``model.layers`` order) with torch's modules that have any
    (in ``named_modules`` order); a pair of unlike classes (:data:`TORCH_TWIN`) or counts raises.
    Returns ``{(layer index, name): torch name}`` for every parameter and buffer."""
    import torch

    ours = [(i, layer) for i, layer in enumerate(_layers(model)) if layer.state()]
    theirs = [(n, m) for n, m in mod.named_modules()
              if any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.buffers(recurse=False))]
    if len(ours) != len(theirs):
        raise ValueError(f"load_twin: expected as many torch modules with weights as pyrnn layers with weights "
                         f"({len(ours)}), got {len(theirs)}")
    names, state = {}, {}
    for (i, layer), (n, m) in zip(ours, theirs):
        if TORCH_TWIN.get(type(layer).__name__) != type(m).__name__:
            raise ValueError(f"load_twin: pyrnn layer {i} ({type(layer).__name__}) faces torch module {n!r} "
                             f"({type(m).__name__}): expected a {TORCH_TWIN.get(type(layer).__name__)}")
        for k, v in layer.state().items():
            names[(i, k)] = f"{n}.{k}" if n else k
            state[names[(i, k)]] = torch.from_numpy(np.array(v))
    mod.load_state_dict(state, strict=True)
    return names


def torch_twin(case, model, double=False):
    """``case``'s torch network with ``model``'s weights (float64 when ``double``) and the name map."""
    import torch

    mod = case.torch_build(torch.nn)
    names = load_twin(model, mod)
    return (mod.double() if double else mod), names


def _nchw(a, torch_dtype=None):
    """A (B, H, W, C) array as a torch (B, C, H, W) tensor in NCHW memory; 2-D arrays as they are."""
    import torch

    t = torch.from_numpy(a)
    if t.ndim == 4:
        t = t.permute(0, 3, 1, 2).contiguous()
    return t if torch_dtype is None else t.to(torch_dtype)


def _to_channels_last(t):
    import torch

    return t.contiguous(memory_format=torch.channels_last) if t.ndim == 4 else t


def _nhwc(t):
    """A torch output as pyrnn's layout (ndarray, (B, H, W, C) for 4-D)."""
    t = t.detach()
    return (t.permute(0, 2, 3, 1) if t.ndim == 4 else t).numpy()


# ------------------------------------------------------------- the timed functions
@dataclass
class Steps:
    """The timed functions of one implementation, and what validation reads after a call (``dx``,
    ``grads`` and ``buffers`` give ndarrays in pyrnn's layouts)."""

    train: object  # () -> y (after forward and backward)
    infer: object  # () -> y
    dx: object  # () -> dx of the last train call (None if not computed)
    grads: object  # () -> {(layer index, name): gradient}
    buffers: object  # () -> {(layer index, name): running statistic or counter}


def pyrnn_steps(case, model, x, dy, backend):
    """:class:`Steps` of ``model`` (a pyrnn layer or model) on ``backend``."""
    import pyrnn

    last = {}

    def train():
        with pyrnn.use_backend(backend):
            model.zero_grad()
            y = model.forward(x)
            # as torch's input without requires_grad: the first layers skip the data's gradient
            last["dx"] = model.backward(dy) if case.input_grad else model.backward(dy, input_grad=False)
        return y

    def infer():
        with pyrnn.use_backend(backend), pyrnn.inference():
            return model.forward(x)

    layers = _layers(model)
    return Steps(train, infer, lambda: last["dx"] if case.input_grad else None,
                 lambda: {(i, k): g for i, layer in enumerate(layers) for k, g in layer.grads.items()},
                 lambda: {(i, k): b for i, layer in enumerate(layers) for k, b in layer.buffers.items()})


def torch_steps(case, model, x, dy, channels_last, double=False):
    """:class:`Steps` of ``case``'s torch network with ``model``'s weights, in one memory format
    (float64 when ``double``: the validation's reference). Inference runs an eval-mode copy."""
    import torch

    dtype = torch.float64 if double else None
    mod, names = torch_twin(case, model, double)
    xt, dyt = _nchw(x, dtype), _nchw(dy, dtype)
    if channels_last:
        mod, xt, dyt = mod.to(memory_format=torch.channels_last), _to_channels_last(xt), _to_channels_last(dyt)
    evaluator = copy.deepcopy(mod).eval()
    if case.input_grad:
        xt.requires_grad_(True)

    def train():
        mod.zero_grad()
        xt.grad = None
        y = mod(xt)
        y.backward(dyt)
        return y

    def infer():
        with torch.no_grad():
            return evaluator(xt)

    params = dict(mod.named_parameters())
    buffers = dict(mod.named_buffers())
    return Steps(train, infer, lambda: None if xt.grad is None else _nhwc(xt.grad),
                 lambda: {key: params[n].grad.numpy() for key, n in names.items() if n in params},
                 lambda: {key: buffers[n].numpy() for key, n in names.items() if n in buffers})


def _check(got, want, what, elementwise):
    """``got`` against the float64 ``want`` (see :data:`RTOL`); both None passes."""
    if got is None or want is None:
        assert got is None and want is None, f"{what}: expected {'nothing' if want is None else 'an array'}, got {type(got)}"
        return
    assert got.shape == want.shape, f"{what}: expected shape {want.shape}, got {got.shape}"
    if elementwise:
        scale = float(np.max(np.abs(want))) if want.size else 0.0
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * scale, err_msg=what)
    else:
        err, norm = float(np.linalg.norm(got - want)), float(np.linalg.norm(want))
        assert err <= RTOL_SUMS * norm, f"{what}: ||got - want|| = {err:.3g}, expected <= {RTOL_SUMS} ||want|| = {RTOL_SUMS * norm:.3g}"


def _activation(y):
    """A step's output as an ndarray in pyrnn's layout (torch's (B, C, H, W) permuted)."""
    return _nhwc(y) if hasattr(y, "detach") else y


def _results(steps, train):
    """What validation compares after one call of the step (train) or of inference."""
    if not train:
        return {"y": _activation(steps.infer())}
    y = steps.train()
    out = {"y": _activation(y), "dx": steps.dx()}
    out.update({f"grad {k}": g for k, g in steps.grads().items()})
    out.update({f"buffer {k}": b for k, b in steps.buffers().items()})
    return out


def step_functions(case, impls, x=None, dy=None):
    """{impl: :class:`Steps`} for the pyrnn backends and :data:`TORCH_LAYOUTS` names in ``impls``
    (on ``case.inputs()`` unless x and dy are given), each validated first (inference, then one
    training step, from the same weights) against the torch network in float64. That network is
    the twin of pyrnn's because a pyrnn backend passes the same check: when ``impls`` names none,
    the default backend is checked too (and not returned)."""
    if x is None:
        x, dy = case.inputs()
    try:
        import torch  # noqa: F401
    except ImportError:
        raise RuntimeError(f"{case.label}: the CNN benchmarks validate against PyTorch, which is not installed") from None
    import pyrnn

    model = case.build()
    ref = torch_steps(case, model, x, dy, channels_last=False, double=True)
    want = {False: _results(ref, False)}
    assert want[False]["y"].shape == dy.shape, \
        f"{case.label}: the torch network's output has shape {want[False]['y'].shape} (as pyrnn's layout), pyrnn's {dy.shape}"
    want[True] = _results(ref, True)
    out = {}
    checked = list(impls) + ([] if any(i not in TORCH_LAYOUTS for i in impls) else [pyrnn.get_backend()])
    for impl in checked:
        if impl in TORCH_LAYOUTS:
            steps = torch_steps(case, model, x, dy, TORCH_LAYOUTS[impl])
        else:
            mine = case.build()
            mine.load_state_dict(model.state_dict())
            steps = pyrnn_steps(case, mine, x, dy, impl)
        for train in (False, True):
            got = _results(steps, train)
            assert got.keys() == want[train].keys(), f"{case.label} {impl}: results {sorted(got)}, expected {sorted(want[train])}"
            for k, v in want[train].items():
                _check(got[k], v, f"{case.label} {impl} {'train' if train else 'infer'} {k}", k in ("y", "dx"))
        out[impl] = steps
    return {impl: out[impl] for impl in impls}


# -------------------------------------------------------------------------- timing
# alternate() and Timing live in pyrnn.bench_stats (shared with pyrnn.bench)


def default_impls(case):
    """pyrnn's default backend, ``case.backends`` that load, then both torch layouts."""
    import pyrnn

    loaded = pyrnn.available_backends()
    return list(dict.fromkeys([pyrnn.get_backend(), *(b for b in case.backends if b in loaded)])) + list(TORCH_LAYOUTS)


def run(cases=None, impls=None, blocks=9, block_seconds=0.05):
    """[:class:`Timing`] of every case (default :data:`CASES`), inference and training step, on
    ``impls`` (default :func:`default_impls`), each validated first."""
    rows = []
    for case in CASES if cases is None else cases:
        steps = step_functions(case, impls or default_impls(case))
        for mode, gflop in (("infer", case.gflop_forward), ("train", None if case.gflop_forward is None else 3 * case.gflop_forward)):
            times = alternate({impl: getattr(s, mode) for impl, s in steps.items()}, blocks, block_seconds)
            rows += [Timing(case.label, mode, impl, t, gflop) for impl, t in times.items()]
    return rows


# --------------------------------------------------------- one epoch on the digits
@dataclass(frozen=True)
class DigitsEpoch:
    """One training epoch of LeNet-5 on the bundled 8x8 digits as examples/cnn_digits.py feeds
    them (each pixel a 4x4 block: 32x32 images, scaled to [0, 1], shuffled with seed 0, the first
    ``n_train``), batches of ``batch`` in order, Adam (lr ``lr``), mean cross-entropy; pyrnn's
    ``fit`` (no metrics) against the same network, weights, data, batches and optimizer in PyTorch."""

    n_train: int = 1400
    batch: int = 32
    lr: float = 3e-3

    @property
    def label(self):
        return f"LeNet-5 one epoch, digits (N={self.n_train} 32x32, batch {self.batch}, Adam)"

    def data(self):
        """x (n_train, 32, 32, 1) float32, labels (n_train,) int64."""
        import pyrnn

        images, labels = pyrnn.datasets.load_digits()
        order = np.random.default_rng(0).permutation(len(labels))[: self.n_train]
        x = np.kron(images[order] / 16.0, np.ones((4, 4)))[..., None].astype(np.float32)
        return x, labels[order].astype(np.int64)

    def batches(self):
        return [np.arange(i, min(i + self.batch, self.n_train)) for i in range(0, self.n_train, self.batch)]


DIGITS = DigitsEpoch()


def _pyrnn_epoch(case, model, x, y, backend):
    import pyrnn

    model.compile("adam", "cross_entropy", lr=case.lr)

    def epoch():
        with pyrnn.use_backend(backend):
            model.fit(x, y, epochs=1, batch_size=case.batch, shuffle=False, verbose=0)

    return epoch


def _torch_epoch(case, mod, xt, yt):
    import torch

    opt = torch.optim.Adam(mod.parameters(), lr=case.lr)
    batches = [torch.from_numpy(idx) for idx in case.batches()]

    def epoch():
        mod.train()
        for idx in batches:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(mod(xt[idx]), yt[idx]).backward()
            opt.step()

    return epoch


def epoch_functions(case, impls):
    """{impl: epoch_fn} (one call = one epoch) for pyrnn backends and torch layouts, validated
    first: one batch's step as the LeNet row (:func:`step_functions`), then one epoch from the
    same weights, whose trained weights must match the float32 NCHW torch model's within 2 % of
    each tensor's largest magnitude (the same data, batches, loss and Adam; float32 rounding
    differences grow over the steps, a wrong learning rate or loss does not pass)."""
    import torch

    x, y = case.data()
    xb = x[: case.batch]
    step_functions(LENET, impls, xb, np.random.default_rng(0).standard_normal((len(xb), 10)).astype(np.float32))
    model = LENET.build()
    yt = torch.from_numpy(y)
    want_mod, names = torch_twin(LENET, model)
    _torch_epoch(case, want_mod, _nchw(x), yt)()
    want = {key: want_mod.state_dict()[n].numpy() for key, n in names.items()}
    out = {}
    for impl in impls:
        if impl in TORCH_LAYOUTS:
            mod, _ = torch_twin(LENET, model)
            xt = _nchw(x)
            if TORCH_LAYOUTS[impl]:
                mod, xt = mod.to(memory_format=torch.channels_last), _to_channels_last(xt)
            fn = _torch_epoch(case, mod, xt, yt)
            fn()
            got = {key: mod.state_dict()[n].detach().numpy() for key, n in names.items()}
        else:
            mine = LENET.build()
            mine.load_state_dict(model.state_dict())
            fn = _pyrnn_epoch(case, mine, x, y, impl)
            fn()
            got = {(int(k.split(".")[0]), k.split(".", 1)[1]): v for k, v in mine.state_dict().items()}
        for key, v in want.items():
            scale = float(np.max(np.abs(v)))
            np.testing.assert_allclose(got[key], v, rtol=0.02, atol=0.02 * scale, err_msg=f"{case.label} {impl} {key} after one epoch")
        out[impl] = fn
    return out


def run_epochs(case=DIGITS, impls=None, blocks=5):
    """[:class:`Timing`] of one epoch (mode "train") on every implementation, alternating blocks of one epoch."""
    import pyrnn

    impls = impls or [pyrnn.get_backend(), *TORCH_LAYOUTS]
    times = alternate(epoch_functions(case, impls), blocks, block_seconds=0)
    return [Timing(case.label, "train", impl, t) for impl, t in times.items()]


# ------------------------------------------------------------ the peaks and the table
def _cpuinfo(path="/proc/cpuinfo"):
    """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return {}
    info = {}
    for line in text.split("\n\n")[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip()] = value.strip()
    return info


def cpu_description(info=None):
    """The CPU as /proc/cpuinfo names it: model name, vendor, family and model, its widest SIMD flag."""
    import platform

    info = _cpuinfo() if info is None else info
    if not info:
        return platform.machine() or "unknown CPU"
    flags = set(info.get("flags", "").split())
    simd = next((f for f in ("avx512f", "avx2", "sse2") if f in flags), "no x86 SIMD flag")
    return (f"{info.get('model name', '?')} ({info.get('vendor_id', '?')} family {info.get('cpu family', '?')} model "
            f"{info.get('model', '?')}, {simd}, {info.get('cpu MHz', '?')} MHz)")


def fma_flops_per_cycle(info):
    """(float32 flop per cycle per core, why) from /proc/cpuinfo fields, or (None, why not).

    The vector width comes from the flags (avx512f: 16 float32 lanes, avx2 + fma: 8); the number
    of FMA pipes is not in the flags, so it is taken from the vendor and family: AMD family 25
    (Zen 3/Zen 4) has two 256-bit FMA pipes (Zen 4 runs a 512-bit FMA as two 256-bit halves),
    family 26 (Zen 5) two 512-bit ones; Intel cores with AVX-512 two 512-bit FMA units (Xeon
    Gold/Platinum; some Silver/Bronze parts have one, so there this is an upper bound), Intel
    AVX2 cores two 256-bit ones. Each FMA is 2 flops."""
    flags = set(info.get("flags", "").split())
    vendor, family = info.get("vendor_id", "?"), info.get("cpu family", "?")
    if "fma" not in flags:
        return None, "no FMA in the CPU flags"
    lanes = 16 if "avx512f" in flags else 8
    if vendor == "AuthenticAMD" and family == "25":
        halves = ", AVX-512 as two 256-bit halves" if lanes == 16 else ""
        return 2 * 2 * 8, f"AMD family 25 (Zen 3/4{halves}): 2 FMA pipes x 8 float32 lanes x 2 flop"
    if vendor == "AuthenticAMD" and family == "26":
        return 2 * 2 * lanes, f"AMD family 26 (Zen 5): 2 FMA pipes x {lanes} float32 lanes x 2 flop"
    if vendor == "GenuineIntel":
        isa = "AVX-512" if lanes == 16 else "AVX2"
        return 2 * 2 * lanes, f"Intel with {isa}: 2 FMA units x {lanes} float32 lanes x 2 flop (an upper bound on parts with one)"
    return None, f"FMA pipes unknown for {vendor} family {family}"


@dataclass(frozen=True)
class FmaLimit:
    """The float32 FMA throughput of ``cores`` cores at ``ghz``: ``cores * ghz * per_cycle`` GFLOP/s;
    ``clock`` says where ``ghz`` came from."""

    cores: int
    ghz: float
    per_cycle: int
    why: str
    clock: str = "'cpu MHz' of /proc/cpuinfo"

    @property
    def gflops(self):
        return self.cores * self.ghz * self.per_cycle

    def describe(self):
        return (f"{self.gflops:.0f} GFLOP/s = {self.cores} cores x {self.ghz:.2f} GHz ({self.clock}) "
                f"x {self.per_cycle} flop/cycle ({self.why})")


def fma_limit(threads=2, info=None, measure=None):
    """:class:`FmaLimit` of ``threads`` cores, or a string saying why it is unknown.

    The clock is measured when ``measure`` (default: when ``info`` is None, i.e. this machine's
    /proc/cpuinfo is read): :func:`pyrnn._C.measured_clock_ghz` on every core at once, the clock the
    cores run at under load. Otherwise, or where it cannot be measured, the 'cpu MHz' of /proc/cpuinfo,
    which under a hypervisor is the nominal clock (turbo runs higher: then the sgemm can exceed it)."""
    measure = info is None if measure is None else measure
    info = _cpuinfo() if info is None else info
    per_cycle, why = fma_flops_per_cycle(info)
    if per_cycle is None:
        return why
    cores = min(threads, os.cpu_count() or threads)
    nominal = info.get("cpu MHz")
    if measure:
        from . import _C

        ghz = _C.measured_clock_ghz(cores, 300)
        if ghz > 0:
            said = f"; /proc/cpuinfo says {nominal} MHz" if nominal else ""
            return FmaLimit(cores, ghz, per_cycle, why,
                            f"measured: {cores} threads at once, each a chain of dependent adds, one a cycle{said}")
    try:
        ghz = float(nominal) / 1e3
    except (TypeError, ValueError):
        return f"clock unknown: no 'cpu MHz' in /proc/cpuinfo ({why})"
    return FmaLimit(cores, ghz, per_cycle, why)


def _cell(t):
    lo, hi = t.quartiles
    return f"{t.median * 1e3:.2f} ({lo * 1e3:.2f}-{hi * 1e3:.2f})"


def format_table(rows):
    """A Markdown table: one line per row and mode, each implementation's median ms (interquartile
    range of the blocks), then each pyrnn implementation's speed-up over the faster torch layout
    (that layout's median / this median, and which layout it was)."""
    impls = list(dict.fromkeys(t.impl for t in rows))
    ours = [i for i in impls if i not in TORCH_LAYOUTS]
    torch_impls = [i for i in impls if i in TORCH_LAYOUTS]
    head = ("| workload | mode | " + " | ".join(f"{i} ms" for i in impls) + " | "
            + " | ".join(f"{i} vs torch" for i in ours) + " |")
    lines = [head, "|" + "---|" * (2 + len(impls) + len(ours))]
    keyed = {(t.label, t.mode, t.impl): t for t in rows}
    for label, mode in dict.fromkeys((t.label, t.mode) for t in rows):
        cells = ["-" if (label, mode, i) not in keyed else _cell(keyed[label, mode, i]) for i in impls]
        theirs = [keyed[label, mode, i] for i in torch_impls if (label, mode, i) in keyed]
        best = min(theirs, key=lambda t: t.median) if theirs else None
        ratios = []
        for i in ours:
            t = keyed.get((label, mode, i))
            ratios.append("-" if t is None or best is None else
                          f"{best.median / t.median:.2f}x ({'CL' if TORCH_LAYOUTS[best.impl] else 'NCHW'})")
        lines.append(f"| {label} | {mode} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    return "\n".join(lines)


def format_gflops(rows, peak, limit):
    """Markdown lines: the GFLOP/s of every timing that counts its FLOPs, beside the sgemm ``peak``
    (GFLOP/s, see :func:`pyrnn.bench.gemm_peak`) and the FMA ``limit`` (:func:`fma_limit`)."""
    out = [f"- sgemm peak measured in this run (NumPy float32 matmul, n = 1024 and 2048, every thread): {peak:.0f} GFLOP/s",
           f"- FMA-unit limit: {limit.describe()}" if isinstance(limit, FmaLimit) else f"- FMA-unit limit: unknown ({limit})"]
    if isinstance(limit, FmaLimit) and peak > limit.gflops:
        out.append(f"  (the sgemm exceeds it, so the cores ran at >= {limit.ghz * peak / limit.gflops:.2f} GHz during it, "
                   "above the reported clock)")
    best = max([t.best_gflops for t in rows if t.gflops is not None], default=0.0)
    if best > peak:
        out.append(f"  (a row's fastest block ran at {best:.0f} GFLOP/s, above that sgemm peak: the peak was measured under "
                   "other load, or the row's algorithm (Winograd) does fewer multiplications than counted; that rate is "
                   "the peak of the shares below, so none exceeds 100%)")
    for t in rows:
        if t.gflops is not None:
            share, _ = share_of_peak(t.gflops, peak, best)
            of = "the sgemm peak" if best <= peak else "the peak"
            out.append(f"- {t.label} {t.mode}, {t.impl}: {t.gflops:.0f} GFLOP/s ({share:.0f}% of {of})")
    return "\n".join(out)


# -------------------------------------------------------------- per-layer profile
def _timed(fn, spent, key):
    """``fn`` adding its wall time to ``spent[key]``."""

    def run(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[key] += time.perf_counter() - t0

    return run


def layer_times(model, x, dy, backend, calls=5):
    """Where a training step of a pyrnn model (or layer) on ``backend`` spends its time:
    ``([(layer index, repr, forward ms, backward ms)], step ms)``, means over ``calls`` steps
    after one warm-up, timed around each layer's ``graph_forward``/``graph_backward`` (what
    ``Model`` runs); the step's time beyond their sum is the model's own Python."""
    import pyrnn

    if not hasattr(model, "layers"):
        inp = pyrnn.Input(name="x")
        model = pyrnn.Model(inp, model(inp))
    spent = {}
    for i, layer in enumerate(model.layers):
        for direction in ("graph_forward", "graph_backward"):
            spent[i, direction] = 0.0

            setattr(layer, direction, _timed(getattr(layer, direction), spent, (i, direction)))  # over the method

    def step():
        with pyrnn.use_backend(backend):
            model.zero_grad()
            model.forward(x)
            model.backward(dy)

    try:
        step()
        spent.update(dict.fromkeys(spent, 0.0))
        t0 = time.perf_counter()
        for _ in range(calls):
            step()
        total = (time.perf_counter() - t0) / calls * 1e3
    finally:
        for layer in model.layers:
            for direction in ("graph_forward", "graph_backward"):
                layer.__dict__.pop(direction, None)
    return [(i, repr(layer), spent[i, "graph_forward"] / calls * 1e3, spent[i, "graph_backward"] / calls * 1e3)
            for i, layer in enumerate(model.layers)], total


# ---------------------------------------------------------------- peak memory
def memory_step(impl, case=None, warm_batch=1):
    """One training step of ``case`` (default :data:`UNET`) on ``impl`` (a pyrnn backend or a
    :data:`TORCH_LAYOUTS` name), ready to run: built, and warmed up by one step on ``warm_batch``
    images (kernels loaded, first-call work done). For ``benchmarks/memory.py``'s child processes."""
    case = UNET if case is None else case
    x, dy = case.inputs()
    model = case.build()
    if impl in TORCH_LAYOUTS:
        torch_steps(case, model, x[:warm_batch], dy[:warm_batch], TORCH_LAYOUTS[impl]).train()
        return torch_steps(case, model, x, dy, TORCH_LAYOUTS[impl]).train
    pyrnn_steps(case, model, x[:warm_batch], dy[:warm_batch], impl).train()
    return pyrnn_steps(case, model, x, dy, impl).train


def forward_bytes(case):
    """Bytes of the tensors of ``case``'s forward on its inputs: the input and every layer's output,
    as pyrnn's functional model records them (what a backward through every layer could keep at
    most without copies; ReLU and pooling need less than their input)."""
    x, dy = case.inputs()
    model = case.build()
    model.forward(x)
    model.backward(dy)  # consumes the forward
    return sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for shape, dtype in model._out_meta.values())
