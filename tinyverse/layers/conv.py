"""Convolution layers in TI's vocabulary, on (N, C, L, 1) tensors with (k, 1) kernels."""
from __future__ import annotations

from typing import ClassVar, Literal

from torch import nn

from tinyverse.layers.base import Layer, LayerOp, Shape, SpecError, pair
from tinyverse.registry import LAYERS

IntOrPair = int | list[int]


class _ConvBase(Layer):
    """Conv2d over (C, H, W) with optional fused BatchNorm and ReLU.

    Padding "same" keeps the length at stride 1 (k // 2 per side, odd kernels), as TI's zoo does.
    """

    out_channels: int | None = None  # None: keep the input's channels (depthwise)
    kernel_size: IntOrPair = 3
    stride: IntOrPair = 1
    padding: IntOrPair | Literal["same", "valid"] = "same"
    dilation: IntOrPair = 1
    groups: int = 1
    bias: bool | None = None  # None: no bias when a BatchNorm follows (it would be folded away)

    fuse_batchnorm: ClassVar[bool] = False
    fuse_relu: ClassVar[bool] = False

    def _in_channels(self, in_shapes: list[Shape]) -> int:
        shape = in_shapes[0]
        if len(shape) != 3:
            raise SpecError(f"{self.type_name()} expects a (C, L, 1) input, got shape {list(shape)}")
        return shape[0]

    def _out_channels(self, in_shapes: list[Shape]) -> int:
        return self.out_channels if self.out_channels is not None else self._in_channels(in_shapes)

    def _groups(self, in_shapes: list[Shape]) -> int:
        return self.groups

    def _padding(self) -> tuple[int, int]:
        kh, kw = pair(self.kernel_size)
        dh, dw = pair(self.dilation)
        if self.padding == "valid":
            return (0, 0)
        if self.padding == "same":
            return ((kh - 1) * dh // 2, (kw - 1) * dw // 2)
        return pair(self.padding, second=0)

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        c = self._in_channels(in_shapes)
        _, h, w = in_shapes[0]
        groups = self._groups(in_shapes)
        out = self._out_channels(in_shapes)
        if c % groups or out % groups:
            raise SpecError(f"channels in={c} / out={out} are not divisible by groups={groups}")
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (pair(self.kernel_size), pair(self.stride), self._padding(),
                                                 pair(self.dilation))
        oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        if oh < 1 or ow < 1:
            raise SpecError(f"input length {h} is too short for kernel {kh} (dilation {dh}, stride {sh})")
        return (out, oh, ow)

    def build(self, in_shapes: list[Shape]) -> nn.Module:
        c = self._in_channels(in_shapes)
        out = self._out_channels(in_shapes)
        bias = (not self.fuse_batchnorm) if self.bias is None else self.bias
        conv = nn.Conv2d(c, out, pair(self.kernel_size), pair(self.stride), self._padding(), pair(self.dilation),
                         groups=self._groups(in_shapes), bias=bias)
        mods: list[nn.Module] = [conv]
        if self.fuse_batchnorm:
            mods.append(nn.BatchNorm2d(out))
        if self.fuse_relu:
            mods.append(nn.ReLU())
        return nn.Sequential(*mods) if len(mods) > 1 else conv

    def macs(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        c = self._in_channels(in_shapes)
        kh, kw = pair(self.kernel_size)
        out_c, oh, ow = out_shape
        return out_c * oh * ow * (c // self._groups(in_shapes)) * kh * kw

    def conv_class(self, in_shapes: list[Shape], on_model_input: bool) -> str:
        c = self._in_channels(in_shapes)
        groups = self._groups(in_shapes)
        if groups > 1 and groups == c:
            return "DWCONV"
        if pair(self.kernel_size) == (1, 1):
            return "PWCONV"
        if on_model_input:
            return "FCONV"
        return "GCONV"

    def device_ops(self, name: str, in_shapes: list[Shape], out_shape: Shape, *, on_model_input: bool,
                   params: int, macs: int) -> list[LayerOp]:
        return [LayerOp(
            name, self.conv_class(in_shapes, on_model_input), in_shapes[0], out_shape,
            in_channels=self._in_channels(in_shapes), out_channels=out_shape[0], kernel=pair(self.kernel_size),
            stride=pair(self.stride), dilation=pair(self.dilation), groups=self._groups(in_shapes),
            activation="relu" if self.fuse_relu else None, params=params, macs=macs,
            attrs={"batchnorm": self.fuse_batchnorm})]

    def twin_ops(self, twin):
        """One CONV_2D / DEPTHWISE_CONV_2D with the BatchNorm folded in and the ReLU fused."""
        mods = list(twin.module) if isinstance(twin.module, nn.Sequential) else [twin.module]
        conv = next(m for m in mods if isinstance(m, nn.Conv2d))
        bn = next((m for m in mods if isinstance(m, nn.BatchNorm2d)), None)
        w, b = twin.torch_weights(conv)
        if bn is not None:
            w, b = twin.fold_batchnorm(w, b, bn)
        return twin.conv(twin.inputs[0], w, b, stride=conv.stride, dilation=conv.dilation, padding=conv.padding,
                         groups=conv.groups, activation="relu" if self.fuse_relu else None)


@LAYERS.register("ConvLayer")
class ConvLayer(_ConvBase):
    """A plain convolution with bias (no BatchNorm, no activation)."""

    out_channels: int


@LAYERS.register("ConvBNReLULayer")
class ConvBNReLULayer(_ConvBase):
    """Conv + BatchNorm + ReLU: the NPU's workhorse (BN folds into the conv, ReLU fuses)."""

    out_channels: int
    fuse_batchnorm: ClassVar[bool] = True
    fuse_relu: ClassVar[bool] = True


@LAYERS.register("ConvBNLayer")
class ConvBNLayer(_ConvBase):
    """Conv + BatchNorm without activation (the second conv of a residual block)."""

    out_channels: int
    fuse_batchnorm: ClassVar[bool] = True


@LAYERS.register("DWConvBNReLULayer")
class DWConvBNReLULayer(_ConvBase):
    """Depthwise conv (groups = channels) + BatchNorm + ReLU."""

    fuse_batchnorm: ClassVar[bool] = True
    fuse_relu: ClassVar[bool] = True

    def _groups(self, in_shapes: list[Shape]) -> int:
        return self._in_channels(in_shapes)


@LAYERS.register("PWConvBNReLULayer")
class PWConvBNReLULayer(_ConvBase):
    """Pointwise (1x1) conv + BatchNorm + ReLU."""

    out_channels: int
    kernel_size: IntOrPair = 1
    padding: IntOrPair | Literal["same", "valid"] = 0
