"""NAM's architecture presets as its trainer defines them: "A1" (nam/train/core.py) and "A2", the one 23-layer
WaveNet layer array NAM 0.13 trains by default in a "lite" and a "full" width, packed in one SlimmableContainer
(nam/train/_resources/config_model_packed.json)."""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["A1_LSTM", "A1_WAVENET", "A2_CHANNELS", "A2_HEAD_SCALE", "A2_MAX_VALUES", "a1_wavenet_layers",
           "a2_wavenet_layers"]

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


# A2: name -> channels, in container order (smallest first). NAM 0.13's packed model: 1,871 and 12,146 weights.
A2_CHANNELS: dict[str, int] = {"lite": 3, "full": 8}
# NAM's "uniform" container_max_values for two submodels: lite below slim 0.5, full from 0.5 on.
A2_MAX_VALUES = (0.5, 1.0)
A2_HEAD_SCALE = 0.01
_A2_DILATIONS = [1, 3, 7, 17, 41, 101, 239, 1, 3, 7, 17, 41, 101, 239, 1, 13, 1, 3, 7, 17, 41, 101, 239]
_A2_KERNEL_SIZES = [6] * 14 + [15, 15] + [6] * 7
_FILM_OFF = {"active": False, "shift": True, "groups": 1}
_FILMS = ("conv_pre_film", "conv_post_film", "input_mixin_pre_film", "input_mixin_post_film", "activation_pre_film",
          "activation_post_film", "layer1x1_post_film", "head1x1_post_film")


def a2_wavenet_layers(size: str) -> list[dict[str, Any]]:
    """The A2 layer-array list of ``size`` ("lite" or "full") in the .nam 0.7 layout, as NAM 0.13 exports it
    (pass to ``NAMWaveNet(layers, A2_HEAD_SCALE)``): LeakyReLU(0.01) layers, kernel 6 (15 for two layers), a
    16-tap head conv with bias, ``layer1x1`` on, bottleneck = channels, no FiLM, no gating."""
    if size not in A2_CHANNELS:
        raise KeyError(f"unknown A2 size {size!r} (known: {', '.join(A2_CHANNELS)})")
    n, c = len(_A2_DILATIONS), A2_CHANNELS[size]
    return [{
        "input_size": 1, "condition_size": 1, "head": {"out_channels": 1, "kernel_size": 16, "bias": True},
        "channels": c, "kernel_sizes": list(_A2_KERNEL_SIZES), "dilations": list(_A2_DILATIONS),
        "activation": [{"type": "LeakyReLU", "negative_slope": 0.01} for _ in range(n)], "bottleneck": c,
        "head1x1": {"active": False, "out_channels": 1, "groups": 1}, "layer1x1": {"active": True, "groups": 1},
        "groups_input": 1, "groups_input_mixin": 1, **{f: dict(_FILM_OFF) for f in _FILMS},
        "gating_mode": ["none"] * n, "secondary_activation": [None] * n, "slimmable": None,
    }]
