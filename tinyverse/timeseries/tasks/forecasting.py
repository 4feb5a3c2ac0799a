"""The ``forecasting`` task: multi-step forecasts of a series from sliding windows (``dataset: forecast_series``).

The model maps a (C, window) input to C*horizon values; the loss is on the standardised, level-removed targets
(see :mod:`tinyverse.timeseries.data.forecasting`). Test metrics (``evaluate``) are in the series' units: sMAPE (headline,
recomputed for every exported artifact), MASE, MAE, RMSE, next to the naive and seasonal-naive baselines on the
same windows (:mod:`tinyverse.timeseries.evaluation.forecasting`); plot ``forecast.png``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tinyverse.evaluation import Evaluation
from tinyverse.registry import TASKS
from tinyverse.timeseries.tasks.regression import ValueTask


@TASKS.register("forecasting")
class ForecastingTask(ValueTask):
    """Multi-step forecasting; ``loss`` mse (default), huber or mae. Augmentation: ``noise`` only (a shift or a
    gain of the inputs alone would no longer match the targets)."""

    allowed_augmentations = ("noise",)

    @classmethod
    def evaluate(cls, outputs: dict[str, np.ndarray], data: Any) -> Evaluation:
        from tinyverse.timeseries.data.forecasting import ForecastSetup
        from tinyverse.timeseries.evaluation.forecasting import evaluate_forecasting

        return evaluate_forecasting(outputs, ForecastSetup.of(data))

    @classmethod
    def write_plots(cls, run_dir: Path, outputs: dict[str, np.ndarray], data: Any, evaluation: Evaluation,
                    title: str) -> list[Path]:
        from tinyverse.timeseries.data.forecasting import ForecastSetup

        setup = ForecastSetup.of(data)
        path = Path(run_dir) / "forecast.png"
        plot_forecast(setup, setup.to_units(outputs["test"], setup.origins["test"]), path, title=title,
                      metrics=evaluation.metrics)
        return [path]


def plot_forecast(setup: Any, forecasts: np.ndarray, out_png: Path, title: str = "",
                  metrics: dict[str, Any] | None = None) -> Path:
    """History (train and val parts), the test truth, the model's forecasts (one line per test window) and the
    seasonal-naive forecasts of the same windows; one panel per channel (at most 4)."""
    from matplotlib.figure import Figure

    from tinyverse.timeseries.evaluation.forecasting import seasonal_naive_forecast
    from tinyverse.training.plots import save_figure

    series = setup.series
    T = series.shape[1]
    t = np.arange(T)
    a, b = setup.periods["val"][0], setup.periods["test"][0]
    k = min(series.shape[0], 4)
    fig = Figure(figsize=(11, 3.6 * k))
    axes = np.atleast_1d(fig.subplots(k, 1, squeeze=False)[:, 0])
    for c, ax in enumerate(axes):
        ax.plot(t[:b], series[c, :b], color="black", lw=1.2, label="history (train + val)")
        ax.plot(t[b - 1:], series[c, b - 1:], color="tab:green", lw=1.5, label="truth (test)")
        ax.axvspan(a, b, color="tab:orange", alpha=0.08, label="val period")
        ax.axvspan(b, T - 0.5, color="tab:green", alpha=0.06)
        for i, o in enumerate(setup.origins["test"]):
            h = np.arange(o, o + setup.horizon)
            ax.plot(h, forecasts[i, c], color="tab:blue", lw=1.5, marker=".",
                    label="model forecast" if i == 0 else None)
            sn = seasonal_naive_forecast(series, o, setup.horizon, setup.seasonality)[c]
            ax.plot(h, sn, color="tab:red", lw=1, ls="--", label=f"seasonal naive (m={setup.seasonality})"
                    if i == 0 else None)
            ax.axvline(o - 0.5, color="grey", lw=0.6, ls=":")
        if setup.time_index and len(setup.time_index) == T:
            ticks = np.linspace(0, T - 1, min(T, 10)).round().astype(int)
            ax.set_xticks(ticks, labels=[setup.time_index[i] for i in ticks], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(setup.channel_names[c] if c < len(setup.channel_names) else f"channel {c}")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    m = metrics or {}
    sub = ", ".join(f"{name} {m[key]:.4g}" for name, key in
                    (("sMAPE", "smape"), ("MASE", "mase"), ("seasonal-naive sMAPE", "seasonal_naive_smape"),
                     ("naive sMAPE", "naive_smape")) if key in m)
    fig.suptitle(f"{title}\n{sub}" if sub else title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out_png)
