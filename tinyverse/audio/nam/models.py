"""PyTorch modules that compute exactly what NeuralAmpModelerCore computes for a .nam file.

Each module keeps NAM's conventions:

* ``forward(x)`` takes ``(N, L)`` or ``(N, 1, L)`` and returns ``(N, L_out)``. WaveNet / Linear run in
  "valid" mode (``L_out = L - receptive_field + 1``), as NAM's trainer does; ``forward(x, pad_start=True)``
  prepends ``receptive_field - 1`` zeros so that ``L_out = L``, which is what the C++ engine outputs
  for a stream that starts after its zero pre-warm.
* ``import_weights`` / ``export_weights`` use exactly the order of the .nam ``"weights"`` array.
* ``nam_config()`` returns the .nam ``"config"`` object in the layout of ``nam_version()`` (the oldest file
  version that expresses the model) and ``nam_architecture`` the ``"architecture"`` string.
* Each module implements the model contract (:mod:`tinyverse.models.contract`): cost, device ops, the stream
  hooks, the streaming ONNX graph and the TFLite twin live with the class, so no caller branches on it.

Modules are ordinary float32 modules (trainable); call ``.double()`` for reference-accuracy renders.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from tinyverse.audio.twin import TWIN_ACTIVATIONS, AudioExportError, TwinPlan
from tinyverse.models.contract import DeviceOp, ModelCost, StreamKind

from .activations import fast_tanh
from .wavenet_layers import ConvHistory, FiLM, LayerArraySpec, PostStackHead, WaveNetLayerArray, parse_post_stack_head

__all__ = [
    "CORE_ACTIVATIONS",
    "FILE_VERSIONS",
    "NAMLSTM",
    "NAMLinear",
    "NAMModel",
    "NAMWaveNet",
    "NamWeightError",
    "TWIN_EXPORTS",
    "fast_tanh",
    "check_slim",
    "lstm_twin",
    "nam_object",
    "render",
]

# The exporters (EXPORTERS names) that build on ``streaming_twin``: a model without a twin has none of them.
TWIN_EXPORTS = ("tflite", "tflite_int8", "tflite_int16")

# The .nam versions we write, oldest first: the A1 layout every Core since 0.5 reads; the layer-array features
# NAM Core 0.4.0 reads (condition_dsp, FiLM, bottleneck, grouped convs, per-layer activations); 0.7.0 for
# containers, slimmable and per-layer kernel sizes / head convs (Core >= 0.4.1).
FILE_VERSIONS = ("0.5.4", "0.6.0", "0.7.0")


class NamWeightError(ValueError):
    """Raised when a flat weight list does not fit a model."""


# Exactly the activation names that Core's 0.5.x-era registry knows (activations.cpp); an unknown name
# makes the old engine dereference a null pointer, so we refuse other names on both read and write.
CORE_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "Tanh": torch.tanh,
    "Hardtanh": F.hardtanh,
    "Fasttanh": fast_tanh,
    "ReLU": F.relu,
    "Sigmoid": torch.sigmoid,
}


def _as_batch(x: torch.Tensor) -> torch.Tensor:
    """(N, L) or (N, 1, L) -> (N, 1, L)."""
    if x.dim() == 2:
        return x.unsqueeze(1)
    if x.dim() == 3 and x.shape[1] == 1:
        return x
    raise ValueError(f"expected input of shape (N, L) or (N, 1, L), got {tuple(x.shape)}")


class _FlatReader:
    """Walks a flat weight list and fills tensors in place, in order."""

    def __init__(self, flat: Sequence[float], expected: int, what: str) -> None:
        if len(flat) != expected:
            raise NamWeightError(f"weight count mismatch for {what}: expected {expected} got {len(flat)}")
        self._flat = torch.as_tensor(list(flat) if not isinstance(flat, torch.Tensor) else flat, dtype=torch.float64)
        self._pos = 0

    def take(self, n: int) -> torch.Tensor:
        out = self._flat[self._pos : self._pos + n]
        self._pos += n
        return out

    def fill(self, t: torch.Tensor) -> None:
        # reshape follows t's row-major (PyTorch flatten) order, which is the order Core reads.
        t.copy_(self.take(t.numel()).reshape(t.shape).to(t.dtype))


def _flatten(tensors: Sequence[torch.Tensor]) -> list[float]:
    # float64 holds every float32 exactly, so the JSON text round-trips bit for bit.
    return torch.cat([t.detach().reshape(-1).to(torch.float64) for t in tensors]).tolist()


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy()


def check_slim(value: Any) -> None:
    """Refuse a slim value outside [0, 1] (the plugin size knob's range)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"slim must be a number between 0.0 and 1.0, got {value!r}")


def nam_object(model: NAMModel, metadata: dict[str, Any] | None = None,
               sample_rate: float | None = None) -> dict[str, Any]:
    """A complete .nam object for ``model``, as a container's submodel or a condition DSP is nested in its
    parent's config (Core loads each with ``get_dsp``: its own version, weights and sample rate)."""
    out: dict[str, Any] = {"version": model.nam_version(), "metadata": dict(metadata or {}),
                           "architecture": model.nam_architecture, "config": model.nam_config(sample_rate=sample_rate),
                           "weights": model.export_weights()}
    if sample_rate is not None:
        out["sample_rate"] = int(sample_rate) if float(sample_rate).is_integer() else float(sample_rate)
    return out


# ------------------------------------------------------------------------------------------ the contract


class _ValidMode(nn.Module):
    """A context model's streaming graph: the block with its context in, the block's output out."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class NAMModel(nn.Module):
    """The model contract (:class:`tinyverse.models.contract.StreamingModel` and ``NamModel``) as NAM's
    architectures share it: one mono ``audio`` input, streamed in blocks. The defaults are a "context"
    model's (each block is computed from the block plus the ``receptive_field − 1`` samples before it);
    the LSTM overrides the stream hooks with its recurrent state."""

    nam_architecture: str
    stream_kind: StreamKind = "context"

    @property
    def input_shapes(self) -> dict[str, tuple[int | None, ...]]:
        return {"audio": (None,)}

    @property
    def receptive_field(self) -> int:
        raise NotImplementedError

    @property
    def num_weights(self) -> int:
        raise NotImplementedError

    def _macs_per_sample(self) -> int:
        raise NotImplementedError

    def cost(self) -> ModelCost:
        """MACs per output sample when streaming (what a pedal's DSP budget counts)."""
        return ModelCost(params=int(sum(p.numel() for p in self.parameters())),
                         macs_per_sample=int(self._macs_per_sample()), receptive_field=int(self.receptive_field),
                         weights=int(self.num_weights))

    def describe(self) -> dict[str, Any]:
        return {"architecture": self.nam_architecture}

    def device_ops(self) -> list[DeviceOp]:
        raise NotImplementedError

    def nam_config(self, sample_rate: float | None = None) -> dict[str, Any]:
        """The .nam ``config`` object (``sample_rate`` goes to nested models, which Core requires to match)."""
        raise NotImplementedError

    def nam_version(self) -> str:
        """The oldest .nam file version that expresses this model (what :func:`save_nam` writes)."""
        return FILE_VERSIONS[0]

    # -- slimmable size (Core's SetSlimmableSize) -------------------------------------------------------------
    @property
    def slimmable(self) -> bool:
        return False

    @property
    def slim(self) -> float | None:
        """The size chosen with :meth:`set_slim` (1.0 until then); None for a model with one size."""
        return None

    @slim.setter
    def slim(self, value: float) -> None:
        self.set_slim(value)

    def set_slim(self, value: float) -> None:
        """Pick the model size for ``value`` in [0, 1] (0: smallest, 1: full), as a plugin's size knob does."""
        check_slim(value)
        raise ValueError(f"this {self.nam_architecture} model has no slimmable size (only SlimmableContainer "
                         "files and slimmable WaveNets do)")

    # -- streaming ----------------------------------------------------------------------------------------
    def stream_init(self, dtype: torch.dtype = torch.float32) -> Any:
        return torch.zeros(1, self.receptive_field - 1, dtype=dtype)  # the input history

    @torch.no_grad()
    def stream_block(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        full = torch.cat([state, x], dim=1)
        y = self(full)[0]
        rf = self.receptive_field
        return y, (full[:, -(rf - 1):] if rf > 1 else state)

    def initial_stream_state(self) -> dict[str, torch.Tensor]:
        return {}

    def stream_metadata(self) -> dict[str, Any]:
        return {"receptive_field": int(self.receptive_field), "architecture": self.nam_architecture,
                "kind": self.stream_kind}

    def streaming_module(self) -> nn.Module:
        return _ValidMode(self)

    def streaming_twin(self, block_size: int) -> TwinPlan:
        raise AudioExportError(f"no streaming TFLite twin for {type(self).__name__}")

    def twin_reference(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)  # valid mode: (N, block + rf − 1) → (N, block)

    def unavailable_exports(self) -> dict[str, str]:
        """The TFLite steps, each with why, when no streaming twin can be built (building one is cheap: the plan
        only copies the weights); {} otherwise."""
        try:
            self.streaming_twin(64)
        except AudioExportError as e:
            return {step: str(e) for step in TWIN_EXPORTS}
        return {}

    def scored_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """One output: the model's own."""
        return {self.nam_architecture: self(x)}

    def prepare_for_inference(self) -> None:
        """Nothing to do for a context model."""

    def scale_output(self, gain: float) -> None:
        """Multiply the model's output by ``gain``, folded into its last linear step (training at a normalised
        output level starts from a model scaled by 1 / gain, see :class:`tinyverse.audio.training.AmpModellingTask`).
        Raises NotImplementedError for an architecture whose output is not linear in one of its tensors."""
        raise NotImplementedError(f"{self.nam_architecture}: no linear output step to scale")


# ---------------------------------------------------------------------------------------------- WaveNet


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


class NAMWaveNet(NAMModel):
    """NAM's WaveNet with every layer-array feature NeuralAmpModelerCore 0.5.5 reads: layer arrays chained by
    residual and head paths, ``y = head_scale * head`` (or the post-stack ``head`` applied to it).

    ``layers`` are layer-array objects of a .nam config in any layout (0.5: ``kernel_size``, ``head_size``,
    ``gated`` ...; 0.6 / 0.7: ``kernel_sizes``, ``head``, activation objects, ``gating_mode``, ``bottleneck``,
    ``layer1x1`` / ``head1x1``, grouped convs, FiLM, ``slimmable``) or :class:`LayerArraySpec`.
    ``head``: the post-stack head object; ``condition_dsp``: a WaveNet whose output conditions every layer
    (``condition_dsp_metadata`` is written back with it). ``legacy_gating`` reproduces the gated-activation
    order of the old C++ engine (see ``WaveNetLayer.forward``); ``fast_tanh`` renders "Tanh" with Core's
    approximation, as the plugin does when it enables fast tanh. ``mono_output=False`` allows more than one
    output channel (a condition DSP).

    A slimmable WaveNet (a layer array with ``slimmable``) computes its full size until :meth:`set_slim`
    picks a smaller one, as Core's ``SetSlimmableSize`` does.
    """

    nam_architecture = "WaveNet"

    def __init__(
        self,
        layers: Sequence[dict[str, Any] | LayerArraySpec],
        head_scale: float = 0.02,
        *,
        head: dict[str, Any] | None = None,
        condition_dsp: NAMWaveNet | None = None,
        condition_dsp_metadata: dict[str, Any] | None = None,
        in_channels: int = 1,
        legacy_gating: bool = False,
        fast_tanh: bool = False,
        mono_output: bool = True,
    ) -> None:
        super().__init__()
        if len(layers) == 0:
            raise ValueError("NAMWaveNet needs at least one layer array")
        if in_channels != 1:
            raise ValueError(f"in_channels {in_channels}: only mono input is supported")
        specs = [la if isinstance(la, LayerArraySpec) else LayerArraySpec.from_json(la, i)
                 for i, la in enumerate(layers)]
        cond_size = condition_dsp.out_channels if condition_dsp is not None else in_channels
        for i, s in enumerate(specs):
            if s.condition_size != cond_size:
                src = "the condition_dsp's output channels" if condition_dsp is not None else "the input channels"
                raise ValueError(f"layer array {i}: condition_size ({s.condition_size}) must equal {src} ({cond_size})")
            expected = in_channels if i == 0 else specs[i - 1].channels
            if s.input_size != expected:
                src = "the input channels" if i == 0 else f"channels of array {i - 1}"
                raise ValueError(f"layer array {i}: input_size ({s.input_size}) must equal {src} ({expected})")
            if i > 0 and (s.channels != specs[i - 1].head_size or s.head_width != specs[i - 1].head_size):
                # Core feeds array i-1's head output into array i's head accumulator.
                raise ValueError(
                    f"layer array {i}: channels ({s.channels}) and its head width ({s.head_width}) must equal "
                    f"head_size of array {i - 1} ({specs[i - 1].head_size})")
        self.layer_arrays = nn.ModuleList(WaveNetLayerArray(s, legacy_gating) for s in specs)
        self.post_head = PostStackHead(specs[-1].head_size, parse_post_stack_head(head, specs[-1].head_size)) \
            if head is not None else None
        if mono_output and self.out_channels != 1:
            what = "the post-stack head's out_channels" if self.post_head is not None else \
                "the last layer array's head_size"
            raise ValueError(f"{what} must be 1 (mono output), got {self.out_channels}")
        self.condition_dsp = condition_dsp
        self.condition_dsp_metadata = dict(condition_dsp_metadata or {})
        self.fast_tanh = fast_tanh
        # NAM's trainer does not train head_scale; a buffer keeps it with the state dict and the dtype.
        self.register_buffer("head_scale", torch.tensor(float(head_scale)))
        # Core takes head_scale from the weights; the config copy is informative. Remember the config's
        # spelling (e.g. 0.02 vs float32(0.02)) so an unchanged model writes its config back verbatim.
        self._config_head_scale = float(head_scale)
        self._slim_value: float | None = None
        self._slim_channels: tuple[int, ...] | None = None
        self._slim_cache: tuple[Any, ...] = ()  # (key, model): a tuple, so the copy is no submodule

    @property
    def specs(self) -> list[LayerArraySpec]:
        return [la.spec for la in self.layer_arrays]

    @property
    def out_channels(self) -> int:
        return self.post_head.cfg["out_channels"] if self.post_head is not None else self.specs[-1].head_size

    @property
    def receptive_field(self) -> int:
        rf = 1 + sum(la.reach for la in self.layer_arrays)
        if self.post_head is not None:
            rf += self.post_head.reach
        if self.condition_dsp is not None:
            rf += self.condition_dsp.receptive_field - 1
        return rf

    @property
    def num_weights(self) -> int:
        return sum(t.numel() for t in self._ordered_tensors())

    def _ordered_tensors(self) -> list[torch.Tensor]:
        # The condition DSP's weights live in its own nested .nam object, not in this model's list.
        out: list[torch.Tensor] = []
        for la in self.layer_arrays:
            out += la.ordered_tensors()
        if self.post_head is not None:
            out += self.post_head.ordered_tensors()
        out.append(self.head_scale.reshape(1))
        return out

    # -- .nam --------------------------------------------------------------------------------------------------
    def layout_features(self) -> tuple[list[str], list[str]]:
        """(features the version-0.5 layout cannot express, features that need version 0.7)."""
        new, v07 = [], []
        for s in self.specs:
            new += s.a1_blockers()
            v07 += s.v06_blockers()
        if self.condition_dsp is not None:
            new.append("condition_dsp")
            if self.condition_dsp.nam_version() == FILE_VERSIONS[-1]:
                v07 += [f"condition_dsp: {f}" for f in self.condition_dsp.layout_features()[1]]
        if self.post_head is not None:
            new.append("post-stack head")
            v07.append("post-stack head")
        return _unique(new), _unique(v07)

    def nam_version(self) -> str:
        """The oldest file version that expresses this model: 0.5.4 for the A1 layout (old pedals and plugins),
        0.6.0 for the layer-array features NAM Core 0.4.0 reads, 0.7.0 for per-layer kernel sizes, head convs,
        post-stack heads and slimmable layer arrays."""
        new, v07 = self.layout_features()
        return FILE_VERSIONS[2] if v07 else FILE_VERSIONS[1] if new else FILE_VERSIONS[0]

    def nam_config(self, sample_rate: float | None = None) -> dict[str, Any]:
        layout = self.nam_version()[:3]
        config: dict[str, Any] = {
            "layers": [s.to_json(layout) for s in self.specs],
            "head": self.post_head.to_json() if self.post_head is not None else None,
            "head_scale": self._config_head_scale
            if torch.tensor(self._config_head_scale, dtype=self.head_scale.dtype) == self.head_scale
            else float(self.head_scale),
        }
        if self.condition_dsp is not None:
            config["condition_dsp"] = nam_object(self.condition_dsp, self.condition_dsp_metadata, sample_rate)
        return config

    @torch.no_grad()
    def import_weights(self, flat: Sequence[float]) -> None:
        reader = _FlatReader(flat, self.num_weights, "WaveNet")
        for t in self._ordered_tensors()[:-1]:
            reader.fill(t)
        self.head_scale.fill_(float(reader.take(1)[0]))

    def export_weights(self) -> list[float]:
        return _flatten(self._ordered_tensors())

    # -- slimming --------------------------------------------------------------------------------------------
    @property
    def slimmable(self) -> bool:
        return any(s.allowed_channels is not None for s in self.specs)

    def slim_channels(self, value: float) -> tuple[int, ...]:
        """Channels per layer array at slim ``value`` in [0, 1] (Core's ``ratio_to_channels``: the allowed
        count at index ``min(floor(value · n), n − 1)``; non-slimmable arrays keep theirs)."""
        out = []
        for s in self.specs:
            ac = s.allowed_channels
            out.append(s.channels if ac is None else ac[min(int(math.floor(value * len(ac))), len(ac) - 1)])
        return tuple(out)

    @property
    def slim(self) -> float | None:
        return (1.0 if self._slim_value is None else self._slim_value) if self.slimmable else None

    @slim.setter
    def slim(self, value: float) -> None:
        self.set_slim(value)

    def set_slim(self, value: float) -> None:
        check_slim(value)
        if not self.slimmable:
            super().set_slim(value)
        channels = self.slim_channels(value)
        self._slim_value = float(value)
        self._slim_channels = None if channels == tuple(s.channels for s in self.specs) else channels

    def slimmed(self, channels: Sequence[int]) -> NAMWaveNet:
        """A plain WaveNet computing this one at ``channels`` per layer array: Core's SlimmableWavenet keeps the
        first channels of every conv (the leading rows and columns of each weight)."""
        specs, n = self.specs, len(self.specs)
        new = [s.slimmed(c, s.input_size if i == 0 else channels[i - 1], channels[i + 1] if i < n - 1 else s.head_size)
               for i, (s, c) in enumerate(zip(specs, channels))]
        p = self.head_scale
        m = NAMWaveNet(new, self._config_head_scale, head=self.post_head.to_json() if self.post_head else None,
                       condition_dsp=self.condition_dsp, condition_dsp_metadata=self.condition_dsp_metadata,
                       fast_tanh=self.fast_tanh).to(dtype=p.dtype, device=p.device)
        with torch.no_grad():
            for full, slim in zip(self._ordered_tensors(), m._ordered_tensors()):
                slim.copy_(full[tuple(slice(0, k) for k in slim.shape)])
        return m

    def _active(self) -> NAMWaveNet:
        """The model that computes now: this one, or a copy slimmed to the chosen size (rebuilt when the
        weights, dtype or size change)."""
        if self._slim_channels is None:
            return self
        key = (self._slim_channels, self.head_scale.dtype, self.head_scale.device,
               tuple(t._version for t in self._ordered_tensors()))
        if not self._slim_cache or self._slim_cache[0] != key:
            self._slim_cache = (key, self.slimmed(self._slim_channels))
        return self._slim_cache[1]

    # -- compute ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def scale_output(self, gain: float) -> None:
        """``y = head_scale · head``: scale ``head_scale`` (NAM's trainer does the same when it undoes its output
        normalisation on export). A post-stack head may be nonlinear, so it is refused."""
        if self.post_head is not None:
            raise NotImplementedError("WaveNet with a post-stack head: its output is not linear in head_scale")
        self.head_scale.mul_(float(gain))
        self._slim_cache = ()

    def forward_channels(self, x: torch.Tensor, hist: ConvHistory | None = None,
                         cond_hist: ConvHistory | None = None) -> torch.Tensor:
        """(N, 1, L) → (N, out_channels, ·): valid mode, or one streamed block when ``hist`` holds buffers."""
        hist = hist or ConvHistory()
        if self.condition_dsp is not None:
            c = self.condition_dsp.forward_channels(x, cond_hist or ConvHistory())
            x = x[..., x.shape[-1] - c.shape[-1]:]
        else:
            c = x  # the raw input conditions every layer
        y, head = x, None
        for la in self.layer_arrays:
            y, head = la(y, c, head, hist, self.fast_tanh)
        assert head is not None
        if self.post_head is not None:
            return self.post_head(self.head_scale * head, hist, self.fast_tanh)
        return self.head_scale * head

    def forward(self, x: torch.Tensor, pad_start: bool = False) -> torch.Tensor:
        if self._slim_channels is not None:
            return self._active()(x, pad_start=pad_start)
        x = _as_batch(x)
        rf = self.receptive_field
        if pad_start:
            x = F.pad(x, (rf - 1, 0))
        y = self.forward_channels(x)
        return y[:, 0, y.shape[-1] - (x.shape[-1] - rf + 1):]

    def stream_init(self, dtype: torch.dtype = torch.float32) -> Any:
        if self._slim_channels is not None:
            return self._active().stream_init(dtype)
        # One history buffer per temporal conv (Core's ring buffers), created on first use; the condition DSP
        # keeps its own. Pre-warm on silence as Core does: deeper layers see biases, not zeros, before the stream.
        state: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
        self.stream_block(torch.zeros(1, self.receptive_field, dtype=dtype), state)
        return state

    @torch.no_grad()
    def stream_block(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        if self._slim_channels is not None:
            return self._active().stream_block(x, state)
        y = self.forward_channels(x.unsqueeze(1), ConvHistory(state[0]), ConvHistory(state[1]))
        return y[0, 0], state

    # -- the contract ----------------------------------------------------------------------------------------
    def cost(self) -> ModelCost:
        return self._active().cost() if self._slim_channels is not None else super().cost()

    def _macs_per_sample(self) -> int:
        # Every conv costs its weight count per output sample; a FiLM adds one multiply(-add) per channel.
        convs = sum(m.weight.numel() for m in self.modules() if isinstance(m, nn.Conv1d))
        films = sum(m.dim for m in self.modules() if isinstance(m, FiLM))
        return int(convs + films + 1)  # + head_scale

    def describe(self) -> dict[str, Any]:
        m = self._active()
        specs = m.specs
        out = {"architecture": self.nam_architecture,
               "activations": sorted({a.type for s in specs for a in s.activations}),
               "gated": any(g != "none" for s in specs for g in s.gating_modes),
               "layer_arrays": len(specs),
               "kernel_sizes": sorted({k for s in specs for k in s.kernel_sizes})}
        secondary = sorted({a.type for s in specs for a in s.secondary if a is not None})
        if secondary:
            out["secondary_activations"] = secondary
        new, _ = m.layout_features()
        if new:
            out["features"] = new
        if self.slimmable:
            out["slim_channels"] = list(self._slim_channels or self.slim_channels(1.0))
        return out

    def device_ops(self) -> list[DeviceOp]:
        d = self.describe()
        m = self._active()
        kernels = d["kernel_sizes"] + [s.head_kernel_size for s in m.specs] + \
            (m.post_head.cfg["kernel_sizes"] if m.post_head is not None else [])  # the largest of any conv
        ops: list[DeviceOp] = [{"op_class": "WAVENET", "layer_arrays": d["layer_arrays"], "gated": d["gated"],
                                "kernel_size": max(kernels), "receptive_field": int(self.receptive_field)}]
        acts = _unique(d["activations"] + d.get("secondary_activations", []))
        return ops + [{"op_class": a.upper()} for a in acts]

    def twin_blockers(self) -> list[str]:
        """Features the streaming TFLite twin does not cover (it is built for the A1 layer: conv, mixin, Tanh /
        Sigmoid / ReLU / Hardtanh / Fasttanh, Sigmoid gating, 1×1, head rechannel)."""
        out = []
        for s in self.specs:
            out += [f for f in s.a1_blockers() if f != "per-layer kernel sizes"]
        if self.condition_dsp is not None:
            out.append("condition_dsp")
        if self.post_head is not None:
            out.append("post-stack head")
        return _unique(out)

    def streaming_twin(self, block_size: int) -> TwinPlan:
        """Every dilated conv is one CONV_2D with a (K, 1) kernel and a dilation factor, 1×1 convs are CONV_2D,
        the residual / head / condition alignment are crops, gating is LOGISTIC + MUL, ``head_scale`` is folded
        into the last head conv. Input: the block plus its ``receptive_field − 1`` samples of context."""
        blockers = self.twin_blockers()
        if blockers:
            raise AudioExportError(f"no streaming TFLite twin for this WaveNet: {', '.join(blockers)} "
                                   "(the torch model and its streaming ONNX export support them)")
        p = TwinPlan([block_size + self.receptive_field - 1, 1, 1])
        y, head = "x", None
        n_arrays = len(self.layer_arrays)
        scale = float(self.head_scale)
        for i, la in enumerate(self.layer_arrays):
            ch = la.spec.channels
            h = p.conv(f"a{i}_rechannel", y, _np(la.rechannel.weight), None)
            for j, layer in enumerate(la.layers):
                name = layer.activation.type
                act = TWIN_ACTIVATIONS["Fasttanh" if self.fast_tanh and name == "Tanh" else name]
                pre = f"a{i}_l{j}"
                w, b, m = _np(layer.conv.weight), _np(layer.conv.bias), _np(layer.input_mixer.weight)
                parts = {"": slice(None)} if not layer.gated else {"_top": slice(0, ch), "_bot": slice(ch, 2 * ch)}
                z = {}
                for part, sl in parts.items():
                    zc = p.conv(f"{pre}_conv{part}", h, w[sl], b[sl], layer.dilation)
                    cond = p.crop(f"{pre}_cond", "x", p.offset[zc]) if f"{pre}_cond" not in p.offset else f"{pre}_cond"
                    zm = p.conv(f"{pre}_mix{part}", cond, m[sl], None)
                    z[part] = p.op("add", f"{pre}_z{part}", [zc, zm])
                if not layer.gated:
                    a = p.op("act", f"{pre}_act", [z[""]], fn=act)
                else:
                    top = p.op("act", f"{pre}_act_top", [z["_top"]], fn=act)
                    bot = z["_bot"]
                    if layer.legacy_gating:
                        bot = p.op("act", f"{pre}_act_bot", [bot], fn=act)
                    gate = p.op("act", f"{pre}_gate", [bot], fn="sigmoid")
                    a = p.op("mul", f"{pre}_act", [top, gate])
                res = p.conv(f"{pre}_1x1", a, _np(layer.one_by_one.weight), _np(layer.one_by_one.bias))
                h = p.op("add", f"{pre}_out", [p.crop(f"{pre}_skip", h, p.offset[a]), res])
                head = a if head is None else p.op("add", f"{pre}_head", [p.crop(f"{pre}_head_in", head, p.offset[a]), a])
            hw = _np(la.head_rechannel.weight)
            hb = _np(la.head_rechannel.bias) if la.head_rechannel.bias is not None else None
            if i == n_arrays - 1:  # fold y = head_scale · head into the last head conv
                hw = hw * scale
                hb = hb * scale if hb is not None else None
            head = p.conv(f"a{i}_head_rechannel", head, hw, hb)
            y = h
        p.output = head
        return p


# ------------------------------------------------------------------------------------------------- LSTM


class NAMLSTM(NAMModel):
    """NAM's LSTM: stacked LSTM cells whose initial (h, c) live in the file, then a linear head.

    ``initial_hidden`` / ``initial_cell`` (num_layers × hidden) are parameters, as in NAM's trainer; every
    ``forward`` starts from them, which is what Core does on a freshly loaded model.
    """

    nam_architecture = "LSTM"
    stream_kind: StreamKind = "state"

    def __init__(self, hidden_size: int, num_layers: int = 1, input_size: int = 1) -> None:
        super().__init__()
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.core = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)
        self.initial_hidden = nn.Parameter(torch.zeros(num_layers, hidden_size))
        self.initial_cell = nn.Parameter(torch.zeros(num_layers, hidden_size))

    @property
    def receptive_field(self) -> int:
        return 1

    @property
    def num_weights(self) -> int:
        h, i = self.hidden_size, self.input_size
        per_layer = lambda n_in: 4 * h * (n_in + h) + 4 * h + 2 * h  # noqa: E731
        return per_layer(i) + (self.num_layers - 1) * per_layer(h) + h + 1

    def nam_config(self, sample_rate: float | None = None) -> dict[str, Any]:
        return {"input_size": self.input_size, "hidden_size": self.hidden_size, "num_layers": self.num_layers}

    @torch.no_grad()
    def scale_output(self, gain: float) -> None:
        """The linear head: scale its weight and bias."""
        self.head.weight.mul_(float(gain))
        self.head.bias.mul_(float(gain))

    @torch.no_grad()
    def import_weights(self, flat: Sequence[float]) -> None:
        reader = _FlatReader(flat, self.num_weights, "LSTM")
        h = self.hidden_size
        for k in range(self.num_layers):
            w_ih = getattr(self.core, f"weight_ih_l{k}")
            w_hh = getattr(self.core, f"weight_hh_l{k}")
            # Core holds [W_ih | W_hh] as one 4H x (I+H) row-major matrix.
            w = reader.take(w_ih.numel() + w_hh.numel()).reshape(4 * h, -1)
            w_ih.copy_(w[:, : w_ih.shape[1]].to(w_ih.dtype))
            w_hh.copy_(w[:, w_ih.shape[1] :].to(w_hh.dtype))
            # The file has only the summed bias; keeping b_hh = 0 makes the round trip exact.
            reader.fill(getattr(self.core, f"bias_ih_l{k}"))
            getattr(self.core, f"bias_hh_l{k}").zero_()
            reader.fill(self.initial_hidden[k])
            reader.fill(self.initial_cell[k])
        reader.fill(self.head.weight)
        reader.fill(self.head.bias)

    def export_weights(self) -> list[float]:
        tensors: list[torch.Tensor] = []
        for k in range(self.num_layers):
            w_ih = getattr(self.core, f"weight_ih_l{k}")
            w_hh = getattr(self.core, f"weight_hh_l{k}")
            tensors.append(torch.cat([w_ih, w_hh], dim=1))
            tensors.append(getattr(self.core, f"bias_ih_l{k}") + getattr(self.core, f"bias_hh_l{k}"))
            tensors.append(self.initial_hidden[k])
            tensors.append(self.initial_cell[k])
        tensors += [self.head.weight, self.head.bias]
        return _flatten(tensors)

    @torch.no_grad()
    def settle_initial_state(self, num_samples: int = 48_000) -> None:
        """Replace the initial state with the state reached after ``num_samples`` zeros — what NAM's trainer
        stores on export, so a stream starts from silence's steady state rather than from the trained h0/c0."""
        z = torch.zeros(1, num_samples, self.input_size, dtype=self.initial_hidden.dtype, device=self.initial_hidden.device)
        _, (h, c) = self.core(z, self._state(1))
        self.initial_hidden.copy_(h[:, 0])
        self.initial_cell.copy_(c[:, 0])

    def _state(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (self.num_layers, n, self.hidden_size)
        return (
            self.initial_hidden.unsqueeze(1).expand(shape).contiguous(),
            self.initial_cell.unsqueeze(1).expand(shape).contiguous(),
        )

    def forward(self, x: torch.Tensor, pad_start: bool = False) -> torch.Tensor:
        del pad_start  # receptive field 1: nothing to pad
        x = _as_batch(x).transpose(1, 2)  # (N, L, 1)
        out, _ = self.core(x, self._state(x.shape[0]))
        return self.head(out)[..., 0]

    def _macs_per_sample(self) -> int:
        h, i = self.hidden_size, self.input_size
        per = lambda n_in: 4 * h * (n_in + h) + 3 * h  # noqa: E731  (gates + elementwise state update)
        return int(per(i) + (self.num_layers - 1) * per(h) + h)

    def describe(self) -> dict[str, Any]:
        return {"architecture": self.nam_architecture, "hidden_size": self.hidden_size, "num_layers": self.num_layers}

    def device_ops(self) -> list[DeviceOp]:
        return [{"op_class": "LSTM", "hidden_size": self.hidden_size, "num_layers": self.num_layers}]

    def prepare_for_inference(self) -> None:
        """Start streams from silence's steady state, as NAM's trainer stores it on export."""
        self.settle_initial_state(48_000)

    def stream_init(self, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        del dtype  # the state has the parameters' dtype
        return self._state(1)

    @torch.no_grad()
    def stream_block(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        out, state = self.core(x.unsqueeze(-1), state)
        return self.head(out)[0, :, 0], state

    def initial_stream_state(self) -> dict[str, torch.Tensor]:
        return {"h": self.initial_hidden, "c": self.initial_cell}

    def stream_metadata(self) -> dict[str, Any]:
        return {**super().stream_metadata(), "num_layers": self.num_layers, "hidden_size": self.hidden_size,
                "initial_h": self.initial_hidden.detach().double().tolist(),
                "initial_c": self.initial_cell.detach().double().tolist()}

    def streaming_module(self) -> nn.Module:
        return _LSTMStep(self)

    def streaming_twin(self, block_size: int) -> TwinPlan:
        """One tf_keras LSTM per layer (each converts to a fused UNIDIRECTIONAL_SEQUENCE_LSTM whose variable
        state carries across invokes) and a Dense head. Input: the block."""
        if self.input_size != 1:
            raise AudioExportError("streaming TFLite of an LSTM with extra input channels is not supported")
        p = TwinPlan([block_size, 1])
        p.output = lstm_twin(p, "x", self.core, self.head)
        return p

    def twin_reference(self, x: torch.Tensor) -> torch.Tensor:
        zeros = torch.zeros(self.num_layers, x.shape[0], self.hidden_size, dtype=x.dtype)
        out, _ = self.core(x.unsqueeze(-1), (zeros, zeros))
        return self.head(out)[..., 0]


def lstm_twin(p: TwinPlan, src: str, core: nn.LSTM, head: nn.Linear) -> str:
    """Append an LSTM stack (one tf_keras LSTM per layer, Keras weight layout) and its Dense head to ``p``, reading
    ``src``; the head's name."""
    for k in range(core.num_layers):
        name = f"lstm{k}"
        p.weights[f"{name}/kernel"] = np.ascontiguousarray(_np(getattr(core, f"weight_ih_l{k}")).T, np.float32)
        p.weights[f"{name}/recurrent"] = np.ascontiguousarray(_np(getattr(core, f"weight_hh_l{k}")).T, np.float32)
        bias = _np(getattr(core, f"bias_ih_l{k}")) + _np(getattr(core, f"bias_hh_l{k}"))  # Keras: one bias
        p.weights[f"{name}/b"] = bias.astype(np.float32)
        src = p.op("lstm", name, [src], units=core.hidden_size)
    p.weights["head/w"] = np.ascontiguousarray(_np(head.weight).T, np.float32)
    p.weights["head/b"] = _np(head.bias).astype(np.float32)
    return p.op("dense", "head", [src])


class _LSTMStep(nn.Module):
    """One block of an NAM LSTM with explicit state; states batch-first so a batch of streams stacks on axis 0."""

    def __init__(self, model: NAMLSTM) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        state = (h.transpose(0, 1).contiguous(), c.transpose(0, 1).contiguous())
        out, (h1, c1) = self.model.core(x.unsqueeze(-1), state)
        return self.model.head(out)[..., 0], h1.transpose(0, 1), c1.transpose(0, 1)


# ------------------------------------------------------------------------------------------- Linear / IR


class NAMLinear(NAMModel):
    """A FIR filter / impulse response: ``y[n] = sum_k w[k] x[n-k] (+ bias)``.

    Flat order is Core's: ``weights[0]`` is the tap on the current sample (impulse-response order).
    """

    nam_architecture = "Linear"

    def __init__(self, receptive_field: int, bias: bool = False) -> None:
        super().__init__()
        self._receptive_field = int(receptive_field)
        # Conv1d's last tap multiplies the newest sample, so the IR is stored reversed in the conv.
        self.conv = nn.Conv1d(1, 1, receptive_field, bias=bias)

    @classmethod
    def from_ir(cls, ir: Any, bias: bool = False) -> "NAMLinear":
        """A NAMLinear whose taps are ``ir`` (index 0 = the current sample)."""
        taps = torch.as_tensor(np.asarray(ir, dtype=np.float64)).reshape(-1)
        m = cls(int(taps.numel()), bias=bias)
        m.import_weights(taps.tolist() + ([0.0] if bias else []))
        return m

    @property
    def receptive_field(self) -> int:
        return self._receptive_field

    @property
    def num_weights(self) -> int:
        return self._receptive_field + (1 if self.conv.bias is not None else 0)

    def nam_config(self, sample_rate: float | None = None) -> dict[str, Any]:
        return {"receptive_field": self._receptive_field, "bias": self.conv.bias is not None}

    @property
    def impulse_response(self) -> torch.Tensor:
        """Taps in IR order (index 0 = current sample)."""
        return self.conv.weight[0, 0].flip(0)

    @torch.no_grad()
    def scale_output(self, gain: float) -> None:
        """A FIR filter is linear: scale its taps (and bias)."""
        self.conv.weight.mul_(float(gain))
        if self.conv.bias is not None:
            self.conv.bias.mul_(float(gain))

    @torch.no_grad()
    def import_weights(self, flat: Sequence[float]) -> None:
        reader = _FlatReader(flat, self.num_weights, "Linear")
        ir = reader.take(self._receptive_field)
        self.conv.weight.copy_(ir.flip(0).reshape(self.conv.weight.shape).to(self.conv.weight.dtype))
        if self.conv.bias is not None:
            reader.fill(self.conv.bias)

    def export_weights(self) -> list[float]:
        tensors = [self.impulse_response]
        if self.conv.bias is not None:
            tensors.append(self.conv.bias)
        return _flatten(tensors)

    def forward(self, x: torch.Tensor, pad_start: bool = False) -> torch.Tensor:
        x = _as_batch(x)
        if pad_start:
            x = F.pad(x, (self._receptive_field - 1, 0))
        if self._receptive_field > FFT_TAPS:  # a cabinet IR: conv1d would unfold L × taps values (31 GB for 40 s)
            y = fft_valid_conv(x[:, 0, :], self.conv.weight[0, 0])
            return y + self.conv.bias if self.conv.bias is not None else y
        return self.conv(x)[:, 0, :]

    def _macs_per_sample(self) -> int:
        return int(self.receptive_field)

    def device_ops(self) -> list[DeviceOp]:
        return [{"op_class": "FIR", "receptive_field": self.receptive_field}]

    def streaming_module(self) -> nn.Module:
        """The FIR as one conv over the block and its context: a block is short, and the FFT path of ``forward``
        (for long whole-file renders) does not trace into ONNX."""
        return _FIRValid(self.conv)

    def streaming_twin(self, block_size: int) -> TwinPlan:
        """One CONV_2D over the block plus its ``receptive_field − 1`` samples of context."""
        p = TwinPlan([block_size + self.receptive_field - 1, 1, 1])
        bias = _np(self.conv.bias) if self.conv.bias is not None else None
        p.output = p.conv("fir", "x", _np(self.conv.weight), bias)
        return p


class _FIRValid(nn.Module):
    """A Linear's streaming graph: ``x`` (N, block + taps − 1) → (N, block), one valid-mode conv."""

    def __init__(self, conv: nn.Conv1d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.unsqueeze(1))[:, 0, :]


FFT_TAPS = 256  # above this many taps an FIR is computed by FFT (O(L log L) time, O(L) memory)


def fft_valid_conv(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """What ``F.conv1d`` computes in valid mode for one channel (``w``'s last tap on the newest sample), by FFT:
    (N, L) → (N, L − K + 1)."""
    k, length = w.shape[-1], x.shape[-1]
    n = 1 << (length + k - 2).bit_length()  # >= L + K − 1: a linear, not circular, convolution
    full = torch.fft.irfft(torch.fft.rfft(x, n) * torch.fft.rfft(w.flip(-1).to(x.dtype), n), n)
    return full[..., k - 1:length]


# ----------------------------------------------------------------------------------------------- render


@torch.no_grad()
def render(model: nn.Module, x: Any, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Render a mono signal the way Core does at stream start (zero history, output length = input length).

    Runs a float64 copy by default so the result is a reference for the float32 engine. ``x`` may be a
    1-D array/tensor (returns 1-D) or ``(N, L)``.
    """
    xt = torch.as_tensor(x)
    squeeze = xt.dim() == 1
    if squeeze:
        xt = xt.unsqueeze(0)
    m = copy.deepcopy(model).to(dtype).eval()
    p = next(m.parameters(), None)
    y = m(xt.to(dtype=dtype, device=p.device if p is not None else "cpu"), pad_start=True)
    return y[0] if squeeze else y
