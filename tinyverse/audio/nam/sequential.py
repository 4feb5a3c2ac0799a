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

from tinyverse.models.contract import DeviceOp, ModelCost, NamModel, StreamingModel

from .composed_stream import ComposedStream, StreamNode
from .knob_stage import KnobsOfStages, takes_knobs
from .models import FILE_VERSIONS, NAMModel, NamWeightError, check_slim, nam_object

__all__ = ["NAMSequential", "check_stage"]

_SEQUENTIAL_KEYS = frozenset({"models"})


def check_stage(model: Any, what: str) -> None:
    """Refuse a stage a composed model cannot run: one that is not a streaming NAM model with one mono audio
    input, and a knob input that declares its knobs (a knob model as :class:`.knob_stage.KnobStage`); a classifier is
    no audio stage."""
    if not isinstance(model, nn.Module) or not isinstance(model, StreamingModel) or not isinstance(model, NamModel):
        hint = " (wrap a knob model in tinyverse.audio.nam.KnobStage)" if takes_knobs(model) else ""
        raise ValueError(f"{what}: {type(model).__name__} is not a streaming NAM model (a .nam model, an IR, a knob "
                         f"model or an audio zoo model){hint}")
    shapes = dict(model.input_shapes)
    if set(shapes) - {"params"} != {"audio"} or shapes["audio"] != (None,):
        raise ValueError(f"{what}: the model takes inputs {shapes}; a stage of a composed model takes one mono audio "
                         "input (and a knob model's params)")


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


class NAMSequential(ChildrenFollowSlim, KnobsOfStages, ComposedStream, NAMModel):
    """Models run in order: ``y = models[-1](... models[0](x))``.

    ``models``: NAM models (WaveNet, LSTM, Linear/IR, SlimmableContainer, Sequential, DAG);
    ``metadata``: each child's own .nam metadata (written back with it). Cost, receptive field and latency add up
    (``receptive_field = sum(rf_i - 1) + 1``); a slim value goes to every slimmable child. Streams with every child's
    own state (:mod:`.composed_stream`: one streaming ONNX / TFLite graph for the whole chain)."""

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
        self.knobs  # noqa: B018 - a knob that two stages declare differently is refused here
        self.frozen: list[bool] = [False] * len(models)  # children kept exactly as loaded while the others train

    def freeze(self, index: int) -> None:
        """Keep child ``index`` exactly as it is while the chain trains: its parameters take no gradient (the optimizer
        never sees them) and :meth:`prepare_for_inference` leaves it alone (an LSTM's stored initial state stays)."""
        self.models[index].requires_grad_(False)
        self.frozen[index] = True

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

    # -- the knobs: each knob stage's (KnobsOfStages) ----------------------------------------------------------
    def knob_stages(self) -> list[tuple[str, nn.Module]]:
        return [(f"model {i}", m) for i, m in enumerate(self.models) if takes_knobs(m)]

    # -- the contract ----------------------------------------------------------------------------------------
    def stream_nodes(self) -> list[StreamNode]:
        return [StreamNode(f"stage{i}", (f"stage{i - 1}" if i else "input",), model=m)
                for i, m in enumerate(self.models)]

    @property
    def stream_output(self) -> str:
        return f"stage{len(self.models) - 1}"

    @property
    def receptive_field(self) -> int:
        return 1 + sum(int(m.receptive_field) - 1 for m in self.models)

    def cost(self) -> ModelCost:
        costs = [m.cost() for m in self.models]  # type: ignore[operator]
        knob = self.knob_cost()
        macs = sum(int(c.macs_per_sample or 0) for c in costs) + knob["extra_macs_per_sample"]
        return ModelCost(params=int(sum(p.numel() for p in self.parameters())), macs_per_sample=macs,
                         receptive_field=self.receptive_field,
                         latency_samples=sum(int(c.latency_samples) for c in costs),
                         weights=sum(int(c.weights if c.weights is not None else c.params) for c in costs),
                         conditioning_macs=knob["conditioning_macs"], conditioning_per=knob["conditioning_per"])

    def _macs_per_sample(self) -> int:
        return int(self.cost().macs_per_sample or 0)

    def describe(self) -> dict[str, Any]:
        return {"architecture": self.nam_architecture, "models": [m.describe() for m in self.models]}

    def device_ops(self) -> list[DeviceOp]:
        return [op for m in self.models for op in m.device_ops()]  # type: ignore[operator]

    def forward(self, x: torch.Tensor, pad_start: bool = False, params: Any = None) -> torch.Tensor:
        """Valid mode (each child shortens by its ``receptive_field − 1``) or, with ``pad_start``, each child padded
        with its own silence (Core's per-child pre-warm). ``params``: the knob vector (ordered by name, ``knobs``)
        the knob stages play at (default: their declared defaults)."""
        shares = self.stage_params(params)
        for m in self.models:
            x = self.stage_forward(m, x, pad_start, shares)
        return x

    def stream_init(self, dtype: torch.dtype = torch.float32, params: Any = None) -> list[Any]:
        shares = self.stage_params(params)
        return [self.stage_stream_init(m, dtype, shares) for m in self.models]

    def stream_params(self, state: Any, params: Any) -> list[Any]:
        """``state`` with the knob stages moved to ``params`` from the next block on (every history carries over)."""
        shares = self.stage_params(params)
        return [self.stage_stream_params(m, s, shares) for m, s in zip(self.models, state)]

    @torch.no_grad()
    def stream_block(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        new = []
        for m, s in zip(self.models, state):
            y, s = m.stream_block(x, s)  # type: ignore[operator]
            new.append(s)
            x = y.reshape(1, -1)
        return x[0], new

    def stream_metadata(self) -> dict[str, Any]:
        return {**super().stream_metadata(), "models": [m.stream_metadata() for m in self.models],
                **self.composed_stream_metadata()}

    def prepare_for_inference(self) -> None:
        for m, frozen in zip(self.models, self.frozen):
            if not frozen:
                m.prepare_for_inference()  # type: ignore[operator]
