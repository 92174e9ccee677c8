"""Central finite differences in float64, shared by every gradient check."""

import numpy as np


def numeric_grad(f, arr, eps=1e-6):
    """d f() / d arr by central differences; ``f`` reads ``arr``, which is perturbed in place."""
    g = np.zeros_like(arr, dtype=np.float64)
    it = np.nditer(arr, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = arr[i]
        arr[i] = old + eps
        fp = f()
        arr[i] = old - eps
        fm = f()
        arr[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


def assert_grad_close(analytic, f, arr, name, rtol=1e-6, atol=1e-8, eps=1e-6):
    np.testing.assert_allclose(analytic, numeric_grad(f, arr, eps), rtol=rtol, atol=atol, err_msg=name)
