"""Scaling: standardisation and min-max scaling fitted on the training split only, and per-row mean removal."""
from __future__ import annotations

import numpy as np

from tinyverse.registry import TRANSFORMS
from tinyverse.timeseries.transforms import Transform, TransformError

_PER = ("channel", "feature")


class _Fitted(Transform):
    """Statistics per channel (over samples and length) or per feature (each (channel, position) over samples)."""

    name = "scaling"

    def __init__(self, per: str = "channel") -> None:
        if per not in _PER:
            raise TransformError(f"{self.name}: per must be 'channel' or 'feature', got {per!r}")
        self.per = per
        self.fitted_shape: list[int] | None = None

    def _axes(self) -> tuple[int, ...]:
        return (0, 2) if self.per == "channel" else (0,)

    def _start_fit(self, X: np.ndarray) -> np.ndarray:
        if X.shape[0] == 0:
            raise TransformError(f"{self.name}: cannot fit on an empty training split")
        self.fitted_shape = list(X.shape[1:])
        return X.astype(np.float64)  # float64 so long or many series do not lose precision

    def _ready(self, X: np.ndarray) -> np.ndarray:
        if self.fitted_shape is None:
            raise TransformError(f"{self.name}: call fit(X_train) before transforming (statistics come from the "
                                 f"training split)")
        want = self.fitted_shape[:1] if self.per == "channel" else self.fitted_shape
        if list(X.shape[1:len(want) + 1]) != want:
            raise TransformError(f"{self.name}: fitted on per-sample shape {self.fitted_shape}, "
                                 f"got {list(X.shape[1:])}")
        return X.astype(np.float64)


@TRANSFORMS.register("Standardize")
class Standardize(_Fitted):
    """out = (x - mean) / max(std, eps), mean and std (population, ddof=0) fitted on the training split.

    ``per`` "channel": one mean/std per channel over all samples and positions; "feature": one per
    (channel, position), i.e. per feature of a feature vector.
    """

    name = "Standardize"

    def __init__(self, per: str = "channel", eps: float = 1e-6) -> None:
        super().__init__(per)
        self.eps = float(eps)
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def fit(self, X: np.ndarray) -> "Standardize":
        x = self._start_fit(X)
        self.mean = x.mean(axis=self._axes(), keepdims=True)[0]
        self.std = np.maximum(x.std(axis=self._axes(), keepdims=True)[0], self.eps)
        return self

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return (self._ready(X) - self.mean) / self.std

    def arithmetic(self) -> str:
        return (f"Standardize: out = (x - mean) / std per {self.per}, mean and std (ddof=0, floored at "
                f"{self.eps:g}) from the training split, listed in feature_extraction.json")


@TRANSFORMS.register("MinMaxScale")
class MinMaxScale(_Fitted):
    """out = low + (x - min) * (high - low) / max(max - min, eps), min and max fitted on the training split.

    Values outside the training range map outside [low, high] (not clipped).
    """

    name = "MinMaxScale"

    def __init__(self, per: str = "channel", low: float = 0.0, high: float = 1.0, eps: float = 1e-12) -> None:
        super().__init__(per)
        if not float(high) > float(low):
            raise TransformError(f"MinMaxScale: high must be greater than low, got low={low}, high={high}")
        self.low, self.high, self.eps = float(low), float(high), float(eps)
        self.min: np.ndarray | None = None
        self.max: np.ndarray | None = None

    def fit(self, X: np.ndarray) -> "MinMaxScale":
        x = self._start_fit(X)
        self.min = x.min(axis=self._axes(), keepdims=True)[0]
        self.max = x.max(axis=self._axes(), keepdims=True)[0]
        return self

    def __call__(self, X: np.ndarray) -> np.ndarray:
        span = np.maximum(self.max - self.min, self.eps)
        return self.low + (self._ready(X) - self.min) * (self.high - self.low) / span

    def arithmetic(self) -> str:
        return (f"MinMaxScale: out = {self.low:g} + (x - min) * {self.high - self.low:g} / max(max - min, "
                f"{self.eps:g}) per {self.per}, min and max from the training split, listed in "
                f"feature_extraction.json")


@TRANSFORMS.register("RemoveMean")
class RemoveMean(Transform):
    """out = x - mean(x) along the last axis of each row (a whole series, or a frame after ``Frame``).

    ``rounding`` "floor" subtracts floor(sum(x) / K) instead, as TI's RAW_FE with dc_remove does
    (``np.sum(x) // len(x)``, meant for integer ADC samples).
    """

    def __init__(self, rounding: str = "none") -> None:
        if rounding not in ("none", "floor"):
            raise TransformError(f"RemoveMean: rounding must be 'none' or 'floor', got {rounding!r}")
        self.rounding = rounding

    def __call__(self, X: np.ndarray) -> np.ndarray:
        x = X.astype(np.float64)
        mean = x.sum(axis=-1, keepdims=True) / x.shape[-1]
        return x - (np.floor(mean) if self.rounding == "floor" else mean)

    def arithmetic(self) -> str:
        m = "floor(sum(x) / K)" if self.rounding == "floor" else "sum(x) / K"
        return f"RemoveMean: out[n] = x[n] - {m} over the K values of each row (float64)"
