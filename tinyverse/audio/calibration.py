"""Calibration inputs for the int8 streaming exports (ONNX and TFLite), cut from the training audio."""
from __future__ import annotations

import numpy as np
from torch import nn

__all__ = ["calibration_blocks"]


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
