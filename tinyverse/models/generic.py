"""GenericModelWithSpec: the torch module a spec describes."""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import torch
from torch import nn

from tinyverse.models.contract import DeviceOp, ModelCost
from tinyverse.models.spec import ModelSpec


class GenericModelWithSpec(nn.Module):
    """Runs the layers of a :class:`ModelSpec` in order, feeding each the tensors it names.

    ``forward`` takes the inputs positionally in declaration order (or by name as keywords) and returns one
    tensor, or a tuple when the spec declares several outputs.
    """

    def __init__(self, spec: ModelSpec | Mapping[str, Any]):
        super().__init__()
        self.spec = spec if isinstance(spec, ModelSpec) else ModelSpec(spec)
        self.layers = nn.ModuleDict(self.spec.build_modules())
        self._sources = {name: info.sources for name, info in self.spec.info.items()}
        self.input_names = list(self.spec.inputs)
        self.output_names = list(self.spec.outputs)
        # Tensors that no later layer reads can be dropped early (keeps long graphs light).
        last_use: dict[str, str] = {}
        for name, sources in self._sources.items():
            for s in sources:
                last_use[s] = name
        self._free_after = {name: [s for s, last in last_use.items() if last == name and s not in self.output_names]
                            for name in self._sources}

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        return dict(self.spec.inputs)

    def example_inputs(self, batch_size: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(seed)
        return tuple(torch.randn((batch_size, *shape), generator=g) for shape in self.spec.inputs.values())

    def forward(self, *args: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if len(args) + len(kwargs) != len(self.input_names):
            raise TypeError(f"model takes {len(self.input_names)} input(s) {self.input_names}, "
                            f"got {len(args) + len(kwargs)}")
        values: dict[str, torch.Tensor] = dict(zip(self.input_names, args))
        values.update(kwargs)
        for name, module in self.layers.items():
            values[name] = module(*(values[s] for s in self._sources[name]))
            for s in self._free_after[name]:
                values.pop(s, None)
        outs = tuple(values[o] for o in self.output_names)
        return outs[0] if len(outs) == 1 else outs

    def summary(self) -> str:
        return self.spec.summary()

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- the model contract (tinyverse.models.contract): a spec model derives every fact from its layers ----------
    stream_kind = None  # verified on whole inputs, not streamed

    @property
    def receptive_field(self) -> int:
        """Input samples (per channel) one output depends on: a whole-input model reads all of its first input."""
        shape = next(iter(self.spec.inputs.values()))
        return int(math.prod(shape[1:])) if len(shape) > 1 else 1

    def cost(self) -> ModelCost:
        return ModelCost(params=self.spec.params, macs_per_inference=self.spec.macs,
                         receptive_field=self.receptive_field, weights=self.spec.params)

    def device_ops(self) -> list[DeviceOp]:
        return [dataclasses.asdict(op) for op in self.spec.ops()]

    def describe(self) -> dict[str, Any]:
        return {"architecture": "spec", "name": self.spec.name, "layers": len(self.spec.info),
                "inputs": {k: list(v) for k, v in self.spec.inputs.items()}}
