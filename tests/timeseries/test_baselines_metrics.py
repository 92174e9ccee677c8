"""Baselines and forecast metrics against values worked out by hand."""

import numpy as np
import pytest

from pyrnn.timeseries import mae, mase, naive_forecast, rmse, seasonal_naive_forecast, skill_vs_naive, smape

# the example of sktime's mean_absolute_scaled_error docstring, worked by hand below
Y_TRAIN = np.array([5, 0.5, 4, 6, 3, 5, 2])
Y_TRUE = np.array([3, -0.5, 2, 7, 2])
Y_PRED = np.array([2.5, 0.0, 2, 8, 1.25])


def test_naive_repeats_the_last_value():
    hist = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    np.testing.assert_array_equal(naive_forecast(hist, 2), [[3, 30], [3, 30]])
    np.testing.assert_array_equal(naive_forecast(hist, 2, target_cols=1), [[30], [30]])
    np.testing.assert_array_equal(naive_forecast(hist[:, 0], 3), [3, 3, 3])
    batch = np.stack([hist, hist + 1])
    np.testing.assert_array_equal(naive_forecast(batch, 1, target_cols=[1, 0]), [[[30, 3]], [[31, 4]]])


def test_seasonal_naive_repeats_the_last_season():
    hist = np.arange(1.0, 8.0)                                      # 1..7; last season of 3: 5, 6, 7
    np.testing.assert_array_equal(seasonal_naive_forecast(hist, 5, period=3), [5, 6, 7, 5, 6])
    np.testing.assert_array_equal(seasonal_naive_forecast(hist, 2, period=1), [7, 7])
    two = np.stack([hist, 10 * hist], axis=1)[None]                 # (1, 7, 2)
    np.testing.assert_array_equal(seasonal_naive_forecast(two, 4, period=2, target_cols=1)[0, :, 0], [60, 70, 60, 70])
    with pytest.raises(ValueError, match=r"history: expected at least period = 8 steps, got 7"):
        seasonal_naive_forecast(hist, 2, period=8)


def test_mae_rmse_smape_by_hand():
    assert mae([1.0, 2.0], [4.0, -2.0]) == pytest.approx(3.5)
    assert rmse([1.0, 2.0], [4.0, -2.0]) == pytest.approx(np.sqrt(12.5))
    # 200|y - yhat| / (|y| + |yhat|): 200*2/4 = 100, 0/0 := 0, 200*4/4 = 200, 0  -> mean 75
    assert smape([1.0, 0.0, -2.0, 4.0], [3.0, 0.0, 2.0, 4.0]) == pytest.approx(75.0)
    assert smape([0.0, 0.0], [0.0, 0.0]) == 0.0
    assert smape([1.0], [-1.0]) == pytest.approx(200.0)  # the upper bound


def test_mase_by_hand():
    # MAE = (0.5 + 0.5 + 0 + 1 + 0.75) / 5 = 0.55; lag-1 in-sample |diffs| 4.5, 3.5, 2, 3, 2, 3 -> mean 3
    assert mase(Y_TRUE, Y_PRED, Y_TRAIN) == pytest.approx(0.55 / 3)
    # lag-2 |diffs| 1, 5.5, 1, 1, 1 -> mean 1.9
    assert mase(Y_TRUE, Y_PRED, Y_TRAIN, period=2) == pytest.approx(0.55 / 1.9)
    # the naive forecast from the end of y_train scores exactly MAE_naive_test / 3
    assert mase(Y_TRUE, np.full(5, 2.0), Y_TRAIN) == pytest.approx(np.mean(np.abs(Y_TRUE - 2)) / 3)


def test_mase_per_column():
    y_train = np.array([[0.0, 10.0], [1.0, 14.0], [3.0, 12.0]])     # in-sample MAE: col 0 (1+2)/2, col 1 (4+2)/2
    y_true = np.array([[1.0, 1.0], [2.0, 2.0]])
    y_pred = np.array([[2.0, 1.0], [2.0, 5.0]])                      # MAE: col 0 0.5, col 1 1.5
    np.testing.assert_allclose(mase(y_true, y_pred, y_train, multioutput="raw_values"), [0.5 / 1.5, 1.5 / 3])
    assert mase(y_true, y_pred, y_train) == pytest.approx((1 / 3 + 1 / 2) / 2)
    # (B, H, Ct) forecasts against (T, Ct) training columns
    assert mase(y_true[None], y_pred[None], y_train) == pytest.approx((1 / 3 + 1 / 2) / 2)


def test_skill_vs_naive_by_hand():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    # model MAE 0.25, naive MAE 2.5 -> 1 - 0.1
    assert skill_vs_naive(y, [1.0, 2.0, 3.0, 5.0], np.zeros(4)) == pytest.approx(0.9)
    assert skill_vs_naive(y, np.zeros(4), np.zeros(4)) == 0.0
    assert skill_vs_naive(y, [2.0, 4.0, 6.0, 8.0], [1.0, 1.0, 1.0, 1.0]) == pytest.approx(1 - 2.5 / 1.5)  # worse


@pytest.mark.parametrize("call, exc, pattern", [
    (lambda: mae([1.0, 2.0], [1.0]), ValueError, r"y_pred: expected the shape of y_true \(2,\), got \(1,\)"),
    (lambda: rmse([], []), ValueError, r"y_true: expected at least one value, got shape \(0,\)"),
    (lambda: smape([1.0], [np.nan]), ValueError, r"y_pred: expected finite values, got nan"),
    (lambda: mae(["a"], ["b"]), TypeError, r"y_true: expected a numeric array, got dtype <U1"),
    (lambda: mase(Y_TRUE, Y_PRED, np.ones(7)), ValueError, r"y_train: expected a series that changes over period = 1"),
    (lambda: mase(Y_TRUE, Y_PRED, Y_TRAIN, period=7), ValueError, r"y_train: expected more than period = 7 steps, got 7"),
    (lambda: mase(Y_TRUE, Y_PRED, Y_TRAIN, period=0), ValueError, r"period: expected an integer >= 1, got 0"),
    (lambda: mase(Y_TRUE, Y_PRED, np.ones((3, 2, 2))), ValueError, r"y_train: expected \(T,\) or \(T, Ct\), got shape"),
    (lambda: mase(np.ones((2, 3)), np.ones((2, 3)), np.arange(8.0).reshape(4, 2)), ValueError,
     r"y_true: expected a last axis of 2 columns \(as y_train\), got shape \(2, 3\)"),
    (lambda: mase(Y_TRUE, Y_PRED, Y_TRAIN, multioutput="median"), ValueError, r"multioutput: expected"),
    (lambda: skill_vs_naive([1.0, 2.0], [1.0, 1.0], [1.0, 2.0]), ValueError, r"y_naive: expected a naive forecast with some error"),
    (lambda: skill_vs_naive([1.0, 2.0], [1.0, 1.0], [1.0]), ValueError, r"y_naive: expected the shape of y_true"),
    (lambda: naive_forecast(np.ones(3), 0), ValueError, r"horizon: expected an integer >= 1, got 0"),
])
def test_bad_inputs(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()
