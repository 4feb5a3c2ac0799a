"""Per-channel standardisation whose statistics an MCU project can reproduce from the run's info."""
from __future__ import annotations

import numpy as np


class ChannelNormalizer:
    """``(x - mean[c]) / std[c]`` per channel, with mean/std fitted on the training split only.

    ``std`` is floored at ``eps`` so a constant channel maps to 0 instead of dividing by zero.
    """

    def __init__(self, eps: float = 1e-6):
        self.eps = float(eps)
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def fit(self, X: np.ndarray) -> "ChannelNormalizer":
        X = np.asarray(X, dtype=np.float64)  # float64 so long recordings do not lose precision
        if X.ndim != 3 or X.shape[0] == 0:
            raise ValueError(f"fit needs a non-empty (N, C, L) array, got shape {X.shape}")
        self.mean = X.mean(axis=(0, 2))
        self.std = np.maximum(X.std(axis=(0, 2)), self.eps)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        if self.mean is None or self.std is None:
            raise RuntimeError("ChannelNormalizer.transform called before fit")
        X = np.asarray(X)
        if X.ndim != 3 or X.shape[1] != len(self.mean):
            raise ValueError(f"expected (N, {len(self.mean)}, L), got {X.shape}")
        out = (X - self.mean[None, :, None]) / self.std[None, :, None]
        return out.astype(np.float32)

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        return self.fit(X).transform(X)

    def inverse_transform(self, X: np.ndarray) -> np.ndarray:
        if self.mean is None or self.std is None:
            raise RuntimeError("ChannelNormalizer.inverse_transform called before fit")
        return (np.asarray(X) * self.std[None, :, None] + self.mean[None, :, None]).astype(np.float32)

    def to_dict(self) -> dict:
        if self.mean is None or self.std is None:
            raise RuntimeError("ChannelNormalizer.to_dict called before fit")
        return {
            "type": "per_channel_standard",
            "formula": "(x - mean[c]) / std[c]",
            "fitted_on": "train",
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "eps": self.eps,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ChannelNormalizer":
        norm = cls(eps=d.get("eps", 1e-6))
        norm.mean = np.asarray(d["mean"], dtype=np.float64)
        norm.std = np.asarray(d["std"], dtype=np.float64)
        return norm


def normalize_splits(X: dict[str, np.ndarray], enabled: bool = True) -> tuple[dict[str, np.ndarray], dict | None]:
    """Standardise every split with the statistics of ``X["train"]``; returns the splits and the statistics for the
    run's info (``None`` when ``enabled`` is false, and the splits unchanged). Empty splits stay empty."""
    if not enabled:
        return X, None
    norm = ChannelNormalizer().fit(X["train"])
    return {s: norm.transform(v) if len(v) else v for s, v in X.items()}, norm.to_dict()
