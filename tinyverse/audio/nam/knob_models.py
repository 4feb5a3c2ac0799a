"""Knob-conditioned amp and pedal models: one model for every setting of a device's knobs, with two inputs —
``audio`` (mono) and ``params`` (the knob values, normalised to [0, 1] and ordered by name, as
:class:`tinyverse.audio.knobs.KnobSet` makes them).

* :class:`NAMCatLSTM` — NAM's old CatLSTM: the knobs, tiled over time, are extra LSTM input features.
* :class:`NAMCatWaveNet` — NAM's old CatWaveNet: the knobs are extra channels of the WaveNet's input and of its
  condition (``input_size = condition_size = 1 + K``), so every layer's input mixin sees them.
* :class:`NAMHyperConvNet` — NAM's old HyperConvNet: a small MLP maps the knobs to every weight of a dilated
  ConvNet (kernel 2, as NAM's ConvNet), per example; the generated net is run batched (a grouped conv).
* :class:`NAMFiLMWaveNet` — a knob embedding (an MLP) is the condition of A2-style layer arrays: each layer's FiLM
  (:class:`tinyverse.audio.nam.wavenet_layers.FiLM`, Core's ``film.h``) turns it into a per-channel scale and shift,
  and its input mixin into a knob-dependent bias.

Every model implements the model contract (:mod:`tinyverse.models.contract`) with the two inputs: ``cost()``
counts per sample only the work that depends on the audio, and in ``conditioning_macs`` the work that depends on the
knobs only (the hypernet, the embedding, FiLM scales and shifts, the knob columns of a layer), with
``conditioning_per`` saying how often the exported graph runs it: ``"sample"`` for the Cat models (the knobs are
input channels: their columns multiply with every sample), ``"block"`` for FiLM and HyperConvNet (the embedding /
hypernet runs once per block while the knobs are still). Streaming holds the knobs constant per block:
``stream_init(dtype, params)``, ``stream_block`` as any streaming model, and ``stream_params(state, params)`` to move
the knobs between blocks (the history / recurrent state carries over).

Exports (:mod:`tinyverse.export.onnx_stream`, :mod:`tinyverse.export.tflite_stream`) have two inputs, the block and
``params`` (the normalised knob vector), plus a state model's ``h`` / ``c``; ``streaming_module()`` is the ONNX
graph, ``streaming_twin(block)`` the TFLite twin (:class:`tinyverse.audio.twin.TwinPlan` with a ``params`` input):
CatLSTM broadcasts the knobs over the block and concatenates them to the audio before the fused LSTM; CatWaveNet does
the same before the rechannel and the input mixins; FiLMWaveNet computes the embedding, every FiLM's scale / shift and
every mixin term once per block (FULLY_CONNECTED on ``params``) and broadcasts them over time; HyperConvNet runs the
hypernetwork once per block and each generated kernel-2 conv as a constant tap-stacking conv times the generated
weight matrix (BATCH_MATMUL: the weights are activations, quantized per tensor).

:meth:`KnobModel.frozen` folds constant knob values into a plain NAM model that any NAM plugin or pedal loads:
CatLSTM → LSTM (the knob columns of the input weights times the values join the bias), CatWaveNet → WaveNet (the
knob channels join the conv biases: the input mixin's directly, the rechannel's as a constant residual offset that
every later conv sums over its taps), FiLMWaveNet → WaveNet (scale and shift before the activation fold into the
conv's rows and bias; the embedding's mixin term into the bias), HyperConvNet → NAM's ConvNet (the generated
weights). Every fold is exact (float rounding only); :class:`FreezeError` names what cannot be folded.

NAM Core and a params input: Core 0.5.5's LSTM and WaveNet read ``in_channels`` (``NAM/lstm.cpp``,
``NAM/wavenet/model.cpp`` ``_set_condition_array``: every input channel enters the condition and the first layer
array), so a .nam CatLSTM / CatWaveNet could take the knob values as input channels 1..K, and a FiLMWaveNet as a
WaveNet with ``in_channels = 1 + K`` whose ``condition_dsp`` (one kernel-1 layer: tanh(W1·p + b1), head W2, b2)
computes the embedding. NAM's plugin feeds one channel, so only a host built on Core that feeds the knob channels
runs such a file; our .nam reader / writer are mono. :meth:`KnobModel.frozen` is what ships to a stock plugin.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from tinyverse.audio.knobs import KnobSet
from tinyverse.audio.twin import TWIN_ACTIVATIONS, AudioExportError, TwinPlan
from tinyverse.models.contract import DeviceOp, ModelCost, StreamKind

from .activations import NamActivation
from .convnet import NAMConvNet
from .models import NAMLSTM, TWIN_EXPORTS, NAMModel, NAMWaveNet, lstm_twin
from .presets import A1_WAVENET, a1_wavenet_layers
from .wavenet_layers import FILM_POINTS, ConvHistory, FiLMSpec, LayerArraySpec, WaveNetLayerArray, check_int

__all__ = ["FOLDABLE_FILMS", "KNOB_ARCHITECTURES", "FreezeError", "KnobModel", "NAMCatLSTM", "NAMCatWaveNet",
           "NAMFiLMWaveNet", "NAMHyperConvNet", "knob_model_from_record"]

KNOB_ARCHITECTURES: dict[str, type[KnobModel]] = {}
# FiLM hook points that fold exactly into an A1 layer (a constant scale / shift before the activation).
FOLDABLE_FILMS = ("conv_pre_film", "conv_post_film", "input_mixin_pre_film", "input_mixin_post_film",
                  "activation_pre_film")


class FreezeError(ValueError):
    """A knob model that cannot be folded into a plain NAM model; the message is one line and says why."""


def _tile(params: torch.Tensor, length: int) -> torch.Tensor:
    """(N, K) → (N, K, length): the knob values held over time."""
    return params[:, :, None].expand(params.shape[0], params.shape[1], length)


def _audio(x: torch.Tensor) -> torch.Tensor:
    """(N, L) or (N, 1, L) → (N, 1, L)."""
    if x.dim() == 2:
        return x.unsqueeze(1)
    if x.dim() == 3 and x.shape[1] == 1:
        return x
    raise ValueError(f"expected audio of shape (N, L) or (N, 1, L), got {tuple(x.shape)}")


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy()


def _twin_dense(p: TwinPlan, name: str, src: str, w: np.ndarray, b: np.ndarray | None = None,
                activation: str | None = None) -> str:
    """A per-block vector op: (1, n) → (1, m) for a torch Linear weight ``w`` (m, n) (FULLY_CONNECTED)."""
    p.weights[f"{name}/w"] = np.ascontiguousarray(np.asarray(w).T, np.float32)
    if b is not None:
        p.weights[f"{name}/b"] = np.asarray(b, np.float32)
    return p.op("dense", name, [src], activation=activation)


def _twin_over_time(p: TwinPlan, name: str, vec: str, n: int) -> str:
    """A (1, n) per-block vector as (1, 1, 1, n): broadcast over the time steps of an NHWC signal."""
    return p.op("reshape", name, [vec], shape=[1, 1, n])


def _twin_params_tiled(p: TwinPlan, shape: list[int]) -> str:
    """The knob vector held over the block: ``params`` (1, K) broadcast to (1, length, ..., K) for ``shape`` =
    [length, ..., K] (a signal of K channels; BROADCAST_TO, which every runtime runs in int8 and int16)."""
    k = p.extra_inputs["params"][0]
    one = p.op("reshape", "params_step", ["params"], shape=[1] * (len(shape) - 1) + [k])
    return p.op("broadcast", "params_tiled", [one], shape=list(shape))


class KnobModel(nn.Module):
    """The model contract for a model with inputs ``audio`` (N, L) and ``params`` (N, K). ``knobs``: the knob
    declaration (a :class:`KnobSet` or its ``declaration()``), carried with the model so settings given by name are
    validated and normalised; without it ``num_knobs`` says how many there are."""

    knob_architecture: ClassVar[str] = ""
    stream_kind: StreamKind = "context"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.knob_architecture:
            KNOB_ARCHITECTURES[cls.knob_architecture] = cls

    def __init__(self, num_knobs: int | None = None, knobs: KnobSet | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        ks = None
        if knobs is not None:
            ks = knobs if isinstance(knobs, KnobSet) else KnobSet.from_declaration(knobs, "model.knobs")
        if num_knobs is None:
            if ks is None:
                raise ValueError(f"{type(self).__name__}: give num_knobs or knobs (the knob declaration)")
            num_knobs = len(ks)
        elif ks is not None and len(ks) != num_knobs:
            raise ValueError(f"{type(self).__name__}: num_knobs {num_knobs} but {len(ks)} knobs declared "
                             f"({', '.join(ks.names)})")
        self.num_knobs = check_int(num_knobs, "num_knobs")
        self.knobs = ks

    # -- what the model is -----------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The constructor arguments (JSON), without the knobs: ``type(self)(**config, knobs=...)`` rebuilds it."""
        raise NotImplementedError

    def record(self) -> dict[str, Any]:
        """What a checkpoint or a .pt file stores beside the weights to rebuild the model."""
        return {"architecture": self.knob_architecture, "config": self.config(),
                "knobs": self.knobs.declaration() if self.knobs is not None else None}

    @property
    def input_shapes(self) -> dict[str, tuple[int | None, ...]]:
        return {"audio": (None,), "params": (self.num_knobs,)}

    @property
    def receptive_field(self) -> int:
        raise NotImplementedError

    def params_tensor(self, params: Any, n: int | None = None) -> torch.Tensor:
        """``params`` as (N, K) in the model's dtype; a single vector (K,) is repeated ``n`` times."""
        p0 = next(self.parameters())
        p = torch.as_tensor(np.asarray(params) if not isinstance(params, torch.Tensor) else params)
        p = p.to(dtype=p0.dtype, device=p0.device)
        if p.dim() == 1:
            p = p.unsqueeze(0).expand(n or 1, -1)
        if p.dim() != 2 or p.shape[1] != self.num_knobs or (n is not None and p.shape[0] != n):
            raise ValueError(f"params must be (N, {self.num_knobs}) knob values (N = {n} examples), got "
                             f"{tuple(p.shape)}")
        return p

    def default_params(self) -> np.ndarray:
        """Every knob at its declared default (normalised)."""
        if self.knobs is None:
            raise ValueError(f"this {self.knob_architecture} model declares no knobs (names, ranges, defaults); "
                             "give the knob values as a normalised vector")
        return self.knobs.vector({}, "defaults", fill_defaults=True)

    def forward(self, x: torch.Tensor, params: torch.Tensor, pad_start: bool = False) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def render(self, x: Any, params: Any, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """A mono signal at one setting from silence (output length = input length), in a ``dtype`` copy."""
        m = copy.deepcopy(self).to(dtype).eval()
        xt = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).to(dtype).reshape(1, -1)
        return m(xt, m.params_tensor(params, 1), pad_start=True)[0]

    # -- cost ------------------------------------------------------------------------------------------------
    def per_sample_macs(self) -> int:
        raise NotImplementedError

    def conditioning_macs(self) -> int:
        raise NotImplementedError

    # How often the exported graph computes the knob-only work: "sample" (knobs as input channels) or "block".
    conditioning_per: ClassVar[str] = "block"

    def cost(self) -> ModelCost:
        """MACs per output sample for the audio path; ``conditioning_macs`` per ``conditioning_per`` (a sample or a
        block)."""
        n = int(sum(p.numel() for p in self.parameters()))
        return ModelCost(params=n, macs_per_sample=int(self.per_sample_macs()), receptive_field=int(self.receptive_field),
                         weights=n, conditioning_macs=int(self.conditioning_macs()),
                         conditioning_per=self.conditioning_per)

    def conditioning_op(self) -> dict[str, Any]:
        """What the device check reads about the conditioning, added to the first device op."""
        return {"conditioning_macs": int(self.conditioning_macs()), "conditioning_per": self.conditioning_per}

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.knob_architecture, "num_knobs": self.num_knobs}
        if self.knobs is not None:
            out["knobs"] = self.knobs.names
        return out

    def device_ops(self) -> list[DeviceOp]:
        raise NotImplementedError

    # -- streaming (knobs constant per block) ----------------------------------------------------------------
    def stream_init(self, dtype: torch.dtype = torch.float32, params: Any = None) -> dict[str, Any]:
        """The state a stream at ``params`` (a normalised vector; default: the declared defaults) starts from."""
        raise NotImplementedError

    def stream_block(self, x: torch.Tensor, state: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        raise NotImplementedError

    def stream_params(self, state: dict[str, Any], params: Any) -> dict[str, Any]:
        """``state`` with the knobs moved to ``params`` from the next block on (history / recurrent state kept)."""
        raise NotImplementedError

    def stream_vector(self, params: Any, dtype: torch.dtype) -> torch.Tensor:
        p = self.default_params() if params is None else params
        return self.params_tensor(p, 1).to(dtype)

    def initial_stream_state(self) -> dict[str, torch.Tensor]:
        return {}

    def stream_metadata(self) -> dict[str, Any]:
        return {"receptive_field": int(self.receptive_field), "architecture": self.knob_architecture,
                "kind": self.stream_kind, "params_size": self.num_knobs,
                "knobs": self.knobs.declaration() if self.knobs is not None else None}

    def streaming_module(self) -> nn.Module:
        """``(x, params)`` → y: the block with its context and the block's knob vector (N, K)."""
        return _KnobValidMode(self)

    def streaming_twin(self, block_size: int) -> TwinPlan:
        """The TFLite twin: inputs ``x`` (the block with its context, as the plain models') and ``params`` (K,)."""
        raise AudioExportError(f"no streaming TFLite twin for {type(self).__name__}")

    def twin_reference(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """What the twin computes on ``x`` (N, block + rf − 1) at ``params`` (N, K): valid mode."""
        return self(x, params)

    def twin_blockers(self) -> list[str]:
        """Features the TFLite twin does not cover (none for the built-in families)."""
        return []

    def unavailable_exports(self) -> dict[str, str]:
        """The TFLite steps, each with why, when the model has layers the twin does not cover; {} otherwise."""
        blockers = self.twin_blockers()
        if not blockers:
            return {}
        why = f"no streaming TFLite twin for this {self.knob_architecture}: {', '.join(blockers)}"
        return {step: why for step in TWIN_EXPORTS}

    def scored_outputs(self, x: torch.Tensor, params: torch.Tensor) -> dict[str, torch.Tensor]:
        return {self.knob_architecture: self(x, params)}

    def prepare_for_inference(self) -> None:
        """Nothing to do for a context model."""

    # -- freezing -------------------------------------------------------------------------------------------
    def frozen(self, params: Any) -> NAMModel:
        """A plain NAM model computing this one at the knob vector ``params`` (normalised, (K,)), in this
        model's dtype. Raises :class:`FreezeError` when no NAM architecture holds it exactly."""
        raise NotImplementedError


class _KnobValidMode(nn.Module):
    def __init__(self, model: KnobModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return self.model(x, params)


def knob_model_from_record(record: Mapping[str, Any], where: str = "model") -> KnobModel:
    """A model (untrained weights) from :meth:`KnobModel.record`; ValueError naming ``where`` when it is not one."""
    if not isinstance(record, Mapping) or not isinstance(record.get("config"), Mapping):
        raise ValueError(f"{where}: not a knob model record (architecture, config, knobs)")
    cls = KNOB_ARCHITECTURES.get(str(record.get("architecture")))
    if cls is None:
        raise ValueError(f"{where}: unknown knob model architecture {record.get('architecture')!r} "
                         f"(known: {', '.join(KNOB_ARCHITECTURES)})")
    try:
        return cls(**dict(record["config"]), knobs=record.get("knobs"))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: invalid {cls.knob_architecture} config: {e}") from None


class StreamsThroughSnapshot:
    """Streaming for a knob model that runs as its plain snapshot (:meth:`KnobModel.frozen`) at the current
    knobs, rebuilt on a knob change with the running history / recurrent state kept."""

    def snapshot_for(self, p: torch.Tensor) -> NAMModel:
        """The plain model for a knob change mid-stream (default: :meth:`KnobModel.frozen`)."""
        return self.frozen(p)  # type: ignore[attr-defined]

    def stream_init(self, dtype: torch.dtype = torch.float32, params: Any = None) -> dict[str, Any]:
        p = self.stream_vector(params, dtype)  # type: ignore[attr-defined]
        net = self.frozen(p[0])  # type: ignore[attr-defined]
        return {"params": p, "net": net, "state": net.stream_init(dtype)}

    @torch.no_grad()
    def stream_block(self, x: torch.Tensor, state: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        y, state["state"] = state["net"].stream_block(x, state["state"])
        return y, state

    def stream_params(self, state: dict[str, Any], params: Any) -> dict[str, Any]:
        p = self.params_tensor(params, 1).to(state["params"].dtype)  # type: ignore[attr-defined]
        return {"params": p, "net": self.snapshot_for(p[0]), "state": state["state"]}


# ------------------------------------------------------------------------------------------------- CatLSTM


class NAMCatLSTM(StreamsThroughSnapshot, KnobModel):
    """NAM's CatLSTM: ``[x, p_1 .. p_K]`` per sample into stacked LSTM cells, a linear head. The initial state
    (``initial_hidden`` / ``initial_cell``) is trained, as NAMLSTM's; after :meth:`prepare_for_inference` a stream
    at a setting starts from the state silence settles to at that setting (NAM's CatLSTM settled at the defaults).
    """

    knob_architecture = "CatLSTM"
    stream_kind: StreamKind = "state"
    conditioning_per = "sample"  # the knob columns of the input weights, with every sample

    def __init__(self, num_knobs: int | None = None, hidden_size: int = 16, num_layers: int = 1,
                 knobs: KnobSet | Mapping[str, Any] | None = None) -> None:
        super().__init__(num_knobs, knobs)
        self.hidden_size = check_int(hidden_size, "hidden_size")
        self.num_layers = check_int(num_layers, "num_layers")
        self.core = nn.LSTM(1 + self.num_knobs, self.hidden_size, self.num_layers, batch_first=True)
        self.head = nn.Linear(self.hidden_size, 1)
        self.initial_hidden = nn.Parameter(torch.zeros(self.num_layers, self.hidden_size))
        self.initial_cell = nn.Parameter(torch.zeros(self.num_layers, self.hidden_size))
        # Samples of silence a stream settles on before it starts (0 until prepare_for_inference).
        self.register_buffer("settle_samples", torch.tensor(0))

    def config(self) -> dict[str, Any]:
        return {"num_knobs": self.num_knobs, "hidden_size": self.hidden_size, "num_layers": self.num_layers}

    @property
    def receptive_field(self) -> int:
        return 1

    def forward(self, x: torch.Tensor, params: torch.Tensor, pad_start: bool = False) -> torch.Tensor:
        del pad_start  # receptive field 1
        a = _audio(x)
        p = self.params_tensor(params, a.shape[0])
        inp = torch.cat([a, _tile(p, a.shape[-1])], dim=1).transpose(1, 2)  # (N, L, 1 + K)
        shape = (self.num_layers, a.shape[0], self.hidden_size)
        state = (self.initial_hidden.unsqueeze(1).expand(shape).contiguous(),
                 self.initial_cell.unsqueeze(1).expand(shape).contiguous())
        out, _ = self.core(inp, state)
        return self.head(out)[..., 0]

    def per_sample_macs(self) -> int:
        h = self.hidden_size
        per = lambda n_in: 4 * h * (n_in + h) + 3 * h  # noqa: E731  (as NAMLSTM counts)
        return int(per(1) + (self.num_layers - 1) * per(h) + h)

    def conditioning_macs(self) -> int:
        return 4 * self.hidden_size * self.num_knobs  # the knob columns of the first layer's input weights

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "hidden_size": self.hidden_size, "num_layers": self.num_layers}

    def device_ops(self) -> list[DeviceOp]:
        return [{"op_class": "LSTM", "hidden_size": self.hidden_size, "num_layers": self.num_layers,
                 "conditioning": "concat", **self.conditioning_op()}]

    def prepare_for_inference(self) -> None:
        """Streams and frozen snapshots start from the state silence settles to at their setting (NAM's trainer
        settles an LSTM on 48,000 zeros before export)."""
        self.settle_samples.fill_(48_000)

    @torch.no_grad()
    def frozen(self, params: Any, settle: bool = True) -> NAMLSTM:
        """NAMLSTM(input_size 1): the first layer's knob columns × values join its bias. ``settle``: start from the
        state silence settles to at this setting when the model was prepared for inference."""
        p = self.params_tensor(params, 1)[0]
        p0 = self.initial_hidden
        m = NAMLSTM(self.hidden_size, self.num_layers, 1).to(dtype=p0.dtype, device=p0.device)
        mine = self.state_dict()
        m.load_state_dict({k: mine[k] for k in m.state_dict() if k != "core.weight_ih_l0"}, strict=False)
        w = self.core.weight_ih_l0
        m.core.weight_ih_l0.copy_(w[:, :1])
        m.core.bias_ih_l0.copy_(self.core.bias_ih_l0 + w[:, 1:] @ p)
        if settle and int(self.settle_samples) > 0:
            m.settle_initial_state(int(self.settle_samples))
        return m

    def snapshot_for(self, p: torch.Tensor) -> NAMModel:
        return self.frozen(p, settle=False)  # a knob change keeps the running state: no re-settling

    def initial_stream_state(self) -> dict[str, torch.Tensor]:
        return {"h": self.initial_hidden, "c": self.initial_cell}

    def stream_metadata(self) -> dict[str, Any]:
        """Also the initial state and how many zeros a stream settles on at its setting before it starts (an
        exported file's host does what :meth:`stream_init` does)."""
        return {**super().stream_metadata(), "num_layers": self.num_layers, "hidden_size": self.hidden_size,
                "initial_h": self.initial_hidden.detach().double().tolist(),
                "initial_c": self.initial_cell.detach().double().tolist(),
                "settle_samples": int(self.settle_samples)}

    def streaming_module(self) -> nn.Module:
        return _CatLSTMStep(self)

    def streaming_twin(self, block_size: int) -> TwinPlan:
        """``params`` tiled over the block and concatenated to the audio (CONCATENATION of (1, B, 1) and
        (1, B, K)), one fused LSTM per layer, a Dense head. The fused op's state starts at zero; the host pre-warms it
        at the stream's setting (:class:`tinyverse.export.tflite_stream.TFLiteStreamProcessor`)."""
        p = TwinPlan([block_size, 1])
        p.add_input("params", [self.num_knobs])
        src = p.op("concat", "lstm_in", ["x", _twin_params_tiled(p, [block_size, self.num_knobs])], axis=-1)
        p.output = lstm_twin(p, src, self.core, self.head)
        return p

    def unavailable_exports(self) -> dict[str, str]:
        """No int16x8 TFLite: the converter cannot quantize the fused LSTM op to 16x8 (measured, TensorFlow 2.21)."""
        return {**super().unavailable_exports(),
                "tflite_int16": "TFLite's converter has no 16x8 quantization for the fused LSTM op "
                                "(\"Quantization to 16x8-bit not yet supported for op: UNIDIRECTIONAL_SEQUENCE_LSTM\")"}

    def twin_reference(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """From a zero state, as the fused LSTM op's variable starts."""
        zeros = torch.zeros(self.num_layers, x.shape[0], self.hidden_size, dtype=x.dtype)
        inp = torch.cat([x.unsqueeze(1), _tile(params.to(x.dtype), x.shape[-1])], dim=1).transpose(1, 2)
        out, _ = self.core(inp, (zeros, zeros))
        return self.head(out)[..., 0]


class _CatLSTMStep(nn.Module):
    """One block with explicit state, states batch-first: ``(x, params, h, c)`` → ``(y, h, c)``."""

    def __init__(self, model: NAMCatLSTM) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, params: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        m = self.model
        inp = torch.cat([x.unsqueeze(1), _tile(params, x.shape[-1])], dim=1).transpose(1, 2)
        out, (h1, c1) = m.core(inp, (h.transpose(0, 1).contiguous(), c.transpose(0, 1).contiguous()))
        return m.head(out)[..., 0], h1.transpose(0, 1), c1.transpose(0, 1)


# -------------------------------------------------------------------------------------------- WaveNets


def _mono_specs(layers: Sequence[dict[str, Any]], head_scale: float) -> list[LayerArraySpec]:
    """The plain (mono) layer arrays, validated as NAMWaveNet validates them (the chain of channels / heads)."""
    net = NAMWaveNet(copy.deepcopy(list(layers)), head_scale)
    for i, s in enumerate(net.specs):
        blockers = [k for k, v in (("groups_input", s.groups_input), ("groups_input_mixin", s.groups_input_mixin))
                    if v != 1]
        if blockers or s.films or s.allowed_channels is not None:
            what = ", ".join(blockers + list(s.films) + (["slimmable"] if s.allowed_channels is not None else []))
            raise ValueError(f"layer array {i}: {what} is not supported in a knob WaveNet's layers (give the plain "
                             "audio layers; the model adds the knob conditioning)")
    return net.specs


class _KnobWaveNet(KnobModel):
    """Layer arrays (Core's, :class:`WaveNetLayerArray`) whose input and condition a subclass builds from the
    audio and the knobs (:meth:`inputs`); ``y = head_scale · head`` as NAM's WaveNet."""

    def __init__(self, num_knobs: int | None, knobs: Any, layers: Sequence[dict[str, Any]] | None, preset: str,
                 head_scale: float, condition_size: int | None = None, knob_input: bool = True,
                 films: Sequence[str] = ()) -> None:
        """``condition_size``: channels of the condition (default 1 + K); ``knob_input``: the knobs join the
        first layer array's input as well; ``films``: FiLM points (on the condition) of every layer."""
        super().__init__(num_knobs, knobs)
        if layers is None and preset not in A1_WAVENET:
            raise ValueError(f"unknown preset {preset!r} (known: {', '.join(A1_WAVENET)})")
        self.layers_json = copy.deepcopy(list(layers)) if layers is not None else a1_wavenet_layers(preset)
        self.preset = preset if layers is None else None
        self.mono = _mono_specs(self.layers_json, head_scale)
        specs = copy.deepcopy(self.mono)
        for i, s in enumerate(specs):
            s.condition_size = 1 + self.num_knobs if condition_size is None else condition_size
            if i == 0 and knob_input:
                s.input_size = 1 + self.num_knobs
            s.films = {k: FiLMSpec(shift=True, groups=1) for k in films}
            s.validate(i)
        self.layer_arrays = nn.ModuleList(WaveNetLayerArray(s) for s in specs)
        self.register_buffer("head_scale", torch.tensor(float(head_scale)))
        self.config_head_scale = float(head_scale)

    def inputs(self, a: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(first layer array's input, condition) for audio (N, 1, L) and knobs (N, K)."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"num_knobs": self.num_knobs, "head_scale": self.config_head_scale}
        if self.preset is not None:
            out["preset"] = self.preset
        else:
            out["layers"] = copy.deepcopy(self.layers_json)
        return out

    @property
    def receptive_field(self) -> int:
        return 1 + sum(la.reach for la in self.layer_arrays)

    def forward_channels(self, a: torch.Tensor, p: torch.Tensor, hist: ConvHistory | None = None) -> torch.Tensor:
        hist = hist or ConvHistory()
        y, c = self.inputs(a, p)
        head = None
        for la in self.layer_arrays:
            y, head = la(y, c, head, hist)
        assert head is not None
        return self.head_scale * head

    def forward(self, x: torch.Tensor, params: torch.Tensor, pad_start: bool = False) -> torch.Tensor:
        a = _audio(x)
        p = self.params_tensor(params, a.shape[0])
        rf = self.receptive_field
        if pad_start:
            a = F.pad(a, (rf - 1, 0))
        y = self.forward_channels(a, p)
        return y[:, 0, y.shape[-1] - (a.shape[-1] - rf + 1):]

    def stream_init(self, dtype: torch.dtype = torch.float32, params: Any = None) -> dict[str, Any]:
        # Per-conv history buffers, pre-warmed on silence at this setting (as Core pre-warms a WaveNet).
        state = {"params": self.stream_vector(params, dtype), "buffers": []}
        self.stream_block(torch.zeros(1, self.receptive_field, dtype=dtype), state)
        return state

    @torch.no_grad()
    def stream_block(self, x: torch.Tensor, state: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        y = self.forward_channels(x.unsqueeze(1), state["params"], ConvHistory(state["buffers"]))
        return y[0, 0], state

    def stream_params(self, state: dict[str, Any], params: Any) -> dict[str, Any]:
        return {"params": self.params_tensor(params, 1).to(state["params"].dtype), "buffers": state["buffers"]}

    def audio_conv_macs(self) -> int:
        """Conv weights applied per sample (the knob-only parts are subtracted by the subclass)."""
        return sum(m.weight.numel() for la in self.layer_arrays for m in la.modules() if isinstance(m, nn.Conv1d))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "layer_arrays": len(self.layer_arrays),
                "activations": sorted({a.type for s in self.mono for a in s.activations}),
                "gated": any(g != "none" for s in self.mono for g in s.gating_modes)}

    def device_ops(self) -> list[DeviceOp]:
        d = self.describe()
        kernels = [k for s in self.mono for k in s.kernel_sizes]
        return [{"op_class": "WAVENET", "layer_arrays": d["layer_arrays"], "gated": d["gated"],
                 "kernel_size": max(kernels), "receptive_field": int(self.receptive_field),
                 "conditioning": self.conditioning_kind, **self.conditioning_op()}] + \
            [{"op_class": a.upper()} for a in d["activations"]]

    conditioning_kind: ClassVar[str] = ""

    # -- the TFLite twin ----------------------------------------------------------------------------------------
    def twin_blockers(self) -> list[str]:
        """What the twin (built for the A1 layer, as the plain WaveNet's) does not cover in the audio layers."""
        out = [f for s in self.mono for f in s.a1_blockers() if f != "per-layer kernel sizes"]
        return list(dict.fromkeys(out))

    def twin_condition(self, p: TwinPlan, length: int) -> tuple[str, str | None, str | None]:
        """(the first layer array's input, the condition as a signal or None, the condition as a per-block vector
        (1, condition_size) or None) in the twin ``p`` whose input ``x`` is ``length`` samples."""
        raise NotImplementedError

    def _twin_film(self, p: TwinPlan, cond_vec: str | None, layer: nn.Module, key: str, pre: str, part: str,
                   rows: slice) -> tuple[str, str | None] | None:
        """The per-block (scale, shift) vectors of ``layer``'s FiLM at ``key`` for its ``rows``, or None."""
        if cond_vec is None or key not in layer.films:
            return None
        f = layer.films[key]
        w, b = _np(f.conv.weight)[:, :, 0], _np(f.conv.bias)
        idx = np.arange(f.dim)[rows]
        scale = _twin_dense(p, f"{pre}_{key}{part}_s", cond_vec, w[idx], b[idx])
        shift = _twin_dense(p, f"{pre}_{key}{part}_t", cond_vec, w[f.dim + idx], b[f.dim + idx]) if f.shift else None
        return scale, shift

    @staticmethod
    def _twin_affine(p: TwinPlan, name: str, x: str, st: tuple[str, str | None], n: int, signal: bool) -> str:
        """``x * scale + shift``: a signal (scale / shift broadcast over time) or a (1, n) vector."""
        s, t = st
        if signal:
            s = _twin_over_time(p, f"{name}_sb", s, n)
            t = _twin_over_time(p, f"{name}_tb", t, n) if t is not None else None
        y = p.op("mul", f"{name}_mul", [x, s])
        return p.op("add", f"{name}_add", [y, t]) if t is not None else y

    def streaming_twin(self, block_size: int) -> TwinPlan:
        """The A1 layer arrays as the plain WaveNet's twin builds them (dilated CONV_2D, crops, gating, 1×1s, head
        rechannel with ``head_scale`` folded), on the condition :meth:`twin_condition` gives: a signal (CatWaveNet:
        the knobs tiled and concatenated to the audio) through the input mixins, or a per-block vector (FiLMWaveNet:
        the embedding) whose FiLM scales / shifts and mixin terms are computed once per block and broadcast."""
        blockers = self.twin_blockers()
        if blockers:
            raise AudioExportError(f"no streaming TFLite twin for this {self.knob_architecture}: {', '.join(blockers)}")
        length = block_size + self.receptive_field - 1
        p = TwinPlan([length, 1, 1])
        p.add_input("params", [self.num_knobs])
        y, cond_sig, cond_vec = self.twin_condition(p, length)
        head: str | None = None
        n_arrays, scale = len(self.layer_arrays), float(self.head_scale)
        for i, la in enumerate(self.layer_arrays):
            bn = int(la.spec.bottleneck)
            h = p.conv(f"a{i}_rechannel", y, _np(la.rechannel.weight), None)
            for j, layer in enumerate(la.layers):
                pre = f"a{i}_l{j}"
                act = TWIN_ACTIVATIONS[layer.activation.type]
                hin = h
                if (st := self._twin_film(p, cond_vec, layer, "conv_pre_film", pre, "", slice(None))) is not None:
                    hin = self._twin_affine(p, f"{pre}_conv_pre_film", h, st, la.spec.channels, True)
                w, b, mix = _np(layer.conv.weight), _np(layer.conv.bias), _np(layer.input_mixer.weight)
                parts = {"": slice(None)} if not layer.gated else {"_top": slice(0, bn), "_bot": slice(bn, 2 * bn)}
                z = {}
                for part, sl in parts.items():
                    rows = len(range(*sl.indices(w.shape[0])))
                    zc = p.conv(f"{pre}_conv{part}", hin, w[sl], b[sl], layer.dilation)
                    if (st := self._twin_film(p, cond_vec, layer, "conv_post_film", pre, part, sl)) is not None:
                        zc = self._twin_affine(p, f"{pre}_conv_post_film{part}", zc, st, rows, True)
                    terms = [zc]
                    if cond_sig is not None:  # the condition is a signal: the mixin is a 1×1 conv on it
                        cond = f"{pre}_cond"
                        if cond not in p.offset:
                            cond = p.crop(cond, cond_sig, p.offset[zc])
                        terms.append(p.conv(f"{pre}_mix{part}", cond, mix[sl], None))
                    if cond_vec is not None:  # a per-block vector: the mixin term is one too
                        terms.append(self._twin_mixin_vector(p, cond_vec, layer, pre, part, sl, mix[sl, :, 0]))
                    zz = p.op("add", f"{pre}_z{part}", terms)
                    if (st := self._twin_film(p, cond_vec, layer, "activation_pre_film", pre, part, sl)) is not None:
                        zz = self._twin_affine(p, f"{pre}_activation_pre_film{part}", zz, st, rows, True)
                    z[part] = zz
                if not layer.gated:
                    a = p.op("act", f"{pre}_act", [z[""]], fn=act)
                else:  # A1 gating: activation(top) × sigmoid(bottom)
                    top = p.op("act", f"{pre}_act_top", [z["_top"]], fn=act)
                    gate = p.op("act", f"{pre}_gate", [z["_bot"]], fn="sigmoid")
                    a = p.op("mul", f"{pre}_act", [top, gate])
                st = self._twin_film(p, cond_vec, layer, "activation_post_film", pre, "", slice(None))
                if st is not None:
                    a = self._twin_affine(p, f"{pre}_activation_post_film", a, st, bn, True)
                res = p.conv(f"{pre}_1x1", a, _np(layer.one_by_one.weight), _np(layer.one_by_one.bias))
                h = p.op("add", f"{pre}_out", [p.crop(f"{pre}_skip", h, p.offset[a]), res])
                head = a if head is None else p.op("add", f"{pre}_head",
                                                   [p.crop(f"{pre}_head_in", head, p.offset[a]), a])
            hw = _np(la.head_rechannel.weight)
            hb = _np(la.head_rechannel.bias) if la.head_rechannel.bias is not None else None
            if i == n_arrays - 1:  # fold y = head_scale · head into the last head conv
                hw, hb = hw * scale, (hb * scale if hb is not None else None)
            head = p.conv(f"a{i}_head_rechannel", head, hw, hb)
            y = h
        assert head is not None
        p.output = head
        return p

    def _twin_mixin_vector(self, p: TwinPlan, cond_vec: str, layer: nn.Module, pre: str, part: str, rows: slice,
                           mix: np.ndarray) -> str:
        """A constant condition's mixin term (with its FiLMs) for ``rows``, broadcast over time."""
        c = cond_vec
        if "input_mixin_pre_film" in layer.films:  # once per layer (a gated layer's two halves share it)
            shifted = layer.films["input_mixin_pre_film"].shift
            c = f"{pre}_input_mixin_pre_film_{'add' if shifted else 'mul'}"
            if c not in p.offset:
                st = self._twin_film(p, cond_vec, layer, "input_mixin_pre_film", pre, "", slice(None))
                c = self._twin_affine(p, f"{pre}_input_mixin_pre_film", cond_vec, st, 0, False)
        m = _twin_dense(p, f"{pre}_mixv{part}", c, mix)
        if (st := self._twin_film(p, cond_vec, layer, "input_mixin_post_film", pre, part, rows)) is not None:
            m = self._twin_affine(p, f"{pre}_input_mixin_post_film{part}", m, st, mix.shape[0], False)
        return _twin_over_time(p, f"{pre}_mixb{part}", m, mix.shape[0])

    def plain_wavenet(self) -> NAMWaveNet:
        """The plain WaveNet a freeze writes (the audio layer arrays), in this model's dtype."""
        p0 = self.head_scale
        return NAMWaveNet(copy.deepcopy(self.layers_json), self.config_head_scale).to(dtype=p0.dtype, device=p0.device)

    @torch.no_grad()
    def copy_knob_free_parts(self, m: NAMWaveNet) -> NAMWaveNet:
        """Copy into the plain WaveNet ``m`` what no knob reaches (each layer's 1x1 and head 1x1, each array's head
        rechannel, the head scale); a freeze folds the rest."""
        for kla, fla in zip(self.layer_arrays, m.layer_arrays):
            for kl, fl in zip(kla.layers, fla.layers):
                for name in ("one_by_one", "head1x1"):
                    src, dst = getattr(kl, name), getattr(fl, name)
                    if src is not None:
                        dst.load_state_dict(src.state_dict())
            fla.head_rechannel.load_state_dict(kla.head_rechannel.state_dict())
        m.head_scale.copy_(self.head_scale)
        return m


class NAMCatWaveNet(_KnobWaveNet):
    """NAM's CatWaveNet: ``[x, p_1 .. p_K]`` (the knobs tiled over time) is the WaveNet's input and condition, so
    layer array 0's rechannel and every layer's input mixin have K knob columns. ``layers``: the plain audio
    layer arrays (.nam layer-array objects with ``input_size`` / ``condition_size`` 1, e.g. an A1 preset's; the
    model widens them), or ``preset`` (an A1 WaveNet preset)."""

    knob_architecture = "CatWaveNet"
    conditioning_kind = "concat"
    conditioning_per = "sample"  # knob channels of the rechannel and every mixin, with every sample

    def __init__(self, num_knobs: int | None = None, layers: Sequence[dict[str, Any]] | None = None,
                 preset: str = "nano", head_scale: float = 0.02,
                 knobs: KnobSet | Mapping[str, Any] | None = None) -> None:
        super().__init__(num_knobs, knobs, layers, preset, head_scale)

    def inputs(self, a: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = torch.cat([a, _tile(p, a.shape[-1])], dim=1)
        return c, c

    def twin_condition(self, p: TwinPlan, length: int) -> tuple[str, str | None, str | None]:
        """``[x, p_1 .. p_K]``: the knobs tiled over the input and concatenated to it, as the torch model."""
        c = p.op("concat", "cond", ["x", _twin_params_tiled(p, [length, 1, self.num_knobs])], axis=-1)
        return c, c, None

    def per_sample_macs(self) -> int:
        return int(self.audio_conv_macs() - self.conditioning_macs() + 1)  # + head_scale

    def conditioning_macs(self) -> int:
        k = self.num_knobs
        rechannel = self.layer_arrays[0].rechannel.weight.shape[0] * k
        return int(rechannel + sum(layer.input_mixer.weight.shape[0] * k
                                   for la in self.layer_arrays for layer in la.layers))

    @torch.no_grad()
    def frozen(self, params: Any) -> NAMWaveNet:
        """A plain WaveNet: the mixin's knob columns × values join each conv's bias; the rechannel's knob columns
        give the residual stream a constant offset ``v``, which each later conv sums over its taps
        (``Σ_k W_k · v``) into its bias, and the next array's rechannel carries on (exact everywhere, the zero
        history before a stream included)."""
        p = self.params_tensor(params, 1)[0]
        m = self.plain_wavenet()
        v: torch.Tensor | None = None
        for i, (kla, fla) in enumerate(zip(self.layer_arrays, m.layer_arrays)):
            r = kla.rechannel.weight[:, :, 0]
            if i == 0:
                fla.rechannel.weight.copy_(r[:, :1, None])
                v = r[:, 1:] @ p
            else:
                fla.rechannel.weight.copy_(kla.rechannel.weight)
                v = r @ v
            for kl, fl in zip(kla.layers, fla.layers):
                w, mix = kl.conv.weight, kl.input_mixer.weight[:, :, 0]
                fl.conv.weight.copy_(w)
                fl.conv.bias.copy_(kl.conv.bias + w.sum(-1) @ v + mix[:, 1:] @ p)
                fl.input_mixer.weight.copy_(mix[:, :1, None])
        return self.copy_knob_free_parts(m)


class NAMFiLMWaveNet(_KnobWaveNet):
    """A knob embedding ``e = W2 · tanh(W1 · p + b1) + b2`` (``embedding_size`` channels, ``hidden_size`` units) is
    the condition of the audio layer arrays: at each layer's FiLM points (``films``, Core's hook names; default
    before the activation) a 1×1 conv of ``e`` gives a per-channel scale and shift (A2's FiLM), and the input mixin
    turns ``e`` into a knob-dependent bias. The audio enters through the rechannel only. FiLMs start as identity
    (scale 1, shift 0)."""

    knob_architecture = "FiLMWaveNet"
    conditioning_kind = "film"

    def __init__(self, num_knobs: int | None = None, layers: Sequence[dict[str, Any]] | None = None,
                 preset: str = "nano", head_scale: float = 0.02, embedding_size: int = 4, hidden_size: int = 8,
                 films: Sequence[str] = ("activation_pre_film",),
                 knobs: KnobSet | Mapping[str, Any] | None = None) -> None:
        bad = [f for f in films if f not in FILM_POINTS]
        if bad or not films:
            raise ValueError(f"films: {', '.join(bad) or 'none given'}: choose FiLM points among "
                             f"{', '.join(FILM_POINTS)}")
        embedding_size = check_int(embedding_size, "embedding_size")
        super().__init__(num_knobs, knobs, layers, preset, head_scale, condition_size=embedding_size,
                         knob_input=False, films=list(dict.fromkeys(films)))
        self.films = list(dict.fromkeys(films))
        self.embedding_size = embedding_size
        self.hidden_size = check_int(hidden_size, "hidden_size")
        self.embed = nn.Sequential(nn.Linear(self.num_knobs, self.hidden_size), nn.Tanh(),
                                   nn.Linear(self.hidden_size, self.embedding_size))
        with torch.no_grad():  # identity FiLMs at the start, the knobs' influence grows with training
            for la in self.layer_arrays:
                for layer in la.layers:
                    for film in layer.films.values():
                        film.conv.weight.mul_(0.1)
                        film.conv.bias.zero_()
                        film.conv.bias[: film.dim].fill_(1.0)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "embedding_size": self.embedding_size, "hidden_size": self.hidden_size,
                "films": list(self.films)}

    def embedding(self, p: torch.Tensor) -> torch.Tensor:
        return self.embed(p)

    def twin_condition(self, p: TwinPlan, length: int) -> tuple[str, str | None, str | None]:
        """The audio alone into the rechannel; the embedding ``W2 · tanh(W1 · p + b1) + b2`` once per block."""
        first, last = self.embed[0], self.embed[2]
        hidden = _twin_dense(p, "embed_hidden", "params", _np(first.weight), _np(first.bias), activation="tanh")
        return "x", None, _twin_dense(p, "embed", hidden, _np(last.weight), _np(last.bias))

    def inputs(self, a: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return a, _tile(self.embed(p), a.shape[-1])

    def per_sample_macs(self) -> int:
        # Convs on the audio path, plus one multiply-add per channel a FiLM scales (scale and shift per block).
        mixers = sum(layer.input_mixer.weight.numel() for la in self.layer_arrays for layer in la.layers)
        film_convs = sum(f.conv.weight.numel() for la in self.layer_arrays for layer in la.layers
                         for f in layer.films.values())
        film_apply = sum(f.dim for la in self.layer_arrays for layer in la.layers for f in layer.films.values())
        return int(self.audio_conv_macs() - mixers - film_convs + film_apply + 1)

    def conditioning_macs(self) -> int:
        mlp = sum(m.weight.numel() for m in self.embed if isinstance(m, nn.Linear))
        per_layer = sum(layer.input_mixer.weight.numel() + sum(f.conv.weight.numel() for f in layer.films.values())
                        for la in self.layer_arrays for layer in la.layers)
        return int(mlp + per_layer)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "films": list(self.films), "embedding_size": self.embedding_size}

    @torch.no_grad()
    def frozen(self, params: Any) -> NAMWaveNet:
        """A plain (A1) WaveNet: with the knobs fixed, ``e`` and every FiLM's scale ``s`` / shift ``t`` are
        constants. Before the activation they fold exactly: ``conv_pre_film`` scales the conv's input columns
        (``t`` summed over the taps joins the bias), ``conv_post_film`` / ``activation_pre_film`` scale the conv's
        rows and bias (plus ``t``), the mixin term ``M · e`` (with its FiLMs) joins the bias. After the activation
        a FiLM scales each layer's head contribution before the layer arrays sum them into one head conv, which
        A1 cannot express: refused (:class:`FreezeError`)."""
        unfoldable = [f for f in self.films if f not in FOLDABLE_FILMS]
        if unfoldable:
            raise FreezeError(f"cannot freeze a FiLMWaveNet with {', '.join(unfoldable)}: a scale after the "
                              "activation reaches the head, which sums every layer before one head conv, so no plain "
                              f"WaveNet computes it exactly (foldable: {', '.join(FOLDABLE_FILMS)})")
        p = self.params_tensor(params, 1)
        e = self.embed(p)[0]
        m = self.plain_wavenet()

        def film(layer: nn.Module, key: str) -> tuple[torch.Tensor, torch.Tensor] | None:
            if key not in layer.films:
                return None
            f = layer.films[key]
            ss = f.conv.weight[:, :, 0] @ e + f.conv.bias
            return ss[: f.dim], (ss[f.dim:] if f.shift else torch.zeros_like(ss[: f.dim]))

        for kla, fla in zip(self.layer_arrays, m.layer_arrays):
            fla.rechannel.weight.copy_(kla.rechannel.weight)
            for kl, fl in zip(kla.layers, fla.layers):
                w, b = kl.conv.weight.clone(), kl.conv.bias.clone()
                if (st := film(kl, "conv_pre_film")) is not None:
                    b = b + w.sum(-1) @ st[1]
                    w = w * st[0][None, :, None]
                if (st := film(kl, "conv_post_film")) is not None:
                    w, b = w * st[0][:, None, None], b * st[0] + st[1]
                c = e
                if (st := film(kl, "input_mixin_pre_film")) is not None:
                    c = c * st[0] + st[1]
                mix = kl.input_mixer.weight[:, :, 0] @ c
                if (st := film(kl, "input_mixin_post_film")) is not None:
                    mix = mix * st[0] + st[1]
                b = b + mix
                if (st := film(kl, "activation_pre_film")) is not None:
                    w, b = w * st[0][:, None, None], b * st[0] + st[1]
                fl.conv.weight.copy_(w)
                fl.conv.bias.copy_(b)
                fl.input_mixer.weight.zero_()  # the plain model's mixin reads the audio, which this model never did
        return self.copy_knob_free_parts(m)


# -------------------------------------------------------------------------------------------- HyperConvNet


class NAMHyperConvNet(StreamsThroughSnapshot, KnobModel):
    """NAM's HyperConvNet: an MLP (``hyper_layers`` hidden layers of ``hyper_units`` with ReLU, then a linear
    layer) maps the knobs to every weight of a ConvNet (``channels``, ``dilations``, kernel 2, ``activation``, a
    1×1 head), followed by a trainable affine per generated tensor (NAM's was per weight, which only repeats the
    output layer's bias and row scale; per tensor, the parameter budget goes to the MLP). At the start each
    generated tensor is PyTorch's default conv init plus a knob-dependent part a quarter of its spread (NAM scaled
    the MLP's output to the init's spread). The MLP runs once per example (training) or per knob change
    (streaming); the generated net runs per sample."""

    knob_architecture = "HyperConvNet"
    conditioning_per = "block"  # the hypernet, once per block

    def __init__(self, num_knobs: int | None = None, channels: int = 4,
                 dilations: Sequence[int] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512), activation: str = "Tanh",
                 hyper_units: int = 8, hyper_layers: int = 1,
                 knobs: KnobSet | Mapping[str, Any] | None = None) -> None:
        super().__init__(num_knobs, knobs)
        self.channels = check_int(channels, "channels")
        if not isinstance(dilations, (list, tuple)) or not dilations:
            raise ValueError("dilations must be a non-empty list")
        self.dilations = [check_int(d, "dilations") for d in dilations]
        self.activation = NamActivation.from_json(activation, "activation")
        self.hyper_units = check_int(hyper_units, "hyper_units")
        self.hyper_layers = check_int(hyper_layers, "hyper_layers", 0)
        c = self.channels
        # The generated tensors, in NAM ConvNet weight order: per block conv weight and bias, then the head.
        self.shapes: list[tuple[int, ...]] = []
        for i in range(len(self.dilations)):
            self.shapes += [(c, 1 if i == 0 else c, 2), (c,)]
        self.shapes += [(1, c, 1), (1,)]
        numels = [math.prod(s) for s in self.shapes]
        fans = [f for i in range(len(self.dilations)) for f in [2 * (1 if i == 0 else c)] * 2] + [c, c]
        layers: list[nn.Module] = []
        d_in = self.num_knobs
        for _ in range(self.hyper_layers):
            layers += [nn.Linear(d_in, self.hyper_units), nn.ReLU()]
            d_in = self.hyper_units
        layers.append(nn.Linear(d_in, sum(numels)))
        self.hyper = nn.Sequential(*layers)
        with torch.no_grad():
            # Each generated tensor starts as PyTorch's default conv init (the output layer's bias, uniform within
            # ±1/√fan_in) plus a knob-dependent part a quarter of that spread (its rows rescaled, measured over
            # knob vectors drawn uniformly from [0, 1]).
            probe = torch.rand(4096, self.num_knobs, generator=torch.Generator().manual_seed(0))
            for layer in self.hyper[:-1]:
                if isinstance(layer, nn.Linear):  # every ReLU unit starts alive over the knob range (few units)
                    layer.bias.copy_(0.5 - layer.weight @ probe.mean(dim=0))
                probe = layer(probe)
            out, pos = self.hyper[-1], 0
            for n, fan_in in zip(numels, fans):
                bound = 1.0 / math.sqrt(fan_in)
                rows = slice(pos, pos + n)
                spread = float((probe @ out.weight[rows].T).std(dim=0).mean())
                out.weight[rows] *= 0.25 * bound / math.sqrt(3.0) / max(spread, 1e-12)
                out.bias[rows].uniform_(-bound, bound)
                pos += n
        self.affine_scale = nn.Parameter(torch.ones(len(self.shapes)))
        self.affine_shift = nn.Parameter(torch.zeros(len(self.shapes)))
        self.numels = numels

    def state_values(self) -> int:
        """Streaming history of the generated kernel-2 convs: in_channels x dilation each."""
        return int(sum((1 if i == 0 else self.channels) * d for i, d in enumerate(self.dilations)))

    def config(self) -> dict[str, Any]:
        return {"num_knobs": self.num_knobs, "channels": self.channels, "dilations": list(self.dilations),
                "activation": self.activation.type, "hyper_units": self.hyper_units, "hyper_layers": self.hyper_layers}

    @property
    def receptive_field(self) -> int:
        return 1 + sum(self.dilations)

    def generate(self, p: torch.Tensor) -> list[torch.Tensor]:
        """The ConvNet's tensors for knobs (N, K): each (N, *shape), in NAM ConvNet weight order."""
        flat = self.hyper(p)
        out, pos = [], 0
        for i, (shape, n) in enumerate(zip(self.shapes, self.numels)):
            out.append((flat[:, pos:pos + n] * self.affine_scale[i] + self.affine_shift[i]).reshape(p.shape[0], *shape))
            pos += n
        return out

    def forward(self, x: torch.Tensor, params: torch.Tensor, pad_start: bool = False) -> torch.Tensor:
        a = _audio(x)
        n = a.shape[0]
        p = self.params_tensor(params, n)
        if pad_start:
            a = F.pad(a, (self.receptive_field - 1, 0))
        t = self.generate(p)
        h = a  # (N, C_in, L): each example through its own net, as one grouped conv (NAM's depthwise trick)
        for i, d in enumerate(self.dilations):
            w, b = t[2 * i], t[2 * i + 1]
            cout, cin = w.shape[1], w.shape[2]
            h = F.conv1d(h.reshape(1, n * cin, -1), w.reshape(n * cout, cin, 2), b.reshape(-1), dilation=d, groups=n)
            h = self.activation(h.reshape(n, cout, -1))
        w, b = t[-2], t[-1]
        y = F.conv1d(h.reshape(1, n * self.channels, -1), w.reshape(n, self.channels, 1), b.reshape(-1), groups=n)
        return y.reshape(n, -1)

    def per_sample_macs(self) -> int:
        return int(sum(math.prod(s) for s in self.shapes if len(s) == 3))

    def conditioning_macs(self) -> int:
        return int(sum(m.weight.numel() for m in self.hyper if isinstance(m, nn.Linear)) + sum(self.numels))  # + affine

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "channels": self.channels, "blocks": len(self.dilations),
                "activations": [self.activation.type], "hyper_units": self.hyper_units}

    def device_ops(self) -> list[DeviceOp]:
        return [{"op_class": "CONVNET", "channels": self.channels, "blocks": len(self.dilations), "kernel_size": 2,
                 "receptive_field": int(self.receptive_field), "conditioning": "hypernet", **self.conditioning_op()},
                {"op_class": self.activation.type.upper()}]

    def streaming_module(self) -> nn.Module:
        """``(x, params)`` → y for any batch: each generated conv as a batched matmul (the training forward's grouped
        conv has the batch in its group count, which an exported graph would fix)."""
        return _HyperValidMode(self)

    def twin_blockers(self) -> list[str]:
        return [] if self.activation.type in TWIN_ACTIVATIONS else [f"{self.activation.type} activation"]

    def generated_rows(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per generated tensor, the hypernet's output layer (weight rows, bias) with the tensor's affine folded in:
        the tensor is ``rows · hidden + bias`` (flattened in the tensor's order)."""
        out, w, b, pos = [], _np(self.hyper[-1].weight), _np(self.hyper[-1].bias), 0
        for i, n in enumerate(self.numels):
            scale, shift = float(self.affine_scale[i].detach()), float(self.affine_shift[i].detach())
            out.append((w[pos:pos + n] * scale, b[pos:pos + n] * scale + shift))
            pos += n
        return out

    def streaming_twin(self, block_size: int) -> TwinPlan:
        """The hypernetwork once per block (FULLY_CONNECTED on ``params``); each generated kernel-2 conv as a constant
        CONV_2D that stacks its two taps (weights 0 / 1: exact in int8) times the generated (2·C_in, C_out) matrix
        (BATCH_MATMUL of two activations) plus the generated bias; the head the same way."""
        blockers = self.twin_blockers()
        if blockers:
            raise AudioExportError(f"no streaming TFLite twin for this HyperConvNet: {', '.join(blockers)}")
        length = block_size + self.receptive_field - 1
        p = TwinPlan([length, 1, 1])
        src = p.add_input("params", [self.num_knobs])
        for i, layer in enumerate(self.hyper[:-1]):
            if isinstance(layer, nn.Linear):  # each hidden Linear is followed by its ReLU
                src = _twin_dense(p, f"hyper{i}", src, _np(layer.weight), _np(layer.bias), activation="relu")
        gen = self.generated_rows()
        act = TWIN_ACTIVATIONS[self.activation.type]
        h, cin, cur, c = "x", 1, length, self.channels
        for i, d in enumerate(self.dilations):
            (ww, wb), (bw, bb) = gen[2 * i], gen[2 * i + 1]
            co, ci, k = np.meshgrid(np.arange(c), np.arange(cin), np.arange(2), indexing="ij")
            perm = np.empty(2 * cin * c, np.int64)  # matrix row k·C_in + ci, column co ← w[co, ci, k]
            perm[((k * cin + ci) * c + co).ravel()] = (co * cin * 2 + ci * 2 + k).ravel()
            wm = p.op("reshape", f"b{i}_wmat", [_twin_dense(p, f"b{i}_wgen", src, ww[perm], wb[perm])],
                      shape=[2 * cin, c])
            bias = _twin_over_time(p, f"b{i}_bias", _twin_dense(p, f"b{i}_bgen", src, bw, bb), c)
            sel = np.zeros((2 * cin, cin, 2))
            for tap in range(2):
                sel[tap * cin + np.arange(cin), np.arange(cin), tap] = 1.0
            taps = p.conv(f"b{i}_taps", h, sel, None, d)
            cur -= d
            mm = p.op("matmul", f"b{i}_mm", [p.op("reshape", f"b{i}_taps3", [taps], shape=[cur, 2 * cin]), wm])
            z = p.op("add", f"b{i}_z", [p.op("reshape", f"b{i}_mm4", [mm], shape=[cur, 1, c]), bias])
            h, cin = p.op("act", f"b{i}_act", [z], fn=act), c
        (hw, hb), (bw, bb) = gen[-2], gen[-1]
        wm = p.op("reshape", "head_wmat", [_twin_dense(p, "head_wgen", src, hw, hb)], shape=[c, 1])
        y = p.op("matmul", "head_mm", [p.op("reshape", "head_in", [h], shape=[cur, c]), wm])
        bias = p.op("reshape", "head_bias", [_twin_dense(p, "head_bgen", src, bw, bb)], shape=[1, 1])
        p.output = p.op("add", "head", [y, bias])
        return p

    @torch.no_grad()
    def frozen(self, params: Any) -> NAMConvNet:
        """NAM's ConvNet with the generated weights (Core reads ``"architecture": "ConvNet"``)."""
        p = self.params_tensor(params, 1)
        m = NAMConvNet(self.channels, self.dilations, False, self.activation.to_json()).to(dtype=p.dtype,
                                                                                         device=p.device)
        m.import_weights(torch.cat([t.reshape(-1) for t in self.generate(p)]))
        return m


class _HyperValidMode(nn.Module):
    def __init__(self, model: NAMHyperConvNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        m = self.model
        t = m.generate(params)
        h = x.unsqueeze(1)
        for i, d in enumerate(m.dilations):
            w, b = t[2 * i], t[2 * i + 1]  # (N, C_out, C_in, 2), (N, C_out)
            taps = torch.cat([h[..., :-d], h[..., d:]], dim=1)  # tap 0 (d samples back), then tap 1 (now)
            h = m.activation(torch.bmm(torch.cat([w[..., 0], w[..., 1]], dim=2), taps) + b.unsqueeze(-1))
        w, b = t[-2], t[-1]  # (N, 1, C, 1), (N, 1)
        return (torch.bmm(w[..., 0], h) + b.unsqueeze(-1))[:, 0]
