"""Recursive and direct forecasts: exact with perfect models, better than naive when learned."""

import numpy as np
import pytest

import pyrnn
from pyrnn.layers import Dense, LastStep
from pyrnn.timeseries import (
    StandardScaler,
    WindowDataset,
    forecast_direct,
    forecast_recursive,
    mae,
    naive_forecast,
    skill_vs_naive,
    split_windows,
    temporal_split,
)

A1, A2 = 1.6, -0.9  # a stable, oscillating AR(2)


def ar_series(T, n_cov, seed):
    """Column 0: y_t = A1 y_{t-1} + A2 y_{t-2} + w . c_{t-1}; columns 1..: covariates c ~ N(0, 1)."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(-0.5, 0.5, n_cov)
    s = np.zeros((T, 1 + n_cov))
    s[:, 1:] = rng.standard_normal((T, n_cov))
    s[:2, 0] = rng.standard_normal(2)
    for t in range(2, T):
        s[t, 0] = A1 * s[t - 1, 0] + A2 * s[t - 2, 0] + s[t - 1, 1:] @ w
    return s, w


class OneStepOracle:
    """A perfect one-step model of ar_series: predict(x (B, L, C)) -> the true next y (B, 1)."""

    def __init__(self, w, L):
        self.w, self.L, self.calls = w, L, 0

    def predict(self, x):
        assert x.shape[1] == self.L  # the window slides; it never grows
        self.calls += 1
        return (A1 * x[:, -1, 0] + A2 * x[:, -2, 0] + x[:, -1, 1:] @ self.w)[:, None]


@pytest.mark.parametrize("n_cov", [0, 1, 3])
@pytest.mark.parametrize("H", [1, 5, 17])
def test_recursive_with_a_perfect_model_reproduces_the_truth(n_cov, H):
    L = 6
    s, w = ar_series(120, n_cov, seed=n_cov * 10 + H)
    origins = [9, 30, 61, 120 - H]
    hist = np.stack([s[t - L - 3 : t] for t in origins])         # 3 extra steps: input_len keeps the last L
    truth = np.stack([s[t : t + H, :1] for t in origins])         # (B, H, 1)
    future = np.stack([s[t : t + H, 1:] for t in origins]) if n_cov else None
    oracle = OneStepOracle(w, L)
    out = forecast_recursive(oracle, hist, H, target_cols=0, future_covariates=future, input_len=L)
    assert out.shape == (len(origins), H, 1) and oracle.calls == H  # every origin in each call
    np.testing.assert_allclose(out, truth, rtol=1e-9, atol=1e-9)
    one = forecast_recursive(oracle, hist[1], H, target_cols=0, input_len=L,
                             future_covariates=None if future is None else future[1])
    assert one.shape == (H, 1)
    np.testing.assert_allclose(one, truth[1], rtol=1e-9, atol=1e-9)
    if n_cov == 0:
        flat = forecast_recursive(oracle, hist[2, :, 0], H, input_len=L)
        assert flat.shape == (H,)
        np.testing.assert_allclose(flat, truth[2, :, 0], rtol=1e-9, atol=1e-9)
    elif H > 1:  # the covariates are used: wrong future values change the forecast
        wrong = forecast_recursive(oracle, hist, H, target_cols=0, future_covariates=np.zeros_like(future), input_len=L)
        assert not np.allclose(wrong, truth)


def test_recursive_multivariate_model_predicting_every_column():
    rng = np.random.default_rng(5)
    A = 0.9 * np.linalg.qr(rng.standard_normal((3, 3)))[0]   # a stable VAR(1)
    s = np.zeros((60, 3))
    s[0] = rng.standard_normal(3)
    for t in range(1, 60):
        s[t] = A @ s[t - 1]
    model = lambda x: x[:, -1] @ A.T  # noqa: E731  (a plain callable works too)
    out = forecast_recursive(model, s[None, 20:30].astype(np.float32), 12)
    assert out.shape == (1, 12, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], s[30:42], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("Ct, H, as_3d", [(1, 1, False), (1, 7, False), (2, 4, False), (3, 5, True)])
def test_direct_reads_an_h_major_head(Ct, H, as_3d):
    rng = np.random.default_rng(Ct + H)
    hist = rng.standard_normal((6, 10, 4))

    def head(x):  # output h * Ct + k = last input of column k + 10 h + k
        out = x[:, -1, :Ct, None] + 10.0 * np.arange(H) + np.arange(Ct)[:, None]   # (B, Ct, H)
        out = out.transpose(0, 2, 1)                                                # (B, H, Ct)
        return out if as_3d else out.reshape(len(x), H * Ct)

    expected = (hist[:, -1, :Ct, None] + 10.0 * np.arange(H) + np.arange(Ct)[:, None]).transpose(0, 2, 1)
    out = forecast_direct(head, hist, horizon=H, n_targets=Ct)
    assert out.shape == (6, H, Ct)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(forecast_direct(head, hist[3], n_targets=Ct), expected[3])


def seasonal_problem(T=700):
    rng = np.random.default_rng(0)
    t = np.arange(T)
    series = np.sin(2 * np.pi * t / 24) + 0.5 * np.sin(2 * np.pi * t / 7) + 0.15 * rng.standard_normal(T)
    split = temporal_split(T, 0.0, 0.2)
    scaler = StandardScaler().fit(series[split.train])
    return series.astype(np.float32), split, scaler


@pytest.mark.parametrize("strategy", ["recursive", "direct"])
def test_a_trained_gru_beats_the_naive_forecast(strategy):
    L, H = 28, 12
    series, split, scaler = seasonal_problem()
    z = scaler.transform(series)
    head = 1 if strategy == "recursive" else H
    train, _, _ = split_windows(WindowDataset(z, L, head), split)
    x, y = train.arrays()
    model = pyrnn.Sequential([pyrnn.GRU(1, 16, seed=1), LastStep(), Dense(16, head, seed=2)])
    model.compile("adam", "mse", lr=1e-2)
    model.fit(x, y.reshape(len(y), -1), epochs=15, batch_size=32, seed=0, verbose=0)

    _, _, test = split_windows(WindowDataset(z, L, H, stride=2), split)
    xt, yt = test.arrays()                                                   # the test tail, (N, L, 1), (N, H, 1)
    zhat = forecast_recursive(model, xt, H) if strategy == "recursive" else forecast_direct(model, xt, horizon=H)
    assert zhat.shape == yt.shape == (len(test), H, 1)
    truth, pred, naive = (scaler.inverse_transform(a) for a in (yt, zhat, naive_forecast(xt, H)))
    skill = skill_vs_naive(truth, pred, naive)
    climatology = mae(truth, np.full_like(truth, series[split.train].mean()))  # about what an untrained net scores
    assert skill > 0.5, skill
    assert mae(truth, pred) < 0.5 * climatology, (mae(truth, pred), climatology)


# ------------------------------------------------------------------ bad inputs
def _oracle_problem():
    s, w = ar_series(40, 2, seed=0)
    return OneStepOracle(w, 5), s[None, :5]


def test_recursive_refuses_bad_inputs():
    oracle, hist = _oracle_problem()
    with pytest.raises(ValueError, match=r"future_covariates: expected the future values of input columns \[1, 2\]"):
        forecast_recursive(oracle, hist, 3, target_cols=0)
    with pytest.raises(ValueError, match=r"future_covariates: expected shape \(3, 2\) or \(1, 3, 2\) .* got \(4, 2\)"):
        forecast_recursive(oracle, hist, 3, target_cols=0, future_covariates=np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"future_covariates: expected finite values"):
        forecast_recursive(oracle, hist, 3, target_cols=0, future_covariates=np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match=r"future_covariates: expected None \(the model predicts every input column\)"):
        forecast_recursive(lambda x: x[:, -1], hist, 3, future_covariates=np.zeros((3, 0)))
    with pytest.raises(ValueError, match=r"model output at step 0: expected shape \(1, 3\) .* got \(1, 1\)"):
        forecast_recursive(oracle, hist, 3)  # target_cols None = every column, but the model predicts one
    with pytest.raises(ValueError, match=r"model output at step 1: expected finite values, got nan"):
        forecast_recursive(lambda x: np.where(x[:, -1, :1] < 0, np.nan, x[:, -1, :1] - 2), np.ones((2, 4, 1)), 3)
    with pytest.raises(TypeError, match=r"model output at step 0: expected a float array, got dtype int64"):
        forecast_recursive(lambda x: np.zeros((1, 1), np.int64), np.ones((1, 4, 1)), 3)
    with pytest.raises(TypeError, match=r"model: expected an object with predict\(x\) or a callable, got int"):
        forecast_recursive(3, hist, 2)
    with pytest.raises(ValueError, match=r"steps: expected an integer >= 1, got 0"):
        forecast_recursive(oracle, hist, 0)


def test_history_checks():
    model = lambda x: x[:, -1]  # noqa: E731
    with pytest.raises(TypeError, match=r"history: expected a float32 or float64 array, got dtype int64"):
        forecast_recursive(model, np.ones((4, 1), np.int64), 2)
    with pytest.raises(ValueError, match=r"history: expected \(L,\), \(L, C\) or \(B, L, C\), got 4-D"):
        forecast_direct(model, np.ones((1, 1, 4, 1)))
    with pytest.raises(ValueError, match=r"history: expected at least input_len = 9 steps, got 4"):
        forecast_recursive(model, np.ones((4, 1)), 2, input_len=9)
    with pytest.raises(ValueError, match=r"history: expected finite values, got inf"):
        forecast_recursive(model, np.array([1.0, np.inf]), 2)
    with pytest.raises(ValueError, match=r"history: expected at least one origin, step and column, got shape \(0, 3, 1\)"):
        forecast_recursive(model, np.ones((0, 3, 1)), 2)


def test_direct_refuses_bad_outputs():
    hist = np.ones((2, 5, 1))
    with pytest.raises(ValueError, match=r"model output: expected shape \(2, S \* 2\) or \(2, S, 2\) .* got \(2, 5\)"):
        forecast_direct(lambda x: np.zeros((2, 5)), hist, n_targets=2)
    with pytest.raises(ValueError, match=r"model output: expected horizon = 4 steps, got 5"):
        forecast_direct(lambda x: np.zeros((2, 5)), hist, horizon=4)
    with pytest.raises(ValueError, match=r"model output: expected finite values, got nan"):
        forecast_direct(lambda x: np.full((2, 3), np.nan), hist)
