"""Scalers: statistics of the training part only, per column, reversible, restorable."""

import numpy as np
import pytest

from pyrnn.timeseries import MinMaxScaler, StandardScaler, temporal_split


def trending_series(T=400, C=3, seed=0):
    rng = np.random.default_rng(seed)
    return (np.linspace(0, 10, T)[:, None] * np.arange(1, C + 1) + rng.standard_normal((T, C))).astype(np.float32)


def test_standard_scaler_uses_training_statistics_only():
    series = trending_series()
    split = temporal_split(len(series), 0.2, 0.2)
    train, test = series[split.train].astype(np.float64), series[split.test].astype(np.float64)
    scaler = StandardScaler().fit(series[split.train])
    z = scaler.transform(series)
    mean, std = train.mean(axis=0), train.std(axis=0)
    np.testing.assert_allclose(z[split.test], (test - mean) / std, rtol=1e-5)
    np.testing.assert_allclose(z[split.train].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(z[split.train].std(axis=0), 1, rtol=1e-5)
    # the trend carries the test part far above the training range: no test statistic leaked in
    assert (z[split.test].mean(axis=0) > 1.5).all()
    leaky = StandardScaler().fit(series)
    assert not np.allclose(leaky.transform(series[split.test]), z[split.test], atol=0.1)


def test_minmax_scaler_maps_the_training_range():
    series = trending_series(seed=1)
    split = temporal_split(len(series), 0.0, 0.25)
    scaler = MinMaxScaler((-1, 1)).fit(series[split.train])
    z = scaler.transform(series[split.train])
    np.testing.assert_allclose(z.min(axis=0), -1, atol=1e-6)
    np.testing.assert_allclose(z.max(axis=0), 1, atol=1e-6)
    lo, hi = series[split.train].min(axis=0), series[split.train].max(axis=0)
    np.testing.assert_allclose(scaler.transform(series[split.test]),
                               (series[split.test] - lo) / (hi - lo) * 2 - 1, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls", [StandardScaler, MinMaxScaler])
def test_round_trip_dtype_columns_and_windows(cls):
    series = trending_series(seed=2)
    scaler = cls().fit(series)
    z = scaler.transform(series)
    assert z.dtype == np.float32
    np.testing.assert_allclose(scaler.inverse_transform(z), series, rtol=1e-5, atol=1e-4)
    # forecasts of target columns [2, 0] laid out (B, H, Ct): statistics picked per column
    fc = z[None, 10:15][:, :, [2, 0]].repeat(4, axis=0)
    np.testing.assert_allclose(scaler.inverse_transform(fc, columns=[2, 0]),
                               np.broadcast_to(series[10:15, [2, 0]], fc.shape), rtol=1e-5, atol=1e-4)
    # one column: any shape, e.g. (B, H) forecasts of column 1
    np.testing.assert_allclose(scaler.inverse_transform(z[None, 10:15, 1], columns=1), series[None, 10:15, 1], rtol=1e-5)
    # integer input is accepted and gives float64
    assert scaler.transform(np.ones((3, 3), np.int64)).dtype == np.float64


def test_univariate_and_constant_columns():
    s = StandardScaler().fit(np.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_allclose(s.transform(np.array([1.0, 4.0])), (np.array([1.0, 4.0]) - 2.5) / np.sqrt(1.25))
    const = np.column_stack([np.full(5, 7.0), np.arange(5.0)])
    np.testing.assert_array_equal(StandardScaler().fit(const).transform(const)[:, 0], 0.0)
    np.testing.assert_array_equal(MinMaxScaler().fit(const).transform(const)[:, 0], 0.0)


@pytest.mark.parametrize("cls", [StandardScaler, lambda: MinMaxScaler((2, 5))])
def test_state_restores_an_identical_scaler(cls):
    series = trending_series(seed=3)
    fitted = cls().fit(series[:200])
    restored = cls().set_state(fitted.get_state())
    np.testing.assert_array_equal(restored.transform(series), fitted.transform(series))
    state = fitted.get_state()
    state["scale"][:] = 99  # a copy: the fitted scaler is untouched
    assert not np.array_equal(fitted.get_state()["scale"], state["scale"])


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"StandardScaler: expected a fitted scaler \(call fit first\)"):
        StandardScaler().transform(np.ones(3))
    with pytest.raises(ValueError, match=r"x: expected finite values, got nan"):
        StandardScaler().fit(np.array([1.0, np.nan]))
    with pytest.raises(TypeError, match=r"x: expected a numeric \(float or integer\) array, got dtype bool"):
        StandardScaler().fit(np.ones(3, bool))
    with pytest.raises(ValueError, match=r"x: expected at least one value per column, got shape \(0, 2\)"):
        StandardScaler().fit(np.ones((0, 2)))
    s = StandardScaler().fit(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"x: expected a last axis of 3 columns, got shape \(4, 2\)"):
        s.transform(np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"z: expected a last axis of 2 columns, got shape \(4, 3\)"):
        s.inverse_transform(np.ones((4, 3)), columns=[0, 1])
    with pytest.raises(ValueError, match=r"columns\[0\]: expected a fitted column in \[-3, 3\), got 3"):
        s.transform(np.ones(4), columns=3)
    with pytest.raises(ValueError, match=r"feature_range: expected finite \(a, b\) with a < b, got \(1, 0\)"):
        MinMaxScaler((1, 0))
    with pytest.raises(ValueError, match=r"state: expected keys \['offset', 'scale'\], missing \['scale'\]"):
        StandardScaler().set_state({"offset": np.zeros(2)})
    with pytest.raises(ValueError, match=r"state: expected finite offsets and positive finite scales"):
        StandardScaler().set_state({"offset": np.zeros(2), "scale": np.array([1.0, 0.0])})
