"""Impulse responses (a cabinet or room IR as a WAV file) as NAM ``Linear`` stages: ``weights[0]`` is the tap on the
current sample, i.e. the WAV's first sample (checked against NAM Core's ``cab_ir.nam`` fixture).

An IR recorded at another sample rate than the chain it joins is resampled (``scipy.signal.resample_poly``, a
polyphase anti-aliasing filter) by default, with a logged message naming both rates: an IR is a linear filter, so
resampling keeps its frequency response up to the lower Nyquist frequency — what IR loaders in plugins do — whereas
playing it at the wrong rate would shift every resonance of the cabinet. The taps are scaled by ``rate_in /
rate_out`` so that the filter's gain stays the same (more taps per second would otherwise add up to more gain).
``strict=True`` refuses instead, for a user who wants the IR exactly as captured.

A stereo IR is refused unless a channel is chosen: its two channels are usually two microphones or cabinets,
and silently taking the first could be the wrong one.
"""
from __future__ import annotations

import logging
from math import gcd
from pathlib import Path

import numpy as np

from tinyverse.audio.audiofile import AudioFileError, read_audio
from tinyverse.audio.nam import NAMLinear

__all__ = ["IRError", "ir_to_linear", "load_ir", "resample_ir"]

log = logging.getLogger(__name__)


class IRError(ValueError):
    """An impulse response that cannot be used; ``str()`` is one line naming the file and the fix."""


def resample_ir(ir: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """``ir`` taken from ``rate_in`` to ``rate_out`` Hz with the same frequency response (gain kept)."""
    if rate_in == rate_out:
        return np.asarray(ir, np.float64)
    from scipy.signal import resample_poly

    g = gcd(int(rate_in), int(rate_out))
    out = resample_poly(np.asarray(ir, np.float64), int(rate_out) // g, int(rate_in) // g)
    return out * (rate_in / rate_out)


def ir_to_linear(ir: np.ndarray) -> NAMLinear:
    """A ``Linear`` stage whose taps are ``ir`` (index 0: the current sample)."""
    return NAMLinear.from_ir(np.asarray(ir, np.float64))


def load_ir(path: str | Path, sample_rate: int | None = None, *, strict: bool = False,
            channel: int | None = None, label: str = "impulse response") -> tuple[NAMLinear, int]:
    """An IR WAV (or FLAC / AIFF) as a ``Linear`` stage at ``sample_rate`` (default: the file's own rate).
    Returns ``(model, rate)``. ``strict``: refuse a file at another rate instead of resampling it. ``channel``:
    the channel of a multi-channel file to use (required for one). ``label`` names the file in errors."""
    try:
        a, rate = read_audio(path, label)
    except AudioFileError as e:
        raise IRError(str(e)) from None
    if a.shape[1] > 1 and channel is None:
        raise IRError(f"{label}: {path} has {a.shape[1]} channels; a cabinet IR stage is mono: choose a channel "
                      "(in a graph file: `channel: 0`) or save a mono copy of the one you want")
    if channel is not None and not 0 <= channel < a.shape[1]:
        raise IRError(f"{label}: {path} has {a.shape[1]} channel(s); channel {channel} does not exist "
                      f"(use 0{f' to {a.shape[1] - 1}' if a.shape[1] > 1 else ''})")
    ir = a[:, channel or 0].astype(np.float64)
    if not np.isfinite(ir).all():
        raise IRError(f"{label}: {path} holds NaN or infinite samples; export the impulse response again")
    if not np.any(ir):
        raise IRError(f"{label}: {path} is all zeros (it would silence the chain); check that it is the IR file")
    target = int(sample_rate) if sample_rate else int(rate)
    if target != rate:
        if strict:
            raise IRError(f"{label}: {path} is at {rate} Hz, the chain at {target} Hz; resample the IR to {target} Hz "
                          "or allow resampling (drop the strict sample-rate option)")
        taps = len(ir)
        ir = resample_ir(ir, rate, target)
        log.info("%s: impulse response resampled from %d Hz to %d Hz (%d taps -> %d)", label, rate, target, taps,
                 len(ir))
    return ir_to_linear(ir), target
