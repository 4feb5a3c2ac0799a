"""Normalisation and activation layers (standalone; ConvBNReLULayer fuses them for the NPU)."""
from __future__ import annotations

from typing import ClassVar

from torch import nn

from tinyverse.layers.base import Layer, SpecError, numel
from tinyverse.registry import LAYERS


@LAYERS.register("BatchNormLayer")
class BatchNormLayer(Layer):
    op_class = "BN"

    def output_shape(self, in_shapes):
        if len(in_shapes[0]) not in (1, 3):
            raise SpecError(f"BatchNormLayer expects (C, L, 1) or (F,), got shape {list(in_shapes[0])}")
        return in_shapes[0]

    def build(self, in_shapes):
        c = in_shapes[0][0]
        return nn.BatchNorm2d(c) if len(in_shapes[0]) == 3 else nn.BatchNorm1d(c)

    def twin_ops(self, twin):
        return twin.affine(twin.inputs[0], *twin.batchnorm_affine(twin.module))

    def macs(self, in_shapes, out_shape):
        return numel(out_shape)


class _Activation(Layer):
    twin_fn: ClassVar[str] = ""  # the twin's ``act`` primitive

    def output_shape(self, in_shapes):
        return in_shapes[0]

    def twin_ops(self, twin):
        return twin.act(twin.inputs[0], self.twin_fn)

    def macs(self, in_shapes, out_shape):
        return numel(out_shape)


@LAYERS.register("ReLULayer")
class ReLULayer(_Activation):
    op_class = "RELU"
    twin_fn = "relu"

    def build(self, in_shapes):
        return nn.ReLU()


@LAYERS.register("TanhLayer")
class TanhLayer(_Activation):
    op_class = "TANH"
    twin_fn = "tanh"

    def build(self, in_shapes):
        return nn.Tanh()


@LAYERS.register("SigmoidLayer")
class SigmoidLayer(_Activation):
    op_class = "SIGMOID"
    twin_fn = "sigmoid"

    def build(self, in_shapes):
        return nn.Sigmoid()
