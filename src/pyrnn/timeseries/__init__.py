"""Time series: sliding windows, scalers, temporal splits, multi-step forecasts, baselines,
metrics and rolling-origin backtests.

>>> split = temporal_split(len(series), val_frac=0.15, test_frac=0.15)
>>> scaler = StandardScaler().fit(series[split.train])               # training part only
>>> ds = WindowDataset(scaler.transform(series), input_len=48, horizon=1)
>>> train, val, test = split_windows(ds, split)                      # views: targets in each part
>>> x, y = train.arrays()                                            # (N, 48, C), (N, 1, C)
>>> model.fit(x, y[:, 0], ...)
>>> xt, yt = test.arrays()
>>> yhat = forecast_recursive(model, xt, steps=1)                    # (N, 1, C)

Or all of it in one call, with prediction intervals (:mod:`pyrnn.timeseries.forecaster`):

>>> f = Forecaster(season_length=12, seed=0).fit(series, horizon=12)
>>> f.predict(12, quantiles=(0.1, 0.5, 0.9))                           # (12, 3)
"""

from .backtest import BacktestResult, rolling_origin
from .baselines import naive_forecast, seasonal_naive_forecast
from .forecast import forecast_direct, forecast_recursive
from .forecaster import ForecastBacktest, Forecaster, ForecasterFallbackWarning, load_forecaster
from .gather import gather_windows
from .metrics import mae, mase, rmse, skill_vs_naive, smape
from .scaling import MinMaxScaler, StandardScaler
from .splits import TemporalSplit, split_windows, temporal_split
from .windows import WindowDataset

__all__ = [
    "WindowDataset", "gather_windows",
    "StandardScaler", "MinMaxScaler", "TemporalSplit", "temporal_split", "split_windows",
    "forecast_recursive", "forecast_direct", "naive_forecast", "seasonal_naive_forecast",
    "mae", "rmse", "smape", "mase", "skill_vs_naive", "rolling_origin", "BacktestResult",
    "Forecaster", "ForecasterFallbackWarning", "ForecastBacktest", "load_forecaster",
]
