"""Two layer types from mobile nets, declared outside tinyverse with their own TFLite twin ops.

A layer type is a pydantic model registered in ``LAYERS``: its fields are its arguments; it says how to build its
torch module, its output shape, MACs and device ops, and — ``twin_ops`` — how it is written into the Keras/TFLite
twin by composing the builder's primitives (``tinyverse.export.twin_plan``). No tinyverse file knows these names.

- ``ConvReLU6Layer``: a convolution with a fused ReLU6 (MobileNet's activation; TFLite fuses RELU6 into CONV_2D).
- ``SiLULayer``: x · sigmoid(x) (SiLU / swish), composed of two primitives: ``act`` (sigmoid) and ``mul``.

    extensions: [examples/extensions/layer/mobile_layers.py]
    # in a spec: {type: ConvReLU6Layer, out_channels: 8, kernel_size: 5}, {type: SiLULayer}
"""
from __future__ import annotations

from torch import nn

from tinyverse.layers import Layer, LayerOp, SpecError
from tinyverse.layers.base import numel
from tinyverse.registry import LAYERS


@LAYERS.register("ConvReLU6Layer")
class ConvReLU6Layer(Layer):
    """Conv over (C, L, 1) with a (k, 1) kernel, "same" padding (odd k), then ReLU6."""

    op_class = "GCONV"
    out_channels: int
    kernel_size: int = 3
    stride: int = 1

    def output_shape(self, in_shapes):
        if len(in_shapes[0]) != 3 or self.kernel_size % 2 == 0:
            raise SpecError(f"ConvReLU6Layer needs a (C, L, 1) input and an odd kernel_size, got "
                            f"{list(in_shapes[0])} and {self.kernel_size}")
        _, length, width = in_shapes[0]
        return (self.out_channels, (length - 1) // self.stride + 1, width)

    def build(self, in_shapes):
        conv = nn.Conv2d(in_shapes[0][0], self.out_channels, (self.kernel_size, 1), (self.stride, 1),
                         (self.kernel_size // 2, 0))
        return nn.Sequential(conv, nn.ReLU6())

    def macs(self, in_shapes, out_shape):
        return numel(out_shape) * in_shapes[0][0] * self.kernel_size

    def device_ops(self, name, in_shapes, out_shape, *, on_model_input, params, macs):
        return [LayerOp(name, "FCONV" if on_model_input else "GCONV", in_shapes[0], out_shape,
                        in_channels=in_shapes[0][0], out_channels=self.out_channels, kernel=(self.kernel_size, 1),
                        stride=(self.stride, 1), activation="relu6", params=params, macs=macs)]

    def twin_ops(self, twin):
        conv = twin.module[0]
        w, b = twin.torch_weights(conv)  # torch layout (O, I, k, 1); the builder moves it to Keras layout
        return twin.conv(twin.inputs[0], w, b, stride=conv.stride, padding=conv.padding, activation="relu6")


class _SiLU(nn.Module):
    def forward(self, x):
        return x * x.sigmoid()


@LAYERS.register("SiLULayer")
class SiLULayer(Layer):
    """x · sigmoid(x), elementwise."""

    op_class = "SIGMOID"

    def output_shape(self, in_shapes):
        return in_shapes[0]

    def build(self, in_shapes):
        return _SiLU()

    def macs(self, in_shapes, out_shape):
        return 2 * numel(out_shape)

    def device_ops(self, name, in_shapes, out_shape, *, on_model_input, params, macs):
        return [LayerOp(name, "SIGMOID", in_shapes[0], out_shape, macs=macs // 2),
                LayerOp(name, "MUL", in_shapes[0], out_shape, macs=macs // 2)]

    def twin_ops(self, twin):
        x = twin.inputs[0]
        return twin.mul([x, twin.act(x, "sigmoid")])  # LOGISTIC, then MUL with the input
