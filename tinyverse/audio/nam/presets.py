"""NAM's "A1" architecture presets, as NAM's trainer defines them (nam/train/core.py)."""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["A1_LSTM", "A1_WAVENET", "a1_wavenet_layers"]

_LITE_LA1 = [128, 256, 512, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
_POW2_7 = [1, 2, 4, 8, 16, 32, 64]
_POW2_10 = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]


def _la(input_size: int, channels: int, head_size: int, dilations: list[int], head_bias: bool) -> dict[str, Any]:
    return {
        "input_size": input_size,
        "condition_size": 1,
        "head_size": head_size,
        "channels": channels,
        "kernel_size": 3,
        "dilations": list(dilations),
        "activation": "Tanh",
        "gated": False,
        "head_bias": head_bias,
    }


def _two_arrays(c0: int, c1: int, d0: list[int], d1: list[int]) -> list[dict[str, Any]]:
    # LA0's head_size equals LA1's channels (Core feeds one head into the next).
    return [_la(1, c0, c1, d0, False), _la(c0, c1, 1, d1, True)]


# name -> layer-array list; head_scale is 0.02 for all of them. Receptive field 4,093 samples.
A1_WAVENET: dict[str, list[dict[str, Any]]] = {
    "standard": _two_arrays(16, 8, _POW2_10, _POW2_10),
    "lite": _two_arrays(12, 6, _POW2_7, _LITE_LA1),
    "feather": _two_arrays(8, 4, _POW2_7, _LITE_LA1),
    "nano": _two_arrays(4, 2, _POW2_7, _LITE_LA1),
}

# name -> (num_layers, hidden_size)
A1_LSTM: dict[str, tuple[int, int]] = {"standard": (1, 24), "lite": (2, 8), "feather": (1, 16), "nano": (1, 12)}


def a1_wavenet_layers(preset: str) -> list[dict[str, Any]]:
    """A fresh copy of a preset's layer-array list (pass to ``NAMWaveNet(layers, 0.02)``)."""
    if preset not in A1_WAVENET:
        raise KeyError(f"unknown A1 WaveNet preset {preset!r} (known: {', '.join(A1_WAVENET)})")
    return copy.deepcopy(A1_WAVENET[preset])
