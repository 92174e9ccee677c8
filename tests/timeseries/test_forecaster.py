"""Forecaster: shapes and errors of every call, determinism, no leakage, interval coverage,
save/load, global fits, covariates, fallbacks."""

import numpy as np
import pytest

import pyrnn
from pyrnn.checkpoint import CheckpointError
from pyrnn.timeseries import (
    ForecastBacktest,
    Forecaster,
    ForecasterFallbackWarning,
    load_forecaster,
    seasonal_naive_forecast,
)

# small and quick: the defaults (5 members, 100 epochs) are for real use
FAST = dict(members=2, hidden_size=16, epochs=30, patience=5, seed=0)


def seasonal(T=240, m=12, noise=0.3, level=10.0, trend=0.02, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    return level + trend * t + 2.0 * np.sin(2 * np.pi * t / m) + noise * rng.standard_normal(T)


@pytest.fixture(scope="module")
def fitted():
    y = seasonal()
    return Forecaster(season_length=12, **FAST).fit(y, horizon=6), y


# ------------------------------------------------------------------------------ shapes
def test_predict_shapes_and_quantile_order(fitted):
    f, y = fitted
    assert f.predict(6).shape == (6,)
    assert f.predict(15).shape == (15,)  # past H: blocks fed back
    q = f.predict(15, quantiles=(0.1, 0.5, 0.9))
    assert q.shape == (15, 3) and q.dtype == np.float64
    assert np.all(q[:, 0] <= q[:, 1]) and np.all(q[:, 1] <= q[:, 2])
    np.testing.assert_array_equal(q[:, 1], f.predict(15))  # the 0.5 quantile is the point forecast
    wide = f.predict(6, quantiles=(0.025, 0.975))
    assert np.all(wide[:, 0] <= q[:6, 0]) and np.all(wide[:, 1] >= q[:6, 2])
    s = f.summary()
    assert s["season_length"] == 12 and s["season_source"] == "given" and s["horizon"] == 6
    assert s["kind"] == ["network"] and s["members"] == 2 and s["calibration_windows"] > 0


def test_forecast_follows_the_series(fitted):
    f, y = fitted
    T = len(y)
    t = np.arange(T, T + 6)
    truth = 10.0 + 0.02 * t + 2.0 * np.sin(2 * np.pi * t / 12)  # the noise-free continuation
    err = np.mean(np.abs(f.predict(6) - truth))
    naive = np.mean(np.abs(y[-1] - truth))
    assert err < 0.5 * naive, (err, naive)


def test_season_found_when_not_given():
    f = Forecaster(**FAST).fit(seasonal(T=200, m=7, trend=0.0), horizon=7)
    assert f.summary()["season_length"] == 7 and f.summary()["season_source"] == "autocorrelation peak"


@pytest.mark.parametrize("bad, err, match", [
    (np.r_[np.ones(50), np.nan], ValueError, r"y: expected finite values, got nan at index 50"),
    (np.r_[np.ones(50), np.inf], ValueError, r"y: expected finite values, got inf"),
    (np.ones((50, 2)), ValueError, r"y: expected a 1-D series \(T,\), got shape \(50, 2\)"),
    (np.array(["a", "b", "c"]), TypeError, r"y: expected a 1-D array of numbers"),
    (np.ones(2), ValueError, r"y: expected at least 3 values, got 2"),
    ("abc", TypeError, r"y: expected a 1-D array of numbers, got str"),
    ([np.ones(50), np.ones((4, 4))], ValueError, r"y\[1\]: expected a 1-D series"),
    ([], ValueError, r"y: expected at least one series"),
])
def test_fit_refuses_bad_series(bad, err, match):
    with pytest.raises(err, match=match):
        Forecaster(**FAST).fit(bad)


@pytest.mark.parametrize("kwargs, match", [
    (dict(members=0), r"members"),
    (dict(season_length=0), r"season_length"),
    (dict(transform="sqrt"), r"transform: expected 'auto', 'none', 'log' or a Box-Cox lambda"),
    (dict(transform=1.5), r"transform"),
    (dict(val_frac=0.95), r"val_frac"),
    (dict(verbose=2), r"verbose: expected 0 or 1"),
    (dict(lr=0.0), r"lr"),
])
def test_constructor_refuses_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        Forecaster(**kwargs)


def test_predict_errors(fitted):
    f, _ = fitted
    with pytest.raises(ValueError, match="expected a fitted forecaster"):
        Forecaster().predict(3)
    with pytest.raises(ValueError, match="h: expected"):
        f.predict(0)
    with pytest.raises(ValueError, match=r"quantiles: expected levels strictly between 0 and 1"):
        f.predict(3, quantiles=(0.0, 0.5))
    with pytest.raises(ValueError, match="future_covariates: expected None"):
        f.predict(3, future_covariates=np.ones((3, 1)))
    with pytest.raises(ValueError, match="expected a fitted forecaster"):
        Forecaster().summary()


def test_log_transform_needs_positive_values():
    y = seasonal(level=0.0)
    with pytest.raises(ValueError, match=r"transform='log' expects positive values, got minimum"):
        Forecaster(transform="log", **FAST).fit(y)


def test_multiplicative_season_gets_a_log_and_intervals_widen_with_the_level():
    t = np.arange(240)
    rng = np.random.default_rng(1)
    y = np.exp(0.01 * t) * 10 * (1 + 0.3 * np.sin(2 * np.pi * t / 12)) * np.exp(0.02 * rng.standard_normal(240))
    f = Forecaster(season_length=12, **FAST).fit(y, horizon=12)
    assert f.summary()["boxcox_lambda"] == [0.0]
    q = f.predict(12, quantiles=(0.1, 0.9))
    width = q[:, 1] - q[:, 0]
    level = f.predict(12)
    assert np.corrcoef(width, level)[0, 1] > 0.5  # the width follows the seasonal level after the log


# ------------------------------------------------------------------------------ determinism
def test_same_seed_same_forecast_bit_for_bit():
    y = seasonal(T=180)
    a = Forecaster(season_length=12, **FAST).fit(y, horizon=6).predict(9, quantiles=(0.1, 0.5, 0.9))
    b = Forecaster(season_length=12, **FAST).fit(y, horizon=6).predict(9, quantiles=(0.1, 0.5, 0.9))
    np.testing.assert_array_equal(a, b)
    c = Forecaster(season_length=12, **{**FAST, "seed": 1}).fit(y, horizon=6).predict(9, quantiles=(0.1, 0.5, 0.9))
    assert not np.array_equal(a, c)


# ------------------------------------------------------------------------------ no leakage
def test_backtest_never_sees_the_held_out_tail():
    y = seasonal(T=200)
    changed = y.copy()
    changed[-6:] += 100.0  # only the last origin's truth changes
    f = Forecaster(season_length=12, **FAST)
    a = f.backtest(y, horizon=6, origins=2, step=6)
    b = f.backtest(changed, horizon=6, origins=2, step=6)
    np.testing.assert_array_equal(a.forecasts, b.forecasts)  # every fit used y[:origin] only
    np.testing.assert_array_equal(a.lower, b.lower)
    assert a.metrics["mae"][0] == b.metrics["mae"][0] and b.metrics["mae"][1] > a.metrics["mae"][1] + 50


def test_transforms_are_chosen_on_the_training_values_only():
    y = seasonal(T=200)
    f1 = Forecaster(season_length=12, **FAST).fit(y[:150], horizon=6)
    y2 = y.copy()
    y2[150:] *= 1000  # a tail that would change scale, transform and season if it leaked
    f2 = Forecaster(season_length=12, **FAST).fit(y2[:150], horizon=6)
    assert f1.summary() == f2.summary()
    np.testing.assert_array_equal(f1.predict(6), f2.predict(6))


# ------------------------------------------------------------------------------ intervals
@pytest.mark.parametrize("level", [0.8, 0.5])
def test_interval_coverage_on_known_noise(level, coverage_run):
    cover = coverage_run(level)
    assert abs(cover - level) <= 0.10, (level, cover)


@pytest.fixture(scope="module")
def coverage_run():
    """Fit on 300 steps of a seasonal series with N(0, 0.5^2) noise; score the intervals of 25
    non-overlapping 12-step forecasts of the next 300 steps (the networks never saw them)."""
    y = seasonal(T=600, noise=0.5, seed=3)
    f = Forecaster(season_length=12, members=3, hidden_size=16, epochs=40, patience=5, seed=0).fit(y[:300], horizon=12)
    return lambda level: float(np.mean(f.backtest(y, horizon=12, origins=25, step=12, refit=False,
                                                  level=level).metrics["coverage"]))


# ------------------------------------------------------------------------------ backtest
def test_backtest_result(fitted):
    f, y = fitted
    bt = f.backtest(y, horizon=6, origins=3, step=4, refit=False)
    assert isinstance(bt, ForecastBacktest)
    np.testing.assert_array_equal(bt.origins, [len(y) - 14, len(y) - 10, len(y) - 6])
    assert bt.forecasts.shape == bt.actuals.shape == bt.lower.shape == (3, 6, 1)
    np.testing.assert_array_equal(bt.actuals[2, :, 0], y[-6:])
    assert set(bt.metrics) == {"mae", "rmse", "smape", "mase", "naive_mae", "skill", "coverage"}
    for v in bt.metrics.values():
        assert v.shape == (3,) and np.isfinite(v).all()
    assert np.all((bt.metrics["coverage"] >= 0) & (bt.metrics["coverage"] <= 1))
    s = bt.summary()
    assert s["mae"] == pytest.approx(bt.metrics["mae"].mean()) and "pooled_skill" in s
    with pytest.raises(ValueError, match=r"origins: 30 origins 6 steps apart with horizon 6 need a series of at least"):
        f.backtest(y[:100], horizon=6, origins=30)


# ------------------------------------------------------------------------------ save / load
def test_save_load_gives_the_same_forecasts(fitted, tmp_path):
    f, _ = fitted
    path = tmp_path / "f.safetensors"
    f.save(path)
    g = load_forecaster(path)
    np.testing.assert_array_equal(g.predict(15, quantiles=(0.1, 0.5, 0.9)), f.predict(15, quantiles=(0.1, 0.5, 0.9)))
    assert g.summary() == f.summary() and g.get_params() == f.get_params()
    data = bytearray(path.read_bytes())
    data[-3] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        load_forecaster(path)


def test_load_refuses_a_model_checkpoint(tmp_path):
    model = pyrnn.Sequential([pyrnn.Dense(2, 1, seed=0)])
    model.save(tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match="expected a saved Forecaster"):
        load_forecaster(tmp_path / "m.safetensors")


# ------------------------------------------------------------------------------ global fit
def test_global_fit_over_a_list_of_series(tmp_path):
    a = seasonal(T=200, seed=1)
    b = 1000.0 * seasonal(T=160, seed=2, trend=-0.01)  # other units, other length
    f = Forecaster(season_length=12, **FAST).fit([a, b], horizon=6)
    out = f.predict(6)
    assert isinstance(out, list) and [o.shape for o in out] == [(6,), (6,)]
    assert abs(out[0].mean() - a[-12:].mean()) < 3 and abs(out[1].mean() - b[-12:].mean()) < 3000
    q = f.predict(6, quantiles=(0.1, 0.9))
    assert [o.shape for o in q] == [(6, 2), (6, 2)]
    f.save(tmp_path / "g.safetensors")
    np.testing.assert_array_equal(load_forecaster(tmp_path / "g.safetensors").predict(6)[1], out[1])
    assert len(f.summary()["scale"]) == 2


# ------------------------------------------------------------------------------ covariates
def driven(T=260, seed=0):
    """y_t = 3 x_t + small noise, x known in advance (a future covariate), plus a past covariate."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(T + 6)
    y = 3.0 * x[:T] + 0.1 * rng.standard_normal(T) + 5.0
    return y, x


def test_future_covariates_are_used():
    y, x = driven()
    T = len(y)
    with_cov = Forecaster(season_length=1, **FAST).fit(y, horizon=6, future_covariates=x[:T])
    p = with_cov.predict(6, future_covariates=x[T:])
    truth = 3.0 * x[T:] + 5.0
    without = Forecaster(season_length=1, **FAST).fit(y, horizon=6).predict(6)
    assert np.mean(np.abs(p - truth)) < 0.5 * np.mean(np.abs(without - truth))
    assert with_cov.summary()["future_covariates"] == 1


def test_covariate_shapes_and_errors():
    y, x = driven()
    T = len(y)
    past = np.stack([np.roll(y, 1), np.cos(np.arange(T))], axis=1)
    f = Forecaster(season_length=1, **FAST).fit(y, horizon=4, past_covariates=past, future_covariates=x[:T])
    assert f.summary()["past_covariates"] == 2
    assert f.predict(3, future_covariates=x[T : T + 3]).shape == (3,)
    assert f.predict(4, quantiles=(0.1, 0.9), future_covariates=x[T : T + 4, None]).shape == (4, 2)
    with pytest.raises(ValueError, match=r"future_covariates: expected their next 4 rows \(4, 1\) for every series, got None"):
        f.predict(4)
    with pytest.raises(ValueError, match=r"future_covariates: expected shape \(4, P\) or \(4,\)"):
        f.predict(4, future_covariates=x[:5])
    with pytest.raises(ValueError, match=r"future_covariates: expected 1 columns \(as at fit\), got 2"):
        f.predict(4, future_covariates=np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"h: expected at most the fit's horizon H = 4 with covariates"):
        f.predict(5, future_covariates=x[T : T + 5])
    with pytest.raises(ValueError, match=r"past_covariates: expected shape \(260, P\)"):
        Forecaster(**FAST).fit(y, past_covariates=past[:-1])
    with pytest.raises(ValueError, match=r"future_covariates: expected finite values"):
        Forecaster(**FAST).fit(y, future_covariates=np.r_[x[: T - 1], np.nan])
    with pytest.raises(ValueError, match=r"past_covariates: expected a list of 2 arrays"):
        Forecaster(**FAST).fit([y, y], past_covariates=past)
    with pytest.raises(ValueError, match=r"past_covariates: expected the same columns for every series"):
        Forecaster(**FAST).fit([y, y], past_covariates=[past, past[:, :1]])


# ------------------------------------------------------------------------------ fallbacks
def test_too_short_series_falls_back_to_seasonal_naive_with_a_warning():
    y = seasonal(T=40)
    with pytest.warns(ForecasterFallbackWarning, match=r"y has 40 steps, fewer than the .* forecast by seasonal naive \(m = 12\)"):
        f = Forecaster(season_length=12, **FAST).fit(y, horizon=12)
    assert f.summary()["kind"] == ["seasonal_naive"]
    np.testing.assert_allclose(f.predict(18), seasonal_naive_forecast(y, 18, 12), rtol=1e-12)
    q = f.predict(18, quantiles=(0.1, 0.9))
    assert np.all(q[:, 0] < q[:, 1]) and q[12:, 1].mean() - q[12:, 0].mean() > q[:12, 1].mean() - q[:12, 0].mean()


def test_constant_series_forecasts_its_constant():
    with pytest.warns(ForecasterFallbackWarning, match=r"y is constant: forecast by its constant"):
        f = Forecaster(**FAST).fit(np.full(100, 4.5))
    np.testing.assert_array_equal(f.predict(5, quantiles=(0.1, 0.5, 0.9)), np.full((5, 3), 4.5))


def test_n_jobs_sets_threads_only_during_the_call():
    before = pyrnn.get_num_threads()
    f = Forecaster(season_length=12, n_jobs=1, **FAST).fit(seasonal(T=150), horizon=4)
    assert pyrnn.get_num_threads() == before
    assert f.predict(4).shape == (4,)


def test_verbose_shows_a_progress_bar_over_the_members(capsys):
    Forecaster(season_length=12, verbose=1, **FAST).fit(seasonal(T=150), horizon=4)
    err = capsys.readouterr().err
    assert "Forecaster members" in err and "2/2" in err
