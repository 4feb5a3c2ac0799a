"""NAM Core's ``Sequential`` container: complete models run one after the other — an amp and a cabinet IR as one
"full rig" model (a pedal that cannot run an IR block beside a NAM model loads one file).

``{"version": "0.7.0", "architecture": "Sequential", "config": {"models": [<complete child .nam>, ...]},
"weights": [], "sample_rate": 48000}``: each child is a whole .nam object (its own version, weights and sample rate,
which must equal the parent's); children may be containers or Sequentials themselves.

Each child keeps its own stream state and is pre-warmed on its own silence, as Core runs each child DSP: at the
start of a stream the second stage's history holds zeros, not the first stage's answer to silence. That is what
Core renders (``shared/fixtures/nam_composition``: per-child pre-warm matches to 1e-7, a chain-wide pre-warm is
5e-4 off for the A1 standard amp, whose output on silence is a small DC offset).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn as nn

from tinyverse.audio.twin import AudioExportError, TwinPlan
from tinyverse.models.contract import DeviceOp, ModelCost, NamModel, StreamingModel, StreamKind

from .models import FILE_VERSIONS, TWIN_EXPORTS, NAMModel, NamWeightError, check_slim, nam_object

__all__ = ["NAMSequential", "STREAM_EXPORTS", "check_stage", "no_streaming_graph"]

# Every streaming export step (tinyverse.audio.verify.DEFAULT_EXPORTERS): a composed model has none of them yet.
STREAM_EXPORTS = ("onnx", "onnx_int8", *TWIN_EXPORTS)

_SEQUENTIAL_KEYS = frozenset({"models"})


def check_stage(model: Any, what: str) -> None:
    """Refuse a stage a composed model cannot run: one that is not a streaming NAM model with one mono audio
    input (a knob-conditioned model needs its parameters, a classifier is no audio stage)."""
    if not isinstance(model, nn.Module) or not isinstance(model, StreamingModel) or not isinstance(model, NamModel):
        raise ValueError(f"{what}: {type(model).__name__} is not a streaming NAM model (a .nam model, an IR or an "
                         "audio zoo model)")
    shapes = dict(model.input_shapes)
    if shapes != {"audio": (None,)}:
        raise ValueError(f"{what}: the model takes inputs {shapes}; a stage of a composed model takes one mono audio "
                         "input (knob-conditioned models are not composable yet)")


def no_streaming_graph(what: str) -> AudioExportError:
    """Why a composed model has no single streaming ONNX / TFLite graph yet."""
    return AudioExportError(f"no streaming ONNX/TFLite graph for a {what} yet: each stage pre-warms on its own "
                            "silence, which one block-with-context graph cannot express; play the .nam file "
                            "(modelmaker render) or flatten the chain into one model")


class ChildrenFollowSlim:
    """The size knob of a composed model: every slimmable child follows it (``slim_children``)."""

    composed_name = "composed model"
    _slim: float | None

    def slim_children(self) -> Sequence[nn.Module]:
        raise NotImplementedError

    @property
    def slimmable(self) -> bool:
        return any(m.slimmable for m in self.slim_children())  # type: ignore[attr-defined]

    @property
    def slim(self) -> float | None:
        return (1.0 if self._slim is None else self._slim) if self.slimmable else None

    @slim.setter
    def slim(self, value: float) -> None:
        self.set_slim(value)

    def set_slim(self, value: float) -> None:
        check_slim(value)
        if not self.slimmable:
            raise ValueError(f"no model in this {self.composed_name} has a slimmable size")
        for m in self.slim_children():
            if m.slimmable:  # type: ignore[attr-defined]
                m.set_slim(value)  # type: ignore[operator]
        self._slim = float(value)


class NAMSequential(ChildrenFollowSlim, NAMModel):
    """Models run in order: ``y = models[-1](... models[0](x))``.

    ``models``: NAM models (WaveNet, LSTM, Linear/IR, SlimmableContainer, Sequential, DAG);
    ``metadata``: each child's own .nam metadata (written back with it). Cost, receptive field and latency add up
    (``receptive_field = sum(rf_i - 1) + 1``); a slim value goes to every slimmable child."""

    nam_architecture = "Sequential"

    def __init__(self, models: Sequence[nn.Module], metadata: Sequence[dict[str, Any]] | None = None) -> None:
        super().__init__()
        if not models:
            raise ValueError("a Sequential needs at least one model")
        for i, m in enumerate(models):
            check_stage(m, f"model {i}")
        self.models = nn.ModuleList(models)
        self.model_metadata = [dict(m) for m in (metadata or [{}] * len(models))]
        if len(self.model_metadata) != len(models):
            raise ValueError(f"give one metadata object per model ({len(models)}), got {len(self.model_metadata)}")
        self._slim: float | None = None

    @classmethod
    def from_nam_config(cls, config: dict[str, Any],
                        read_child: Callable[[Any, str], tuple[nn.Module, dict[str, Any]]]) -> NAMSequential:
        """Build from a .nam ``config``; ``read_child(obj, where)`` reads one complete nested .nam object (the
        format reader's, which checks its sample rate against the parent's) → (model, its metadata)."""
        extra = sorted(set(config) - _SEQUENTIAL_KEYS)
        if extra:
            raise ValueError(f"Sequential config uses unsupported key(s): {', '.join(extra)} (known: models)")
        children = config.get("models")
        if not isinstance(children, list) or not children:
            raise ValueError("Sequential config needs a non-empty 'models' list")
        read = [read_child(obj, f"model {i}") for i, obj in enumerate(children)]
        return cls([m for m, _ in read], [md for _, md in read])

    # -- .nam ------------------------------------------------------------------------------------------------
    @property
    def num_weights(self) -> int:
        return 0  # each child carries its own weights

    def import_weights(self, flat: Sequence[float]) -> None:
        if len(flat):
            raise NamWeightError(f"weight count mismatch for Sequential: expected 0 got {len(flat)} "
                                 "(the child models hold the weights)")

    def export_weights(self) -> list[float]:
        return []

    def nam_version(self) -> str:
        return FILE_VERSIONS[-1]

    def nam_config(self, sample_rate: float | None = None) -> dict[str, Any]:
        return {"models": [nam_object(m, md, sample_rate)  # type: ignore[arg-type]
                           for m, md in zip(self.models, self.model_metadata)]}

    # -- the size knob: every slimmable child follows it (ChildrenFollowSlim) -----------------------------------
    composed_name = "Sequential"

    def slim_children(self) -> Sequence[nn.Module]:
        return self.models

    # -- the contract ----------------------------------------------------------------------------------------
    @property
    def stream_kind(self) -> StreamKind:  # type: ignore[override]
        return "context" if all(m.stream_kind == "context" for m in self.models) else "state"

    @property
    def receptive_field(self) -> int:
        return 1 + sum(int(m.receptive_field) - 1 for m in self.models)

    def cost(self) -> ModelCost:
        costs = [m.cost() for m in self.models]  # type: ignore[operator]
        return ModelCost(params=int(sum(p.numel() for p in self.parameters())),
                         macs_per_sample=sum(int(c.macs_per_sample or 0) for c in costs),
                         receptive_field=self.receptive_field,
                         latency_samples=sum(int(c.latency_samples) for c in costs),
                         weights=sum(int(c.weights if c.weights is not None else c.params) for c in costs))

    def _macs_per_sample(self) -> int:
        return int(self.cost().macs_per_sample or 0)

    def describe(self) -> dict[str, Any]:
        return {"architecture": self.nam_architecture, "models": [m.describe() for m in self.models]}

    def device_ops(self) -> list[DeviceOp]:
        return [op for m in self.models for op in m.device_ops()]  # type: ignore[operator]

    def forward(self, x: torch.Tensor, pad_start: bool = False) -> torch.Tensor:
        """Valid mode (each child shortens by its ``receptive_field − 1``) or, with ``pad_start``, each child padded
        with its own silence (Core's per-child pre-warm)."""
        for m in self.models:
            x = m(x, pad_start=pad_start)
        return x

    def stream_init(self, dtype: torch.dtype = torch.float32) -> list[Any]:
        return [m.stream_init(dtype) for m in self.models]  # type: ignore[operator]

    @torch.no_grad()
    def stream_block(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        new = []
        for m, s in zip(self.models, state):
            y, s = m.stream_block(x, s)  # type: ignore[operator]
            new.append(s)
            x = y.reshape(1, -1)
        return x[0], new

    def stream_metadata(self) -> dict[str, Any]:
        return {**super().stream_metadata(), "models": [m.stream_metadata() for m in self.models]}

    def streaming_module(self) -> nn.Module:
        raise no_streaming_graph("Sequential")

    def streaming_twin(self, block_size: int) -> TwinPlan:
        raise no_streaming_graph("Sequential")

    def twin_reference(self, x: torch.Tensor) -> torch.Tensor:
        raise no_streaming_graph("Sequential")

    def unavailable_exports(self) -> dict[str, str]:
        why = str(no_streaming_graph("Sequential"))
        return {step: why for step in STREAM_EXPORTS}

    def prepare_for_inference(self) -> None:
        for m in self.models:
            m.prepare_for_inference()  # type: ignore[operator]
