"""Fully connected and shape layers."""
from __future__ import annotations

import torch
from torch import nn

from tinyverse.layers.base import Layer, LayerOp, Shape, SpecError, numel
from tinyverse.registry import LAYERS


@LAYERS.register("LinearLayer")
class LinearLayer(Layer):
    """Dense layer on a flat (features,) input, optionally with a fused ReLU."""

    op_class = "FC"
    out_features: int
    bias: bool = True
    relu: bool = False

    def output_shape(self, in_shapes):
        if len(in_shapes[0]) != 1:
            raise SpecError(f"LinearLayer expects a flat (features,) input, got shape {list(in_shapes[0])}; "
                            f"put a ReshapeLayer (or GlobalAvgPoolLayer + ReshapeLayer) before it")
        return (self.out_features,)

    def build(self, in_shapes):
        fc = nn.Linear(in_shapes[0][0], self.out_features, bias=self.bias)
        return nn.Sequential(fc, nn.ReLU()) if self.relu else fc

    def macs(self, in_shapes, out_shape):
        return in_shapes[0][0] * self.out_features

    def device_ops(self, name, in_shapes, out_shape, *, on_model_input, params, macs):
        return [LayerOp(name, "FC", in_shapes[0], out_shape, in_features=in_shapes[0][0],
                        out_features=self.out_features, activation="relu" if self.relu else None,
                        params=params, macs=macs)]

    def twin_ops(self, twin):
        fc = twin.module[0] if isinstance(twin.module, nn.Sequential) else twin.module
        w, b = twin.torch_weights(fc)
        return twin.dense(twin.inputs[0], w, b, activation="relu" if self.relu else None)


class _Reshape(nn.Module):
    def __init__(self, shape: Shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape((x.shape[0],) + self.shape)


@LAYERS.register("ReshapeLayer")
class ReshapeLayer(Layer):
    """Reshape per sample; the default ``[-1]`` flattens (C, L, 1) to (C*L,) in channel-major order."""

    op_class = "RESHAPE"
    shape: list[int] = [-1]

    def output_shape(self, in_shapes):
        total = numel(in_shapes[0])
        shape = list(self.shape)
        if shape.count(-1) > 1:
            raise SpecError("ReshapeLayer.shape may contain -1 at most once")
        known = numel(tuple(s for s in shape if s != -1))
        if -1 in shape:
            if known == 0 or total % known:
                raise SpecError(f"cannot reshape {list(in_shapes[0])} into {shape}")
            shape[shape.index(-1)] = total // known
        if numel(tuple(shape)) != total:
            raise SpecError(f"cannot reshape {list(in_shapes[0])} ({total} values) into {shape}")
        return tuple(shape)

    def build(self, in_shapes):
        return _Reshape(self.output_shape(in_shapes))

    def twin_ops(self, twin):
        return twin.reshape(twin.inputs[0], twin.out_shape)


@LAYERS.register("DropoutLayer")
class DropoutLayer(Layer):
    """Dropout during training; the identity at inference (and so in every export)."""

    op_class = "IDENTITY"
    p: float = 0.1

    def output_shape(self, in_shapes):
        return in_shapes[0]

    def build(self, in_shapes):
        return nn.Dropout(self.p)

    def twin_ops(self, twin):
        return twin.identity(twin.inputs[0])  # inference: dropout is off
