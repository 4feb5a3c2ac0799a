"""Forecasting data: one (multi-channel) series cut into sliding windows with a multi-step horizon.

``forecast_series`` (a ``DATASETS`` entry) reads a series shipped offline (Airline, Lynx, ShampooSales from the
sktime wheel; sunspots from statsmodels when it is installed) or your own CSV / NPY file, and splits it in time:

    |<----------- train ----------->|<--- val (val_size) --->|<--- test (test_size) --->|
    0                               a                        b                          T

- a window with origin ``o`` reads ``window`` values ``series[o-window:o]`` and predicts the ``horizon`` values
  ``series[o:o+horizon]`` (all channels);
- train windows: targets entirely in [0, a) (origins every ``stride`` steps); val windows: targets entirely in
  [a, b); test windows: targets entirely in [b, T), origins b, b+test_stride, ... (``test_stride`` defaults to
  ``horizon``: non-overlapping blocks, so each test value is forecast exactly once);
- inputs of val/test windows are the values observed before their origin, which may lie in an earlier split:
  that is what a deployed forecaster sees (rolling origin). No target of a window ever lies outside its split.

**The test forecast.** With Airline's defaults (``test_size: 36``, ``horizon: 12``) the 36 held-out months are
forecast in three 12-month blocks from origins at months 109, 121 and 133 (1-based), each block from the
``window`` months observed before it (rolling origin, horizon 12, no recursion: a forecast is never fed back
as an input). The naive and seasonal-naive baselines are computed for exactly the same origins and horizons.
The fixed-origin baselines (all 36 months from the one origin before the test period: Airline's reference
seasonal-naive sMAPE 0.145, MASE 1.97, naive sMAPE 0.232) are reported next to them for reference.

**Arithmetic** (device code reproduces it; the numbers are in ``info["forecast"]``), per channel c:
``z = (f(x) - mean[c]) / std[c]`` with ``f = log`` when ``log_transform`` (else identity) and mean/std of f(x)
over the TRAIN part [0, a) only; then per window the level ``L = z[o-1]`` (``level: last``), the window mean
(``level: mean``) or 0 (``level: none``) is subtracted from the inputs and the targets. A forecast is turned back
into units by ``x = f^-1((out + L) * std[c] + mean[c])``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyverse.registry import DATASETS
from .splits import DatasetError, TimeSeriesData
from .ucr import package_dir, package_version

LEVELS = ("last", "mean", "none")
_TIME_COLUMN = re.compile(r"(date|time|timestamp|month|year|period|ts|t)([\s_(\[].*)?", re.IGNORECASE)


@dataclass(frozen=True)
class _KnownSeries:
    package: str
    relpath: str  # inside the package
    column: str
    seasonality: int
    description: str


# Series shipped inside installed wheels (nothing is downloaded).
KNOWN_SERIES = {
    "Airline": _KnownSeries("sktime", "datasets/data/Airline/Airline.csv", "Passengers", 12,
                            "monthly international airline passengers (thousands), 1949-1960, 144 values"),
    "Lynx": _KnownSeries("sktime", "datasets/data/Lynx/Lynx.csv", "0", 10,
                         "annual Canadian lynx trappings, 1821-1934, 114 values"),
    "ShampooSales": _KnownSeries("sktime", "datasets/data/ShampooSales/ShampooSales.csv", "Sales", 12,
                                 "monthly shampoo sales, 36 values"),
    "sunspots": _KnownSeries("statsmodels", "", "SUNACTIVITY", 11,
                             "yearly sunspot numbers, 1700-2008, 309 values (needs statsmodels)"),
}


@dataclass
class ForecastSetup:
    """Everything to turn windows and model outputs into values in units again (stored in ``info["forecast"]``)."""

    series: np.ndarray  # (C, T) raw values
    window: int
    horizon: int
    seasonality: int
    log_transform: bool
    mean: np.ndarray  # (C,) of f(x) over the train part
    std: np.ndarray
    level: str
    periods: dict[str, list[int]]  # split -> [start, end)
    origins: dict[str, list[int]]
    channel_names: list[str] = field(default_factory=list)
    time_index: list[str] = field(default_factory=list)

    @property
    def num_channels(self) -> int:
        return int(self.series.shape[0])

    def transformed(self) -> np.ndarray:
        """(C, T) standardised (and log-transformed) series, float64."""
        v = np.log(self.series) if self.log_transform else self.series
        return (v - self.mean[:, None]) / self.std[:, None]

    def levels(self, origins: list[int] | np.ndarray, z: np.ndarray | None = None) -> np.ndarray:
        """(N, C, 1) level subtracted from each window."""
        z = self.transformed() if z is None else z
        if self.level == "none":
            return np.zeros((len(origins), self.num_channels, 1))
        if self.level == "last":
            return np.stack([z[:, o - 1:o] for o in origins]) if len(origins) else np.zeros((0, self.num_channels, 1))
        return np.stack([z[:, o - self.window:o].mean(axis=1, keepdims=True) for o in origins]) if len(origins) \
            else np.zeros((0, self.num_channels, 1))

    def windows(self, origins: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Model inputs (N, C, window) and targets (N, C, horizon), float32."""
        z = self.transformed()
        C, W, H = self.num_channels, self.window, self.horizon
        if not len(origins):
            return np.zeros((0, C, W), np.float32), np.zeros((0, C, H), np.float32)
        lv = self.levels(origins, z)
        X = np.stack([z[:, o - W:o] for o in origins]) - lv
        Y = np.stack([z[:, o:o + H] for o in origins]) - lv
        return X.astype(np.float32), Y.astype(np.float32)

    def to_units(self, outputs: np.ndarray, origins: list[int]) -> np.ndarray:
        """Model outputs (N, C*horizon) of the windows at ``origins`` → forecasts in units (N, C, horizon)."""
        out = np.asarray(outputs, dtype=np.float64).reshape(len(origins), self.num_channels, self.horizon)
        v = (out + self.levels(origins)) * self.std[None, :, None] + self.mean[None, :, None]
        return np.exp(v) if self.log_transform else v

    def encode(self, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One model input (C, window) float32 from the values ``history`` (C, t >= window) observed before an
        origin, and its level (C, 1): the device-side arithmetic of the module docstring."""
        v = np.asarray(history, dtype=np.float64)[:, -self.window:]
        z = ((np.log(v) if self.log_transform else v) - self.mean[:, None]) / self.std[:, None]
        level = {"last": z[:, -1:], "mean": z.mean(axis=1, keepdims=True)}.get(self.level, np.zeros((len(z), 1)))
        return (z - level).astype(np.float32), level

    def decode(self, output: np.ndarray, level: np.ndarray) -> np.ndarray:
        """One model output (C*horizon values) and its window's level → the forecast in units (C, horizon)."""
        v = (np.asarray(output, dtype=np.float64).reshape(self.num_channels, self.horizon) + level) \
            * self.std[:, None] + self.mean[:, None]
        return np.exp(v) if self.log_transform else v

    def truth(self, origins: list[int]) -> np.ndarray:
        """(N, C, horizon) true values in units."""
        H = self.horizon
        return np.stack([self.series[:, o:o + H] for o in origins]) if len(origins) else \
            np.zeros((0, self.num_channels, H))

    @property
    def history(self) -> np.ndarray:
        """(C, b): every value before the test period (what a forecaster has seen at the first test origin)."""
        return self.series[:, :self.periods["test"][0]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self.window, "horizon": self.horizon, "seasonality": self.seasonality,
            "log_transform": self.log_transform, "level": self.level,
            "mean": self.mean.tolist(), "std": self.std.tolist(), "fitted_on": "train",
            "formula": "z = (f(x) - mean[c]) / std[c], f = log if log_transform else identity; inputs and targets "
                       "minus the window level L (last: z[o-1], mean: mean of the window, none: 0); "
                       "x = f^-1((out + L) * std[c] + mean[c])",
            "periods": self.periods, "origins": self.origins, "channel_names": self.channel_names,
            "time_index": self.time_index, "series": self.series.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ForecastSetup":
        return cls(series=np.asarray(d["series"], dtype=np.float64), window=int(d["window"]),
                   horizon=int(d["horizon"]), seasonality=int(d["seasonality"]),
                   log_transform=bool(d["log_transform"]), mean=np.asarray(d["mean"], dtype=np.float64),
                   std=np.asarray(d["std"], dtype=np.float64), level=str(d["level"]),
                   periods={k: list(v) for k, v in d["periods"].items()},
                   origins={k: [int(o) for o in v] for k, v in d["origins"].items()},
                   channel_names=list(d.get("channel_names") or []), time_index=list(d.get("time_index") or []))

    @classmethod
    def of(cls, data: Any) -> "ForecastSetup":
        d = (getattr(data, "info", None) or {}).get("forecast")
        if not d:
            raise ValueError(f"dataset {getattr(data, 'name', '?')!r} has no info['forecast']: the forecasting task "
                             f"needs a forecasting dataset (e.g. dataset.name: forecast_series)")
        return cls.from_dict(d)


@DATASETS.register("forecast_series")
class ForecastSeriesDataset:
    """A series split in time into train / val / test and cut into (window → horizon) windows.

    series: a name from :data:`KNOWN_SERIES` (Airline, Lynx, ShampooSales, sunspots), or leave it and give
    ``path``: a CSV (header row; a date/time column becomes the time index; ``columns`` picks the value columns,
    default every other numeric column) or an NPY array shaped (T,) or (T, C).
    test_size / val_size: values at the end held out for test, and the ones before them for validation.
    stride: step between training (and validation) window origins; test_stride: between test origins
    (default ``horizon``). seasonality: m of the seasonal-naive baseline and of MASE (default: the series'
    own, 1 for a file). log_transform: forecast log(x) (multiplicative seasonality, as for Airline).
    level: subtract each window's level (``last`` value, ``mean``, or ``none``) from its inputs and targets.
    See the module docstring for the exact arithmetic and how the test forecast is made.
    """

    def __init__(self, series: str | None = "Airline", path: str | None = None, columns: list[str] | None = None,
                 window: int = 24, horizon: int = 12, test_size: int = 36, val_size: int = 24, stride: int = 1,
                 test_stride: int | None = None, seasonality: int | None = None, log_transform: bool = False,
                 level: str = "last"):
        for key, value, low in (("window", window, 1), ("horizon", horizon, 1), ("test_size", test_size, 1),
                                ("val_size", val_size, 0), ("stride", stride, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise DatasetError(f"dataset.{key}: must be an integer >= {low}, got {value!r}")
        if test_stride is not None and (not isinstance(test_stride, int) or test_stride < 1):
            raise DatasetError(f"dataset.test_stride: must be an integer >= 1, got {test_stride!r}")
        if seasonality is not None and (not isinstance(seasonality, int) or seasonality < 1):
            raise DatasetError(f"dataset.seasonality: must be an integer >= 1, got {seasonality!r}")
        if level not in LEVELS:
            raise DatasetError(f"dataset.level: must be one of {', '.join(LEVELS)}, got {level!r}")
        if test_size < horizon:
            raise DatasetError(f"dataset.test_size ({test_size}) is shorter than dataset.horizon ({horizon}): no "
                               f"test window fits; raise test_size or lower horizon")
        if 0 < val_size < horizon:
            raise DatasetError(f"dataset.val_size ({val_size}) is shorter than dataset.horizon ({horizon}): no "
                               f"validation window fits; raise val_size (or set it to 0 for no validation)")
        if path is None and series is None:
            raise DatasetError("dataset.series or dataset.path: give a series name "
                               f"({', '.join(KNOWN_SERIES)}) or a CSV/NPY file")
        self.series_name = series if path is None else None
        self.path = Path(path).expanduser() if path is not None else None
        self.columns = list(columns) if columns else None
        self.window, self.horizon = window, horizon
        self.test_size, self.val_size = test_size, val_size
        self.stride, self.test_stride = stride, test_stride or horizon
        self.seasonality = seasonality
        self.log_transform = bool(log_transform)
        self.level = level

    # -- reading ----------------------------------------------------------------------------------------
    def _read_known(self) -> tuple[np.ndarray, list[str], list[str], int, dict[str, Any]]:
        name = self.series_name
        match = [k for k in KNOWN_SERIES if k.lower() == str(name).lower()]
        if not match:
            from tinyverse.registry import closest

            hint = closest(str(name), KNOWN_SERIES)
            raise DatasetError(f"dataset.series: unknown series '{name}'"
                               + (f"; did you mean {hint[0]!r}?" if hint else "")
                               + f" (offline: {', '.join(KNOWN_SERIES)}; or give dataset.path to a CSV/NPY file)")
        name = match[0]
        known = KNOWN_SERIES[name]
        if known.package == "statsmodels":
            try:
                import statsmodels.api as sm
            except ImportError:
                raise DatasetError(f"dataset.series: '{name}' ships with statsmodels, which is not installed "
                                   f"(pip install statsmodels); the other offline series: "
                                   f"{', '.join(k for k in KNOWN_SERIES if k != name)}") from None
            df = sm.datasets.sunspots.load_pandas().data
            values = df[known.column].to_numpy(dtype=np.float64)[None, :]
            index = [str(int(v)) for v in df["YEAR"]]
            prov = {"package": "statsmodels", "package_version": package_version("statsmodels"),
                    "loader": "statsmodels.api.datasets.sunspots"}
            return values, [known.column], index, known.seasonality, prov
        root = package_dir(known.package)
        file = root / known.relpath if root is not None else None
        if file is None or not file.is_file():
            raise DatasetError(f"dataset.series: '{name}' is not found in the installed {known.package} "
                               f"(looked for {known.relpath}); install {known.package} or give dataset.path")
        import pandas as pd

        df = pd.read_csv(file)
        values = df[known.column].to_numpy(dtype=np.float64)[None, :]
        index = [str(v) for v in df.iloc[:, 0]]
        prov = {"package": known.package, "package_version": package_version(known.package), "file": str(file)}
        return values, [known.column if known.column != "0" else name], index, known.seasonality, prov

    def _read_file(self) -> tuple[np.ndarray, list[str], list[str], int, dict[str, Any]]:
        file = self.path
        if file is None or not file.is_file():
            raise DatasetError(f"dataset.path: file '{file}' does not exist")
        prov = {"path": str(file.resolve())}
        if file.suffix.lower() == ".npy":
            if self.columns:
                raise DatasetError("dataset.columns: selects CSV columns by name; a .npy file has none")
            try:
                arr = np.load(file, allow_pickle=False)
            except ValueError as e:
                raise DatasetError(f"dataset.path: cannot read '{file}' as a numeric .npy array ({e})") from None
            if arr.ndim == 1:
                arr = arr[:, None]
            if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number):
                raise DatasetError(f"dataset.path: '{file}' must hold a numeric array shaped (T,) or (T, C), "
                                   f"got {arr.dtype} {arr.shape}")
            values = arr.T.astype(np.float64)
            return values, [f"ch{i}" for i in range(len(values))], [str(i) for i in range(values.shape[1])], 1, prov
        import pandas as pd

        try:
            df = pd.read_csv(file)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            raise DatasetError(f"dataset.path: cannot parse CSV '{file}' ({str(e).splitlines()[0]})") from None
        df.columns = [str(c).strip() for c in df.columns]
        time_cols = [c for c in df.columns if _TIME_COLUMN.fullmatch(c)]
        if self.columns:
            missing = [c for c in self.columns if c not in df.columns]
            if missing:
                raise DatasetError(f"dataset.columns: '{file}' has no column(s) {missing}; its columns are "
                                   f"{list(df.columns)}")
            cols = self.columns
        else:
            cols = [c for c in df.columns if c not in time_cols and pd.api.types.is_numeric_dtype(df[c])]
            if not cols:
                raise DatasetError(f"dataset.path: CSV '{file}' has no numeric value column; name it with "
                                   f"dataset.columns")
        try:
            values = df[cols].to_numpy(dtype=np.float64).T
        except (ValueError, TypeError):
            raise DatasetError(f"dataset.columns: CSV '{file}' has non-numeric values in {cols}") from None
        index = [str(v) for v in df[time_cols[0]]] if time_cols else [str(i) for i in range(values.shape[1])]
        return values, cols, index, 1, prov

    # -- load -------------------------------------------------------------------------------------------
    def load(self) -> TimeSeriesData:
        values, channel_names, index, default_m, prov = (self._read_known() if self.path is None
                                                         else self._read_file())
        source = f"series '{self.series_name}'" if self.path is None else f"'{self.path}'"
        if not np.isfinite(values).all():
            raise DatasetError(f"dataset: {source} has missing or non-finite values; fill or drop them first")
        if self.log_transform and (values <= 0).any():
            raise DatasetError(f"dataset.log_transform: {source} has values <= 0, whose log is undefined; "
                               f"set log_transform: false (or shift the series)")
        T = values.shape[1]
        W, H = self.window, self.horizon
        b = T - self.test_size
        a = b - self.val_size
        if a - W - H + 1 < 1:
            raise DatasetError(f"dataset: {source} has {T} values; with test_size {self.test_size} and val_size "
                               f"{self.val_size} the train part has {max(a, 0)}, too short for one window of "
                               f"{W} inputs + {H} targets; lower window/horizon/val_size/test_size")
        origins = {"train": list(range(W, a - H + 1, self.stride)),
                   "val": list(range(max(a, W), b - H + 1, self.stride)) if self.val_size else [],
                   "test": list(range(b, T - H + 1, self.test_stride))}
        f = np.log(values[:, :a]) if self.log_transform else values[:, :a]
        setup = ForecastSetup(series=values, window=W, horizon=H, seasonality=self.seasonality or default_m,
                              log_transform=self.log_transform, mean=f.mean(axis=1),
                              std=np.maximum(f.std(axis=1), 1e-8), level=self.level,
                              periods={"train": [0, a], "val": [a, b], "test": [b, T]}, origins=origins,
                              channel_names=list(channel_names), time_index=list(index))
        splits = {s: setup.windows(origins[s]) for s in ("train", "val", "test")}
        name = self.series_name if self.path is None else self.path.stem
        covered = (len(origins["test"]) - 1) * self.test_stride + H if origins["test"] else 0
        info: dict[str, Any] = {
            "source": "forecast_series",
            "provenance": {**prov, "split": "in time: train | val (val_size) | test (test_size, at the end)"},
            "series_length": T,
            "test_forecast": (f"{len(origins['test'])} forecast(s) of {H} steps from origins every "
                              f"{self.test_stride} steps from the first test value (rolling origin, inputs = the "
                              f"{W} values observed before each origin; no recursion)"),
            "test_values_forecast": int(min(covered, self.test_size)),
            "forecast": setup.to_dict(),
        }
        data = TimeSeriesData(splits["train"][0], splits["train"][1], splits["val"][0], splits["val"][1],
                              splits["test"][0], splits["test"][1], [], name, info)
        info["counts"] = data.summary()["counts"]
        return data
