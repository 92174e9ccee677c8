"""Weights in and out of PyTorch and Keras.

PyTorch: pyrnn uses PyTorch's layouts and names (``weight_ih_l0``, Linear ``weight``
(out, in), Conv1d ``weight`` (C_out, C_in, K)), so conversion is renaming at most.
A model's parameters are named ``"<layer index>.<name>"``; ``names`` maps the torch
module's child names to those indices, e.g. ``{"conv": 0, "gru": 1, "head": 3}``.

Keras: ``kernel`` is (I, G*H) with gates in Keras order, ``recurrent_kernel`` (H, G*H).
LSTM gates i, f, c, o are PyTorch's i, f, g, o (transposed, bias into ``bias_ih``);
GRU gates z, r, h are reordered to r, z, n; only ``reset_after=True`` GRUs (the
TF2 default, bias (2, 3H)) match PyTorch's formula. Default activations only
(tanh, and sigmoid as the recurrent activation).
"""

from __future__ import annotations

import numpy as np


def _numpy(v):
    return v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)


def from_torch(obj, names=None):
    """A torch module or state dict as ``{name: ndarray}``; ``names`` renames the
    prefixes ``"<child>."`` to ``"<index>."`` (see the module docstring)."""
    sd = obj.state_dict() if hasattr(obj, "state_dict") and not isinstance(obj, dict) else obj
    out = {}
    for key, value in sd.items():
        if names:
            child, _, rest = key.partition(".")
            if child not in names:
                raise ValueError(f"from_torch: expected every key under one of {sorted(names)}, got {key!r}")
            key = f"{names[child]}.{rest}"
        out[key] = _numpy(value)
    return out


def load_torch(target, obj, names=None):
    """Load a torch module's (or state dict's) weights into a pyrnn layer or model, strictly."""
    target.load_state_dict(from_torch(obj, names))
    return target


def to_torch(source, names=None):
    """A pyrnn layer's or model's weights as a torch state dict (``{name: torch.Tensor}``),
    ready for ``torch_module.load_state_dict``; ``names`` as in :func:`from_torch`."""
    import torch

    inverse = None if names is None else {str(i): child for child, i in names.items()}
    out = {}
    for key, value in source.state_dict().items():
        if inverse is not None:
            index, _, rest = key.partition(".")
            key = f"{inverse[index]}.{rest}"
        out[key] = torch.from_numpy(np.ascontiguousarray(value))
    return out


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
