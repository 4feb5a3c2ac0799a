"""Anomaly detection on one labelled series: windows, a chronological split, normal-only training data.

``DATASETS["anomaly_series"]`` reads a long series with a 0/1 label per sample (1 = inside a labelled anomaly):

- ``series: mitdb`` (default): the MIT-BIH Arrhythmia ECG excerpt that ships inside sktime's wheel
  (``sktime/datasets/data/mitdb/mitdb.csv``: 7,500 samples at 360 Hz, columns ``data``, ``label``; one labelled
  anomalous region, samples 6,936-7,287);
- ``path: my_series.csv``: bring your own CSV, one row per time step, a label column (``label_column``, 0/1 or
  true/false) and one or more value columns (``value_columns``; default: every other column except a time column).

Pipeline (every step reproducible on a device):

1. ``downsample: k`` keeps every k-th sample (no filter; a kept sample is labelled anomalous if any of the k
   samples it stands for is);
2. the series is cut chronologically: the first ``train_fraction`` is train, the next ``val_fraction`` validation,
   the rest test. Windows of ``window`` samples every ``stride`` samples are cut inside each part, so no window
   spans two parts;
3. **labelling rule**: a validation/test window is anomalous (label 1) when it covers at least ``min_overlap``
   of the window or of the labelled event, whichever is shorter, i.e.
   ``overlap / min(window, event length) >= min_overlap`` for some event (``min_overlap: 0``: any overlap);
4. **training is on normal data only**: a training window that holds any labelled-anomalous sample is dropped
   with a warning (``train_anomalies: drop``) or stops the run (``train_anomalies: error``);
5. values are standardised per channel with the training windows' mean and std (``normalize``).

Validation keeps its anomalous windows (if any): the threshold can then be chosen by max F1 on them, while
training's val_loss and early stopping read only the normal ones. ``threshold`` / ``threshold_percentile`` choose
how the threshold is set (see :mod:`tinyverse.timeseries.evaluation.anomaly`); the test split is never used for it.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tinyverse.registry import DATASETS
from .normalize import normalize_splits
from .splits import DatasetError, TimeSeriesData
from .ucr import package_dir, package_version

log = logging.getLogger(__name__)

CLASS_NAMES = ["normal", "anomaly"]
BUILTIN_SERIES = {"mitdb": ("sktime", "datasets/data/mitdb/mitdb.csv", "label")}
_TIME_COLUMN = re.compile(r"(time|timestamp|ts|date|datetime)([\s_(\[].*)?|t", re.IGNORECASE)
THRESHOLD_METHODS = ("auto", "max_f1", "percentile")


def label_events(labels: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous runs of non-zero labels as [start, end) sample ranges."""
    flags = np.asarray(labels).reshape(-1) > 0
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def overlap_ratio(start: int, window: int, events: Sequence[tuple[int, int]]) -> float:
    """max over events of |window ∩ event| / min(window, event length) (0 when no event overlaps)."""
    best = 0.0
    for a, b in events:
        inter = min(start + window, b) - max(start, a)
        if inter > 0:
            best = max(best, inter / min(window, b - a))
    return best


def window_labels(starts: np.ndarray, window: int, events: Sequence[tuple[int, int]],
                  min_overlap: float) -> np.ndarray:
    """1 where a window is anomalous under the labelling rule (module docstring, step 3), else 0."""
    ratio = np.array([overlap_ratio(int(s), window, events) for s in starts], dtype=np.float64)
    hit = ratio > 0 if min_overlap <= 0 else ratio >= min_overlap - 1e-12
    return hit.astype(np.int64)


def _windows(values: np.ndarray, lo: int, hi: int, window: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows (N, C, window) starting at lo, lo+stride, ... and ending at or before hi; and their starts."""
    starts = np.arange(lo, hi - window + 1, stride, dtype=np.int64)
    if not len(starts):
        return np.zeros((0, values.shape[1], window), dtype=np.float32), starts
    X = np.stack([values[s:s + window].T for s in starts]).astype(np.float32)
    return X, starts


@DATASETS.register("anomaly_series")
class AnomalySeriesDataset:
    """One labelled series, windowed for an autoencoder (see the module docstring for every step)."""

    def __init__(self, series: str = "mitdb", path: str | None = None, value_columns: list[str] | None = None,
                 label_column: str = "label", window: int = 256, stride: int = 4, downsample: int = 1,
                 train_fraction: float = 0.5, val_fraction: float = 0.15, min_overlap: float = 0.5,
                 train_anomalies: str = "drop", normalize: bool = True, threshold: str = "auto",
                 threshold_percentile: float = 99.0):
        if path is None and series not in BUILTIN_SERIES:
            raise DatasetError(f"dataset.series: unknown series '{series}'; built in: "
                               f"{', '.join(BUILTIN_SERIES)} (or give dataset.path: your.csv)")
        for key, value, ok in (("window", window, window >= 2), ("stride", stride, stride >= 1),
                               ("downsample", downsample, downsample >= 1)):
            if not isinstance(value, int) or not ok:
                raise DatasetError(f"dataset.{key}: must be an integer >= {2 if key == 'window' else 1}, got {value!r}")
        if not (0 < train_fraction < 1 and 0 < val_fraction < 1 and train_fraction + val_fraction < 1):
            raise DatasetError(f"dataset.train_fraction ({train_fraction}) and val_fraction ({val_fraction}) must be "
                               f"in (0, 1) and leave a test part (sum < 1)")
        if not 0 <= min_overlap <= 1:
            raise DatasetError(f"dataset.min_overlap: must be in [0, 1], got {min_overlap}")
        if train_anomalies not in ("drop", "error"):
            raise DatasetError(f"dataset.train_anomalies: 'drop' or 'error', got {train_anomalies!r}")
        if threshold not in THRESHOLD_METHODS:
            raise DatasetError(f"dataset.threshold: one of {', '.join(THRESHOLD_METHODS)}, got {threshold!r}")
        if not 0 < threshold_percentile <= 100:
            raise DatasetError(f"dataset.threshold_percentile: must be in (0, 100], got {threshold_percentile}")
        self.series, self.path = series, Path(path).expanduser() if path is not None else None
        self.value_columns = list(value_columns) if value_columns else None
        self.label_column = label_column
        self.window, self.stride, self.downsample = window, stride, downsample
        self.train_fraction, self.val_fraction = float(train_fraction), float(val_fraction)
        self.min_overlap, self.train_anomalies, self.normalize = float(min_overlap), train_anomalies, bool(normalize)
        self.threshold, self.threshold_percentile = threshold, float(threshold_percentile)

    # -- reading -------------------------------------------------------------------------------------------
    def _source(self) -> tuple[Path, str, dict[str, Any]]:
        if self.path is not None:
            if not self.path.is_file():
                raise DatasetError(f"dataset.path: file '{self.path}' does not exist")
            if self.path.suffix.lower() != ".csv":
                raise DatasetError(f"dataset.path: '{self.path}' is not a .csv file (one row per time step, value "
                                   f"column(s) and a '{self.label_column}' column)")
            return self.path, self.label_column, {"file": str(self.path)}
        package, rel, label = BUILTIN_SERIES[self.series]
        root = package_dir(package)
        file = root / rel if root is not None else None
        if file is None or not file.is_file():
            raise DatasetError(f"dataset.series: '{self.series}' ships in the {package} wheel, which is not installed "
                               f"(or lacks {rel}); pip install {package}")
        return file, label, {"package": package, "package_version": package_version(package), "file": str(file)}

    def read(self) -> tuple[np.ndarray, np.ndarray, list[str], dict[str, Any]]:
        """(values (T, C) float64, labels (T,) int64, channel names, provenance) of the whole series."""
        import pandas as pd

        file, label_col, provenance = self._source()
        try:
            frame = pd.read_csv(file)
        except (ValueError, OSError) as err:
            raise DatasetError(f"dataset.path: cannot parse CSV '{file}' ({str(err).splitlines()[0]})") from None
        if label_col not in frame.columns:
            raise DatasetError(f"dataset.label_column: '{file}' has no column '{label_col}' (columns: "
                               f"{', '.join(map(str, frame.columns))})")
        columns = self.value_columns or [c for c in frame.columns
                                         if c != label_col and not _TIME_COLUMN.fullmatch(str(c).strip())]
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DatasetError(f"dataset.value_columns: '{file}' has no column(s) {missing} (columns: "
                               f"{', '.join(map(str, frame.columns))})")
        if not columns:
            raise DatasetError(f"dataset.value_columns: '{file}' has no value column besides '{label_col}'")
        try:
            values = frame[columns].to_numpy(dtype=np.float64)
        except (ValueError, TypeError):
            raise DatasetError(f"dataset.path: value columns {columns} of '{file}' are not all numeric") from None
        raw_labels = frame[label_col]
        if raw_labels.isna().any():
            raise DatasetError(f"dataset.label_column: '{label_col}' of '{file}' has empty cells")
        if raw_labels.dtype == bool:
            labels = raw_labels.to_numpy().astype(np.int64)
        else:
            try:
                labels = (raw_labels.to_numpy(dtype=np.float64) != 0).astype(np.int64)
            except (ValueError, TypeError):
                raise DatasetError(f"dataset.label_column: '{label_col}' of '{file}' must hold 0/1 (1 = anomalous "
                                   f"sample), got values like {raw_labels.iloc[0]!r}") from None
        if not np.isfinite(values).all():
            bad = int(np.argwhere(~np.isfinite(values))[0][0])
            raise DatasetError(f"dataset.path: '{file}' has missing or non-finite values (first at row {bad}); "
                               f"interpolate or drop the gaps first")
        return values, labels, [str(c) for c in columns], provenance

    # -- windows -------------------------------------------------------------------------------------------
    def load(self) -> TimeSeriesData:
        values, labels, channels, provenance = self.read()
        k, L, S = self.downsample, self.window, self.stride
        n_raw = len(values)
        if k > 1:  # keep every k-th sample; its label covers the k samples it stands for
            n = n_raw // k
            values = values[: n * k: k]
            labels = labels[: n * k].reshape(n, k).max(axis=1)
        T = len(values)
        train_end = int(round(self.train_fraction * T))
        val_end = int(round((self.train_fraction + self.val_fraction) * T))
        bounds = {"train": (0, train_end), "val": (train_end, val_end), "test": (val_end, T)}
        name = self.path.stem if self.path is not None else self.series
        for split, (lo, hi) in bounds.items():
            if hi - lo < L:
                raise DatasetError(f"dataset '{name}': the {split} part is {hi - lo} samples long (after downsample "
                                   f"{k}), shorter than one window of {L}; use a smaller window or change "
                                   f"train_fraction / val_fraction")
        events = label_events(labels)
        X: dict[str, np.ndarray] = {}
        y: dict[str, np.ndarray] = {}
        starts: dict[str, np.ndarray] = {}
        warnings: list[str] = []
        for split, (lo, hi) in bounds.items():
            X[split], starts[split] = _windows(values, lo, hi, L, S)
            if split == "train":
                dirty = window_labels(starts[split], L, events, 0.0).astype(bool)  # any anomalous sample
                if dirty.any():
                    inside = [(a * k, b * k) for a, b in events if a < train_end]
                    msg = (f"dataset '{name}': {int(dirty.sum())} of {len(dirty)} training windows overlap labelled "
                           f"anomalies (samples {inside}); training must see normal data only")
                    if self.train_anomalies == "error":
                        raise DatasetError(msg + "; move train_fraction before the first anomaly or set "
                                                 "train_anomalies: drop")
                    warnings.append(msg + ": they were dropped")
                    log.warning(warnings[-1])
                    X[split], starts[split] = X[split][~dirty], starts[split][~dirty]
                    if not len(starts[split]):
                        raise DatasetError(msg + ", and none is left; choose a part of the series without "
                                                 "anomalies for training")
                y[split] = np.zeros(len(starts[split]), dtype=np.int64)
            else:
                y[split] = window_labels(starts[split], L, events, self.min_overlap)
        if not (y["val"] == 0).any():
            raise DatasetError(f"dataset '{name}': every validation window is anomalous; the threshold and early "
                               f"stopping need normal validation windows (change val_fraction)")
        if not (y["test"] > 0).any() or not (y["test"] == 0).any():
            what = "anomalous" if not (y["test"] > 0).any() else "normal"
            raise DatasetError(f"dataset '{name}': the test part (samples {val_end * k}-{T * k}) holds no {what} "
                               f"window, so AUC is undefined; move train_fraction / val_fraction so the test part "
                               f"covers labelled anomalies and normal data")
        info: dict[str, Any] = {
            "source": "anomaly_series", "provenance": provenance, "channel_names": channels,
            "window": L, "stride": S, "downsample": k, "samples": n_raw,
            "split_samples": {s: [lo * k, hi * k] for s, (lo, hi) in bounds.items()},
            "events": [[a * k, b * k] for a, b in events],
            "labelling_rule": (f"window anomalous if overlap / min(window, event length) >= {self.min_overlap:g}"
                               if self.min_overlap > 0 else "window anomalous if it overlaps a labelled event"),
            "min_overlap": self.min_overlap,
            "train": "normal windows only (windows overlapping a labelled anomaly are "
                     + ("dropped)" if self.train_anomalies == "drop" else "an error)"),
            # window start per split, in samples of the (downsampled) series the model sees
            "window_starts": {s: [int(v) for v in starts[s]] for s in starts},
            "anomaly": {"threshold": self.threshold, "threshold_percentile": self.threshold_percentile},
            "warnings": warnings,
        }
        X, info["normalization"] = normalize_splits(X, self.normalize)
        data = TimeSeriesData(X["train"], y["train"], X["val"], y["val"], X["test"], y["test"], list(CLASS_NAMES),
                              name, info)
        info["counts"] = data.summary()["counts"]
        return data
