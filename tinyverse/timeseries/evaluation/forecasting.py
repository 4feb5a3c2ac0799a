"""Forecasting metrics and the naive baselines, in the series' own units.

With ``y`` the true values and ``f`` the forecasts over every forecast point (windows x channels x steps):

- sMAPE = mean( 2 |y - f| / (|y| + |f|) ), a fraction in [0, 2] (a point with y = f = 0 counts 0). This is
  sktime's ``mean_absolute_percentage_error(symmetric=True)``; multiply by 100 for per cent.
- MASE = mean|y - f| / s, with s the in-sample seasonal-naive MAE of the history before the test period,
  s = mean_{t=m..b-1} |x_t - x_{t-m}| (x the series, b the first test index, m the seasonality; per channel, the
  channels' MASE averaged). Below 1: better on the test period than seasonal-naive was in sample.
- naive forecast from origin o: f_{o+k} = x_{o-1} (the last observed value), k = 0..H-1.
- seasonal-naive forecast from origin o: f_{o+k} = x_{o-m+(k mod m)} (the last observed season, repeated).

``evaluate_forecasting`` computes the model's sMAPE / MASE / MAE / RMSE on the test windows and the two
baselines on exactly the same windows (same origins, same horizon). It also reports the fixed-origin baselines
(every test value forecast from the first test origin; for Airline's last 36 months: seasonal-naive sMAPE 0.145,
MASE 1.97, naive sMAPE 0.232). A model that does not beat the seasonal-naive sMAPE of its own protocol gets a
loud WARNING in the log and ``beats_seasonal_naive: false`` in the metrics.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np

from tinyverse.evaluation import Evaluation

log = logging.getLogger("tinyverse.evaluation")


def smape(true: np.ndarray, pred: np.ndarray) -> float:
    true = np.asarray(true, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64).reshape(true.shape)
    den = np.abs(true) + np.abs(pred)
    ratio = np.divide(2.0 * np.abs(true - pred), den, out=np.zeros_like(den), where=den > 0)
    return float(np.mean(ratio))


def seasonal_naive_scale(history: np.ndarray, m: int) -> np.ndarray:
    """Per channel: mean |x_t - x_{t-m}| over the history (C, T0) — MASE's denominator."""
    history = np.atleast_2d(np.asarray(history, dtype=np.float64))
    if history.shape[1] <= m:
        raise ValueError(f"MASE needs more than m={m} history values, got {history.shape[1]}")
    return np.mean(np.abs(history[:, m:] - history[:, :-m]), axis=1)


def mase(true: np.ndarray, pred: np.ndarray, scale: np.ndarray | float) -> float:
    """``true``/``pred`` shaped (N, C, H) (or (H,) for one channel); ``scale`` per channel."""
    true = np.asarray(true, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64).reshape(true.shape)
    if true.ndim == 1:
        true, pred = true[None, None, :], pred[None, None, :]
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float64).reshape(-1), (true.shape[1],))
    per_channel = np.mean(np.abs(true - pred), axis=(0, 2)) / np.where(scale > 0, scale, np.nan)
    return float(np.mean(per_channel))


def naive_forecast(series: np.ndarray, origin: int, horizon: int) -> np.ndarray:
    """(C, horizon): the last value before ``origin`` repeated."""
    series = np.atleast_2d(np.asarray(series, dtype=np.float64))
    return np.repeat(series[:, origin - 1:origin], horizon, axis=1)


def seasonal_naive_forecast(series: np.ndarray, origin: int, horizon: int, m: int) -> np.ndarray:
    """(C, horizon): the last ``m`` values before ``origin`` repeated (f_{o+k} = x_{o-m+(k mod m)})."""
    series = np.atleast_2d(np.asarray(series, dtype=np.float64))
    if origin < m:
        raise ValueError(f"seasonal-naive needs {m} values before origin {origin}")
    return series[:, origin - m + (np.arange(horizon) % m)]


def recursive_forecast(predict: Callable[[np.ndarray], np.ndarray], setup: Any, origin: int, steps: int
                       ) -> np.ndarray:
    """(C, steps) forecast from one fixed ``origin``: the model forecasts ``horizon`` values, they are appended to
    the history as if observed, and the next ``horizon`` values are forecast from that, until ``steps`` values.

    ``predict`` maps model inputs (N, C, window, 1) float32 to outputs (N, C*horizon) — a PyTorch model wrapped
    in ``torch_outputs``, an onnxruntime session, a TFLite interpreter. This is the fixed-origin protocol of the
    reference baselines (Airline: all 36 test months from month 108); the pipeline's test metrics use the
    rolling-origin protocol instead, which needs no recursion (so every exported artifact is scored alike).
    """
    history = np.asarray(setup.series, dtype=np.float64)[:, :origin]
    out: list[np.ndarray] = []
    done = 0
    while done < steps:
        x, level = setup.encode(history)
        fc = setup.decode(np.asarray(predict(x[None, :, :, None]), dtype=np.float64).reshape(-1), level)
        out.append(fc)
        history = np.concatenate([history, fc], axis=1)
        done += setup.horizon
    return np.concatenate(out, axis=1)[:, :steps]


def _baselines(setup: Any, origins: list[int]) -> dict[str, np.ndarray]:
    H, m = setup.horizon, setup.seasonality
    return {"naive": np.stack([naive_forecast(setup.series, o, H) for o in origins]),
            "seasonal_naive": np.stack([seasonal_naive_forecast(setup.series, o, H, m) for o in origins])}


def evaluate_forecasting(outputs: dict[str, np.ndarray], setup: Any) -> Evaluation:
    """Test metrics of the model outputs (N, C*horizon) on ``setup.origins['test']`` next to the baselines.

    ``setup`` is a :class:`tinyverse.timeseries.data.forecasting.ForecastSetup`. Headline: ``smape`` (lower is better),
    recomputed for every exported artifact.
    """
    origins = setup.origins["test"]
    truth = setup.truth(origins)
    scale = seasonal_naive_scale(setup.history, setup.seasonality)

    def model_smape(out: np.ndarray) -> float:
        return smape(truth, setup.to_units(out, origins))

    pred = setup.to_units(outputs["test"], origins)
    metrics: dict[str, Any] = {"smape": smape(truth, pred), "mase": mase(truth, pred, scale),
                               "mae": float(np.mean(np.abs(truth - pred))),
                               "rmse": float(np.sqrt(np.mean((truth - pred) ** 2)))}
    for name, fc in _baselines(setup, origins).items():
        metrics[f"{name}_smape"] = smape(truth, fc)
        metrics[f"{name}_mase"] = mase(truth, fc, scale)
    metrics["smape_vs_seasonal_naive"] = (metrics["smape"] / metrics["seasonal_naive_smape"]
                                          if metrics["seasonal_naive_smape"] else float("inf"))
    metrics["beats_seasonal_naive"] = bool(metrics["smape"] < metrics["seasonal_naive_smape"])
    # The fixed-origin protocol (every test value forecast from the first test origin), for reference.
    b, end = setup.periods["test"]
    whole = setup.series[None, :, b:end]
    for name, fc in (("naive", naive_forecast(setup.series, b, end - b)),
                     ("seasonal_naive", seasonal_naive_forecast(setup.series, b, end - b, setup.seasonality))):
        metrics[f"{name}_smape_fixed_origin"] = smape(whole, fc[None])
        metrics[f"{name}_mase_fixed_origin"] = mase(whole, fc[None], scale)
    if outputs.get("val") is not None and len(setup.origins.get("val", [])):
        metrics["val_smape"] = smape(setup.truth(setup.origins["val"]),
                                     setup.to_units(outputs["val"], setup.origins["val"]))
    metrics.update({"num_windows": len(origins), "horizon": setup.horizon, "seasonality": setup.seasonality})
    if not metrics["beats_seasonal_naive"]:
        log.warning("WARNING " + "!" * 60)
        log.warning("WARNING: the forecaster does NOT beat the seasonal-naive baseline on the test split: sMAPE "
                    "%.4f >= %.4f (same %d origin(s), horizon %d, m=%d). Repeating last season is better; do not "
                    "ship this model.", metrics["smape"], metrics["seasonal_naive_smape"], len(origins),
                    setup.horizon, setup.seasonality)
        log.warning("WARNING " + "!" * 60)
    return Evaluation(metrics, "smape", higher_is_better=False, metric_fn=model_smape)
