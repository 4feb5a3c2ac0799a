"""Regression metrics on value targets, in the target's own units.

With ``y`` the true values and ``p`` the predictions (every target value of every sample, flattened):

- RMSE = sqrt(mean((p - y)^2)); MAE = mean(|p - y|);
- R^2 = 1 - sum((y - p)^2) / sum((y - mean(y))^2), averaged over target values when a sample has several
  (as scikit-learn's ``uniform_average``); a constant ``y`` gives 1.0 for a perfect fit, else 0.0;
- the trivial baseline predicts the TRAINING split's mean target for every test sample; its RMSE / MAE are
  reported next to the model's (``baseline_rmse``, ``rmse_vs_baseline`` = model RMSE / baseline RMSE, below 1
  when the model beats it).
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from tinyverse.evaluation import Evaluation

log = logging.getLogger("tinyverse.evaluation")


def _pair(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    true = np.asarray(true, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64).reshape(true.shape)
    return pred, true


def rmse(pred: np.ndarray, true: np.ndarray) -> float:
    pred, true = _pair(pred, true)
    return float(np.sqrt(np.mean((pred - true) ** 2)))


def mae(pred: np.ndarray, true: np.ndarray) -> float:
    pred, true = _pair(pred, true)
    return float(np.mean(np.abs(pred - true)))


def r2(pred: np.ndarray, true: np.ndarray) -> float:
    pred, true = _pair(pred, true)
    pred, true = pred.reshape(len(true), -1), true.reshape(len(true), -1)
    ss_res = np.sum((true - pred) ** 2, axis=0)
    ss_tot = np.sum((true - true.mean(axis=0)) ** 2, axis=0)
    scores = np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), np.where(ss_res == 0, 1.0, 0.0))
    return float(np.mean(scores))


def evaluate_regression(outputs: np.ndarray, y_test: np.ndarray, y_train: np.ndarray, scaler: Any = None) -> Evaluation:
    """Metrics of ``outputs`` (N, prod(target shape)) against ``y_test``, both turned into units with ``scaler``
    (a :class:`tinyverse.timeseries.data.targets.TargetScaler`, or None when the targets are in units already).

    The mean baseline is the mean of ``y_train`` (in units). Headline: ``rmse`` (lower is better), recomputed
    for every exported artifact.
    """
    def units(v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        return scaler.inverse_transform(v) if scaler is not None else v.reshape((len(v), *np.shape(y_test)[1:]))

    true = units(y_test)
    train_mean = units(y_train).mean(axis=0)
    baseline = np.broadcast_to(train_mean, true.shape)
    pred = units(outputs)
    metrics: dict[str, Any] = {
        "rmse": rmse(pred, true), "mae": mae(pred, true), "r2": r2(pred, true),
        "baseline_rmse": rmse(baseline, true), "baseline_mae": mae(baseline, true), "baseline_r2": r2(baseline, true),
    }
    metrics["rmse_vs_baseline"] = metrics["rmse"] / metrics["baseline_rmse"] if metrics["baseline_rmse"] else None
    metrics["beats_mean_baseline"] = bool(metrics["rmse"] < metrics["baseline_rmse"])
    metrics["num_samples"] = int(len(true))
    if metrics["rmse_vs_baseline"] is None:
        metrics.pop("rmse_vs_baseline")
    if not metrics["beats_mean_baseline"]:
        log.warning("WARNING: the model does NOT beat the trivial baseline: test RMSE %.4g >= %.4g of predicting "
                    "the training mean for every sample", metrics["rmse"], metrics["baseline_rmse"])
    return Evaluation(metrics, "rmse", higher_is_better=False, metric_fn=lambda out: rmse(units(out), true))
