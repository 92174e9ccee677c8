"""Weights and models in and out of PyTorch, and weights from Keras.

PyTorch: pyrnn uses PyTorch's layouts and names (``weight_ih_l0``, Linear ``weight``
(out, in), Conv1d ``weight`` (C_out, C_in, K), Conv2d ``weight`` (C_out, C_in/G, KH, KW),
ConvTranspose2d ``weight`` (C_in, C_out/G, KH, KW), BatchNorm ``weight``, ``bias``,
``running_mean``, ``running_var``, ``num_batches_tracked``), so a state dict converts by renaming
at most. Numbers are torch's on the transposes: images are (B, H, W, C) in pyrnn and (B, C, H, W)
in torch, sequences (B, T, C) and (B, C, T) for convolutions and batch norm; ``Flatten`` flattens
in torch's (C, H, W) order, so a ``Linear`` after ``Flatten`` loads unchanged.

Three levels, one code path per direction (:func:`from_torch` in, :func:`to_torch` out):

- **State dicts**: a model's parameters are named ``"<layer index>.<name>"``; ``names`` maps torch
  module paths to those indices, e.g. ``{"conv": 0, "gru": 1, "head": 3}`` or, for nested torch
  modules, ``{"layer1.0.conv1": 3, ...}`` (a key goes under the longest path of ``names`` it starts
  with). A ``torch.nn.Sequential`` whose children match the pyrnn layers one to one needs no map.
- **Name maps** for models whose torch twin is organised differently: :func:`resnet_names`
  (torchvision's ResNet names for :func:`pyrnn.vision.resnet`) and :func:`names_in_order` (any
  torch model that declares its weighted modules in the pyrnn model's layer order, e.g. LeNet-5,
  VGG, U-Net).
- **Modules**: :func:`from_torch_module` turns a torch layer or ``nn.Sequential`` into the pyrnn
  layer or :class:`~pyrnn.Sequential` with the same configuration and weights, and
  :func:`to_torch_module` goes back; both read one table, ``_MODULES`` (torch class <-> pyrnn class
  and how their arguments translate).

Keras: ``kernel`` is (I, G*H) with gates in Keras order, ``recurrent_kernel`` (H, G*H).
LSTM gates i, f, c, o are PyTorch's i, f, g, o (transposed, bias into ``bias_ih``);
GRU gates z, r, h are reordered to r, z, n; only ``reset_after=True`` GRUs (the
TF2 default, bias (2, 3H)) match PyTorch's formula. Default activations only
(tanh, and sigmoid as the recurrent activation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from . import layers as _layers


def _numpy(v):
    return v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)


def _torch_state(obj):
    """A torch module's state dict, or ``obj`` itself when it is already a mapping."""
    return obj.state_dict() if hasattr(obj, "state_dict") and not isinstance(obj, dict) else obj


def _rename(key, names):
    """``key`` with its longest module path found in ``names`` replaced by that path's layer index."""
    parts = key.split(".")
    for n in range(len(parts) - 1, 0, -1):
        path = ".".join(parts[:n])
        if path in names:
            return f"{names[path]}.{'.'.join(parts[n:])}"
    raise ValueError(f"from_torch: expected every key under one of {sorted(names)}, got {key!r}")


def from_torch(obj, names=None):
    """A torch module's (or state dict's) entries as ``{name: ndarray}`` in pyrnn's naming.

    Parameters
    ----------
    obj : torch.nn.Module or mapping of names to tensors/arrays
    names : dict of str to int, optional
        Torch module path -> pyrnn layer index; each key's longest path found in ``names`` is
        replaced by its index (``"layer1.0.conv1.weight"`` -> ``"3.weight"``). None: keys kept.

    Returns
    -------
    dict of str to ndarray
    """
    out = {}
    for key, value in _torch_state(obj).items():
        out[key if not names else _rename(key, names)] = _numpy(value)
    return out


def load_torch(target, obj, names=None):
    """Load a torch module's (or state dict's) weights into a pyrnn layer or model, strictly
    (every key present, no extra key, every shape exact); ``names`` as in :func:`from_torch`.
    Returns ``target``."""
    target.load_state_dict(from_torch(obj, names))
    return target


def to_torch(source, names=None):
    """A pyrnn layer's or model's weights and buffers as a torch state dict.

    Parameters
    ----------
    source : pyrnn layer or model
    names : dict of str to int, optional
        As in :func:`from_torch`: the layer index ``i`` of a key ``"i.<name>"`` becomes the torch
        module path that ``names`` maps to ``i``.

    Returns
    -------
    dict of str to torch.Tensor
        Ready for ``torch_module.load_state_dict`` (which casts to the module's dtype).
    """
    import torch

    inverse = None if names is None else {str(i): path for path, i in names.items()}
    out = {}
    for key, value in source.state_dict().items():
        if inverse is not None:
            index, _, rest = key.partition(".")
            if index not in inverse:
                raise ValueError(f"to_torch: expected a torch path for every layer with weights, got none for layer "
                                 f"{index} ({key!r}); names maps layers {sorted(inverse, key=int)}")
            key = f"{inverse[index]}.{rest}"
        out[key] = torch.from_numpy(np.ascontiguousarray(value))
    return out


# ---------------------------------------------------------------------------------- name maps
def _weighted(model):
    """[(index, layer)] of the model's layers that hold parameters or buffers, in layer order."""
    return [(i, layer) for i, layer in enumerate(model.layers) if layer.state()]


def names_in_order(model, obj):
    """The ``names`` map pairing the torch modules that hold weights, in the order their keys come
    in the state dict (the order the modules were declared), with the pyrnn layers that hold
    weights, in layer order.

    For torch twins of :func:`pyrnn.vision.lenet5`, :func:`~pyrnn.vision.vgg` and
    :func:`~pyrnn.vision.unet` that declare their convolutions, batch norms and linear layers in
    the order the pyrnn model lists them (encoder before decoder, and in a decoder stage the
    upsampling before its convolutions).

    Parameters
    ----------
    model : pyrnn Sequential or Model
    obj : torch.nn.Module or its state dict

    Returns
    -------
    dict of str to int
        Torch module path -> pyrnn layer index, for :func:`load_torch`/:func:`to_torch`.

    Raises
    ------
    ValueError
        When the counts differ or a pair's weight names differ (a Conv2d paired with a BatchNorm2d,
        say); the shapes are checked when the weights are loaded.
    """
    keys = list(_torch_state(obj))
    paths = list(dict.fromkeys(k.rpartition(".")[0] for k in keys))
    weighted = _weighted(model)
    if len(paths) != len(weighted):
        raise ValueError(f"names_in_order: expected {len(weighted)} torch modules with weights (one per pyrnn layer "
                         f"with weights), got {len(paths)}: {paths}")
    for path, (i, layer) in zip(paths, weighted):
        got = sorted(k.rpartition(".")[2] for k in keys if k.rpartition(".")[0] == path)
        if got != sorted(layer.state()):
            raise ValueError(f"names_in_order: expected torch module {path!r} to hold {sorted(layer.state())} like pyrnn "
                             f"layer {i} ({type(layer).__name__}), got {got}")
    return {path: i for path, (i, _) in zip(paths, weighted)}


def resnet_names(model):
    """torchvision's ResNet names for a model built by :func:`pyrnn.vision.resnet`.

    The map (torch module path -> pyrnn layer index), read off the model's layers::

        conv1, bn1                       the stem's convolution and batch norm (both stems)
        layer{s}.{b}.conv1, .bn1         stage s = 1, 2, ..., block b = 0, 1, ...: the first 3x3
        layer{s}.{b}.conv2, .bn2         convolution and batch norm, then the second
        layer{s}.{b}.downsample.0, .1    the 1x1 projection of the skip and its batch norm
                                         (the first block of every stage whose shape changes)
        fc                               the classifier (after the global average pool, flattened)

    These are the names of ``torchvision.models.resnet18`` and of the usual hand-written ResNets,
    so a torch ResNet with basic blocks built the same way loads with
    ``load_torch(model, torch_model, names=resnet_names(model))`` and receives pyrnn's weights with
    ``torch_model.load_state_dict(to_torch(model, names=resnet_names(model)))``.

    Parameters
    ----------
    model : pyrnn.Model from :func:`pyrnn.vision.resnet`

    Returns
    -------
    dict of str to int

    Raises
    ------
    ValueError
        When the model's weighted layers are not a ResNet's sequence (stem, then blocks of
        conv 3x3, BN, conv 3x3, BN and optionally conv 1x1, BN, then one Dense).
    """
    weighted = _weighted(model)
    kinds = "".join("c" if isinstance(l, _layers.Conv2D) else "n" if isinstance(l, _layers.BatchNorm2D)
                    else "d" if isinstance(l, _layers.Dense) else "?" for _, l in weighted)
    pos, names = 0, {}

    def take(kind, path, kernel=None):
        nonlocal pos
        i, layer = weighted[pos] if pos < len(weighted) else (None, None)
        if layer is None or kinds[pos] != kind or (kernel is not None and layer.kernel_size != (kernel, kernel)):
            what = {"c": "Conv2D", "n": "BatchNorm2D", "d": "Dense"}[kind] + (f" {kernel}x{kernel}" if kernel else "")
            got = "the end of the model" if layer is None else f"layer {i} {layer!r}"
            raise ValueError(f"resnet_names: expected a model built by pyrnn.vision.resnet, with a {what} for {path!r}; "
                             f"got {got}")
        names[path] = i
        pos += 1
        return layer

    take("c", "conv1")
    take("n", "bn1")
    stage, block = 1, -1
    while pos < len(weighted) and kinds[pos] == "c":
        first = weighted[pos][1]
        if first.stride != (1, 1) and block >= 0:
            stage, block = stage + 1, 0
        else:
            block += 1
        prefix = f"layer{stage}.{block}"
        for path, kind, kernel in (("conv1", "c", 3), ("bn1", "n", None), ("conv2", "c", 3), ("bn2", "n", None)):
            take(kind, f"{prefix}.{path}", kernel)
        if pos < len(weighted) and kinds[pos] == "c" and weighted[pos][1].kernel_size == (1, 1):
            take("c", f"{prefix}.downsample.0", 1)
            take("n", f"{prefix}.downsample.1")
    take("d", "fc")
    if pos != len(weighted):
        i, layer = weighted[pos]
        raise ValueError(f"resnet_names: expected the Dense classifier to be the last layer with weights, got layer {i} "
                         f"{layer!r} after it")
    return names


# ---------------------------------------------------------------------------------- modules
class _Module(NamedTuple):
    """One row of :data:`_MODULES`: a torch.nn class and the pyrnn layer class with the same maths."""

    torch: str  #: torch.nn class name
    pyrnn: str  #: pyrnn.layers class name
    #: torch module, dtype -> pyrnn constructor keyword arguments (raises ValueError for what pyrnn lacks)
    to_pyrnn: Callable
    #: pyrnn layer, torch.nn -> torch module (without weights)
    to_torch: Callable
    #: what the layer does to the data's layout: "image" (its output is an image), "flat" (its output
    #: is features), "features" (it needs features, not an image: torch's acts on the width of an NCHW
    #: image where pyrnn's acts on the channels), "global" (image -> (B, C, 1, 1) in torch, (B, C) in
    #: pyrnn), None (elementwise)
    layout: str | None


def _refuse(module, what, got):
    raise ValueError(f"{type(module).__name__}: expected {what} (what pyrnn's layer does), got {got}")


def _zeros_padding(m):
    if m.padding_mode != "zeros":
        _refuse(m, "padding_mode='zeros'", repr(m.padding_mode))


def _conv2d_to_pyrnn(m, dtype):
    _zeros_padding(m)
    return dict(in_channels=m.in_channels, out_channels=m.out_channels, kernel_size=m.kernel_size, stride=m.stride,
                padding=m.padding, dilation=m.dilation, groups=m.groups, bias=m.bias is not None, dtype=dtype)


def _conv_transpose2d_to_pyrnn(m, dtype):
    _zeros_padding(m)
    return dict(in_channels=m.in_channels, out_channels=m.out_channels, kernel_size=m.kernel_size, stride=m.stride,
                padding=m.padding, output_padding=m.output_padding, dilation=m.dilation, groups=m.groups,
                bias=m.bias is not None, dtype=dtype)


def _batchnorm_to_pyrnn(m, dtype):
    return dict(num_features=m.num_features, eps=m.eps, momentum=m.momentum, affine=m.affine,
                track_running_stats=m.track_running_stats, dtype=dtype)


def _batchnorm_to_torch(layer, nn, cls):
    return cls(layer.num_features, eps=layer.eps, momentum=layer.momentum, affine=layer.affine,
               track_running_stats=layer.track_running_stats)


def _maxpool2d_to_pyrnn(m, dtype):
    if m.return_indices:
        _refuse(m, "return_indices=False", "True")
    return dict(kernel_size=m.kernel_size, stride=m.stride, padding=m.padding, dilation=m.dilation, ceil_mode=m.ceil_mode)


def _avgpool2d_to_pyrnn(m, dtype):
    if m.divisor_override is not None:
        _refuse(m, "divisor_override=None", repr(m.divisor_override))
    return dict(kernel_size=m.kernel_size, stride=m.stride, padding=m.padding, ceil_mode=m.ceil_mode,
                count_include_pad=m.count_include_pad)


def _global_to_pyrnn(m, dtype):
    if m.output_size not in (1, (1, 1), [1, 1]):
        _refuse(m, "output_size=1 (a global average pool)", repr(m.output_size))
    return {}


def _upsample_to_pyrnn(m, dtype):
    if m.size is not None or m.scale_factor is None:
        _refuse(m, "scale_factor (not size)", f"size={m.size!r}, scale_factor={m.scale_factor!r}")
    scale = m.scale_factor if isinstance(m.scale_factor, (tuple, list)) else (m.scale_factor, m.scale_factor)
    if len(scale) != 2 or any(float(f) != int(f) or f < 1 for f in scale):
        _refuse(m, "integer scale factors >= 1 for (H, W)", repr(m.scale_factor))
    if m.mode not in ("nearest", "bilinear"):
        _refuse(m, "mode 'nearest' or 'bilinear'", repr(m.mode))
    if m.mode == "bilinear" and m.align_corners:
        _refuse(m, "align_corners=False", "True")
    return dict(scale_factor=tuple(int(f) for f in scale), mode=m.mode)


def _upsample_to_torch(layer, nn):
    sh, sw = layer.scale_factor
    return nn.Upsample(scale_factor=(float(sh), float(sw)), mode=layer.mode,
                       align_corners=False if layer.mode == "bilinear" else None)


def _flatten_to_pyrnn(m, dtype):
    if (m.start_dim, m.end_dim) != (1, -1):
        _refuse(m, "start_dim=1, end_dim=-1", f"start_dim={m.start_dim}, end_dim={m.end_dim}")
    return {}


def _no_args(m, dtype):
    return {}


_MODULES = [
    _Module("Linear", "Dense",
            lambda m, dt: dict(in_features=m.in_features, out_features=m.out_features, bias=m.bias is not None, dtype=dt),
            lambda l, nn: nn.Linear(l.in_features, l.out_features, bias=l.bias), "features"),
    _Module("Conv2d", "Conv2D", _conv2d_to_pyrnn,
            lambda l, nn: nn.Conv2d(l.in_channels, l.out_channels, l.kernel_size, stride=l.stride, padding=l.padding,
                                    dilation=l.dilation, groups=l.groups, bias=l.bias), "image"),
    _Module("ConvTranspose2d", "ConvTranspose2D", _conv_transpose2d_to_pyrnn,
            lambda l, nn: nn.ConvTranspose2d(l.in_channels, l.out_channels, l.kernel_size, stride=l.stride,
                                             padding=l.padding, output_padding=l.output_padding, groups=l.groups,
                                             bias=l.bias, dilation=l.dilation), "image"),
    _Module("BatchNorm2d", "BatchNorm2D", _batchnorm_to_pyrnn, lambda l, nn: _batchnorm_to_torch(l, nn, nn.BatchNorm2d),
            "image"),
    _Module("BatchNorm1d", "BatchNorm1D", _batchnorm_to_pyrnn, lambda l, nn: _batchnorm_to_torch(l, nn, nn.BatchNorm1d),
            "features"),
    _Module("MaxPool2d", "MaxPool2D", _maxpool2d_to_pyrnn,
            lambda l, nn: nn.MaxPool2d(l.kernel_size, stride=l.stride, padding=l.padding, dilation=l.dilation,
                                       ceil_mode=l.ceil_mode), "image"),
    _Module("AvgPool2d", "AvgPool2D", _avgpool2d_to_pyrnn,
            lambda l, nn: nn.AvgPool2d(l.kernel_size, stride=l.stride, padding=l.padding, ceil_mode=l.ceil_mode,
                                       count_include_pad=l.count_include_pad), "image"),
    # pyrnn's global pool returns (B, C): in torch that is the pool and a Flatten
    _Module("AdaptiveAvgPool2d", "GlobalAvgPool2D", _global_to_pyrnn,
            lambda l, nn: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), "global"),
    _Module("Upsample", "Upsample2D", _upsample_to_pyrnn, _upsample_to_torch, "image"),
    _Module("Flatten", "Flatten", _flatten_to_pyrnn, lambda l, nn: nn.Flatten(), "flat"),
    _Module("ReLU", "ReLU", _no_args, lambda l, nn: nn.ReLU(), None),
    _Module("Tanh", "Tanh", _no_args, lambda l, nn: nn.Tanh(), None),
    _Module("Sigmoid", "Sigmoid", _no_args, lambda l, nn: nn.Sigmoid(), None),
    _Module("Identity", "Identity", _no_args, lambda l, nn: nn.Identity(), None),
    _Module("LeakyReLU", "LeakyReLU", lambda m, dt: dict(negative_slope=m.negative_slope),
            lambda l, nn: nn.LeakyReLU(l.negative_slope), None),
    _Module("GELU", "GELU", lambda m, dt: dict(approximate=m.approximate), lambda l, nn: nn.GELU(l.approximate), None),
    _Module("Dropout", "Dropout", lambda m, dt: dict(p=m.p), lambda l, nn: nn.Dropout(l.p), None),
]
_BY_TORCH = {row.torch: row for row in _MODULES}
_BY_PYRNN = {row.pyrnn: row for row in _MODULES}


def _check_layouts(kinds, what):
    """Refuse a layer that needs features right after one that leaves an image (``kinds``: [(label,
    layout)] in order; ``what``: "torch" or "pyrnn", whose global pool keeps (B, C, 1, 1) or not)."""
    image = False
    for label, layout in kinds:
        if layout == "features" and image:
            raise ValueError(f"{label}: expected features (a Flatten or a global average pool before it), got an image: "
                             "torch's layer would act on the width of its (B, C, H, W) image and pyrnn's on the channels "
                             "of its (B, H, W, C) one")
        if layout is not None:
            image = layout == "image" or (layout == "global" and what == "torch")


def _torch_leaves(module, nn, prefix=""):
    """[(path, module)] of a torch module, nested ``nn.Sequential`` containers opened in order (not
    subclasses: their ``forward`` may do something else)."""
    if type(module) is not nn.Sequential:
        return [(prefix, module)]
    return [leaf for name, child in module.named_children()
            for leaf in _torch_leaves(child, nn, f"{prefix}.{name}" if prefix else name)]


def _torch_dtype(module):
    """The name of the dtype of a torch module's first floating-point tensor (None: it has none)."""
    tensors = [t for t in list(module.parameters()) + list(module.buffers()) if t.is_floating_point()]
    return str(tensors[0].dtype).replace("torch.", "") if tensors else None


def _layer_from_torch(path, module, nn, default_dtype):
    row = _BY_TORCH.get(type(module).__name__)
    if row is None or type(module) is not getattr(nn, row.torch):
        raise ValueError(f"from_torch_module: expected one of the torch.nn modules {sorted(_BY_TORCH)} (or an nn.Sequential "
                         f"of them), got {type(module).__module__}.{type(module).__qualname__} at {path or 'the top'!r}")
    dtype = _torch_dtype(module) or default_dtype
    try:
        layer = getattr(_layers, row.pyrnn)(**row.to_pyrnn(module, dtype))
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"from_torch_module: {path or 'the module'}: {exc}") from None
    return layer.train(module.training)


def from_torch_module(module, dtype=None):
    """The pyrnn twin of a torch layer or ``nn.Sequential``: the same configuration and weights.

    Parameters
    ----------
    module : torch.nn.Module
        One of the modules of the table below, or an ``nn.Sequential`` of them (nested
        ``nn.Sequential`` containers are opened in order).
    dtype : float32 or float64, optional
        The dtype of a layer whose torch module holds no tensor to read it from (a batch norm
        without affine parameters and running statistics); None: the dtype of ``module``'s first
        floating-point tensor, float32 if it has none. Layers with weights take their own.

    Returns
    -------
    pyrnn layer or pyrnn.Sequential
        Each layer in its torch module's train/eval mode, of its dtype (float32 or float64). It computes
        torch's numbers on the transposes: (B, C, H, W) images are (B, H, W, C) in pyrnn.

    Notes
    -----
    ==============================================  ==========================================
    torch.nn                                        pyrnn
    ==============================================  ==========================================
    Linear                                          Dense
    Conv2d, ConvTranspose2d (zero padding)          Conv2D, ConvTranspose2D
    BatchNorm2d, BatchNorm1d (running statistics)   BatchNorm2D, BatchNorm1D
    MaxPool2d, AvgPool2d                            MaxPool2D, AvgPool2D
    AdaptiveAvgPool2d(1)                            GlobalAvgPool2D: (B, C), not (B, C, 1, 1)
    Upsample (integer scale, nearest or bilinear)   Upsample2D
    Flatten()                                       Flatten (torch's (C, H, W) order)
    ReLU, Tanh, Sigmoid, Identity, LeakyReLU,       the same names
    GELU, Dropout
    ==============================================  ==========================================

    A ``Linear`` or ``BatchNorm1d`` that would see an image (no ``Flatten`` since the last
    image layer) is refused: torch's acts on the width of the NCHW image, which pyrnn's
    channels-last layers cannot express. Recurrent layers convert by state dict
    (:func:`load_torch`), the torch module producing a tuple that ``nn.Sequential`` cannot chain.
    """
    import torch.nn as nn

    from .models import Sequential

    leaves = _torch_leaves(module, nn)
    default = dtype if dtype is not None else (_torch_dtype(module) or np.float32)
    layers = [_layer_from_torch(path, m, nn, default) for path, m in leaves]
    if type(module) is not nn.Sequential:
        return load_torch(layers[0], module)
    _check_layouts([(f"from_torch_module: {path} ({type(m).__name__})", _BY_TORCH[type(m).__name__].layout)
                    for path, m in leaves], "torch")
    return load_torch(Sequential(layers), module, names={path: i for i, (path, _) in enumerate(leaves)})


def _module_from_layer(index, layer, nn, torch):
    row = _BY_PYRNN.get(type(layer).__name__)
    if row is None or type(layer) is not getattr(_layers, row.pyrnn):
        raise ValueError(f"to_torch_module: expected one of the pyrnn layers {sorted(_BY_PYRNN)}, got "
                         f"{type(layer).__name__} at {index if index is not None else 'the top'}")
    module = row.to_torch(layer, nn)
    if layer.state() and layer.dtype == np.float64:
        module = module.to(torch.float64)
    return module.train(layer.training)


def to_torch_module(source):
    """The torch twin of a pyrnn layer or :class:`~pyrnn.Sequential`: the same configuration and
    weights (the table of :func:`from_torch_module`, read the other way).

    Parameters
    ----------
    source : pyrnn layer or pyrnn.Sequential

    Returns
    -------
    torch.nn.Module or torch.nn.Sequential
        One child per pyrnn layer (``GlobalAvgPool2D`` becomes ``nn.Sequential(AdaptiveAvgPool2d(1),
        Flatten())``, its (B, C) output), so the state dict keys are pyrnn's; in the layers' train/eval
        mode, float64 where the pyrnn layer is.

    Raises
    ------
    ValueError
        For a layer without a torch twin in the table, a ``Dense``/``BatchNorm1D`` that would see an
        image, or a functional :class:`~pyrnn.Model` (its graph has no ``nn.Sequential`` form: map its
        weights with :func:`to_torch` and a ``names`` map instead).
    """
    import torch
    import torch.nn as nn

    from .models import Sequential

    if isinstance(source, _layers.Layer):
        module = _module_from_layer(None, source, nn, torch)
        module.load_state_dict(to_torch(source))
        return module
    if not isinstance(source, Sequential):
        raise ValueError(f"to_torch_module: expected a pyrnn layer or Sequential, got {type(source).__name__} (a functional "
                         "graph has no nn.Sequential form: map its weights with to_torch(model, names=...))")
    _check_layouts([(f"to_torch_module: layer {i} ({type(l).__name__})", getattr(_BY_PYRNN.get(type(l).__name__), "layout", None))
                    for i, l in enumerate(source.layers)], "pyrnn")
    module = nn.Sequential(*(_module_from_layer(i, l, nn, torch) for i, l in enumerate(source.layers)))
    module.load_state_dict(to_torch(source))
    return module


def _kernel_pair(kernel, recurrent_kernel, G, what):
    k, rk = np.asarray(kernel), np.asarray(recurrent_kernel)
    if k.ndim != 2 or k.shape[1] % G:
        raise ValueError(f"{what} kernel: expected shape (input_size, {G}*hidden), got {k.shape}")
    H = k.shape[1] // G
    if rk.shape != (H, G * H):
        raise ValueError(f"{what} recurrent_kernel: expected shape ({H}, {G * H}), got {rk.shape}")
    return k, rk, H


def keras_lstm_weights(kernel, recurrent_kernel, bias=None, layer=0):
    """Keras LSTM weights (gates i, f, c, o) -> a pyrnn/PyTorch LSTM state dict for layer ``layer``."""
    k, rk, H = _kernel_pair(kernel, recurrent_kernel, 4, "LSTM")
    b = np.zeros(4 * H, k.dtype) if bias is None else np.asarray(bias)
    if b.shape != (4 * H,):
        raise ValueError(f"LSTM bias: expected shape ({4 * H},), got {b.shape}")
    sfx = f"_l{layer}"
    return {f"weight_ih{sfx}": k.T.copy(), f"weight_hh{sfx}": rk.T.copy(), f"bias_ih{sfx}": b.copy(),
            f"bias_hh{sfx}": np.zeros_like(b)}


def keras_gru_weights(kernel, recurrent_kernel, bias=None, reset_after=True, layer=0):
    """Keras GRU weights (gates z, r, h; ``reset_after=True``) -> a pyrnn/PyTorch GRU state dict."""
    if not reset_after:
        raise ValueError("keras_gru_weights: expected reset_after=True (the Keras/TF2 default); a reset_after=False GRU "
                         "applies r before the recurrent matmul, which PyTorch's GRU cannot express")
    k, rk, H = _kernel_pair(kernel, recurrent_kernel, 3, "GRU")
    b = np.zeros((2, 3 * H), k.dtype) if bias is None else np.asarray(bias)
    if b.shape != (2, 3 * H):
        raise ValueError(f"GRU bias: expected shape (2, {3 * H}) (input and recurrent bias, reset_after=True), got {b.shape}")

    def rzn(m):  # columns z|r|h -> r|z|n
        z, r, h = np.split(m, 3, axis=-1)
        return np.concatenate([r, z, h], axis=-1)

    sfx = f"_l{layer}"
    return {f"weight_ih{sfx}": rzn(k).T.copy(), f"weight_hh{sfx}": rzn(rk).T.copy(), f"bias_ih{sfx}": rzn(b[0]),
            f"bias_hh{sfx}": rzn(b[1])}
