"""What every layer type of the spec language declares.

A layer type is a pydantic model: its fields are the layer's arguments, so a spec entry validates with a
clear error, and dumps back to the same data (spec <-> YAML round trip). From its input shapes it knows its
output shape, how to build its torch module, its MACs and the device op(s) it maps to — so device rules can
be checked on the spec, before any training.

Shapes exclude the batch dimension: a time-series tensor (N, C, L, 1) has shape (C, L, 1).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, field_validator
from torch import nn

if TYPE_CHECKING:  # the builder lives in tinyverse.export, which imports this package
    from tinyverse.export.twin_plan import TwinBuilder, TwinTensor

Shape = tuple[int, ...]


class SpecError(ValueError):
    """A spec that cannot be built. ``str()`` is one line naming the layer and the fix."""


@dataclass
class LayerOp:
    """One operation as a device sees it; the rule checker reads only these."""

    layer: str
    op_class: str  # FCONV, GCONV, DWCONV, PWCONV, FC, MAXPOOL, AVGPOOL, GAP, BN, RELU, ADD, CONCAT, ...
    in_shape: Shape
    out_shape: Shape
    in_channels: int | None = None
    out_channels: int | None = None
    kernel: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    dilation: tuple[int, int] | None = None
    groups: int = 1
    in_features: int | None = None
    out_features: int | None = None
    activation: str | None = None  # activation fused after the op, if any
    params: int = 0
    macs: int = 0
    attrs: dict[str, Any] = field(default_factory=dict)


def pair(v: int | list[int] | tuple[int, ...], second: int = 1) -> tuple[int, int]:
    """A time-series size: an int means (k, 1) — time runs along H, as TI's NPU expects."""
    if isinstance(v, int):
        return (v, second)
    v = tuple(int(x) for x in v)
    if len(v) == 1:
        return (v[0], second)
    if len(v) != 2:
        raise ValueError(f"expected an int or [h, w], got {list(v)}")
    return v  # type: ignore[return-value]


class Layer(BaseModel):
    """Base of every layer type. Subclasses add their arguments as fields."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    #: device op class for the summary table when a layer maps to a single op
    op_class: ClassVar[str] = "CPU"
    #: how many inputs the layer takes: 1, or None for "two or more"
    arity: ClassVar[int | None] = 1

    input: str | None = None  # read this layer/input instead of the previous layer
    inputs: list[str] | None = None  # several inputs (Add, Concat, Mean)

    @field_validator("inputs")
    @classmethod
    def _non_empty(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not v:
            raise ValueError("inputs must name at least one layer or model input")
        return v

    @classmethod
    def type_name(cls) -> str:
        return cls.__name__

    def sources(self, previous: str) -> list[str]:
        if self.inputs is not None:
            return list(self.inputs)
        return [self.input or previous]

    # -- what subclasses implement --------------------------------------------------------------------------
    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        raise NotImplementedError(f"{type(self).__name__} must define output_shape")

    def build(self, in_shapes: list[Shape]) -> nn.Module:
        raise NotImplementedError(f"{type(self).__name__} must define build")

    def macs(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        return 0

    def device_ops(self, name: str, in_shapes: list[Shape], out_shape: Shape, *, on_model_input: bool,
                   params: int, macs: int) -> list[LayerOp]:
        return [LayerOp(name, self.op_class, in_shapes[0], out_shape, params=params, macs=macs)]

    def twin_ops(self, twin: "TwinBuilder") -> "TwinTensor":
        """This layer in the Keras/TFLite twin: emit primitive ops through ``twin`` (its inputs are ``twin.inputs``,
        its torch module ``twin.module``) and return the output tensor. See ``tinyverse.export.twin_plan``."""
        raise twin.error(f"{self.type_name()} has no Keras twin: give the layer type a twin_ops method that composes "
                         f"the twin primitives (conv, dense, pool, act, affine, add, mul, mean, concat, reshape); see "
                         f"docs/extending.md")

    # -- helpers -----------------------------------------------------------------------------------------------
    def args(self) -> dict[str, Any]:
        """The arguments that differ from their defaults — what a spec file needs to say."""
        return self.model_dump(exclude_defaults=True, mode="json")


def numel(shape: Shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class MultiInput(nn.Module):
    """Base for modules that combine several tensors (called as ``module(*tensors)``)."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
