"""Sub-pixel upsampling along time: (C*r, L, 1) -> (C, L*r, 1), the decoder half of a conv autoencoder.

A conv producing ``C*r`` channels followed by this layer upsamples by ``r`` without transposed convolutions
or a resize op: output sample ``t*r + j`` of channel ``c`` is input channel ``j*C + c`` at step ``t``::

    out[c, t*r + j] = in[j*C + c, t]

That channel order (block index major, as TensorFlow's DEPTH_TO_SPACE) makes the layer a plain RESHAPE in the
NHWC layout TFLite uses — (L, 1, C*r) and (L*r, 1, C) hold the same bytes — so the int8 .tflite carries no
data movement for it. In PyTorch's (and ONNX's) NCHW layout it is a reshape-transpose-reshape; TI's NPU runs no
transposes, so on an F28P55 this layer is a CPU copy of the feature map (no MACs).
"""
from __future__ import annotations

import torch
from torch import nn

from tinyverse.layers.base import Layer, LayerOp, SpecError
from tinyverse.registry import LAYERS


class _DepthToTime(nn.Module):
    def __init__(self, factor: int):
        super().__init__()
        self.factor = int(factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, k, length, w = x.shape
        r = self.factor
        # (N, r*C, L, W) -> (N, r, C, L, W) -> (N, C, L, r, W) -> (N, C, L*r, W)
        return x.reshape(n, r, k // r, length, w).permute(0, 2, 3, 1, 4).reshape(n, k // r, length * r, w)


@LAYERS.register("DepthToTimeLayer")
class DepthToTimeLayer(Layer):
    """Move ``factor`` channel blocks into time: (C*factor, L, 1) -> (C, L*factor, 1)."""

    op_class = "DEPTH_TO_SPACE"
    factor: int = 2

    def output_shape(self, in_shapes):
        shape = in_shapes[0]
        if len(shape) != 3 or shape[2] != 1:
            raise SpecError(f"DepthToTimeLayer expects a (C, L, 1) input, got shape {list(shape)}")
        if self.factor < 1:
            raise SpecError(f"factor must be >= 1, got {self.factor}")
        c, length, _ = shape
        if c % self.factor:
            raise SpecError(f"{c} channels do not split into factor {self.factor} blocks; give the conv before it "
                            f"out_channels = channels wanted x {self.factor}")
        return (c // self.factor, length * self.factor, 1)

    def build(self, in_shapes):
        return _DepthToTime(self.factor)

    def twin_ops(self, twin):
        return twin.depth_to_time(twin.inputs[0], self.factor)

    def device_ops(self, name, in_shapes, out_shape, *, on_model_input, params, macs):
        return [LayerOp(name, self.op_class, in_shapes[0], out_shape, in_channels=in_shapes[0][0],
                        out_channels=out_shape[0], params=params, macs=macs, attrs={"factor": self.factor})]
