"""Audio-model metrics as NAM users know them.

Source: neural-amp-modeler, ``nam/train/core.py`` (``_esr`` and the comment printed by ``_plot`` after
training) and ``nam/models/losses.py`` (``esr`` over a batch: per-example ratio, then the mean).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ESR_VERDICTS", "esr", "esr_verdict"]

# (upper bound, exclusive) -> the comment NAM's trainer prints under "Error-signal ratio = ...".
ESR_VERDICTS: tuple[tuple[float, str], ...] = (
    (0.01, "Great!"),
    (0.035, "Not bad!"),
    (0.1, "...This *might* sound ok!"),
    (0.3, "...This probably won't sound great :("),
    (float("inf"), "...Something seems to have gone wrong."),
)


def _as_array(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):  # torch tensor, without importing torch here
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def esr(target: Any, pred: Any) -> float:
    """Error-to-signal ratio ``sum((target - pred)^2) / sum(target^2)``.

    1-D inputs give NAM's validation ESR. For ``(N, L)`` inputs the ratio is taken per row and then
    averaged, as NAM's ``losses.esr`` does for a batch. Accepts numpy arrays, lists or torch tensors.
    """
    t, p = _as_array(target), _as_array(pred)
    if t.shape != p.shape:
        raise ValueError(f"esr: target and pred shapes differ: {t.shape} vs {p.shape}")
    if t.ndim <= 1:
        t, p = t.reshape(1, -1), p.reshape(1, -1)
    else:
        t, p = t.reshape(-1, t.shape[-1]), p.reshape(-1, p.shape[-1])
    num = np.mean(np.square(p - t), axis=1)
    den = np.mean(np.square(t), axis=1)
    return float(np.mean(num / den))


def esr_verdict(value: float) -> str:
    """The comment NAM's trainer prints for a validation ESR (thresholds 0.01 / 0.035 / 0.1 / 0.3)."""
    for bound, text in ESR_VERDICTS:
        if value < bound:
            return text
    return ESR_VERDICTS[-1][1]  # NaN lands here
