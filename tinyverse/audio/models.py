"""Audio entries of ``MODEL_REGISTRY``: NAM A1 WaveNet / LSTM presets, NAM A2 (lite, full, and the container
holding both that NAM 0.13 trains by default), custom WaveNets, Linear / IR.

Every entry returns a NAM module (``NAMWaveNet``, ``NAMLSTM``, ``NAMLinear``) that implements the model
contract (:mod:`tinyverse.models.contract`: ``receptive_field``, ``cost()``, ``device_ops()``, the stream hooks)
and saves to .nam; :func:`macs_per_sample` / :func:`device_summary` read the contract.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from tinyverse.audio.nam import (A1_LSTM, A2_CHANNELS, A2_HEAD_SCALE, A2_MAX_VALUES, NAMLSTM, NAMLinear,
                                 NAMSlimmableContainer, NAMWaveNet, a1_wavenet_layers, a2_wavenet_layers)
from tinyverse.audio.stage_spec import ChainStage
from tinyverse.models.contract import ModelContract
from tinyverse.registry import MODEL_REGISTRY

__all__ = ["macs_per_sample", "device_summary", "linear_from_ir", "AUDIO_MODELS"]

_META = dict(task="amp_modelling", modality="audio")
AUDIO_MODELS: list[str] = []


def _wavenet_entry(preset: str):
    def build(fast_tanh: bool = False) -> NAMWaveNet:
        return NAMWaveNet(a1_wavenet_layers(preset), 0.02, fast_tanh=fast_tanh)

    build.__name__ = f"NAM_WaveNet_{preset}"
    build.__doc__ = f"NAM A1 WaveNet, preset '{preset}' (receptive field 4,093 samples)."
    return build


for _p in ("nano", "feather", "lite", "standard"):
    MODEL_REGISTRY.register(f"NAM_WaveNet_{_p}", _wavenet_entry(_p), preset=_p, architecture="WaveNet", **_META)
    AUDIO_MODELS.append(f"NAM_WaveNet_{_p}")


def _a2_entry(size: str):
    def build() -> NAMWaveNet:
        return NAMWaveNet(a2_wavenet_layers(size), A2_HEAD_SCALE)

    build.__name__ = f"NAM_A2_{size}"
    build.__doc__ = (f"NAM A2 WaveNet, '{size}' ({A2_CHANNELS[size]} channels): one 23-layer LeakyReLU layer array, "
                     "receptive field 6,347 samples; written as .nam 0.7.0.")
    return build


for _p in A2_CHANNELS:
    MODEL_REGISTRY.register(f"NAM_A2_{_p}", _a2_entry(_p), preset=f"A2_{_p}", architecture="WaveNet", **_META)
    AUDIO_MODELS.append(f"NAM_A2_{_p}")


@MODEL_REGISTRY.register("NAM_A2", architecture="SlimmableContainer", **_META)
def nam_a2() -> NAMSlimmableContainer:
    """NAM A2 as NAM 0.13 trains it: a SlimmableContainer of the lite (slim < 0.5) and full WaveNets, both trained
    at once (each submodel's loss summed), written as one .nam 0.7.0 file; a plugin's size knob picks one."""
    return NAMSlimmableContainer([(v, _a2_entry(size)()) for v, size in zip(A2_MAX_VALUES, A2_CHANNELS)],
                                 names=list(A2_CHANNELS))


AUDIO_MODELS.append("NAM_A2")


@MODEL_REGISTRY.register("NAM_WaveNet", architecture="WaveNet", **_META)
def nam_wavenet(layers: list[dict[str, Any]] | None = None, preset: str = "nano", head_scale: float = 0.02,
                channels: list[int] | None = None, dilations: list[list[int]] | None = None,
                activation: str = "Tanh", gated: bool = False, kernel_size: int = 3) -> NAMWaveNet:
    """A custom A1-layout WaveNet: full ``layers`` (.nam layer-array dicts), or a preset with overrides
    (``channels`` per array, ``dilations`` per array, ``activation``, ``gated``, ``kernel_size``)."""
    if layers is None:
        layers = a1_wavenet_layers(preset)
        if channels is not None:
            if len(channels) != len(layers):
                raise ValueError(f"channels: give one value per layer array ({len(layers)})")
            for i, c in enumerate(channels):
                layers[i]["channels"] = int(c)
                if i > 0:
                    layers[i]["input_size"] = int(channels[i - 1])
                    layers[i - 1]["head_size"] = int(c)
        if dilations is not None:
            if len(dilations) != len(layers):
                raise ValueError(f"dilations: give one list per layer array ({len(layers)})")
            for la, d in zip(layers, dilations):
                la["dilations"] = [int(v) for v in d]
        for la in layers:
            la.update(activation=activation, gated=bool(gated), kernel_size=int(kernel_size))
    return NAMWaveNet(layers, head_scale)


AUDIO_MODELS.append("NAM_WaveNet")


def _lstm_entry(preset: str):
    num_layers, hidden = A1_LSTM[preset]

    def build(hidden_size: int = hidden, num_layers: int = num_layers) -> NAMLSTM:
        return NAMLSTM(hidden_size, num_layers)

    build.__name__ = f"NAM_LSTM_{preset}"
    build.__doc__ = f"NAM A1 LSTM, preset '{preset}' ({num_layers} x {hidden})."
    return build


for _p in A1_LSTM:
    MODEL_REGISTRY.register(f"NAM_LSTM_{_p}", _lstm_entry(_p), preset=_p, architecture="LSTM", **_META)
    AUDIO_MODELS.append(f"NAM_LSTM_{_p}")


def linear_from_ir(ir: np.ndarray | torch.Tensor, bias: bool = False) -> NAMLinear:
    """A NAMLinear whose taps are ``ir`` (index 0 = the current sample); see :meth:`NAMLinear.from_ir`."""
    return NAMLinear.from_ir(ir, bias=bias)


@MODEL_REGISTRY.register("NAM_Linear", architecture="Linear", **_META)
def nam_linear(receptive_field: int = 128, bias: bool = False, ir_path: str | None = None,
               ir_channel: int = 0) -> NAMLinear:
    """A Linear / IR model (FIR of ``receptive_field`` taps). With ``ir_path``, the taps are the impulse
    response read from that WAV (first ``receptive_field`` samples when given, else all of it)."""
    if ir_path is None:
        m = NAMLinear(receptive_field, bias=bias)
        with torch.no_grad():  # start as a pass-through: the first tap (current sample) is 1
            m.conv.weight.zero_()
            m.conv.weight[0, 0, -1] = 1.0
        return m
    import soundfile as sf

    a, _ = sf.read(ir_path, dtype="float64", always_2d=True)
    ir = a[:, min(ir_channel, a.shape[1] - 1)]
    return linear_from_ir(ir[:receptive_field] if receptive_field else ir, bias=bias)


AUDIO_MODELS.append("NAM_Linear")


@MODEL_REGISTRY.register("Sequential", architecture="Sequential", **_META)
def sequential(models: list[ChainStage] | None = None, sample_rate: int | None = None,
               strict_sample_rate: bool = False) -> nn.Module:
    """NAM Core's Sequential to train from a config: ``models`` lists the stages in order, each ``{model: <.nam file,
    IR .wav, zoo name or .ckpt>, frozen: true|false, config: {...} (zoo models), channel: n (IRs)}``; frozen stages
    keep their weights exactly while the others train (e.g. fine-tune a cab IR behind a fixed amp model against a
    full-rig capture). IRs are resampled to ``sample_rate`` (default: the .nam stages' rate), or refused with
    ``strict_sample_rate``. See docs/composition.md."""
    from tinyverse.audio.composition import sequential_from_config

    composed = sequential_from_config(models, sample_rate=sample_rate, strict_rate=strict_sample_rate)
    model = composed.model
    model.sample_rate = composed.sample_rate  # the rate its stages run at: a capture at another rate is refused
    return model


# ---------------------------------------------------------------------------------------------- cost


def macs_per_sample(model: nn.Module) -> int:
    """Multiply-accumulates per output sample when streaming (what a pedal's DSP budget counts)."""
    if isinstance(model, ModelContract):
        macs = model.cost().macs_per_sample
        if macs is not None:
            return int(macs)
    spec = getattr(model, "spec", None)
    if spec is not None:
        return int(spec.macs)
    raise TypeError(f"no per-sample cost known for {type(model).__name__}")


def device_summary(model: nn.Module) -> dict[str, Any]:
    """What a pedal profile checks: architecture, activations, gating, receptive field, MACs per sample,
    parameters, and the op classes the model needs (``model.describe()``, ``cost()``, ``device_ops()``)."""
    if isinstance(model, ModelContract):
        facts = model.describe()
        cost = model.cost()
        return {"architecture": facts.pop("architecture"), "params": cost.params,
                "macs_per_sample": macs_per_sample(model), "receptive_field": cost.receptive_field, **facts,
                "ops": model.device_ops(), "weights": int(cost.weights if cost.weights is not None else cost.params)}
    params = int(sum(p.numel() for p in model.parameters()))
    return {"architecture": type(model).__name__, "params": params, "macs_per_sample": macs_per_sample(model),
            "receptive_field": int(getattr(model, "receptive_field", 1)), "ops": [],
            "weights": int(getattr(model, "num_weights", params))}
