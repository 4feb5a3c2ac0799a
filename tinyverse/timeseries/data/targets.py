"""Standardisation of value targets (regression), fitted on the training split, inverted for metrics in units."""
from __future__ import annotations

from typing import Any

import numpy as np


class TargetScaler:
    """``(y - mean[j]) / std[j]`` per target value j (targets shaped (N, ...)), fitted on the train split only.

    The model is trained on standardised targets; a task's ``evaluate`` calls :meth:`inverse_transform` on the
    model's outputs (and the stored test targets) so every reported metric is in the target's own units.
    ``std`` is floored at ``eps`` so a constant target maps to 0 instead of dividing by zero.
    """

    def __init__(self, eps: float = 1e-8):
        self.eps = float(eps)
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def fit(self, y: np.ndarray) -> "TargetScaler":
        y = np.asarray(y, dtype=np.float64)
        if y.ndim < 2 or len(y) == 0:
            raise ValueError(f"fit needs non-empty targets shaped (N, ...), got {y.shape}")
        self.mean = y.mean(axis=0)
        self.std = np.maximum(y.std(axis=0), self.eps)
        return self

    def _check(self) -> tuple[np.ndarray, np.ndarray]:
        if self.mean is None or self.std is None:
            raise RuntimeError("TargetScaler used before fit")
        return self.mean, self.std

    def transform(self, y: np.ndarray) -> np.ndarray:
        mean, std = self._check()
        y = np.asarray(y, dtype=np.float64)
        return ((y.reshape((len(y), *mean.shape)) - mean) / std).astype(np.float32)

    def inverse_transform(self, y: np.ndarray) -> np.ndarray:
        """Standardised values (or model outputs shaped (N, prod(target shape))) → units, shaped (N, *target)."""
        mean, std = self._check()
        y = np.asarray(y, dtype=np.float64)
        return y.reshape((len(y), *mean.shape)) * std + mean

    def to_dict(self) -> dict[str, Any]:
        mean, std = self._check()
        return {"type": "standard", "formula": "y_model = (y - mean) / std; y = y_model * std + mean",
                "fitted_on": "train", "shape": list(mean.shape), "mean": mean.reshape(-1).tolist(),
                "std": std.reshape(-1).tolist(), "eps": self.eps}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TargetScaler":
        scaler = cls(eps=d.get("eps", 1e-8))
        shape = tuple(d.get("shape") or [len(d["mean"])])
        scaler.mean = np.asarray(d["mean"], dtype=np.float64).reshape(shape)
        scaler.std = np.asarray(d["std"], dtype=np.float64).reshape(shape)
        return scaler


def target_scaler_of(data: Any) -> TargetScaler | None:
    """The scaler a dataset stored in ``info["target_scaler"]`` (None: targets are in units already)."""
    d = (getattr(data, "info", None) or {}).get("target_scaler")
    return TargetScaler.from_dict(d) if d else None
