"""Statistics features of each row: a whole series, or each frame after ``Frame`` (then ``Concat``)."""
from __future__ import annotations

import warnings

import numpy as np
from scipy import stats as sps

from tinyverse.registry import TRANSFORMS
from tinyverse.timeseries.transforms import Transform, TransformError


def _moment_stat(fn, x: np.ndarray, std: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():  # scipy warns (and returns nan) on constant rows; those are defined as 0
        warnings.simplefilter("ignore", RuntimeWarning)
        out = fn(x, axis=-1)
    return np.where(std > 0, out, 0.0)


# Each maps (..., K) float64 -> (...,); population (biased) moments, as scipy.stats' defaults.
_STATS = {
    "mean": lambda x, std: x.mean(axis=-1),
    "std": lambda x, std: std,
    "min": lambda x, std: x.min(axis=-1),
    "max": lambda x, std: x.max(axis=-1),
    "rms": lambda x, std: np.sqrt(np.mean(x * x, axis=-1)),
    "skew": lambda x, std: _moment_stat(lambda v, axis: sps.skew(v, axis=axis, bias=True), x, std),
    "kurtosis": lambda x, std: _moment_stat(lambda v, axis: sps.kurtosis(v, axis=axis, fisher=True, bias=True),
                                            x, std),
    # TI's ZCR_FE: sign changes (np.sign, so 0 is its own sign) per sample
    "zcr": lambda x, std: np.count_nonzero(np.diff(np.sign(x), axis=-1), axis=-1) / x.shape[-1],
}
_FORMULAS = {
    "mean": "mean = sum(x) / K",
    "std": "std = sqrt(sum((x - mean)^2) / K)",
    "min": "min = min(x)",
    "max": "max = max(x)",
    "rms": "rms = sqrt(sum(x^2) / K)",
    "skew": "skew = m3 / m2^1.5 (m_j = sum((x - mean)^j) / K; 0 if m2 = 0)",
    "kurtosis": "kurtosis = m4 / m2^2 - 3 (Fisher, biased; 0 if m2 = 0)",
    "zcr": "zcr = count(sign(x[n+1]) != sign(x[n]), n < K-1) / K (sign(0) = 0)",
}
ALL_STATS = tuple(_STATS)


@TRANSFORMS.register("Statistics")
class Statistics(Transform):
    """(N, R, K) -> (N, R, S): the listed statistics of each row's K values, in the order given.

    On raw input a row is a channel's whole series; after ``Frame`` it is one frame (follow with ``Concat`` to
    get [frame 0's S statistics, frame 1's, ...] per channel).
    """

    def __init__(self, stats: list[str] | tuple[str, ...] = ALL_STATS) -> None:
        if isinstance(stats, str):
            stats = [stats]
        unknown = [s for s in stats if s not in _STATS]
        if unknown or not stats:
            raise TransformError(f"Statistics: unknown statistic(s) {unknown or '(none given)'}; "
                                 f"choose from {', '.join(ALL_STATS)}")
        self.stats = list(stats)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        x = X.astype(np.float64)
        std = x.std(axis=-1)
        return np.stack([_STATS[s](x, std) for s in self.stats], axis=-1)

    def arithmetic(self) -> str:
        return ("Statistics: over the K values x of each row, out = [" + ", ".join(self.stats) + "] with "
                + "; ".join(_FORMULAS[s] for s in self.stats) + " (float64)")
