"""Weights from Keras (gate reordering done for the user) and to/from PyTorch."""

import numpy as np
import pytest

import pyrnn
from pyrnn import interop


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def keras_lstm(x, kernel, recurrent_kernel, bias):
    """Keras' LSTM written from its documentation: gates i, f, c, o in the kernel's columns."""
    B, T, _ = x.shape
    H = recurrent_kernel.shape[0]
    h, c, ys = np.zeros((B, H)), np.zeros((B, H)), []
    for t in range(T):
        z = x[:, t] @ kernel + h @ recurrent_kernel + bias
        i, f, cc, o = (z[:, k * H : (k + 1) * H] for k in range(4))
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(cc)
        h = _sigmoid(o) * np.tanh(c)
        ys.append(h)
    return np.stack(ys, 1), h, c


def keras_gru(x, kernel, recurrent_kernel, bias):
    """Keras' GRU with reset_after=True: gates z, r, h; bias rows = (input, recurrent)."""
    B, T, _ = x.shape
    H = recurrent_kernel.shape[0]
    h, ys = np.zeros((B, H)), []
    for t in range(T):
        xi = x[:, t] @ kernel + bias[0]
        hh = h @ recurrent_kernel + bias[1]
        z = _sigmoid(xi[:, :H] + hh[:, :H])
        r = _sigmoid(xi[:, H : 2 * H] + hh[:, H : 2 * H])
        hc = np.tanh(xi[:, 2 * H :] + r * hh[:, 2 * H :])
        h = z * h + (1 - z) * hc
        ys.append(h)
    return np.stack(ys, 1), h


def test_keras_lstm_weights_reproduce_keras():
    rng = np.random.default_rng(0)
    I, H = 3, 4
    kernel, rk, bias = rng.standard_normal((I, 4 * H)), rng.standard_normal((H, 4 * H)), rng.standard_normal(4 * H)
    x = rng.standard_normal((2, 6, I))
    layer = pyrnn.LSTM(I, H, dtype=np.float64)
    layer.load_state_dict(interop.keras_lstm_weights(kernel, rk, bias))
    y, (h, c) = layer.forward(x)
    ky, kh, kc = keras_lstm(x, kernel, rk, bias)
    np.testing.assert_allclose(y, ky, rtol=1e-12)
    np.testing.assert_allclose(h[0], kh, rtol=1e-12)
    np.testing.assert_allclose(c[0], kc, rtol=1e-12)


@pyrnn.no_grad()  # forwards to compare, no backward
def test_keras_gru_weights_reorder_z_r_h_to_r_z_n():
    rng = np.random.default_rng(1)
    I, H = 3, 5
    kernel, rk, bias = rng.standard_normal((I, 3 * H)), rng.standard_normal((H, 3 * H)), rng.standard_normal((2, 3 * H))
    x = rng.standard_normal((2, 6, I))
    layer = pyrnn.GRU(I, H, dtype=np.float64)
    layer.load_state_dict(interop.keras_gru_weights(kernel, rk, bias))
    y, h = layer.forward(x)
    ky, kh = keras_gru(x, kernel, rk, bias)
    np.testing.assert_allclose(y, ky, rtol=1e-12)
    np.testing.assert_allclose(h[0], kh, rtol=1e-12)
    # without the reordering the outputs differ: the check can fail
    naive = {"weight_ih_l0": kernel.T, "weight_hh_l0": rk.T, "bias_ih_l0": bias[0], "bias_hh_l0": bias[1]}
    layer.load_state_dict(naive)
    assert not np.allclose(layer.forward(x)[0], ky)


def test_keras_weight_errors_are_named():
    with pytest.raises(ValueError, match=r"expected reset_after=True"):
        interop.keras_gru_weights(np.zeros((3, 6)), np.zeros((2, 6)), reset_after=False)
    with pytest.raises(ValueError, match=r"LSTM recurrent_kernel: expected shape \(2, 8\), got \(3, 8\)"):
        interop.keras_lstm_weights(np.zeros((3, 8)), np.zeros((3, 8)))
    with pytest.raises(ValueError, match=r"GRU bias: expected shape \(2, 6\)"):
        interop.keras_gru_weights(np.zeros((3, 6)), np.zeros((2, 6)), np.zeros(6))


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
@pyrnn.no_grad()  # forwards to compare, no backward
def test_torch_round_trip_of_a_recurrent_layer(cls):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    mod = getattr(torch.nn, cls)(3, 4, num_layers=2, bidirectional=True, batch_first=True).double()
    layer = getattr(pyrnn, cls)(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=9)
    interop.load_torch(layer, mod)
    x = np.random.default_rng(2).standard_normal((2, 5, 3))
    np.testing.assert_allclose(layer.forward(x)[0], mod(torch.from_numpy(x))[0].detach().numpy(), rtol=1e-12)
    with torch.no_grad():  # change pyrnn's weights, export them back, torch follows
        for p in layer.parameters():
            p *= 0.5
    mod.load_state_dict(interop.to_torch(layer))
    np.testing.assert_allclose(layer.forward(x)[0], mod(torch.from_numpy(x))[0].detach().numpy(), rtol=1e-12)


def test_from_torch_renames_children_to_layer_indices():
    sd = {"enc.weight_ih_l0": np.zeros((3, 2)), "head.weight": np.zeros((1, 3))}
    assert set(interop.from_torch(sd, names={"enc": 0, "head": 2})) == {"0.weight_ih_l0", "2.weight"}
    with pytest.raises(ValueError, match=r"expected every key under one of \['enc'\], got 'head.weight'"):
        interop.from_torch(sd, names={"enc": 0})


def test_torch_round_trip_of_a_conv_gru_linear_model():
    """A torch Conv1d -> GRU -> Linear model and the same pyrnn Sequential, weights both ways."""
    torch = pytest.importorskip("torch")

    class ConvGRU(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv1d(2, 6, 3)
            self.gru = torch.nn.GRU(6, 5, batch_first=True, bidirectional=True)
            self.head = torch.nn.Linear(10, 1)

        def forward(self, x):  # (B, T, C), causal padding of K - 1 on the left
            z = self.conv(torch.nn.functional.pad(x.transpose(1, 2), (2, 0))).transpose(1, 2)
            return self.head(self.gru(z)[0])

    torch.manual_seed(0)
    mod = ConvGRU().double()
    model = pyrnn.Sequential([pyrnn.Conv1D(2, 6, 3, padding="causal", dtype=np.float64), pyrnn.GRU(6, 5, bidirectional=True, dtype=np.float64),
                              pyrnn.TimeDistributed(pyrnn.Dense(10, 1, dtype=np.float64))])
    names = {"conv": 0, "gru": 1, "head": 2}
    interop.load_torch(model, mod, names=names)
    x = np.random.default_rng(3).standard_normal((3, 7, 2))
    np.testing.assert_allclose(model.predict(x), mod(torch.from_numpy(x)).detach().numpy(), rtol=1e-11, atol=1e-13)
    for p in model.parameters():
        p[...] = np.random.default_rng(4).standard_normal(p.shape)
    mod.load_state_dict(interop.to_torch(model, names=names))
    np.testing.assert_allclose(model.predict(x), mod(torch.from_numpy(x)).detach().numpy(), rtol=1e-11, atol=1e-13)
