"""Layers that combine several inputs: residual adds, fan-in means, concatenation."""
from __future__ import annotations

import torch

from tinyverse.layers.base import Layer, LayerOp, MultiInput, SpecError, numel
from tinyverse.registry import LAYERS


class _Elementwise(Layer):
    arity = None

    def output_shape(self, in_shapes):
        if len(in_shapes) < 2:
            raise SpecError(f"{self.type_name()} needs at least two inputs (inputs: [a, b])")
        if len(set(in_shapes)) != 1:
            raise SpecError(f"{self.type_name()} inputs must have equal shapes, got "
                            f"{', '.join(str(list(s)) for s in in_shapes)}")
        return in_shapes[0]

    def macs(self, in_shapes, out_shape):
        return numel(out_shape) * (len(in_shapes) - 1)

    def device_ops(self, name, in_shapes, out_shape, *, on_model_input, params, macs):
        return [LayerOp(name, self.op_class, in_shapes[0], out_shape, params=params, macs=macs,
                        attrs={"num_inputs": len(in_shapes)})]


class _Sum(MultiInput):
    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class _MeanOf(MultiInput):
    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out * (1.0 / len(xs))


@LAYERS.register("Add")
class Add(_Elementwise):
    """Elementwise sum (residual connections, fan-in)."""

    op_class = "ADD"

    def build(self, in_shapes):
        return _Sum()

    def twin_ops(self, twin):
        return twin.add(twin.inputs)


@LAYERS.register("Mean")
class Mean(_Elementwise):
    """Elementwise mean of the inputs (fan-in averaging)."""

    op_class = "MEAN"

    def build(self, in_shapes):
        return _MeanOf()

    def twin_ops(self, twin):
        return twin.mean(twin.inputs)


class _Cat(MultiInput):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=self.dim)


@LAYERS.register("Concat")
class Concat(Layer):
    """Concatenate along ``axis`` of the per-sample shape (0 = channels / features)."""

    op_class = "CONCAT"
    arity = None
    axis: int = 0

    def output_shape(self, in_shapes):
        if len(in_shapes) < 2:
            raise SpecError("Concat needs at least two inputs (inputs: [a, b])")
        ranks = {len(s) for s in in_shapes}
        if len(ranks) != 1:
            raise SpecError(f"Concat inputs must have the same rank, got {[list(s) for s in in_shapes]}")
        rank = ranks.pop()
        axis = self.axis % rank
        for s in in_shapes[1:]:
            if any(a != b for i, (a, b) in enumerate(zip(s, in_shapes[0])) if i != axis):
                raise SpecError(f"Concat inputs differ outside axis {self.axis}: "
                                f"{[list(s) for s in in_shapes]}")
        out = list(in_shapes[0])
        out[axis] = sum(s[axis] for s in in_shapes)
        return tuple(out)

    def build(self, in_shapes):
        return _Cat(self.axis % len(in_shapes[0]) + 1)  # +1: skip the batch dimension

    def twin_ops(self, twin):
        return twin.concat(twin.inputs, self.axis)
