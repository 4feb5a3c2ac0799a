"""Resampling: decimate a series by averaging blocks of consecutive samples."""
from __future__ import annotations

import numpy as np

from tinyverse.registry import TRANSFORMS
from tinyverse.timeseries.transforms import Transform, TransformError
from tinyverse.timeseries.transforms.framing import positive_int


@TRANSFORMS.register("Downsample")
class Downsample(Transform):
    """(N, C, L) -> (N, C, L // factor): out[j] = mean(x[j*factor : (j+1)*factor]).

    Averaging each block is a crude low-pass before decimation (a boxcar filter), cheap on an MCU; the last
    L % factor samples are not used.
    """

    def __init__(self, factor: int) -> None:
        self.factor = positive_int(factor, "factor", "Downsample")

    def __call__(self, X: np.ndarray) -> np.ndarray:
        n, c, length = X.shape
        out = length // self.factor
        if out < 1:
            raise TransformError(f"Downsample: series of {length} samples are shorter than factor={self.factor}; "
                                 f"use a smaller factor")
        blocks = X[..., :out * self.factor].astype(np.float64).reshape(n, c, out, self.factor)
        return blocks.mean(axis=-1)

    def arithmetic(self) -> str:
        return (f"Downsample: out[j] = sum(x[j*{self.factor} + i], i < {self.factor}) / {self.factor}; "
                f"the last L % {self.factor} samples are not used")
