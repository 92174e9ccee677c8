"""Central finite differences in float64, shared by every gradient check."""

import numpy as np

from pyrnn.grad_mode import no_grad


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


def check_layer_grads(layer, inputs, forward=None, seed=0, rtol=1e-6, atol=1e-8):
    """Finite differences of ``L = sum(forward(*inputs) * dy)`` (dy random, float64) against
    ``layer.backward(dy)``: every floating input and every parameter. Integer inputs must get None."""
    forward = forward or layer.forward
    with no_grad():
        y = forward(*inputs)
    dy = np.random.default_rng(seed).standard_normal(y.shape)

    def loss():
        with no_grad():
            return float(np.sum(forward(*inputs) * dy))

    layer.zero_grad()
    forward(*inputs)
    dxs = layer.backward(dy)
    dxs = dxs if isinstance(dxs, tuple) else (dxs,)
    assert len(dxs) == len(inputs)
    for k, (x, dx) in enumerate(zip(inputs, dxs)):
        if x.dtype.kind == "f":
            assert dx.shape == x.shape and dx.dtype == x.dtype, f"input {k}"
            assert_grad_close(dx, loss, x, f"input {k}", rtol, atol)
        else:
            assert dx is None, f"input {k}"
    for name, p in layer.params.items():
        assert_grad_close(layer.grads[name].copy(), loss, p, name, rtol, atol)


def check_model_grads(model, inputs, seed=0, every=1, **kwargs):
    """Finite differences of ``L = sum_k sum(output_k * dout_k)`` (random douts) against
    ``model.backward``: every floating input and every ``every``-th parameter. Integer inputs
    (indices, lengths) must get None. ``kwargs`` go to ``forward`` (e.g. ``lengths=``)."""
    rng = np.random.default_rng(seed)
    with no_grad():
        out = model.forward(*inputs, **kwargs)
    outs = out if isinstance(out, tuple) else (out,)
    douts = [rng.standard_normal(o.shape) for o in outs]
    model.zero_grad()
    model.forward(*inputs, **kwargs)
    dins = model.backward(*douts)
    dins = dins if isinstance(dins, tuple) else (dins,)

    def loss():
        with no_grad():
            o = model.forward(*inputs, **kwargs)
        o = o if isinstance(o, tuple) else (o,)
        return float(sum(np.sum(a * d) for a, d in zip(o, douts)))

    for k, (g, x) in enumerate(zip(dins, inputs)):
        if np.asarray(x).dtype.kind == "f":
            assert_grad_close(g, loss, x, f"input {k}")
        else:
            assert g is None, f"input {k}"
    names = list(dict(model.named_parameters()))
    for name in names[::every]:
        i, k = name.split(".", 1)
        assert_grad_close(model.layers[int(i)].grads[k], loss, model.layers[int(i)].params[k], name)
