"""``python -m pyrnn warmup``: compile (and cache on disk) every Numba kernel ahead of time.

Numba compiles a kernel on its first call with each dtype, 20-40 s in all with an empty
cache (``cache=True`` in :mod:`pyrnn.backends._numba_config` keeps the result for later
processes). This runs forward and backward of every layer family once on a tiny input, on
the Numba backend, so that a user's first ``fit`` does not wait. Whenever a kernel starts
compiling, :mod:`pyrnn.backends._numba_config` logs a one-line notice on the
``pyrnn.numba`` logger (``logging.getLogger("pyrnn.numba").setLevel(logging.ERROR)`` silences it).
"""

from __future__ import annotations

import time

import numpy as np


def _families(dtype):
    """(name, layer, x) of every layer family with a Numba kernel, tiny and seeded."""
    from .. import layers as L

    rng = np.random.default_rng(0)
    seq = rng.standard_normal((2, 5, 3)).astype(dtype)
    img = rng.standard_normal((2, 6, 6, 3)).astype(dtype)
    return [
        ("RNN tanh", L.RNN(3, 4, bidirectional=True, dtype=dtype, seed=0), seq),
        ("RNN relu", L.RNN(3, 4, bidirectional=True, nonlinearity="relu", dtype=dtype, seed=0), seq),
        ("LSTM", L.LSTM(3, 4, bidirectional=True, dtype=dtype, seed=0), seq),
        ("GRU", L.GRU(3, 4, bidirectional=True, dtype=dtype, seed=0), seq),
        ("Conv1D", L.Conv1D(3, 4, 3, dtype=dtype, seed=0), seq),
        ("MaxPool1D", L.MaxPool1D(2), seq),
        ("AvgPool1D", L.AvgPool1D(2), seq),
        ("Conv2D", L.Conv2D(3, 4, 3, dtype=dtype, seed=0), img),
        # Winograd (3x3, > 8 channels), on one thread and, on a tall image of more than one chunk, on the team
        ("Conv2D Winograd", L.Conv2D(9, 9, 3, padding=1, dtype=dtype, seed=0), rng.standard_normal((2, 6, 6, 9)).astype(dtype)),
        ("Conv2D Winograd team", L.Conv2D(9, 9, 3, padding=1, dtype=dtype, seed=0),
         rng.standard_normal((1, 1200, 4, 9)).astype(dtype)),
        ("ConvTranspose2D", L.ConvTranspose2D(3, 4, 2, stride=2, dtype=dtype, seed=0), img),
        ("MaxPool2D", L.MaxPool2D(2), img),
        ("AvgPool2D", L.AvgPool2D(2), img),
        ("Upsample2D", L.Upsample2D(2), img),
        ("BatchNorm2D", L.BatchNorm2D(3, dtype=dtype), img),
    ]


def _run(layer, x, lengths=None):
    out = layer.forward(x) if lengths is None else layer.forward(x, lengths=lengths)
    y = out[0] if isinstance(out, tuple) else out
    layer.backward(np.ones_like(y))


def warmup(backend="numba", dtypes=("float32", "float64"), families=None):
    """Compile every kernel of ``backend`` for ``dtypes`` (only ``families``, names as printed, if
    given); yields one line per layer family and dtype."""
    from . import available_backends, use_backend

    if backend not in available_backends():
        raise RuntimeError(f"warmup: backend {backend!r} does not load here (available: {available_backends()})")
    total = time.perf_counter()
    for dtype in dtypes:
        for name, layer, x in _families(np.dtype(dtype)):
            if families is not None and name not in families:
                continue
            t0 = time.perf_counter()
            with use_backend(backend):
                _run(layer, x)
                if hasattr(layer, "hidden_size"):  # the variable-length path
                    _run(layer, x, lengths=np.array([5, 3]))
            yield f"{backend} {dtype:7s} {name:15s} {time.perf_counter() - t0:6.1f} s"
    yield f"warmup done in {time.perf_counter() - total:.1f} s; the kernels are cached for later runs"
