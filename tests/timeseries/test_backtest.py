"""Rolling-origin backtests: one dataset, views per refit, metrics as defined."""

import numpy as np
import pytest

from pyrnn.timeseries import StandardScaler, WindowDataset, rolling_origin

A1, A2, W = 1.6, -0.9, 0.4  # y_t = A1 y_{t-1} + A2 y_{t-2} + W c_{t-1}; c a covariate


def ar_with_covariate(T=200, seed=0):
    rng = np.random.default_rng(seed)
    s = np.zeros((T, 2))
    s[:, 1] = rng.standard_normal(T)
    s[:2, 0] = rng.standard_normal(2)
    for t in range(2, T):
        s[t, 0] = A1 * s[t - 1, 0] + A2 * s[t - 2, 0] + W * s[t - 1, 1]
    return s


def oracle(x):
    """The true next value of column 0, (B, L, 2) -> (B, 1)."""
    return (A1 * x[:, -1, 0] + A2 * x[:, -2, 0] + W * x[:, -1, 1])[:, None]


def biased(x):
    return 0.8 * oracle(x) + 0.1


L, H = 8, 6
ORIGINS = [60, 95, 130, 194]


def test_a_perfect_model_scores_perfectly():
    s = ar_with_covariate()
    ds = WindowDataset(s, L, 1, target_cols=0)
    res = rolling_origin(oracle, ds, ORIGINS, horizon=H)
    truth = np.stack([s[t : t + H, :1] for t in ORIGINS])
    np.testing.assert_allclose(res.actuals, truth)
    np.testing.assert_allclose(res.forecasts, truth, atol=1e-9)  # covariates: their true future values
    np.testing.assert_array_equal(res.naive, np.stack([np.repeat(s[t - 1 : t, :1], H, axis=0) for t in ORIGINS]))
    np.testing.assert_allclose(res.metrics["mae"], 0, atol=1e-9)
    np.testing.assert_allclose(res.metrics["skill"], 1, atol=1e-9)
    assert res.summary()["pooled_skill"] == pytest.approx(1.0)


def test_metrics_follow_their_definitions():
    s = ar_with_covariate(seed=1)
    ds = WindowDataset(s, L, 1, target_cols=0)
    res = rolling_origin(biased, ds, ORIGINS, horizon=H, period=2)
    for i, t in enumerate(ORIGINS):
        y, yhat, naive = s[t : t + H, 0], res.forecasts[i, :, 0], np.full(H, s[t - 1, 0])
        err = np.abs(y - yhat)
        in_sample = np.mean(np.abs(s[2:t, 0] - s[: t - 2, 0]))
        assert res.metrics["mae"][i] == pytest.approx(err.mean())
        assert res.metrics["rmse"][i] == pytest.approx(np.sqrt(np.mean(err**2)))
        assert res.metrics["smape"][i] == pytest.approx(np.mean(200 * err / (np.abs(y) + np.abs(yhat))))
        assert res.metrics["mase"][i] == pytest.approx(err.mean() / in_sample)
        assert res.metrics["naive_mae"][i] == pytest.approx(np.mean(np.abs(y - naive)))
        assert res.metrics["skill"][i] == pytest.approx(1 - err.mean() / np.mean(np.abs(y - naive)))
    summary = res.summary()
    assert summary["mae"] == pytest.approx(res.metrics["mae"].mean())
    assert summary["pooled_skill"] == pytest.approx(
        1 - np.abs(res.actuals - res.forecasts).mean() / np.abs(res.actuals - res.naive).mean())
    assert 0 < summary["skill"] < 1  # the biased model is worse than the oracle, better than naive


def test_refit_gets_views_of_the_past_only():
    s = ar_with_covariate(seed=2)
    ds = WindowDataset(s, L, 1, target_cols=0)
    seen = []

    def fit_fn(train):
        assert train.series is ds.series                       # the same series: nothing rebuilt or copied
        assert train.target_times.max() + train.horizon <= train.stop
        seen.append((train.stop, len(train)))
        return biased

    refit = rolling_origin(fit_fn, ds, ORIGINS, horizon=H, refit=True)
    fixed = rolling_origin(biased, ds, ORIGINS, horizon=H)
    assert seen == [(t, t - L) for t in ORIGINS]               # targets L .. t-1, one window per step
    np.testing.assert_allclose(refit.forecasts, fixed.forecasts)
    for k in fixed.metrics:
        np.testing.assert_allclose(refit.metrics[k], fixed.metrics[k])


def test_direct_strategy_matches_recursive_with_exact_models():
    s = ar_with_covariate(seed=3)
    s[:, 1] = 0.0                                              # no covariate: a direct head can iterate alone
    for t in range(2, len(s)):
        s[t, 0] = A1 * s[t - 1, 0] + A2 * s[t - 2, 0]

    def head(x):  # all H steps in one call, (B, L, 2) -> (B, H)
        buf = list(x[:, -2:, 0].T)
        for _ in range(H):
            buf.append(A1 * buf[-1] + A2 * buf[-2])
        return np.stack(buf[2:], axis=1)

    ds = WindowDataset(s, L, H, target_cols=0)
    direct = rolling_origin(head, ds, ORIGINS, strategy="direct")
    recursive = rolling_origin(oracle, ds, ORIGINS, strategy="recursive")
    assert direct.forecasts.shape == (len(ORIGINS), H, 1)
    np.testing.assert_allclose(direct.forecasts, direct.actuals, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(direct.forecasts, recursive.forecasts, rtol=1e-9, atol=1e-12)


def test_inverse_transform_scores_in_original_units():
    s = ar_with_covariate(seed=4)
    scaler = StandardScaler().fit(s[:100])
    ds = WindowDataset(scaler.transform(s), L, 1, target_cols=0)
    scaled = rolling_origin(biased, ds, ORIGINS, horizon=H)
    orig = rolling_origin(biased, ds, ORIGINS, horizon=H,
                          inverse_transform=lambda a: scaler.inverse_transform(a, columns=ds.target_cols))
    np.testing.assert_allclose(orig.actuals[..., 0], s[np.add.outer(ORIGINS, np.arange(H)), 0])
    np.testing.assert_allclose(orig.metrics["mae"], scaled.metrics["mae"] * scaler.scale[0])
    for k in ("mase", "skill"):  # scale-free
        np.testing.assert_allclose(orig.metrics[k], scaled.metrics[k])


@pytest.mark.parametrize("kwargs, exc, pattern", [
    (dict(origins=[7]), ValueError, r"origins\[0\]: expected a time index in \[8, 194\] .* got 7"),
    (dict(origins=[60, 195]), ValueError, r"origins\[1\]: expected a time index in \[8, 194\]"),
    (dict(origins=[]), TypeError, r"origins: expected a non-empty 1-D sequence of integer time indices"),
    (dict(origins=[60.5]), TypeError, r"origins: expected a non-empty 1-D sequence of integer time indices"),
    (dict(strategy="dmrs"), ValueError, r"strategy: expected 'recursive' or 'direct', got 'dmrs'"),
    (dict(refit="yes"), TypeError, r"refit: expected True or False, got 'yes'"),
    (dict(horizon=0), ValueError, r"horizon: expected an integer >= 1, got 0"),
])
def test_bad_arguments(kwargs, exc, pattern):
    ds = WindowDataset(ar_with_covariate(), L, 1, target_cols=0)
    args = dict(origins=ORIGINS, horizon=H) | kwargs
    with pytest.raises(exc, match=pattern):
        rolling_origin(oracle, ds, **args)


def test_refit_needs_a_training_window():
    ds = WindowDataset(ar_with_covariate(), L, 1, target_cols=0, start=50)
    with pytest.raises(ValueError, match=r"expected 50 <= start < stop <= 200 .* got start=50, stop=50"):
        rolling_origin(lambda train: oracle, ds, [50], horizon=H, refit=True)
