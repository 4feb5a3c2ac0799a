"""Spectral features along the last axis (a whole series, or each frame after ``Frame``): FFT, magnitude,
DC-bin removal, binning, log-dB.

Transforms exchange float32 real arrays, so ``FFT`` writes a complex spectrum of B bins as 2B values: the B
real parts, then the B imaginary parts. ``Magnitude`` turns that back into B values.
"""
from __future__ import annotations

import numpy as np

from tinyverse.registry import TRANSFORMS
from tinyverse.timeseries.transforms import Transform, TransformError
from tinyverse.timeseries.transforms.framing import positive_int


@TRANSFORMS.register("FFT")
class FFT(Transform):
    """(N, R, K) -> (N, R, 2B): the DFT X[b] = sum_n x[n] exp(-2j pi b n / K), as [Re X[0..B-1], Im X[0..B-1]].

    ``positive_half`` keeps bins 0..K//2 (B = K//2 + 1, DC and Nyquist included; TI's FFT_FE + FFT_POS_HALF),
    otherwise all K bins. Unscaled, as numpy's FFT; ``normalize`` divides by K (TI's NORMALIZE).
    """

    def __init__(self, positive_half: bool = True, normalize: bool = False) -> None:
        self.positive_half = bool(positive_half)
        self.normalize = bool(normalize)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        x = X.astype(np.float64)  # float64 so the spectrum does not depend on float32 summation order
        spec = np.fft.rfft(x, axis=-1) if self.positive_half else np.fft.fft(x, axis=-1)
        if self.normalize:
            spec = spec / X.shape[-1]
        return np.concatenate([spec.real, spec.imag], axis=-1)

    def arithmetic(self) -> str:
        bins = "b = 0..K/2 (B = K/2 + 1)" if self.positive_half else "b = 0..K-1 (B = K)"
        scale = " / K" if self.normalize else ""
        return (f"FFT: X[b] = sum_{{n<K}} x[n] * exp(-2*pi*i*b*n/K){scale}, {bins}, computed in float64; "
                f"out = [Re X[0..B-1], Im X[0..B-1]]")


@TRANSFORMS.register("Magnitude")
class Magnitude(Transform):
    """(N, R, 2B) [re, im] -> (N, R, B): |X| = sqrt(re^2 + im^2), or re^2 + im^2 with ``power``."""

    def __init__(self, power: bool = False) -> None:
        self.power = bool(power)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        if X.shape[-1] % 2:
            raise TransformError(f"Magnitude: expects FFT output [re..., im...] of even length, got length "
                                 f"{X.shape[-1]}; put FFT right before Magnitude")
        re, im = np.split(X.astype(np.float64), 2, axis=-1)
        p = re * re + im * im
        return p if self.power else np.sqrt(p)

    def arithmetic(self) -> str:
        return "Magnitude: P[b] = re[b]^2 + im[b]^2" if self.power else \
            "Magnitude: A[b] = sqrt(re[b]^2 + im[b]^2)"


@TRANSFORMS.register("DropDCBin")
class DropDCBin(Transform):
    """(N, R, B) -> (N, R, B - 1): drop bin 0 (the DC term) of a spectrum (TI's DC_REMOVE after an FFT)."""

    def __call__(self, X: np.ndarray) -> np.ndarray:
        if X.shape[-1] < 2:
            raise TransformError("DropDCBin: a spectrum of one bin has nothing left without its DC bin")
        return X[..., 1:]

    def arithmetic(self) -> str:
        return "DropDCBin: out[j] = in[j + 1] (bin 0, the DC term, is dropped)"


@TRANSFORMS.register("Binning")
class Binning(Transform):
    """(N, R, B) -> (N, R, num_bins): out[k] = sum(in[start + k*size : start + (k+1)*size]) / size.

    ``bin_size`` None uses (B - start) // num_bins (TI: frame_size // 2 // feature_size_per_frame); values after
    the last whole bin are not used. ``normalize`` False sums instead of averaging (TI's normalize_bin).
    """

    def __init__(self, num_bins: int, bin_size: int | None = None, start: int = 0, normalize: bool = True) -> None:
        self.num_bins = positive_int(num_bins, "num_bins", "Binning")
        self.bin_size = positive_int(bin_size, "bin_size", "Binning") if bin_size is not None else None
        if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0:
            raise TransformError(f"Binning: start must be a non-negative integer, got {start!r}")
        self.start = int(start)
        self.normalize = bool(normalize)

    def size_for(self, length: int) -> int:
        return self.bin_size or (length - self.start) // self.num_bins

    def __call__(self, X: np.ndarray) -> np.ndarray:
        length = X.shape[-1]
        size = self.size_for(length)
        end = self.start + self.num_bins * size
        if size < 1 or end > length:
            raise TransformError(f"Binning: {self.num_bins} bins of {max(size, 0)} from index {self.start} need "
                                 f"{max(end, self.start + self.num_bins)} values, the input has {length}; "
                                 f"use fewer bins or a longer frame")
        bins = X[..., self.start:end].astype(np.float64).reshape(*X.shape[:-1], self.num_bins, size).sum(axis=-1)
        return bins / size if self.normalize else bins

    def arithmetic(self) -> str:
        size = str(self.bin_size) if self.bin_size else f"(B - {self.start}) // {self.num_bins}"
        op = "mean" if self.normalize else "sum"
        s = f"{self.start} + " if self.start else ""
        return (f"Binning: out[k] = {op}(in[{s}k*M : {s}(k+1)*M]) with M={size}, k = 0..{self.num_bins - 1}; "
                f"values after the last bin are not used")


@TRANSFORMS.register("LogDB")
class LogDB(Transform):
    """out = multiplier * log_base(x + eps) (TI's LOG_DB: log_mul, log_base, log_threshold).

    20 * log10(|X| + eps) for an amplitude (``Magnitude``), 10 * log10(P + eps) for a power
    (``Magnitude(power=True)``); log(1) = 0 dB. Computed in float64: TI's eps 1e-100 is 0 in float32, so C code
    in float32 should clamp x to a tiny positive value (e.g. FLT_MIN) before the log, or use double.
    """

    def __init__(self, multiplier: float = 20.0, base: float | str = 10.0, eps: float = 1e-100) -> None:
        base = float(np.e) if base == "e" else base  # TI writes log_base: 'e'
        if isinstance(base, str) or not float(base) > 0 or float(base) == 1.0:
            raise TransformError(f"LogDB: base must be a positive number other than 1 (or 'e'), got {base!r}")
        if not float(eps) >= 0:
            raise TransformError(f"LogDB: eps must be >= 0, got {eps!r}")
        self.multiplier, self.base, self.eps = float(multiplier), float(base), float(eps)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        x = X.astype(np.float64) + self.eps
        if (x <= 0).any():
            raise TransformError(f"LogDB: {int((x <= 0).sum())} values are <= 0 after adding eps={self.eps:g}; "
                                 f"put Magnitude before LogDB or raise eps")
        return self.multiplier * np.log(x) / np.log(self.base)

    def arithmetic(self) -> str:
        return f"LogDB: out = {self.multiplier:g} * ln(x + {self.eps:g}) / ln({self.base:g}) (computed in float64)"
