"""The Forecaster's data decisions: season by autocorrelation, Box-Cox choice, scale, window level."""

import numpy as np
import pytest

from pyrnn import datasets
from pyrnn.timeseries.preprocess import boxcox, check_series, choose_boxcox, find_season, inv_boxcox, series_scale, window_level


@pytest.mark.parametrize("m", [4, 7, 12, 24])
def test_season_of_a_noisy_seasonal_series_with_trend(m):
    rng = np.random.default_rng(m)
    t = np.arange(20 * m)
    y = 0.05 * t + np.sin(2 * np.pi * t / m) + 0.3 * rng.standard_normal(t.size)
    assert find_season(y) == m


def test_no_season_in_white_noise_or_a_random_walk():
    rng = np.random.default_rng(0)
    assert find_season(rng.standard_normal(300)) == 1
    assert find_season(np.cumsum(rng.standard_normal(300))) == 1
    assert find_season(np.arange(5.0)) == 1  # too short to tell


def test_bundled_series_seasons():
    assert find_season(datasets.load_elnino().values) == 12  # not 48, the multiple edging it out
    assert find_season(datasets.load_co2("monthly").values) == 12
    assert find_season(datasets.load_nile().values) == 1
    assert find_season(datasets.load_sunspots().values) in (10, 11)  # the solar cycle


def test_boxcox_choice_follows_how_the_spread_grows_with_the_level():
    rng = np.random.default_rng(0)
    t = np.arange(240)
    level = np.exp(0.01 * t) * 10
    multiplicative = level * (1 + 0.3 * np.sin(2 * np.pi * t / 12))
    additive = level + 3 * np.sin(2 * np.pi * t / 12)
    poisson = rng.poisson(level * (1 + 0.5 * np.sin(2 * np.pi * t / 12)) * 5).astype(float)
    assert choose_boxcox(multiplicative, 12) == 0.0
    assert choose_boxcox(additive, 12) == 1.0
    assert choose_boxcox(poisson, 12) in (0.0, 0.5)
    assert choose_boxcox(multiplicative - multiplicative.min(), 12) == 0.5  # a zero: no log
    assert choose_boxcox(multiplicative[:30], 12) == 1.0  # fewer than 4 seasons: no decision
    assert choose_boxcox(np.linspace(100, 101, 240) + np.sin(t), 12) == 1.0  # the level hardly moves


@pytest.mark.parametrize("lam", [0.0, 0.5, 1.0])
def test_boxcox_round_trip(lam):
    y = np.array([0.5, 1.0, 3.0, 100.0])
    np.testing.assert_allclose(inv_boxcox(boxcox(y, lam), lam), y, rtol=1e-12)
    expected = {0.0: np.log(y), 0.5: 2 * (np.sqrt(y) - 1), 1.0: y}[lam]
    np.testing.assert_allclose(boxcox(y, lam), expected, rtol=1e-12)
    assert inv_boxcox(np.array([-10.0]), 0.5)[0] == 0.0  # below the domain: 0, not NaN


def test_scale_is_the_in_sample_seasonal_naive_mae():
    z = np.array([1.0, 3.0, 2.0, 6.0, 4.0])
    assert series_scale(z, 2) == pytest.approx(np.mean([1.0, 3.0, 2.0]))
    assert series_scale(z, 1) == pytest.approx(np.mean([2.0, 1.0, 4.0, 2.0]))
    assert series_scale(np.array([1.0, 2.0, 1.0, 2.0]), 2) == pytest.approx(1.0)  # lag m constant: lag 1
    assert series_scale(np.full(5, 3.0), 1) == 1.0


def test_window_level_is_the_mean_of_the_last_season_or_four_steps():
    x = np.arange(24.0).reshape(2, 12)
    np.testing.assert_array_equal(window_level(x, 6), [8.5, 20.5])
    np.testing.assert_array_equal(window_level(x, 1), [9.5, 21.5])
    np.testing.assert_array_equal(window_level(x, 50), x.mean(axis=1))


def test_check_series():
    np.testing.assert_array_equal(check_series("y", [1, 2, 3]), [1.0, 2.0, 3.0])
    assert check_series("y", np.arange(4, dtype=np.int32)).dtype == np.float64
    with pytest.raises(ValueError, match=r"y: expected finite values, got nan at index 1 \(2 NaN or inf in all\)"):
        check_series("y", [1.0, np.nan, np.inf])
    with pytest.raises(TypeError, match=r"y: expected a 1-D array of numbers, got NoneType"):
        check_series("y", None)
    with pytest.raises(TypeError, match=r"expected a 1-D array of numbers, got list"):
        check_series("y", [[1.0], [1.0, 2.0]])
