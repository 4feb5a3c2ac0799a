"""Fit a data set's series to an input a model (and its device) accepts: zero channels added, lengths resampled.

TI's NPU wants the channels of a general conv in multiples of 4 (a 6-channel IMU is refused), and a model whose
strides and global pool need a minimum length refuses a short series (JapaneseVowels, 7-29 steps; ItalyPowerDemand,
24), while a very long one costs RAM and MACs for little gain. Rather than refusing such data, the series are fitted:

* **channels**: zero channels are appended until the model's device check passes (a zero channel adds nothing to a
  conv's output, so the model computes what it would on the real channels; the device code writes zeros there);
* **length**: every series is resampled to one length the model supports — variable-length sets from each series'
  own length (not from the edge-padded array), so an utterance of 7 steps and one of 29 both fill the input.
  Shortening averages the samples that fall into each output step (an anti-alias box filter); lengthening
  interpolates linearly. Both are a few lines of C on a device.

What was done is an :class:`InputFit`, kept in the run's ``dataset.json`` and summary so device code can repeat it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .splits import DatasetError, TimeSeriesData

# The automatic length policy, chosen from runs over the sktime-shipped UCR/UEA sets (bench/recipe_experiments.py;
# figures in docs/timeseries.md): series shorter than AUTO_MIN_LENGTH are stretched to it (the conv ladder's strides
# need room), longer than AUTO_MAX_LENGTH shrunk to it (a 4k-parameter net with a receptive field of ~40 steps reads
# a 1,460-step day better at a coarser step, and RAM and MACs shrink with it).
AUTO_MIN_LENGTH = 64
AUTO_MAX_LENGTH = 512
# How far the channel and length searches look beyond the data's own shape.
MAX_EXTRA_CHANNELS = 7

SPLITS = ("train", "val", "test")

# accepts(channels, length) -> the problems a model of that input shape has ([] when it builds and fits)
Acceptor = Callable[[int, int], list[str]]


@dataclass
class InputFit:
    """What was done to the series: ``channels`` / ``length`` the model reads, from the data's own."""

    channels: int
    length: int
    data_channels: int
    data_length: int  # the longest series (all of them when equal_length)
    equal_length: bool = True
    resampled: str | None = None  # "shrunk (block mean)", "stretched (linear)", "each series to the length (...)"
    per_series: bool = False  # each series resampled from its own length (else the set's padded arrays as a whole)
    zero_channels: list[int] = field(default_factory=list)  # indices of the appended zero channels
    why: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether the arrays differ from the loaded ones."""
        return bool(self.zero_channels) or self.resampled is not None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """One line for the log and the report."""
        if not self.changed:
            return f"input {self.channels}x{self.length} as the data has it"
        parts = []
        if self.zero_channels:
            parts.append(f"{len(self.zero_channels)} zero channel(s) appended ({self.data_channels} -> "
                         f"{self.channels})")
        if not self.equal_length and not self.per_series:
            parts.append(f"variable lengths edge-padded to the longest ({self.data_length})")
        if self.resampled:
            src = str(self.data_length) if self.equal_length else f"up to {self.data_length}"
            parts.append(f"length {src} -> {self.length}, {self.resampled}")
        return "; ".join(parts) + (f" ({'; '.join(self.why)})" if self.why else "")


# -- the arithmetic -----------------------------------------------------------------------------------------------
def pad_channels(X: np.ndarray, channels: int) -> np.ndarray:
    """(N, C, L) -> (N, channels, L) with zero channels after the real ones."""
    n, c, length = X.shape
    if channels < c:
        raise ValueError(f"cannot pad {c} channels down to {channels}")
    if channels == c:
        return X
    return np.concatenate([X, np.zeros((n, channels - c, length), dtype=X.dtype)], axis=1)


def resample_series(x: np.ndarray, length: int) -> np.ndarray:
    """(C, L) -> (C, length). Shorter: the mean of the input samples each output step covers (fractional
    boundaries weighted, so nothing is dropped or aliased into a pure decimation). Longer: linear interpolation with
    the first and last samples kept."""
    x = np.asarray(x, dtype=np.float64)
    c, n = x.shape
    if n == length:
        return x
    if n < 1:
        raise ValueError("cannot resample an empty series")
    if length < n:
        # integral of the piecewise-constant series at the output step boundaries, differenced
        edges = np.linspace(0.0, n, length + 1)
        cum = np.concatenate([np.zeros((c, 1)), np.cumsum(x, axis=1)], axis=1)
        whole = np.floor(edges).astype(int)
        frac = edges - whole
        at = cum[:, np.minimum(whole, n)] + frac * x[:, np.minimum(whole, n - 1)]
        return np.diff(at, axis=1) / np.diff(edges)
    if n == 1:
        return np.repeat(x, length, axis=1)
    src = np.linspace(0.0, n - 1, length)
    return np.stack([np.interp(src, np.arange(n), row) for row in x])


def resample_split(X: np.ndarray, length: int, lengths: Sequence[int] | None = None) -> np.ndarray:
    """Every series of (N, C, L) to ``length``; ``lengths[i]`` is series i's own length (the rest is padding)."""
    out = np.empty((X.shape[0], X.shape[1], length), dtype=np.float32)
    for i, series in enumerate(X):
        own = int(lengths[i]) if lengths is not None else series.shape[1]
        out[i] = resample_series(series[:, :own], length)
    return out


# -- choosing the fit ---------------------------------------------------------------------------------------------
def auto_length(data_length: int, min_length: int | None = None, max_length: int | None = None) -> int:
    """The length the automatic policy starts from: the data's, brought into [min_length, max_length] (default
    AUTO_MIN_LENGTH, AUTO_MAX_LENGTH)."""
    low = AUTO_MIN_LENGTH if min_length is None else min_length
    high = AUTO_MAX_LENGTH if max_length is None else max_length
    return int(min(max(data_length, low), high))


def _first_accepted(accepts: Acceptor, channels: int, candidates: Sequence[int]) -> tuple[int | None, int]:
    """(first candidate length with no problems or None, number of candidates tried)."""
    for i, length in enumerate(candidates):
        if not accepts(channels, length):
            return length, i + 1
    return None, len(candidates)


def choose_input_fit(data: TimeSeriesData, channels: int | str | None, length: int | str | None,
                     accepts: Acceptor | None = None, variable: str = "pad") -> InputFit:
    """Decide the input shape. ``channels`` / ``length``: an int (that value), ``"auto"`` (what ``accepts`` needs,
    length by the automatic policy), ``"model"`` (length only: the data's own unless ``accepts`` refuses it, e.g. for
    features, whose axis is not time to resample at will) or None (the data's own). ``accepts(c, l)`` lists the problems of a model with
    that input (build errors, device violations); without it "auto" keeps channels and applies only the length policy.

    ``variable``: how a variable-length set is brought to one length. "pad" (the loader's edge padding to the longest
    series, then the whole set resampled alike) keeps one time scale for every series, as a device reading fixed
    windows sees it; "stretch" resamples each series from its own length, so every series fills the input.
    """
    if variable not in ("pad", "stretch"):
        raise ValueError(f"variable must be 'pad' or 'stretch', got {variable!r}")
    info = data.info or {}
    c0 = data.num_channels
    lengths = [n for s in SPLITS for n in (info.get("original_lengths") or {}).get(s, [])]
    equal = bool(info.get("equal_length", True)) if lengths else True
    l0 = data.length
    why: list[str] = []

    # channels first, at the data's length clamped by the policy (channel rules do not depend on the length)
    probe_length = auto_length(l0) if length == "auto" else (int(length) if isinstance(length, int) else l0)
    if length not in (None, "auto", "model") and not isinstance(length, int):
        raise ValueError(f"length must be an int, 'auto', 'model' or None, got {length!r}")
    if isinstance(channels, int):
        if channels < c0:
            raise DatasetError(f"dataset.input_channels: {channels} is fewer than the data's {c0} channels; drop "
                               f"channels in the data (e.g. dataset.channels) or set a count >= {c0}")
        c = channels
    elif channels == "auto" and accepts is not None:
        base = len(accepts(c0, probe_length))
        c = c0
        if base:  # the smallest padding that removes problems; none helping keeps the data's channels
            counts = [(len(accepts(k, probe_length)), k) for k in range(c0 + 1, c0 + MAX_EXTRA_CHANNELS + 1)]
            best = min(counts, default=(base, c0))
            if best[0] < base:
                c = best[1]
                why.append(f"the model on {c0} channels: {accepts(c0, probe_length)[0]}")
    else:
        c = c0

    if isinstance(length, int):
        target = length
    elif length in ("auto", "model"):
        target = auto_length(l0) if length == "auto" else l0
        if target != l0:
            why.append(f"length policy: series are brought into [{AUTO_MIN_LENGTH}, {AUTO_MAX_LENGTH}] steps")
        if accepts is not None and accepts(c, target):
            problem = accepts(c, target)[0]
            up, tried_up = _first_accepted(accepts, c, range(target + 1, 4 * target + 64))
            down, _ = _first_accepted(accepts, c, range(target - 1, 0, -1))
            pick = min((p for p in (up, down) if p is not None), key=lambda p: (abs(p - target), -p), default=None)
            if pick is not None:
                why.append(f"the model at length {target}: {problem}")
                target = pick
    else:
        target = l0

    resampled, per_series = None, False
    if not equal and length is not None and variable == "stretch":
        resampled, per_series = "each series from its own length (linear up, block mean down)", True
    elif target < l0:
        resampled = "shrunk (block mean)"
    elif target > l0:
        resampled = "stretched (linear)"
    return InputFit(channels=c, length=int(target), data_channels=c0, data_length=l0, equal_length=equal,
                    resampled=resampled, per_series=per_series, zero_channels=list(range(c0, c)), why=why)


def apply_input_fit(data: TimeSeriesData, fit: InputFit) -> TimeSeriesData:
    """The data with every split fitted; ``info["input_fit"]`` records it."""
    if not fit.changed:
        return dataclasses.replace(data, info={**data.info, "input_fit": fit.to_dict()})
    own = (data.info or {}).get("original_lengths") or {}
    arrays = {}
    for s in SPLITS:
        X = getattr(data, f"X_{s}")
        if fit.resampled is not None:
            lengths = own.get(s) if fit.per_series else None
            if lengths is not None and len(lengths) != len(X):
                lengths = None  # a split that changed since loading (e.g. feature extraction): use its arrays
            X = resample_split(X, fit.length, lengths)
        arrays[f"X_{s}"] = pad_channels(X, fit.channels)
    return dataclasses.replace(data, **arrays, info={**data.info, "input_fit": fit.to_dict()})


__all__ = ["AUTO_MAX_LENGTH", "AUTO_MIN_LENGTH", "InputFit", "apply_input_fit", "auto_length", "choose_input_fit",
           "pad_channels", "resample_series", "resample_split"]
