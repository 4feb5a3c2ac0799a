"""The container every time-series dataset returns, and the split helpers shared by the loaders."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from tinyverse.errors import DatasetError  # shared by every modality; re-exported here for the loaders


def label_sort_key(label: str) -> tuple[int, float, str]:
    """Numeric-aware order: "1" < "2" < "10", numbers before words."""
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def sort_labels(labels: Iterable[Any]) -> list[str]:
    return sorted({str(label) for label in labels}, key=label_sort_key)


@dataclass
class TimeSeriesData:
    """Train / val / test arrays shaped (N, C, L) float32, with targets of one of two kinds:

    - classes (``class_names`` non-empty): int64 labels 0..K-1, shape (N,);
    - values (``class_names`` empty: regression, forecasting): float32 targets shaped (N, ...) with the same
      trailing shape in every split (``target_shape``), e.g. (N, 1) for one regressed quantity or (N, C, H) for
      an H-step forecast of C channels.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    name: str = ""
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        shape = None
        for split in ("train", "val", "test"):
            X = np.ascontiguousarray(getattr(self, f"X_{split}"), dtype=np.float32)
            y = np.asarray(getattr(self, f"y_{split}"))
            if self.class_names:
                y = y.astype(np.int64).reshape(-1)
            else:
                y = np.ascontiguousarray(y, dtype=np.float32)
                y = y.reshape(len(y), 1) if y.ndim == 1 else y
            if X.ndim != 3:
                raise ValueError(f"X_{split} must be shaped (N, C, L), got {X.shape}")
            if len(X) != len(y):
                raise ValueError(f"X_{split} has {len(X)} rows but y_{split} has {len(y)}")
            if shape is not None and X.shape[1:] != shape:
                raise ValueError(f"X_{split} is shaped {X.shape[1:]} per sample, X_train {shape}")
            shape = X.shape[1:]
            if not self.class_names and split != "train" and y.shape[1:] != self.y_train.shape[1:]:
                raise ValueError(f"y_{split} targets are shaped {y.shape[1:]} per sample, y_train "
                                 f"{self.y_train.shape[1:]}")
            if self.class_names and len(y) and (y.min() < 0 or y.max() >= len(self.class_names)):
                raise ValueError(f"y_{split} holds labels outside 0..{len(self.class_names) - 1}")
            setattr(self, f"X_{split}", X)
            setattr(self, f"y_{split}", y)
        self.class_names = [str(c) for c in self.class_names]

    @property
    def num_channels(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def length(self) -> int:
        return int(self.X_train.shape[2])

    @property
    def num_classes(self) -> int:
        """0 for value targets."""
        return len(self.class_names)

    @property
    def is_classification(self) -> bool:
        return bool(self.class_names)

    @property
    def target_shape(self) -> tuple[int, ...]:
        """Per-sample target shape: () for class labels, e.g. (1,) or (C, H) for values."""
        return tuple(self.y_train.shape[1:])

    @property
    def input_shape(self) -> tuple[int, int]:
        return (self.num_channels, self.length)

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(X, y)`` of "train", "val" or "test"."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split '{name}'; use 'train', 'val' or 'test'")
        return getattr(self, f"X_{name}"), getattr(self, f"y_{name}")

    def summary(self) -> dict:
        """JSON-able counts and shape, for logs and the run report."""
        counts, per_class = {}, {}
        for split in ("train", "val", "test"):
            _, y = self.split(split)
            counts[split] = int(len(y))
            if self.class_names:
                hist = np.bincount(y, minlength=self.num_classes)
                per_class[split] = {c: int(n) for c, n in zip(self.class_names, hist)}
        out = {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "num_channels": self.num_channels,
            "length": self.length,
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "counts": counts,
        }
        if self.class_names:
            out["per_class"] = per_class
        else:
            out["target_shape"] = list(self.target_shape)
        if self.info.get("warnings"):  # from tinyverse.timeseries.data.checks, shown in the run report
            out["warnings"] = list(self.info["warnings"])
        return out


def check_fractions(val_fraction: float, test_fraction: float = 0.0) -> None:
    """``dataset.val_fraction`` / ``dataset.test_fraction``: each in [0, 1), together < 1 (else a DatasetError)."""
    for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise DatasetError(f"dataset.{key}: must be in [0, 1), got {value}")
    if val_fraction + test_fraction >= 1:
        raise DatasetError(f"dataset.val_fraction + dataset.test_fraction must be < 1, "
                           f"got {val_fraction} + {test_fraction}")


def stratified_split(X: Any, y: Any, fraction: float, seed: int = 42) -> tuple[Any, Any, Any, Any]:
    """Hold out ``fraction`` of the rows: ``(X_rest, X_held, y_rest, y_held)``, stratified by ``y``.

    Falls back to a plain shuffled split (with a warning) when stratifying is impossible: a class with
    fewer than 2 samples, or fewer held-out rows than classes.
    """
    from sklearn.model_selection import train_test_split

    y = np.asarray(y)
    if fraction <= 0 or len(y) == 0:
        empty = np.arange(0)
        return X, _take(X, empty), y, y[empty]
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    _, class_counts = np.unique(y, return_counts=True)
    if class_counts.min() >= 2:
        try:
            return tuple(train_test_split(X, y, test_size=fraction, random_state=seed, stratify=y))
        except ValueError:  # too few held-out rows to hold every class
            pass
    warnings.warn(f"cannot stratify a {fraction:g} split of {len(y)} samples over {len(class_counts)} "
                  f"classes (smallest class: {class_counts.min()}); splitting without stratification",
                  stacklevel=2)
    return tuple(train_test_split(X, y, test_size=fraction, random_state=seed, shuffle=True))


def _take(X: Any, idx: np.ndarray) -> Any:
    if isinstance(X, np.ndarray):
        return X[idx]
    return [X[i] for i in idx]
