"""One training epoch of a small Conv1D + GRU forecaster (the user's model), pyrnn against the
same model in PyTorch (same weights, data, batches and Adam), timed in the same run.

Run: pytest benchmarks/test_models.py --benchmark-only
"""

import numpy as np
import pytest

import pyrnn
from pyrnn.layers import Conv1D, Dense, LastStep

N, T, C, H, K, BATCH = 1024, 50, 16, 32, 5, 32


def _data():
    rng = np.random.default_rng(0)
    t = np.arange(N + T + 1)
    series = (np.sin(2 * np.pi * t / 25) + 0.1 * rng.standard_normal(t.shape)).astype(np.float32)
    x = np.stack([series[i : i + T] for i in range(N)])[:, :, None]
    y = series[T : T + N][:, None]
    return x, y


def _pyrnn_model():
    return pyrnn.Sequential([Conv1D(1, C, K, padding="causal", seed=0), pyrnn.GRU(C, H, seed=1), LastStep(), Dense(H, 1, seed=2)])


def _torch_model(torch, model):
    class ConvGRU(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv1d(1, C, K)
            self.gru = torch.nn.GRU(C, H, batch_first=True)
            self.head = torch.nn.Linear(H, 1)

        def forward(self, x):  # x (B, T, 1); causal: pad K-1 on the left
            z = self.conv(torch.nn.functional.pad(x.transpose(1, 2), (K - 1, 0))).transpose(1, 2)
            y, _ = self.gru(z)
            return self.head(y[:, -1])

    mod = ConvGRU()
    mod.load_state_dict(pyrnn.interop.to_torch(model, names={"conv": 0, "gru": 1, "head": 3}))
    return mod


def _batches():
    return [np.arange(i, min(i + BATCH, N)) for i in range(0, N, BATCH)]


@pytest.mark.parametrize("impl", pyrnn.available_backends() + ["torch"])
def test_conv_gru_epoch(benchmark, record_impl, impl):
    x, y = _data()
    model = _pyrnn_model()
    benchmark.group = f"Conv1D+GRU one epoch (N={N}, T={T}, batch {BATCH}, Adam)"
    record_impl(impl)
    if impl == "torch":
        torch = pytest.importorskip("torch")
        mod = _torch_model(torch, model)
        opt = torch.optim.Adam(mod.parameters(), lr=1e-3)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        with torch.no_grad():
            np.testing.assert_allclose(mod(xt[:8]).numpy(), model.predict(x[:8]), rtol=1e-4, atol=1e-5)

        def epoch():
            for idx in _batches():
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(mod(xt[idx]), yt[idx])
                loss.backward()
                opt.step()
    else:
        model.compile("adam", "mse", lr=1e-3)

        def epoch():
            with pyrnn.use_backend(impl):
                model.fit(x, y, epochs=1, batch_size=BATCH, shuffle=False, verbose=0)

        with pyrnn.use_backend(impl):
            ref = _pyrnn_model()
            with pyrnn.use_backend("numpy"):
                want = ref.predict(x[:8])
            np.testing.assert_allclose(ref.predict(x[:8]), want, rtol=1e-4, atol=1e-5)
    benchmark.pedantic(epoch, rounds=3, iterations=1, warmup_rounds=1)
