"""NAM's ``SlimmableContainer`` (NeuralAmpModelerCore ``NAM/container.*``): complete models of different sizes
in one file, e.g. A2's "lite" and "full" WaveNets, one of which runs, picked by the plugin's size knob.

``config = {"submodels": [{"max_value": v, "model": <a complete .nam object>}, ...]}`` sorted by ``max_value``
(strictly rising, the last >= 1.0); the top-level ``weights`` are ``[]``. A slim value ``s`` in [0, 1] selects
the first submodel with ``s < max_value`` and the last one otherwise (Core's ``_get_index_for_slimmable_size``);
Core starts at the last (full) submodel, and so does this one.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
import torch.nn as nn

from tinyverse.audio.twin import TwinPlan
from tinyverse.models.contract import DeviceOp, ModelCost, StreamKind

from .models import FILE_VERSIONS, NAMModel, NamWeightError, check_slim, nam_object

__all__ = ["NAMSlimmableContainer"]


class NAMSlimmableContainer(NAMModel):
    """A NAM model holding submodels; :meth:`set_slim` selects the one that computes. Forward, streaming, cost,
    receptive field, device ops and exports are the selected submodel's; the .nam file holds them all.

    ``submodels``: ``(max_value, model)`` pairs; ``metadata``: each submodel's own .nam metadata (written back
    with it); ``names``: what reports and training logs call each submodel (default its index, "0", "1", ...;
    the .nam format has no name field).

    Training scores every submodel (:meth:`scored_outputs`), as NAM's packed training does."""

    nam_architecture = "SlimmableContainer"

    def __init__(self, submodels: Sequence[tuple[float, NAMModel]],
                 metadata: Sequence[dict[str, Any]] | None = None, names: Sequence[str] | None = None) -> None:
        super().__init__()
        if not submodels:
            raise ValueError("a SlimmableContainer needs at least one submodel")
        values = [float(v) for v, _ in submodels]
        for i in range(1, len(values)):
            if values[i] <= values[i - 1]:
                raise ValueError(f"submodel {i}: max_value {values[i]} must be greater than submodel {i - 1}'s "
                                 f"({values[i - 1]}); submodels are sorted by rising max_value")
        if values[-1] < 1.0:
            raise ValueError(f"the last submodel's max_value must be >= 1.0, got {values[-1]}")
        self.max_values = values
        self.submodels = nn.ModuleList(m for _, m in submodels)
        self.submodel_metadata = [dict(m) for m in (metadata or [{}] * len(values))]
        if len(self.submodel_metadata) != len(values):
            raise ValueError("give one metadata object per submodel")
        self.names = [str(n) for n in names] if names is not None else [str(i) for i in range(len(values))]
        if len(self.names) != len(values) or len(set(self.names)) != len(values):
            raise ValueError(f"give one distinct name per submodel ({len(values)}), got {list(self.names)}")
        self._slim = 1.0
        self.active_index = len(values) - 1  # Core's default: the full-size (last) submodel

    # -- the size knob -----------------------------------------------------------------------------------------
    @property
    def slimmable(self) -> bool:
        return True

    def index_for(self, value: float) -> int:
        """The submodel Core runs at slim ``value``: the first whose max_value exceeds it, else the last."""
        return next((i for i, v in enumerate(self.max_values) if value < v), len(self.max_values) - 1)

    @property
    def slim(self) -> float:
        return self._slim

    @slim.setter
    def slim(self, value: float) -> None:
        self.set_slim(value)

    def set_slim(self, value: float) -> None:
        check_slim(value)
        self._slim = float(value)
        self.active_index = self.index_for(self._slim)

    @property
    def active(self) -> NAMModel:
        return self.submodels[self.active_index]  # type: ignore[return-value]

    def slim_breakpoints(self) -> list[float]:
        """Slim values where the selected submodel changes (Core's ``GetSlimmableSizeBreakpoints``)."""
        return self.max_values[:-1]

    def slim_range(self, index: int) -> tuple[float, float]:
        """The slim values that select submodel ``index``: from the previous max_value (0 for the first) up to its
        own (1 for the last)."""
        lo = 0.0 if index == 0 else self.max_values[index - 1]
        return lo, 1.0 if index == len(self.max_values) - 1 else self.max_values[index]

    def device_choices(self) -> list[tuple[str, tuple[float, float], NAMModel]]:
        """Each submodel with its name and slim range, smallest first: a device runs one of them
        (:class:`tinyverse.models.contract.SizeChoices`)."""
        return [(n, self.slim_range(i), m)  # type: ignore[misc]
                for i, (n, m) in enumerate(zip(self.names, self.submodels))]

    # -- .nam ----------------------------------------------------------------------------------------------------
    @property
    def num_weights(self) -> int:
        return 0  # each submodel carries its own weights

    def import_weights(self, flat: Sequence[float]) -> None:
        if len(flat):
            raise NamWeightError(f"weight count mismatch for SlimmableContainer: expected 0 got {len(flat)} "
                                 "(the submodels hold the weights)")

    def export_weights(self) -> list[float]:
        return []

    def nam_version(self) -> str:
        return FILE_VERSIONS[-1]

    def nam_config(self, sample_rate: float | None = None) -> dict[str, Any]:
        return {"submodels": [{"max_value": v, "model": nam_object(m, md, sample_rate)}  # type: ignore[arg-type]
                              for v, m, md in zip(self.max_values, self.submodels, self.submodel_metadata)]}

    # -- the contract: the selected submodel's -------------------------------------------------------------------
    @property
    def stream_kind(self) -> StreamKind:  # type: ignore[override]
        return self.active.stream_kind

    @property
    def receptive_field(self) -> int:
        return self.active.receptive_field

    def cost(self) -> ModelCost:
        """What runs is the selected submodel (MACs per sample, receptive field); what the file holds and a host
        loads is every submodel (parameters, weights)."""
        subs = [m.cost() for m in self.submodels]
        return replace(self.active.cost(), params=sum(c.params for c in subs),
                       weights=sum(c.weights if c.weights is not None else c.params for c in subs))

    def _macs_per_sample(self) -> int:
        return self.active.cost().macs_per_sample or 0

    def describe(self) -> dict[str, Any]:
        active = self.active.describe()
        return {"architecture": self.nam_architecture, "slim": self.slim, "active_submodel": self.active_index,
                "submodels": [{"name": n, "max_value": v, **m.describe()}
                              for n, v, m in zip(self.names, self.max_values, self.submodels)],
                "active_architecture": active.pop("architecture"), **active}

    def device_ops(self) -> list[DeviceOp]:
        return self.active.device_ops()

    def scale_output(self, gain: float) -> None:
        """Every submodel (NAM's trainer scales each one when it undoes its output normalisation)."""
        for m in self.submodels:
            m.scale_output(gain)

    def forward(self, x: torch.Tensor, pad_start: bool = False) -> torch.Tensor:
        return self.active(x, pad_start=pad_start)

    def scored_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every submodel's output on the same windows, by name, the full-size (last) one last; outputs are
        aligned at the end (a submodel with a shorter receptive field has more valid samples: they are cut)."""
        outs = {n: m(x) for n, m in zip(self.names, self.submodels)}
        length = min(o.shape[-1] for o in outs.values())
        return {n: o[..., o.shape[-1] - length:] for n, o in outs.items()}

    def stream_init(self, dtype: torch.dtype = torch.float32) -> Any:
        return self.active.stream_init(dtype)

    def stream_block(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        return self.active.stream_block(x, state)

    def initial_stream_state(self) -> dict[str, torch.Tensor]:
        return self.active.initial_stream_state()

    def stream_metadata(self) -> dict[str, Any]:
        active = self.active.stream_metadata()  # what streams is the selected submodel
        return {**active, "architecture": self.nam_architecture,
                "container": {"slim": self.slim, "submodel": self.active_index, "name": self.names[self.active_index],
                              "architecture": active["architecture"]}}

    def streaming_module(self) -> nn.Module:
        return self.active.streaming_module()

    def streaming_twin(self, block_size: int) -> TwinPlan:
        return self.active.streaming_twin(block_size)

    def twin_reference(self, x: torch.Tensor) -> torch.Tensor:
        return self.active.twin_reference(x)

    def prepare_for_inference(self) -> None:
        for m in self.submodels:
            m.prepare_for_inference()  # type: ignore[operator]
