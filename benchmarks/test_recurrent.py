"""One training step (forward + backward) and one inference forward of a recurrent layer,
on every pyrnn backend and on PyTorch when installed. Each result is checked before timing.

Run: pytest benchmarks/ --benchmark-only   (add --benchmark-disable for a quick correctness smoke run)
"""

import numpy as np
import pytest

import pyrnn

CONFIGS = {  # name: (cell, T, B, I, H)
    "lstm-T100-B64-I128-H256": ("lstm", 100, 64, 128, 256),
}
IMPLS = pyrnn.available_backends() + ["torch"]


def _torch_layer(cell, I, H):
    torch = pytest.importorskip("torch")
    return torch, {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell](I, H, batch_first=True)


def _setup(name):
    cell, T, B, I, H = CONFIGS[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    dy = rng.standard_normal((B, T, H)).astype(np.float32)
    layer = {"lstm": pyrnn.LSTM, "gru": pyrnn.GRU, "rnn": pyrnn.RNN}[cell](I, H, seed=0)
    return layer, x, dy


def _pyrnn_step(layer, x, dy, backend, train):
    with pyrnn.use_backend(backend):
        y, _ = layer.forward(x)
        if not train:
            layer.clear_saved()
            return y, None
        layer.zero_grad()
        dx, _ = layer.backward(dy)
        return y, dx


def _torch_step(torch, mod, x, dy, train):
    if not train:
        with torch.no_grad():
            return mod(x)[0].numpy(), None
    xt = x.clone().requires_grad_(True)
    mod.zero_grad()
    y, _ = mod(xt)
    y.backward(dy)
    return y.detach().numpy(), xt.grad.numpy()


@pytest.mark.parametrize("train", [True, False], ids=["train", "infer"])
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", list(CONFIGS))
def test_recurrent_layer(benchmark, record_impl, name, impl, train):
    layer, x, dy = _setup(name)
    benchmark.group = f"{name} {'train (fwd+bwd)' if train else 'inference'}"
    record_impl(impl)
    want = _pyrnn_step(layer, x, dy, "numpy", train)
    if impl == "torch":
        torch, mod = _torch_layer(CONFIGS[name][0], x.shape[2], layer.hidden_size)
        mod.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
        xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
        fn = lambda: _torch_step(torch, mod, xt, dyt, train)  # noqa: E731
    else:
        fn = lambda: _pyrnn_step(layer, x, dy, impl, train)  # noqa: E731
    got = fn()  # validate before timing (also warms up JIT and caches)
    for g, w in zip(got, want):
        if w is not None:
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)
    benchmark.pedantic(fn, rounds=5, iterations=1, warmup_rounds=1)
