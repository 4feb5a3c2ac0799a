"""Worked example (b): a custom feature extractor registered in TRANSFORMS.

``DiffFeatures`` appends the first difference of every channel (the signal's slope) as extra channels and
standardises each channel with statistics fitted on the training split only. (N, C, L) -> (N, 2C, L).
"""
from __future__ import annotations

import numpy as np

from tinyverse.registry import TRANSFORMS
from tinyverse.timeseries.transforms import Transform


@TRANSFORMS.register("DiffFeatures")
class DiffFeatures(Transform):
    def __init__(self, scale: float = 1.0) -> None:
        self.scale = float(scale)
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def _features(self, X: np.ndarray) -> np.ndarray:
        diff = np.diff(X, axis=2, prepend=X[:, :, :1]) * self.scale
        return np.concatenate([X, diff], axis=1)

    def fit(self, X: np.ndarray) -> "DiffFeatures":
        F = self._features(X)
        self.mean = F.mean(axis=(0, 2), keepdims=True)
        self.std = F.std(axis=(0, 2), keepdims=True) + 1e-6
        return self

    def __call__(self, X: np.ndarray) -> np.ndarray:
        F = self._features(X)
        return ((F - self.mean) / self.std).astype(np.float32) if self.mean is not None else F
