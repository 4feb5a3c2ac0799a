"""PyTorch modules that compute exactly what NeuralAmpModelerCore computes for a .nam file.

Each module keeps NAM's conventions:

* ``forward(x)`` takes ``(N, L)`` or ``(N, 1, L)`` and returns ``(N, L_out)``. WaveNet / Linear run in
  "valid" mode (``L_out = L - receptive_field + 1``), as NAM's trainer does; ``forward(x, pad_start=True)``
  prepends ``receptive_field - 1`` zeros so that ``L_out = L``, which is what the C++ engine outputs
  for a stream that starts after its zero pre-warm.
* ``import_weights`` / ``export_weights`` use exactly the order of the .nam ``"weights"`` array.
* ``nam_config()`` returns the .nam ``"config"`` object (0.5.x layout) and ``nam_architecture`` the
  ``"architecture"`` string.
* Each module implements the model contract (:mod:`tinyverse.models.contract`): cost, device ops, the stream
  hooks, the streaming ONNX graph and the TFLite twin live with the class, so no caller branches on it.

Modules are ordinary float32 modules (trainable); call ``.double()`` for reference-accuracy renders.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from tinyverse.audio.twin import TWIN_ACTIVATIONS, AudioExportError, TwinPlan
from tinyverse.models.contract import DeviceOp, ModelCost, StreamKind

__all__ = [
    "CORE_ACTIVATIONS",
    "NAMLSTM",
    "NAMLinear",
    "NAMModel",
    "NAMWaveNet",
    "NamWeightError",
    "fast_tanh",
    "render",
]


class NamWeightError(ValueError):
    """Raised when a flat weight list does not fit a model."""


def fast_tanh(x: torch.Tensor) -> torch.Tensor:
    """The rational tanh approximation of Core's ``fast_tanh`` (used for "Fasttanh", and for "Tanh"
    when a plugin enables fast tanh)."""
    ax = x.abs()
    x2 = x * x
    num = x * (2.45550750702956 + 2.45550750702956 * ax + (0.893229853513558 + 0.821226666969744 * ax) * x2)
    den = 2.44506634652299 + (2.44506634652299 + x2) * (x + 0.814642734961073 * x * ax).abs()
    return num / den


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

    def nam_config(self) -> dict[str, Any]:
        raise NotImplementedError

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

    def prepare_for_inference(self) -> None:
        """Nothing to do for a context model."""


# ---------------------------------------------------------------------------------------------- WaveNet


class _WaveNetLayer(nn.Module):
    def __init__(
        self,
        condition_size: int,
        channels: int,
        kernel_size: int,
        dilation: int,
        activation: str,
        gated: bool,
        legacy_gating: bool,
    ) -> None:
        super().__init__()
        mid = 2 * channels if gated else channels
        self.channels = channels
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.activation = activation
        self.gated = gated
        self.legacy_gating = legacy_gating
        self.conv = nn.Conv1d(channels, mid, kernel_size, dilation=dilation, bias=True)
        self.input_mixer = nn.Conv1d(condition_size, mid, 1, bias=False)
        self.one_by_one = nn.Conv1d(channels, channels, 1, bias=True)

    @property
    def reach(self) -> int:
        return self.dilation * (self.kernel_size - 1)

    def ordered_tensors(self) -> list[torch.Tensor]:
        return [self.conv.weight, self.conv.bias, self.input_mixer.weight, self.one_by_one.weight, self.one_by_one.bias]

    def forward(self, x: torch.Tensor, c: torch.Tensor, act: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.conv(x)  # valid conv: output sample n sees x[n - d(K-1) .. n]
        z = z + self.input_mixer(c[..., -z.shape[-1] :])
        if not self.gated:
            a = act(z)
        elif self.legacy_gating:
            # Core up to the 0.5.x-era engine applies the activation to all 2C rows, then sigmoid to the
            # bottom half: act(top) * sigmoid(act(bottom)).
            a = act(z)
            a = a[:, : self.channels] * torch.sigmoid(a[:, self.channels :])
        else:
            a = act(z[:, : self.channels]) * torch.sigmoid(z[:, self.channels :])
        return x[..., -a.shape[-1] :] + self.one_by_one(a), a


class _WaveNetLayerArray(nn.Module):
    def __init__(
        self,
        input_size: int,
        condition_size: int,
        head_size: int,
        channels: int,
        kernel_size: int,
        dilations: Sequence[int],
        activation: str,
        gated: bool,
        head_bias: bool,
        legacy_gating: bool,
    ) -> None:
        super().__init__()
        self.config = {
            "input_size": int(input_size),
            "condition_size": int(condition_size),
            "head_size": int(head_size),
            "channels": int(channels),
            "kernel_size": int(kernel_size),
            "dilations": [int(d) for d in dilations],
            "activation": activation,
            "gated": bool(gated),
            "head_bias": bool(head_bias),
        }
        self.rechannel = nn.Conv1d(input_size, channels, 1, bias=False)
        self.layers = nn.ModuleList(
            _WaveNetLayer(condition_size, channels, kernel_size, d, activation, gated, legacy_gating) for d in dilations
        )
        self.head_rechannel = nn.Conv1d(channels, head_size, 1, bias=head_bias)

    @property
    def reach(self) -> int:
        return sum(layer.reach for layer in self.layers)

    def ordered_tensors(self) -> list[torch.Tensor]:
        out = [self.rechannel.weight]
        for layer in self.layers:
            out += layer.ordered_tensors()
        out.append(self.head_rechannel.weight)
        if self.head_rechannel.bias is not None:
            out.append(self.head_rechannel.bias)
        return out

    def forward(
        self, x: torch.Tensor, c: torch.Tensor, head_in: torch.Tensor | None, act: Callable[[torch.Tensor], torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.rechannel(x)
        head = head_in
        for layer in self.layers:
            x, a = layer(x, c, act)
            head = a if head is None else head[..., -a.shape[-1] :] + a
        assert head is not None
        return x, self.head_rechannel(head)


class NAMWaveNet(NAMModel):
    """NAM's WaveNet (A1 layout): layer arrays chained by residual and head paths, ``y = head_scale * head``.

    ``layers`` is the list of layer-array dicts of the .nam config (keys ``input_size``,
    ``condition_size``, ``head_size``, ``channels``, ``kernel_size``, ``dilations``, ``activation``,
    ``gated``, ``head_bias``). ``legacy_gating`` reproduces the gated-activation order of the old C++
    engine (see ``_WaveNetLayer.forward``); it only matters when ``gated`` is true.
    ``fast_tanh`` renders "Tanh" with Core's approximation, as the plugin does when it enables fast tanh.
    """

    nam_architecture = "WaveNet"

    def __init__(
        self,
        layers: Sequence[dict[str, Any]],
        head_scale: float = 0.02,
        *,
        legacy_gating: bool = False,
        fast_tanh: bool = False,
    ) -> None:
        super().__init__()
        if len(layers) == 0:
            raise ValueError("NAMWaveNet needs at least one layer array")
        arrays = []
        for i, la in enumerate(layers):
            act = la.get("activation", "Tanh")
            if act not in CORE_ACTIVATIONS:
                raise ValueError(f"layer array {i}: activation {act!r} is not one of {sorted(CORE_ACTIVATIONS)}")
            if i > 0 and la["channels"] != layers[i - 1]["head_size"]:
                # Core feeds array i-1's head output into array i's head accumulator.
                raise ValueError(
                    f"layer array {i}: channels ({la['channels']}) must equal head_size of array {i - 1} "
                    f"({layers[i - 1]['head_size']})"
                )
            arrays.append(
                _WaveNetLayerArray(
                    la["input_size"],
                    la["condition_size"],
                    la["head_size"],
                    la["channels"],
                    la["kernel_size"],
                    la["dilations"],
                    act,
                    la.get("gated", False),
                    la.get("head_bias", False),
                    legacy_gating,
                )
            )
        if layers[-1]["head_size"] != 1:
            raise ValueError(f"the last layer array's head_size must be 1 (mono output), got {layers[-1]['head_size']}")
        self.layer_arrays = nn.ModuleList(arrays)
        self.fast_tanh = fast_tanh
        # NAM's trainer does not train head_scale; a buffer keeps it with the state dict and the dtype.
        self.register_buffer("head_scale", torch.tensor(float(head_scale)))
        # Core takes head_scale from the weights; the config copy is informative. Remember the config's
        # spelling (e.g. 0.02 vs float32(0.02)) so an unchanged model writes its config back verbatim.
        self._config_head_scale = float(head_scale)

    @property
    def receptive_field(self) -> int:
        return 1 + sum(la.reach for la in self.layer_arrays)

    @property
    def num_weights(self) -> int:
        return sum(t.numel() for t in self._ordered_tensors())

    def _ordered_tensors(self) -> list[torch.Tensor]:
        out: list[torch.Tensor] = []
        for la in self.layer_arrays:
            out += la.ordered_tensors()
        out.append(self.head_scale.reshape(1))
        return out

    def nam_config(self) -> dict[str, Any]:
        return {
            "layers": [dict(la.config, dilations=list(la.config["dilations"])) for la in self.layer_arrays],
            "head": None,
            "head_scale": self._config_head_scale
            if torch.tensor(self._config_head_scale, dtype=self.head_scale.dtype) == self.head_scale
            else float(self.head_scale),
        }

    def _activation(self, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
        if self.fast_tanh and name == "Tanh":
            return fast_tanh
        return CORE_ACTIVATIONS[name]

    def _macs_per_sample(self) -> int:
        total = 0
        for la in self.layer_arrays:
            c = la.config
            ch, mid = c["channels"], c["channels"] * (2 if c["gated"] else 1)
            total += c["input_size"] * ch  # rechannel
            for _ in c["dilations"]:
                total += ch * mid * c["kernel_size"] + c["condition_size"] * mid + ch * ch
            total += ch * c["head_size"]  # head rechannel
        return int(total + 1)  # head_scale

    def describe(self) -> dict[str, Any]:
        return {"architecture": self.nam_architecture,
                "activations": sorted({la.config["activation"] for la in self.layer_arrays}),
                "gated": any(la.config["gated"] for la in self.layer_arrays),
                "layer_arrays": len(self.layer_arrays),
                "kernel_sizes": sorted({la.config["kernel_size"] for la in self.layer_arrays})}

    def device_ops(self) -> list[DeviceOp]:
        d = self.describe()
        ops: list[DeviceOp] = [{"op_class": "WAVENET", "layer_arrays": d["layer_arrays"], "gated": d["gated"],
                                "kernel_size": max(d["kernel_sizes"]), "receptive_field": int(self.receptive_field)}]
        return ops + [{"op_class": a.upper()} for a in d["activations"]]

    def stream_init(self, dtype: torch.dtype = torch.float32) -> list[list[torch.Tensor]]:
        # One buffer per layer: the last dilation·(K−1) samples of that layer's input (Core's ring buffers).
        buffers = [[torch.zeros(1, la.config["channels"], layer.reach, dtype=dtype) for layer in la.layers]
                   for la in self.layer_arrays]
        # Pre-warm on silence as Core does: deeper layers see biases, not zeros, before the stream starts.
        self.stream_block(torch.zeros(1, self.receptive_field, dtype=dtype), buffers)
        return buffers

    @torch.no_grad()
    def stream_block(self, x: torch.Tensor, state: list[list[torch.Tensor]]) -> tuple[torch.Tensor, Any]:
        c = x.unsqueeze(1)  # (1, 1, B) conditions every layer
        y, head = c, None
        for la, bufs in zip(self.layer_arrays, state):
            act = self._activation(la.config["activation"])
            h = la.rechannel(y)
            for k, layer in enumerate(la.layers):
                full = torch.cat([bufs[k], h], dim=2)
                if layer.reach:
                    bufs[k] = full[..., -layer.reach:]
                h, a = layer(full, c, act)
                head = a if head is None else head + a
            y, head = h, la.head_rechannel(head)
        return (self.head_scale * head)[0, 0], state

    def streaming_twin(self, block_size: int) -> TwinPlan:
        """Every dilated conv is one CONV_2D with a (K, 1) kernel and a dilation factor, 1×1 convs are CONV_2D,
        the residual / head / condition alignment are crops, gating is LOGISTIC + MUL, ``head_scale`` is folded
        into the last head conv. Input: the block plus its ``receptive_field − 1`` samples of context."""
        p = TwinPlan([block_size + self.receptive_field - 1, 1, 1])
        y, head = "x", None
        n_arrays = len(self.layer_arrays)
        scale = float(self.head_scale)
        for i, la in enumerate(self.layer_arrays):
            cfg = la.config
            act = TWIN_ACTIVATIONS["Fasttanh" if self.fast_tanh and cfg["activation"] == "Tanh" else cfg["activation"]]
            ch = cfg["channels"]
            h = p.conv(f"a{i}_rechannel", y, _np(la.rechannel.weight), None)
            for j, layer in enumerate(la.layers):
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

    @torch.no_grad()
    def import_weights(self, flat: Sequence[float]) -> None:
        reader = _FlatReader(flat, self.num_weights, "WaveNet")
        for t in self._ordered_tensors()[:-1]:
            reader.fill(t)
        self.head_scale.fill_(float(reader.take(1)[0]))

    def export_weights(self) -> list[float]:
        return _flatten(self._ordered_tensors())

    def forward(self, x: torch.Tensor, pad_start: bool = False) -> torch.Tensor:
        x = _as_batch(x)
        if pad_start:
            x = F.pad(x, (self.receptive_field - 1, 0))
        c = x  # the raw input conditions every layer
        y, head = x, None
        for la in self.layer_arrays:
            y, head = la(y, c, head, self._activation(la.config["activation"]))
        assert head is not None
        return (self.head_scale * head)[:, 0, :]


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

    def nam_config(self) -> dict[str, Any]:
        return {"input_size": self.input_size, "hidden_size": self.hidden_size, "num_layers": self.num_layers}

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
        src = "x"
        for k in range(self.num_layers):
            name = f"lstm{k}"
            core = self.core
            p.weights[f"{name}/kernel"] = np.ascontiguousarray(_np(getattr(core, f"weight_ih_l{k}")).T, np.float32)
            p.weights[f"{name}/recurrent"] = np.ascontiguousarray(_np(getattr(core, f"weight_hh_l{k}")).T, np.float32)
            bias = _np(getattr(core, f"bias_ih_l{k}")) + _np(getattr(core, f"bias_hh_l{k}"))  # Keras: one bias
            p.weights[f"{name}/b"] = bias.astype(np.float32)
            src = p.op("lstm", name, [src], units=self.hidden_size)
        p.weights["head/w"] = np.ascontiguousarray(_np(self.head.weight).T, np.float32)
        p.weights["head/b"] = _np(self.head.bias).astype(np.float32)
        p.output = p.op("dense", "head", [src])
        return p

    def twin_reference(self, x: torch.Tensor) -> torch.Tensor:
        zeros = torch.zeros(self.num_layers, x.shape[0], self.hidden_size, dtype=x.dtype)
        out, _ = self.core(x.unsqueeze(-1), (zeros, zeros))
        return self.head(out)[..., 0]


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

    @property
    def receptive_field(self) -> int:
        return self._receptive_field

    @property
    def num_weights(self) -> int:
        return self._receptive_field + (1 if self.conv.bias is not None else 0)

    def nam_config(self) -> dict[str, Any]:
        return {"receptive_field": self._receptive_field, "bias": self.conv.bias is not None}

    @property
    def impulse_response(self) -> torch.Tensor:
        """Taps in IR order (index 0 = current sample)."""
        return self.conv.weight[0, 0].flip(0)

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
        return self.conv(x)[:, 0, :]

    def _macs_per_sample(self) -> int:
        return int(self.receptive_field)

    def device_ops(self) -> list[DeviceOp]:
        return [{"op_class": "FIR", "receptive_field": self.receptive_field}]

    def streaming_twin(self, block_size: int) -> TwinPlan:
        """One CONV_2D over the block plus its ``receptive_field − 1`` samples of context."""
        p = TwinPlan([block_size + self.receptive_field - 1, 1, 1])
        bias = _np(self.conv.bias) if self.conv.bias is not None else None
        p.output = p.conv("fir", "x", _np(self.conv.weight), bias)
        return p


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
