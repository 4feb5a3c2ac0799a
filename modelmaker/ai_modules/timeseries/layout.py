"""The array layout time-series models are fed (one definition, shared by the runner and the compile stage)."""
from __future__ import annotations

import numpy as np

__all__ = ["as_nchw"]


def as_nchw(X: np.ndarray) -> np.ndarray:
    """(N, C, L) → (N, C, L, 1): time along H with (k, 1) kernels, the layout TI's NPU expects."""
    return np.ascontiguousarray(X[..., None], dtype=np.float32)
