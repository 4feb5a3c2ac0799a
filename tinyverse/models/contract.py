"""The model contract: what a model tells the toolchain about itself, so that costing, the device check,
export and verification ask the model instead of branching on its class.

A spec model (:mod:`tinyverse.models.spec`) derives these facts from its layers. A model that cannot be a
spec — NAM's WaveNet, LSTM and Linear, which must compute exactly what NeuralAmpModelerCore computes —
implements them by hand (:class:`tinyverse.audio.nam.models.NAMModel`). Callers type against the
protocols below; ``isinstance(model, StreamingModel)`` checks that the members exist (not their types).

* :class:`ModelContract` — every model: inputs, receptive field, cost, device ops, how it is verified.
* :class:`StreamingModel` — a model run block by block (a plugin, a pedal): the hooks a stream processor,
  the streaming ONNX export and the TFLite twin need.
* :class:`NamModel` — a model that reads and writes the .nam format.
* :class:`SizeChoices` — a model holding alternatives of which a host runs one (NAM's SlimmableContainer): the
  device check picks the largest one the device can run.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:  # typing only: importing the contract loads no torch
    import torch
    from torch import nn

    from tinyverse.audio.twin import TwinPlan

__all__ = ["DeviceOp", "ModelContract", "ModelCost", "NamModel", "SizeChoices", "StreamKind", "StreamingModel"]

# "context": each block is computed from the block plus the receptive_field − 1 input samples before it
# (WaveNet, FIR). "state": each block starts from the state the previous block left (LSTM).
# None: the model is verified on whole inputs, not streamed.
StreamKind = Literal["context", "state"]

# One op as a device rule checker reads it: {"op_class": "WAVENET", <attribute a profile rule may name>: value}.
DeviceOp = dict[str, Any]


@dataclass(frozen=True)
class ModelCost:
    """What a model costs. A streaming model counts MACs per output sample (a pedal's DSP budget), a
    whole-input model MACs per inference on its declared inputs; the other is None."""

    params: int  # trainable parameters
    macs_per_sample: int | None = None
    macs_per_inference: int | None = None
    receptive_field: int = 1  # input samples one output sample depends on
    latency_samples: int = 0  # output delay a streaming host sees (0: sample-synchronous)
    weights: int | None = None  # numbers the model file stores (.nam "weights"; params plus e.g. head_scale)
    # A knob model's work that depends on the knob values only (a hypernet, a knob embedding, the knob columns of
    # a layer), not counted in macs_per_sample: MACs per ``conditioning_per`` — "block" (run once per block while
    # the knobs are still: an embedding, a hypernet) or "sample" (knobs as input channels: their columns multiply
    # with every sample).
    conditioning_macs: int | None = None
    conditioning_per: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class ModelContract(Protocol):
    """Every model."""

    @property
    def input_shapes(self) -> dict[str, tuple[int | None, ...]]:
        """Input name → shape of one example (no batch axis); ``None`` is a length the caller chooses,
        e.g. ``{"audio": (None,)}`` for a mono stream, plus ``"params": (n,)`` for a knob-conditioned model."""
        ...

    @property
    def receptive_field(self) -> int:
        """Input samples one output sample depends on (1 for a recurrent model)."""
        ...

    @property
    def stream_kind(self) -> StreamKind | None:
        """How the model is run and verified: in streaming blocks (``"context"`` / ``"state"``) or, when
        ``None``, on whole inputs."""
        ...

    def cost(self) -> ModelCost: ...

    def device_ops(self) -> list[DeviceOp]:
        """The ops the device rule checker reads, first the one that carries the model's compute."""
        ...

    def describe(self) -> dict[str, Any]:
        """Architecture facts a report or device summary shows: ``{"architecture": name, <sizes>...}``."""
        ...


@runtime_checkable
class StreamingModel(ModelContract, Protocol):
    """A model a host runs block by block. The stream hooks compute exactly what the whole-input forward
    computes for a stream that starts from silence, whatever the block lengths."""

    def stream_init(self, dtype: torch.dtype) -> Any:
        """The state a stream starts from (input history, per-layer buffers or recurrent state, pre-warmed
        as the reference engine does). Opaque to the caller: pass it to :meth:`stream_block`."""
        ...

    def stream_block(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """One block: ``x`` (1, B) → (output (B,), the state for the next block)."""
        ...

    def initial_stream_state(self) -> dict[str, torch.Tensor]:
        """A ``"state"`` model's initial recurrent state by input name of its streaming graph (e.g.
        ``{"h": (layers, hidden), "c": ...}``) for one stream; ``{}`` for a ``"context"`` model."""
        ...

    def stream_metadata(self) -> dict[str, Any]:
        """What a streaming file carries so a host needs nothing else (JSON): ``kind``, ``receptive_field``,
        ``architecture`` and a ``"state"`` model's initial state."""
        ...

    def streaming_module(self) -> nn.Module:
        """The torch graph a streaming ONNX export traces: ``x`` (N, block + receptive_field − 1) → ``y``
        (N, block); for a ``"state"`` model ``(x, *state)`` → ``(y, *state_out)``, states batch-first."""
        ...

    def streaming_twin(self, block_size: int) -> TwinPlan:
        """The TensorFlow twin the TFLite worker builds, for a fixed ``block_size``."""
        ...

    def twin_reference(self, x: torch.Tensor) -> torch.Tensor:
        """What :meth:`streaming_twin` computes on a batch of its inputs (a ``"state"`` model from a zero
        state: the TFLite op's variable starts at zero)."""
        ...

    def prepare_for_inference(self) -> None:
        """Called once after training, before the model is evaluated, saved and exported (an LSTM stores
        the state that silence settles to, as NAM's trainer does)."""
        ...

    def scored_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """What training scores against the target for the input windows ``x`` (valid mode), by name: the model's
        one output, or a container's every submodel (NAM's packed training sums their losses). The last one is
        the primary output: it picks the checkpoint and is what the whole-input forward computes by default."""
        ...

    def unavailable_exports(self) -> dict[str, str]:
        """Export steps (``tflite``, ``tflite_int8``, ...) this model cannot have, each with why — e.g. no
        streaming TFLite twin covers its layers. The default export set leaves them out and says why."""
        ...


@runtime_checkable
class NamModel(Protocol):
    """A model that round-trips through a .nam file."""

    nam_architecture: str

    @property
    def num_weights(self) -> int: ...

    def nam_config(self) -> dict[str, Any]: ...

    def export_weights(self) -> list[float]: ...

    def import_weights(self, flat: Any) -> None: ...


@runtime_checkable
class SizeChoices(Protocol):
    """A model holding alternatives of which a host runs one, e.g. NAM's SlimmableContainer (a size knob picks a
    submodel)."""

    def device_choices(self) -> list[tuple[str, tuple[float, float], ModelContract]]:
        """``(name, (lowest, highest) knob value that selects it, model)`` per alternative, smallest first."""
        ...
