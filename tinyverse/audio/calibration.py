"""Calibration inputs for the int8 streaming exports (ONNX and TFLite), cut from the training audio; for a knob model
also a knob vector per block, spread over the knob range."""
from __future__ import annotations

import numpy as np
from torch import nn

__all__ = ["calibration_blocks", "calibration_params"]


def calibration_blocks(model: nn.Module, audio: np.ndarray, block_size: int, count: int = 64,
                       seed: int = 0) -> np.ndarray:
    """``count`` model inputs cut from ``audio`` (the training audio): blocks with their receptive-field context
    for WaveNet / Linear, plain blocks for the LSTM. Shape (count, block + rf − 1)."""
    rf = int(getattr(model, "receptive_field", 1))
    length = block_size + rf - 1
    audio = np.asarray(audio, np.float32).reshape(-1)
    if len(audio) < length:
        audio = np.concatenate([np.zeros(length - len(audio), np.float32), audio])
    starts = np.random.default_rng(seed).integers(0, len(audio) - length + 1, size=count)
    return np.stack([audio[s:s + length] for s in np.sort(starts)]).astype(np.float32)


def calibration_params(model: nn.Module, count: int = 64, seed: int = 0) -> np.ndarray:
    """``count`` normalised knob vectors (count, K) for the calibration blocks of a knob model (``"params"`` in
    ``model.input_shapes``): the corners of the knob range first (every knob at 0 or 1, up to half of ``count``), so
    the quantized ranges cover the extremes, then uniform draws; a switch (a bool knob) is 0 or 1 throughout."""
    k = int(model.input_shapes["params"][0])
    rng = np.random.default_rng(seed)
    corners = min(2 ** k, max(1, count // 2))
    bits = (np.arange(corners)[:, None] >> np.arange(k)[None, :]) & 1
    out = np.concatenate([bits.astype(np.float32), rng.uniform(0, 1, (count - corners, k)).astype(np.float32)])
    knobs = getattr(model, "knobs", None)
    if knobs is not None:
        for j, knob in enumerate(knobs.knobs.values()):
            if knob.type == "bool":
                out[:, j] = np.round(out[:, j])
    return out[:count].astype(np.float32)
