"""Calibration inputs for the int8 streaming exports (ONNX and TFLite), cut from the training audio; for a knob model
also a knob vector per block, spread over the knob range."""
from __future__ import annotations

import numpy as np
from torch import nn

__all__ = ["calibration_blocks", "calibration_params", "calibration_states"]


def calibration_blocks(model: nn.Module, audio: np.ndarray, block_size: int, count: int = 64,
                       seed: int = 0) -> np.ndarray:
    """``count`` model inputs cut from ``audio`` (the training audio): blocks with their receptive-field context
    for WaveNet / Linear, plain blocks for a "state" model (LSTM, a composed model: its state carries the past).
    Shape (count, block + rf − 1)."""
    rf = int(getattr(model, "receptive_field", 1)) if getattr(model, "stream_kind", None) != "state" else 1
    length = block_size + rf - 1
    audio = _padded(audio, length)
    return np.stack([audio[s:s + length] for s in _starts(len(audio), length, count, seed)]).astype(np.float32)


def _padded(audio: np.ndarray, length: int) -> np.ndarray:
    audio = np.asarray(audio, np.float32).reshape(-1)
    return audio if len(audio) >= length else np.concatenate([np.zeros(length - len(audio), np.float32), audio])


def _starts(n: int, length: int, count: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).integers(0, n - length + 1, size=count))


def calibration_states(model: nn.Module, audio: np.ndarray, block_size: int, count: int = 64, seed: int = 0,
                       warm_samples: int = 4096, params: np.ndarray | None = None) -> list[np.ndarray]:
    """For a "state" model: the state a stream has reached at the start of each block :func:`calibration_blocks`
    cuts (same ``count`` and ``seed``), one array per state of ``model.initial_stream_state()``, (count, *shape) —
    so the quantized state inputs are calibrated on the values a stream carries, not on the initial state (a history
    that starts at zeros would calibrate to a zero range). Each block's stream starts ``max(receptive_field − 1,
    warm_samples)`` samples earlier (silence before the audio) and runs through ``model.streaming_module()``; a knob
    model's each at its row of ``params`` (count, K), the knob vectors its calibration blocks get."""
    import torch

    audio = _padded(audio, block_size)
    starts = _starts(len(audio), block_size, count, seed)
    warm = -(-max(int(getattr(model, "receptive_field", 1)) - 1, warm_samples) // block_size)
    lead = np.concatenate([np.zeros(warm * block_size, np.float32), audio])
    step = model.streaming_module().eval()
    states = [t.detach().float()[None].repeat(len(starts), *([1] * t.dim())) for t in
              model.initial_stream_state().values()]
    knob = () if params is None else (torch.as_tensor(np.asarray(params, np.float32)),)
    with torch.no_grad():
        for b in range(warm):  # lead[s + b·B] is audio[s − (warm − b)·B]
            x = torch.as_tensor(np.stack([lead[s + b * block_size:s + (b + 1) * block_size] for s in starts]))
            states = list(step(x, *knob, *states)[1:])
    return [t.numpy().astype(np.float32) for t in states]


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
