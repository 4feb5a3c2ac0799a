"""Framing: cut each series into (windowed) frames, and put frames back together as features.

The framed layout keeps the (N, C, L) interface: ``Frame`` turns (N, C, L) into (N, C*F, K), row ``c*F + f``
holding frame f of channel c (K samples). Per-frame transforms (FFT, magnitude, binning, log-dB, statistics)
work along the last axis, so they treat each frame as one short series; ``Concat`` then flattens the frames
into one feature vector per channel (TI's CONCAT, '2D1' stacking) or keeps them as the length axis.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import get_window

from tinyverse.registry import TRANSFORMS
from tinyverse.timeseries.transforms import Transform, TransformError

_NO_WINDOW = (None, "none", "rect", "rectangular", "boxcar")


def positive_int(value, what: str, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise TransformError(f"{owner}: {what} must be a positive integer, got {value!r}")
    return int(value)


@TRANSFORMS.register("Frame")
class Frame(Transform):
    """(N, C, L) -> (N, C*F, K): F frames of K = ``frame_size`` samples, ``stride`` apart, times a window.

    Frame f of channel c is ``x[c, f*stride : f*stride + frame_size] * w`` and lands in row ``c*F + f``.
    ``num_frames`` None takes as many whole frames as fit; samples after the last frame are not used.
    ``window``: "none" (rectangular) or a scipy.signal window name ("hann", "hamming", "blackman", ...),
    periodic (the FFT convention) unless ``symmetric`` (np.hanning is scipy's symmetric "hann").
    """

    def __init__(self, frame_size: int, stride: int | None = None, num_frames: int | None = None,
                 window: str | None = "none", symmetric: bool = False) -> None:
        self.frame_size = positive_int(frame_size, "frame_size", "Frame")
        self.stride = positive_int(stride, "stride", "Frame") if stride is not None else self.frame_size
        self.num_frames = positive_int(num_frames, "num_frames", "Frame") if num_frames is not None else None
        self.window = None if window in _NO_WINDOW else str(window)
        self.symmetric = bool(symmetric)
        try:
            self.weights = (get_window(self.window, self.frame_size, fftbins=not self.symmetric)
                            if self.window else None)
        except ValueError as exc:
            raise TransformError(f"Frame: unknown window {window!r} ({exc}); use 'none', 'hann', 'hamming', "
                                 f"'blackman' or another scipy.signal window name") from None

    def frames_in(self, length: int) -> int:
        return 1 + (length - self.frame_size) // self.stride if length >= self.frame_size else 0

    def samples_needed(self) -> int:
        return (self.num_frames - 1) * self.stride + self.frame_size if self.num_frames else self.frame_size

    def __call__(self, X: np.ndarray) -> np.ndarray:
        n, c, length = X.shape
        if length < self.samples_needed():
            frames = f"{self.num_frames} frames" if self.num_frames else "one frame"
            raise TransformError(
                f"Frame: series are {length} samples long, shorter than the {self.samples_needed()} that {frames} "
                f"of {self.frame_size} (stride {self.stride}) need; use longer series (e.g. dataset.frame_size: "
                f"{self.samples_needed()}) or a preset with fewer or smaller frames")
        count = self.num_frames or self.frames_in(length)
        frames = np.lib.stride_tricks.sliding_window_view(X, self.frame_size, axis=2)[:, :, ::self.stride][:, :, :count]
        if self.weights is not None:
            frames = frames * self.weights
        return frames.reshape(n, c * count, self.frame_size).astype(np.float32)

    def arithmetic(self) -> str:
        count = f"F={self.num_frames}" if self.num_frames else "F=1+(L-K)//S (as many as fit)"
        window = "no window (rectangular)" if self.weights is None else (
            f"times w = scipy.signal.get_window('{self.window}', {self.frame_size}, fftbins={not self.symmetric}) "
            f"({'symmetric' if self.symmetric else 'periodic'})")
        return (f"Frame: frame f = x[c, f*S : f*S + K] with K={self.frame_size}, S={self.stride}, {count}; {window}; "
                f"row c*F + f; samples after the last frame are not used")


@TRANSFORMS.register("Concat")
class Concat(Transform):
    """(N, C*F, K) framed features -> one sample per series.

    ``layout`` "flatten": (N, C, F*K), channel c = [frame 0's K features, frame 1's, ...] (TI's CONCAT with
    '2D1' stacking). "frames_as_length": (N, C*K, F), row c*K + k = feature k of channel c over the frames
    (a spectrogram with frequency as channels and time as length, for convolutions over time).
    """

    LAYOUTS = ("flatten", "frames_as_length")

    def __init__(self, num_frames: int, layout: str = "flatten") -> None:
        self.num_frames = positive_int(num_frames, "num_frames", "Concat")
        if layout not in self.LAYOUTS:
            raise TransformError(f"Concat: layout must be one of {', '.join(self.LAYOUTS)}, got {layout!r}")
        self.layout = layout

    def __call__(self, X: np.ndarray) -> np.ndarray:
        n, rows, k = X.shape
        if rows % self.num_frames:
            raise TransformError(f"Concat: {rows} rows are not a whole number of channels x {self.num_frames} "
                                 f"frames; give Concat the num_frames of the Frame step before it")
        c, f = rows // self.num_frames, self.num_frames
        if self.layout == "flatten":
            return X.reshape(n, c, f * k)
        return X.reshape(n, c, f, k).transpose(0, 1, 3, 2).reshape(n, c * k, f)

    def arithmetic(self) -> str:
        if self.layout == "flatten":
            return (f"Concat: out[c, f*G + g] = feature g of frame f of channel c (G features per frame, "
                    f"F={self.num_frames} frames in time order)")
        return (f"Concat: out[c*G + g, f] = feature g of frame f of channel c (G features per frame, "
                f"F={self.num_frames} frames in time order)")
