"""The image-CNN part of the API fuzz, imported by ``tests/fuzz_api.py`` (the driver: its docstring
says how every call is classified). This module adds:

- the layers Conv2D, ConvTranspose2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D, Upsample2D, Flatten,
  BatchNorm1D and BatchNorm2D: their constructor arguments (:data:`ARGS`, with the argument kinds
  of :func:`draw_arg`: an int or an (h, w) pair, a Conv2D padding, a positive real, a momentum),
  the rules that tie arguments together (:func:`ctor_rule`), a valid input image for the drawn
  sizes (:func:`x_shape`) and the output the contract promises (:func:`contract`), all run by the
  driver's one case loop;
- a ``vision`` family: one of ``pyrnn.vision``'s four builders with drawn (valid or not) arguments,
  then forward and backward of the model on a small image batch (:func:`draw_vision_case`,
  :func:`run_vision_case`).

Every expected shape here is written from the layers' documented formulas (torch's), not read
from pyrnn.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import numpy as np
from hypothesis import strategies as st

import pyrnn
from pyrnn import vision
from pyrnn.layers import (
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    ConvTranspose2D,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    Upsample2D,
)

import fuzz_api as core  # the driver; it registers itself under this name when run as a script

NAN, INF = float("nan"), float("inf")

_CONV = [("in_channels", "int", {}), ("out_channels", "int", {}), ("kernel_size", "pair", {"small": (1, 3)})]
_TAIL = [("bias", "bool", {}), ("dtype", "dtype", {}), ("seed", "seed", {})]
_BN = [("num_features", "int", {}), ("eps", "pos_real", {}), ("momentum", "momentum", {}), ("affine", "bool", {}),
       ("track_running_stats", "bool", {}), ("dtype", "dtype", {})]
#: constructor arguments, in signature order (the driver's format: name, kind, extra)
ARGS = {
    "Conv2D": _CONV + [("stride", "pair", {"small": (1, 2)}), ("padding", "pad2d", {}), ("dilation", "pair", {"small": (1, 2)}),
                       ("groups", "int", {"small": (1, 2)})] + _TAIL,
    "ConvTranspose2D": _CONV + [("stride", "pair", {"small": (1, 3)}), ("padding", "pair", {"minimum": 0, "small": (0, 1)}),
                                ("output_padding", "pair", {"minimum": 0, "small": (0, 1)}),
                                ("dilation", "pair", {"small": (1, 2)}), ("groups", "int", {"small": (1, 2)})] + _TAIL,
    "MaxPool2D": [("kernel_size", "pair", {"small": (1, 3)}), ("stride", "stride", {"small": (1, 3)}),
                  ("padding", "pair", {"minimum": 0, "small": (0, 1)}), ("dilation", "pair", {"small": (1, 2)}),
                  ("ceil_mode", "bool", {})],
    "AvgPool2D": [("kernel_size", "pair", {"small": (1, 3)}), ("stride", "stride", {"small": (1, 3)}),
                  ("padding", "pair", {"minimum": 0, "small": (0, 1)}), ("ceil_mode", "bool", {}),
                  ("count_include_pad", "bool", {})],
    "GlobalAvgPool2D": [],
    "Upsample2D": [("scale_factor", "pair", {"small": (1, 3)}), ("mode", "choice", {"choices": ("nearest", "bilinear")})],
    "Flatten": [],
    "BatchNorm2D": _BN,
    "BatchNorm1D": _BN,
}
CLASSES = {"Conv2D": Conv2D, "ConvTranspose2D": ConvTranspose2D, "MaxPool2D": MaxPool2D, "AvgPool2D": AvgPool2D,
           "GlobalAvgPool2D": GlobalAvgPool2D, "Upsample2D": Upsample2D, "Flatten": Flatten, "BatchNorm2D": BatchNorm2D,
           "BatchNorm1D": BatchNorm1D}
#: the family names in the driver's weighted list (convolutions and batch norm weighted up), and the model family
VISION = "vision"
NAMES = ["Conv2D", "ConvTranspose2D", "BatchNorm2D"] * 3 + ["MaxPool2D", "AvgPool2D", "BatchNorm1D", VISION] * 2 \
    + ["GlobalAvgPool2D", "Upsample2D", "Flatten"]
#: arguments without a default
REQUIRED = {"num_features", "scale_factor"}
#: argument kinds this module draws, and those that have in-range but huge values (the driver's "big" mode)
KINDS = {"pair", "pad2d", "stride", "pos_real", "momentum"}
BIG_KINDS = {"pair", "pad2d", "stride", "pos_real"}

IMAGE = (Conv2D, ConvTranspose2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D, Upsample2D, BatchNorm2D)
#: layers that check the number of channels of their input
WITH_CHANNELS = (Conv2D, ConvTranspose2D, BatchNorm1D, BatchNorm2D)
#: layers with parameters: any float input is cast to their dtype (longdouble included)
CASTING = (Conv2D, ConvTranspose2D, BatchNorm1D, BatchNorm2D)


def is_cnn(layer):
    return isinstance(layer, tuple(CLASSES.values()))


# ------------------------------------------------------------------------ argument pools
def _pair_pools(minimum):
    """(ok values, bad (value, verdict) pairs) of an int-or-(h, w)-pair argument."""
    bad = [(v, core.VALUE if isinstance(v, list) else t) for v, t in core.int_bad(minimum)]  # [2]: a list of 1 value
    bad += [((1, 2, 3), core.VALUE), ((), core.VALUE), ((minimum - 1, minimum), core.VALUE), ((minimum, 2**40), core.VALUE),
            ((1.5, 1), core.TYPE), ((None, 1), core.TYPE), ((True, 1), core.TYPE), ("ab", core.TYPE), (b"ab", core.TYPE),
            ({"h": 1}, core.TYPE), (np.array([1, 1]), core.TYPE)]
    return bad


def _pair_ok(data, minimum, small):
    lo = max(minimum, small[0])
    hi = max(lo, small[1])
    a, b = data.draw(st.integers(lo, hi)), data.draw(st.integers(lo, hi))
    form = data.draw(st.integers(0, 4))
    return [a, (a, b), [a, b], (np.int64(a), np.uint8(b)), np.int64(a)][form]


PAIR_BIG = [2**31 - 1, 2**30, 2**20, (2**31 - 1, 1), (1, 2**20)]
POS_REAL_OK = [1e-5, 1e-3, 0.1, 1.0, 1, np.float32(1e-5), Fraction(1, 1000), 1e30]
POS_REAL_BAD = [(0.0, "value"), (0, "value"), (-1e-5, "value"), (NAN, "value"), (INF, "value"), (-INF, "value"),
                ("1e-5", "type"), (None, "type"), (True, "type"), (complex(1), "type"), ([1e-5], "type"),
                (Decimal("1e-5"), "type"), (np.array(1e-5), "type")]
MOMENTUM_OK = [0.0, 0.1, 0.5, 1.0, 1, 0, None, np.float32(0.25), Fraction(1, 3)]
MOMENTUM_BAD = [(NAN, "value"), (INF, "value"), (-0.1, "value"), (1.5, "value"), (2, "value"), ("0.1", "type"),
                (True, "type"), (complex(0.1), "type"), ([0.1], "type"), (Decimal("0.1"), "type"), (np.array(0.1), "type")]
PAD2D_BAD = [("causal", "value"), ("full", "value"), ("SAME", "value"), ("", "value")]


def draw_arg(data, kind, mutate, minimum=1, small=(1, 3), big_only=False, **_):
    """One argument of a kind in :data:`KINDS` and its verdict (see ``fuzz_api.draw_arg``)."""
    if mutate and big_only:
        return data.draw(st.sampled_from([1e300] if kind == "pos_real" else PAIR_BIG)), core.BIG
    if kind == "pos_real":
        return data.draw(st.sampled_from(POS_REAL_BAD)) if mutate else (data.draw(st.sampled_from(POS_REAL_OK)), core.OK)
    if kind == "momentum":
        return data.draw(st.sampled_from(MOMENTUM_BAD)) if mutate else (data.draw(st.sampled_from(MOMENTUM_OK)), core.OK)
    if kind == "pad2d":
        minimum, small = 0, (0, 2)
    if mutate:
        bad = _pair_pools(minimum) + [(v, core.BIG) for v in PAIR_BIG]
        if kind == "pad2d":  # a string is a padding's type: an unknown one is a wrong value
            bad = [(v, core.VALUE if isinstance(v, str) else t) for v, t in bad] + PAD2D_BAD
        if kind == "stride":
            bad = [(v, t) for v, t in bad if v is not None]  # None is a valid stride (the kernel size)
        return data.draw(st.sampled_from(bad))
    if kind == "pad2d" and data.draw(st.integers(0, 3)) == 0:
        return data.draw(st.sampled_from(["valid", "same"])), core.OK
    if kind == "stride" and data.draw(st.integers(0, 3)) == 0:
        return None, core.OK
    return _pair_ok(data, minimum, small), core.OK


def _pair_of(v):
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def ctor_verdict(v, name, a):
    """The constructor's verdict from the arguments' own (``v``) and the rules that tie them: a rule
    broken beside an argument that is wrong by itself leaves either error to the layer (ERR)."""
    try:
        rule = ctor_rule(name, a)
    except (TypeError, ValueError, ArithmeticError, LookupError):  # an argument the rule cannot read (groups=0, a str)
        return v
    return v if rule == core.OK else core.combine([v, rule])


def ctor_rule(name, a):
    """VALUE if arguments that are each valid do not fit together (the layers' documented rules)."""
    if name in ("Conv2D", "ConvTranspose2D"):
        g = int(a.get("groups", 1))
        if int(a["in_channels"]) % g or int(a["out_channels"]) % g:
            return core.VALUE
    if name == "Conv2D" and a.get("padding") == "same" and _pair_of(a.get("stride", 1)) != (1, 1):
        return core.VALUE
    if name == "ConvTranspose2D":
        s, d = _pair_of(a.get("stride", 1)), _pair_of(a.get("dilation", 1))
        if any(op >= max(ss, dd) for op, ss, dd in zip(_pair_of(a.get("output_padding", 0)), s, d)):
            return core.VALUE
    if name in ("MaxPool2D", "AvgPool2D"):
        k = _pair_of(a["kernel_size"])
        if any(p > kk // 2 for p, kk in zip(_pair_of(a.get("padding", 0)), k)):
            return core.VALUE
    return core.OK


# ------------------------------------------------------------------------ inputs and outputs
@st.composite
def image_spec(draw):
    """The extra sizes of a call on an image layer (drawn only for these families)."""
    return {"H": draw(st.integers(0, 6)), "W": draw(st.integers(0, 6)), "rank": draw(st.sampled_from([2, 3, 4]))}


def x_shape(layer, cs):
    """A valid forward input of ``layer`` for the drawn sizes (channels 0 included where any count goes)."""
    B, H, W, F = cs["B"], cs["H"], cs["W"], cs["feat"]
    if isinstance(layer, (Conv2D, ConvTranspose2D)):
        return (B, H, W, layer.in_channels)
    if isinstance(layer, BatchNorm2D):
        return (B, H, W, layer.num_features)
    if isinstance(layer, BatchNorm1D):
        return (B, cs["T"], layer.num_features) if cs["rank"] != 2 else (B, layer.num_features)
    if isinstance(layer, Flatten):
        return (B, H, W, F)[: cs["rank"]]
    return (B, H, W, F - 1)


def fixed_rank(layer):
    return isinstance(layer, IMAGE)


def _conv_size(L, k, s, d, before, after):
    span = d * (k - 1) + 1
    return None if L + before + after < span else (L + before + after - span) // s + 1


def _conv2d_padding(layer):
    """(top, bottom, left, right) of Conv2D's padding argument, as its docstring defines it."""
    p = layer.padding
    if p == "valid":
        return (0, 0, 0, 0)
    if p == "same":
        th, tw = (d * (k - 1) for d, k in zip(layer.dilation, layer.kernel_size))
        return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    return (p[0], p[0], p[1], p[1])


def _pool_size(L, k, s, p, d, ceil_mode):
    """torch's pooling output size (0 or less: no output)."""
    out = (L + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= L + p:
        out -= 1
    return out


def _unrepresentable(shape, dtype):
    """Whether NumPy refuses to make an array of ``shape`` ("array is too big": the sizes other than
    0, times the item size, overflow an index), which the layers then refuse first."""
    return math.prod(int(n) for n in shape if n) * np.dtype(dtype).itemsize > np.iinfo(np.intp).max


def contract(layer, x, training):
    """(verdict, output shape, output dtype) of a forward on a well-formed array ``x``."""
    xs = np.shape(x)
    param = np.dtype(layer.dtype)
    follow = core.follow_dtype(np.asarray(x))
    if isinstance(layer, (BatchNorm1D, BatchNorm2D)):
        if xs[-1] != layer.num_features or len(xs) not in ((4,) if isinstance(layer, BatchNorm2D) else (2, 3)):
            return core.VALUE, None, None
        batch_stats = training or not layer.track_running_stats
        return (core.VALUE, None, None) if batch_stats and math.prod(xs[:-1]) < 2 else (core.OK, xs, param)
    if isinstance(layer, Flatten):
        return core.OK, (xs[0], math.prod(xs[1:])), follow
    B, H, W, C = xs
    if isinstance(layer, (Conv2D, ConvTranspose2D)) and C != layer.in_channels:
        return core.VALUE, None, None
    if H < 1 or W < 1:
        return core.VALUE, None, None
    if isinstance(layer, Conv2D):
        pt, pb, pl, pr = _conv2d_padding(layer)
        (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.stride, layer.dilation
        HO, WO = _conv_size(H, kh, sh, dh, pt, pb), _conv_size(W, kw, sw, dw, pl, pr)
        if HO is None or WO is None or _unrepresentable((B, pt + H + pb, pl + W + pr, C), param) \
                or _unrepresentable((B, HO, WO, layer.out_channels), param):
            return core.VALUE, None, None
        return core.OK, (B, HO, WO, layer.out_channels), param
    if isinstance(layer, ConvTranspose2D):
        geometry = list(zip((H, W), layer.stride, layer.padding, layer.dilation, layer.kernel_size, layer.output_padding))
        HO, WO = ((n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, s, p, d, k, op in geometry)
        if min(HO, WO) < 1 or _unrepresentable((B, HO, WO, layer.out_channels), param):
            return core.VALUE, None, None
        full = [(n - 1) * s + d * (k - 1) + 1 + op for n, s, p, d, k, op in geometry]  # the uncut output bounds the work arrays
        if _unrepresentable((B, *full, layer.out_channels), param):
            return core.ANY, None, None
        return core.OK, (B, HO, WO, layer.out_channels), param
    if isinstance(layer, (MaxPool2D, AvgPool2D)):
        dil = getattr(layer, "dilation", (1, 1))
        HO, WO = (_pool_size(n, k, s, p, d, layer.ceil_mode) for n, k, s, p, d in
                  zip((H, W), layer.kernel_size, layer.stride, layer.padding, dil))
        return (core.VALUE, None, None) if min(HO, WO) < 1 else (core.OK, (B, HO, WO, C), follow)
    if isinstance(layer, GlobalAvgPool2D):
        return core.OK, (B, C), follow
    if isinstance(layer, Upsample2D):
        sh, sw = layer.scale_factor
        if _unrepresentable((B, H * sh, W * sw, C), follow or np.float64):
            return core.VALUE, None, None
        return core.OK, (B, H * sh, W * sw, C), follow
    raise AssertionError(type(layer).__name__)


# ------------------------------------------------------------------------ pyrnn.vision models
def _tuple_bad(pairs):
    bad = [(5, "type"), (None, "type"), ("12", "type"), ({"a": 1}, "type"), ((), "value")]
    if pairs:
        return bad + [(((2,),), "value"), (((2, 8, 1),), "value"), (((0, 8),), "value"), (((2, -8),), "value"),
                      (((2, 8.5),), "type"), ((("2", 8),), "type"), (((True, 8),), "type"), (((2, 8), None), "type")]
    return bad + [((0,), "value"), ((-1, 2), "value"), ((2.5,), "type"), ((True,), "type"), ((2, None), "type"),
                  ((2**40,), "value")]


_ARCH_ARGS = {  # name, kind, extra (kinds of the driver's draw_arg, or "blocks"/"depths"/"widths" drawn here)
    "lenet5": [("num_classes", "int", {}), ("in_channels", "int", {"small": (1, 3)}),
               ("activation", "choice", {"choices": ("tanh", "relu")}), ("seed", "seed", {})],
    "vgg": [("blocks", "blocks", {}), ("num_classes", "int", {}), ("in_channels", "int", {"small": (1, 3)}),
            ("batch_norm", "bool", {}), ("seed", "seed", {})],
    "resnet": [("depths", "depths", {}), ("widths", "widths", {}), ("num_classes", "int", {}),
               ("in_channels", "int", {"small": (1, 3)}), ("stem", "choice", {"choices": ("cifar", "imagenet")}),
               ("seed", "seed", {})],
    "unet": [("in_channels", "int", {"small": (1, 3)}), ("num_classes", "int", {}), ("widths", "widths", {}),
             ("upsample", "choice", {"choices": ("transpose", "bilinear")}), ("seed", "seed", {})],
}
_DEFAULT_CHANNELS = {"lenet5": 1, "vgg": 3, "resnet": 3, "unet": 1}
VISION_X_MUTATIONS = ["dtype", "form", "channels", "rank_minus", "size", "batch"]
VISION_DY_MUTATIONS = ["dtype", "form", "shape_plus", "rank_minus"]


def _draw_tuple(data, kind, length, mutate, big):
    if mutate and big:
        return (tuple((1, 2**20) for _ in range(length)) if kind == "blocks" else (2**20,) * length), core.BIG
    if mutate:
        return data.draw(st.sampled_from(_tuple_bad(kind == "blocks")))
    if kind == "blocks":
        value = tuple((data.draw(st.integers(1, 2)), data.draw(st.integers(1, 6))) for _ in range(length))
    else:
        value = tuple(data.draw(st.integers(1, 2 if kind == "depths" else 6)) for _ in range(length))
    return (list(value) if data.draw(st.booleans()) else value), core.OK


def draw_vision_case(data, mode):
    """A builder, its arguments (one drawn bad or huge for ``mode`` "ctor"/"big"), and the call's draws."""
    arch = data.draw(st.sampled_from(sorted(_ARCH_ARGS)))
    defs = _ARCH_ARGS[arch]
    big = mode == "big"
    candidates = [k for k, (_, kind, _) in enumerate(defs) if not big or kind in ("int", "widths", "blocks")]
    mutated = data.draw(st.sampled_from(candidates)) if mode in ("ctor", "big") else -1
    stages = data.draw(st.integers(2 if arch == "unet" else 1, 3))
    args = []
    for k, (name, kind, extra) in enumerate(defs):
        if k != mutated and data.draw(st.integers(0, 2)) == 0:
            continue  # its default
        if kind in ("blocks", "depths", "widths"):
            value, verdict = _draw_tuple(data, kind, stages, k == mutated, big)
        else:
            value, verdict = core.draw_arg(data, kind, k == mutated, big_only=big, **extra)
        args.append((name, value, verdict))
    if arch == "unet" and mode == "ctor" and data.draw(st.integers(0, 3)) == 0:
        args = [a for a in args if a[0] != "widths"] + [("widths", (8,), core.VALUE)]  # one scale: no U
    if arch == "resnet" and mode == "ctor" and data.draw(st.integers(0, 3)) == 0:
        args = [a for a in args if a[0] not in ("depths", "widths")] + [("depths", (1, 1), core.OK), ("widths", (4,), core.VALUE)]
    return {"arch": arch, "args": args, "mode": mode,
            "B": data.draw(st.sampled_from([2, 2, 3, 0, 1])), "m": data.draw(st.integers(1, 2)),
            "S": data.draw(st.integers(1, 12)), "sequence": data.draw(st.sampled_from(["fwd_bwd"] * 4 + ["eval_fwd_bwd", "no_grad_bwd"])),
            "x_mut": data.draw(st.sampled_from(VISION_X_MUTATIONS)) if mode == "call" and data.draw(st.booleans()) else None,
            "dy_mut": data.draw(st.sampled_from(VISION_DY_MUTATIONS)) if mode == "call" and data.draw(st.booleans()) else None,
            "x": data.draw(core.array_spec(["float32", "float64", "float16", ">f4"], core.BAD_DTYPES)),
            "x_bad": data.draw(core.array_spec(core.FLOAT_DTYPES, core.BAD_DTYPES, mutate_dtype=True)),
            "dy": data.draw(core.array_spec(["float32", "float64"], core.BAD_DTYPES)),
            "dy_bad": data.draw(core.array_spec(core.FLOAT_DTYPES, core.BAD_DTYPES, mutate_dtype=True)),
            "form": data.draw(st.sampled_from(["str", "ragged", "dict"]))}


def _vision_verdict(case):
    """The builder's verdict: the arguments' own, and resnet's one width per stage (a broken rule beside a
    wrong argument leaves either error to the builder)."""
    a = {name: value for name, value, _ in case["args"]}
    v = core.combine([verdict for _, _, verdict in case["args"]])
    if case["arch"] == "resnet":
        depths, widths = a.get("depths", (2,) * 4), a.get("widths", (64, 128, 256, 512))
        if isinstance(depths, (tuple, list)) and isinstance(widths, (tuple, list)) and depths and widths \
                and len(depths) != len(widths):
            return core.combine([v, core.VALUE])
    return v


def _good_size(case, a):
    """An image side every layer of the model takes, from the drawn multiplier."""
    arch = case["arch"]
    if arch == "lenet5":
        return 32
    if arch == "vgg":
        return 2 ** len(a.get("blocks", ((2, 32), (2, 64), (2, 128)))) * case["m"]
    if arch == "unet":
        return 2 ** (len(a.get("widths", (16, 32, 64))) - 1) * case["m"]
    return 3 + case["m"]


def run_vision_case(rec, backend, case):
    """Build the model, then forward and backward on an image batch, each call classified by the driver."""
    pyrnn.set_backend(backend)
    build = getattr(vision, case["arch"])
    kwargs = {name: value for name, value, _ in case["args"]}
    call = f"vision.{case['arch']}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
    ok, model = core.run_call(rec, call, lambda: build(**kwargs), _vision_verdict(case),
                              check=lambda m: None if isinstance(m, pyrnn.Model) else "not a Model")
    rec.coverage[f"vision@{backend}"] = rec.coverage.get(f"vision@{backend}", 0) + 1
    if not ok or not isinstance(model, pyrnn.Model):
        return
    try:
        _vision_forward_backward(rec, model, call, case)
    finally:
        model.clear_saved()


def _vision_forward_backward(rec, model, call, case):
    a = {name: value for name, value, _ in case["args"]}
    C = int(a.get("in_channels", _DEFAULT_CHANNELS[case["arch"]]))
    k = int(a.get("num_classes", 10 if case["arch"] != "unet" else 2))
    S, B, verdict = _good_size(case, a), case["B"], core.OK
    if B < 2:
        verdict = core.ANY  # batch statistics of a 1 x 1 map of one sample: refused in training
    mut, spec = case["x_mut"], case["x"]
    shape = [B, S, S, C]
    if mut == "size":
        shape[1] = shape[2] = case["S"]
        verdict = core.combine([verdict, core.ANY])
    elif mut == "batch":
        shape[0] = case["m"] - 1
        verdict = core.ANY
    elif mut == "channels":
        shape[3] = C + 1
        verdict = core.VALUE
    elif mut == "rank_minus":
        shape = shape[:-1]
        verdict = core.VALUE
    elif mut == "dtype":
        spec, verdict = case["x_bad"], core.TYPE
    elif mut == "form":
        spec, verdict = dict(spec, form=case["form"]), core.TYPE
    if core.shrinks(shape):  # too many elements to build: materialize empties the batch
        verdict = core.combine([verdict, core.ANY])
    x = core.materialize(spec, shape)
    out_shape = (shape[0], k) if case["arch"] != "unet" else (shape[0], shape[1], shape[2], k)
    seq = case["sequence"]
    if seq == "eval_fwd_bwd":
        model.eval()
    desc = f"{call}.forward({core.describe_array(spec, x)})"

    def check_fwd(y):
        return None if verdict != core.OK else core.check_array("y", y, out_shape, np.dtype(np.float32))

    if seq == "no_grad_bwd":
        with pyrnn.no_grad():
            ok, y = core.run_call(rec, desc + " [no_grad]", lambda: model.forward(x), verdict, check_fwd)
        if ok and isinstance(y, np.ndarray):
            core.run_call(rec, f"{call}.backward(<after a no_grad forward>)", lambda: model.backward(np.zeros_like(y)),
                          core.VALUE)
        return
    ok, y = core.run_call(rec, desc, lambda: model.forward(x), verdict, check_fwd)
    if not ok or not isinstance(y, np.ndarray):
        return
    dmut, dspec, bverdict, dshape = case["dy_mut"], case["dy"], core.OK, list(y.shape)
    if dmut == "dtype":
        dspec, bverdict = case["dy_bad"], core.TYPE
    elif dmut == "form":
        dspec, bverdict = dict(dspec, form=case["form"]), core.TYPE
    elif dmut == "shape_plus":
        dshape[-1] += 1
        bverdict = core.VALUE
    elif dmut == "rank_minus":
        dshape = dshape[:-1]
        bverdict = core.VALUE
    if verdict != core.OK or core.shrinks(dshape):
        bverdict = core.combine([bverdict, core.ANY])
    dy = core.materialize(dspec, dshape)
    x_shape = tuple(np.shape(x))

    def check_bwd(dx):
        return None if bverdict != core.OK else core.check_array("dx", dx, x_shape, np.dtype(np.float32))

    core.run_call(rec, f"{call}.backward({core.describe_array(dspec, dy)}) [after {desc}]", lambda: model.backward(dy),
                  bverdict, check_bwd)
