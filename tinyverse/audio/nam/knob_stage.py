"""A knob-conditioned model (:mod:`.knob_models`) as a stage of a composed model (Sequential, DAG): e.g. a drive pedal
with gain and tone knobs in front of an amp and a cabinet IR, rendered at the knob values a host sets
(``modelmaker render rig.nam --param gain=7``).

:class:`KnobStage` gives the knob model what a stage needs beside its own contract: the .nam side (a complete nested
object in tinyverse's ``"KnobModel"`` extension of the format — NAM Core does not read it — holding the model's record
and its weights) and a ``params``-optional forward (a stage without a setting plays at its declared defaults).
:class:`KnobsOfStages` is what a composed model with knob stages exposes: one knob set, the union of its stages'
(ordered by name; a knob that two stages declare alike drives both, one declared differently is refused), and the
split of a knob vector into each stage's own.

A rig with a knob stage streams (ONNX, TFLite) with a ``params`` input (:mod:`.composed_stream`); a knob stage with a
recurrent state cannot stream inside a rig yet (``unavailable_exports`` says why).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from tinyverse.audio.knobs import KnobSet
from tinyverse.audio.twin import TwinPlan
from tinyverse.models.contract import DeviceOp, ModelCost, StreamKind

from .knob_models import KnobModel, knob_model_from_record
from .models import FILE_VERSIONS, NAMModel, NamWeightError

__all__ = ["KNOB_STAGE_ARCHITECTURE", "KnobStage", "KnobsOfStages", "takes_knobs"]

KNOB_STAGE_ARCHITECTURE = "KnobModel"  # tinyverse's extension of the .nam format (docs/composition.md)


class KnobStage(NAMModel):
    """``model`` (a :class:`KnobModel` that declares its knobs) as a stage: inputs ``audio`` and ``params``."""

    nam_architecture = KNOB_STAGE_ARCHITECTURE

    def __init__(self, model: KnobModel) -> None:
        super().__init__()
        if not isinstance(model, KnobModel):
            raise ValueError(f"{type(model).__name__} is not a knob model")
        if model.knobs is None:
            raise ValueError(f"the {model.knob_architecture} model declares no knobs (names, ranges, defaults): a "
                             "stage of a rig is set by knob name; rebuild it with the capture's knob declaration")
        self.model = model

    @classmethod
    def from_nam_config(cls, config: dict[str, Any]) -> KnobStage:
        """From the ``config`` of a ``"KnobModel"`` .nam object: the model's record (architecture, config, knobs)."""
        return cls(knob_model_from_record(config, "KnobModel config"))

    # -- the knobs -------------------------------------------------------------------------------------------
    @property
    def knobs(self) -> KnobSet:
        return self.model.knobs  # type: ignore[return-value]

    @property
    def input_shapes(self) -> dict[str, tuple[int | None, ...]]:
        return self.model.input_shapes

    def params_or_default(self, params: Any, n: int) -> torch.Tensor:
        return self.model.params_tensor(self.model.default_params() if params is None else params, n)

    # -- .nam: the record in the config, every state-dict tensor in the weights -------------------------------
    def nam_version(self) -> str:
        return FILE_VERSIONS[-1]

    def nam_config(self, sample_rate: float | None = None) -> dict[str, Any]:
        return self.model.record()

    def _tensors(self) -> list[torch.Tensor]:
        return list(self.model.state_dict().values())

    @property
    def num_weights(self) -> int:
        return sum(t.numel() for t in self._tensors())

    def export_weights(self) -> list[float]:
        return torch.cat([t.detach().reshape(-1).to(torch.float64) for t in self._tensors()]).tolist()

    @torch.no_grad()
    def import_weights(self, flat: Sequence[float]) -> None:
        if len(flat) != self.num_weights:
            raise NamWeightError(f"weight count mismatch for KnobModel: expected {self.num_weights} got {len(flat)}")
        values = torch.as_tensor(np.asarray(flat, np.float64))
        pos = 0
        for t in self._tensors():  # state_dict tensors share storage with the module's
            t.copy_(values[pos:pos + t.numel()].reshape(t.shape).to(t.dtype))
            pos += t.numel()

    # -- the contract: the knob model's ----------------------------------------------------------------------
    @property
    def stream_kind(self) -> StreamKind:  # type: ignore[override]
        return self.model.stream_kind

    @property
    def receptive_field(self) -> int:
        return int(self.model.receptive_field)

    def cost(self) -> ModelCost:
        return replace(self.model.cost(), weights=self.num_weights)  # the numbers the rig's file stores for it

    def describe(self) -> dict[str, Any]:
        d = self.model.describe()
        return {"architecture": self.nam_architecture, "knob_architecture": d.pop("architecture"), **d}

    def device_ops(self) -> list[DeviceOp]:
        return self.model.device_ops()

    def forward(self, x: torch.Tensor, pad_start: bool = False, params: Any = None) -> torch.Tensor:
        """At ``params`` (a normalised vector (K,) or (N, K); default: the declared defaults)."""
        return self.model(x, self.params_or_default(params, x.shape[0]), pad_start=pad_start)

    def stream_init(self, dtype: torch.dtype = torch.float32, params: Any = None) -> Any:
        return self.model.stream_init(dtype, params=params)

    def stream_block(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        return self.model.stream_block(x, state)

    def stream_params(self, state: Any, params: Any) -> Any:
        return self.model.stream_params(state, params)

    def stream_metadata(self) -> dict[str, Any]:
        return self.model.stream_metadata()

    def streaming_module(self) -> nn.Module:
        return self.model.streaming_module()

    def streaming_twin(self, block_size: int) -> TwinPlan:
        return self.model.streaming_twin(block_size)

    def unavailable_exports(self) -> dict[str, str]:
        return self.model.unavailable_exports()

    def scored_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {self.nam_architecture: self(x)}

    def prepare_for_inference(self) -> None:
        self.model.prepare_for_inference()


def takes_knobs(model: Any) -> bool:
    """Whether a stage takes a knob vector (``"params"`` among its ``input_shapes``) besides the audio."""
    return "params" in (getattr(model, "input_shapes", None) or {})


class KnobsOfStages:
    """The knobs of a composed model: the union of its knob stages' (``knob_stages()``: (stage label, stage)),
    ordered by name. A composed model without knob stages has none (``knobs`` is None, one ``audio`` input)."""

    def knob_stages(self) -> list[tuple[str, nn.Module]]:
        raise NotImplementedError

    @property
    def knobs(self) -> KnobSet | None:
        decl: dict[str, dict[str, Any]] = {}
        owner: dict[str, str] = {}
        for label, stage in self.knob_stages():
            for name, spec in stage.knobs.declaration().items():  # type: ignore[union-attr]
                if name in decl and decl[name] != spec:
                    raise ValueError(f"knob '{name}' is declared by {owner[name]} as {decl[name]} and by {label} as "
                                     f"{spec}; one knob drives every stage that declares it alike: rename one")
                decl.setdefault(name, spec)
                owner.setdefault(name, label)
        return KnobSet.from_declaration(decl, "knobs") if decl else None

    @property
    def input_shapes(self) -> dict[str, tuple[int | None, ...]]:
        knobs = self.knobs
        return {"audio": (None,)} if knobs is None else {"audio": (None,), "params": (len(knobs),)}

    def stage_params(self, params: Any) -> dict[int, Any]:
        """id(stage) → its own knob vector taken from the composed model's ``params`` ((K,) or (N, K), ordered by
        name); None everywhere without ``params`` (each stage plays at its defaults)."""
        stages = [s for _, s in self.knob_stages()]
        if params is None:
            return {id(s): None for s in stages}
        names = self.knobs.names  # type: ignore[union-attr]
        p = params if isinstance(params, torch.Tensor) else torch.as_tensor(np.asarray(params, np.float32))
        if p.shape[-1] != len(names):
            raise ValueError(f"params must hold {len(names)} knob values ({', '.join(names)}), got {p.shape[-1]}")
        return {id(s): p[..., [names.index(n) for n in s.knobs.names]] for s in stages}  # type: ignore[union-attr]

    # -- running the stages: a knob stage at its share of the knob vector, the others as they are ---------------
    def knob_cost(self) -> dict[str, Any]:
        """The knob stages' knob-only work as :class:`ModelCost` fields: ``conditioning_macs`` per ``conditioning_per``
        ("block": an embedding, a hypernet; "sample": knobs as input channels), and ``extra_macs_per_sample``: when
        the stages differ, the per-sample ones run with every sample anyway and count there (a rig reports one
        ``conditioning_per``). No knob stages: no conditioning."""
        costs = [s.cost() for _, s in self.knob_stages()]  # type: ignore[operator]
        if not costs:
            return {"extra_macs_per_sample": 0, "conditioning_macs": None, "conditioning_per": None}
        per = [getattr(c, "conditioning_per", None) or "block" for c in costs]
        macs = [int(c.conditioning_macs or 0) for c in costs]
        if len(set(per)) == 1:
            return {"extra_macs_per_sample": 0, "conditioning_macs": sum(macs), "conditioning_per": per[0]}
        return {"extra_macs_per_sample": sum(m for m, p in zip(macs, per) if p == "sample"),
                "conditioning_macs": sum(m for m, p in zip(macs, per) if p != "sample"), "conditioning_per": "block"}

    @staticmethod
    def stage_forward(m: nn.Module, x: torch.Tensor, pad_start: bool, shares: dict[int, Any]) -> torch.Tensor:
        return m(x, pad_start=pad_start, params=shares[id(m)]) if takes_knobs(m) else m(x, pad_start=pad_start)

    @staticmethod
    def stage_stream_init(m: nn.Module, dtype: torch.dtype, shares: dict[int, Any]) -> Any:
        return m.stream_init(dtype, params=shares[id(m)]) if takes_knobs(m) else m.stream_init(dtype)  # type: ignore

    @staticmethod
    def stage_stream_params(m: nn.Module, state: Any, shares: dict[int, Any]) -> Any:
        return m.stream_params(state, shares[id(m)]) if takes_knobs(m) else state  # type: ignore[operator]
