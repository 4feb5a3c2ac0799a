"""Pooling layers on (C, L, 1) tensors."""
from __future__ import annotations

from torch import nn

from tinyverse.layers.base import Layer, LayerOp, Shape, SpecError, pair
from tinyverse.registry import LAYERS

IntOrPair = int | list[int]


class _PoolBase(Layer):
    kernel_size: IntOrPair = 2
    stride: IntOrPair | None = None  # None: same as kernel_size (non-overlapping), as torch does
    padding: IntOrPair = 0

    def _geometry(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        k = pair(self.kernel_size)
        s = pair(self.stride) if self.stride is not None else k
        return k, s, pair(self.padding, second=0)

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        if len(in_shapes[0]) != 3:
            raise SpecError(f"{self.type_name()} expects a (C, L, 1) input, got shape {list(in_shapes[0])}")
        c, h, w = in_shapes[0]
        (kh, kw), (sh, sw), (ph, pw) = self._geometry()
        oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        if oh < 1 or ow < 1:
            raise SpecError(f"input length {h} is too short for pool kernel {kh}")
        return (c, oh, ow)

    def macs(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        kh, kw = pair(self.kernel_size)
        c, oh, ow = out_shape
        return c * oh * ow * kh * kw

    def device_ops(self, name, in_shapes, out_shape, *, on_model_input, params, macs):
        k, s, _ = self._geometry()
        return [LayerOp(name, self.op_class, in_shapes[0], out_shape, in_channels=in_shapes[0][0],
                        out_channels=out_shape[0], kernel=k, stride=s, params=params, macs=macs)]

    def twin_ops(self, twin):
        k, s, p = self._geometry()
        return twin.pool(twin.inputs[0], "max" if self.op_class == "MAXPOOL" else "avg", k, s, p)


@LAYERS.register("MaxPoolLayer")
class MaxPoolLayer(_PoolBase):
    op_class = "MAXPOOL"

    def build(self, in_shapes):
        k, s, p = self._geometry()
        return nn.MaxPool2d(k, s, p)


@LAYERS.register("AvgPoolLayer")
class AvgPoolLayer(_PoolBase):
    op_class = "AVGPOOL"

    def build(self, in_shapes):
        k, s, p = self._geometry()
        return nn.AvgPool2d(k, s, p)


@LAYERS.register("GlobalAvgPoolLayer")
class GlobalAvgPoolLayer(Layer):
    """Average over time (and width): (C, L, 1) -> (C, 1, 1)."""

    op_class = "GAP"

    def output_shape(self, in_shapes):
        if len(in_shapes[0]) != 3:
            raise SpecError(f"GlobalAvgPoolLayer expects a (C, L, 1) input, got shape {list(in_shapes[0])}")
        return (in_shapes[0][0], 1, 1)

    def build(self, in_shapes):
        return nn.AdaptiveAvgPool2d((1, 1))

    def macs(self, in_shapes, out_shape):
        c, h, w = in_shapes[0]
        return c * h * w

    def device_ops(self, name, in_shapes, out_shape, *, on_model_input, params, macs):
        c, h, w = in_shapes[0]
        return [LayerOp(name, "AVGPOOL", in_shapes[0], out_shape, in_channels=c, out_channels=c, kernel=(h, w),
                        stride=(h, w), params=params, macs=macs, attrs={"global": True})]

    def twin_ops(self, twin):
        _, h, w = twin.in_shapes[0]
        return twin.pool(twin.inputs[0], "avg", (h, w), (h, w))
