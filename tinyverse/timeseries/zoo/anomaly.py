"""Anomaly-detection zoo: convolutional autoencoders whose output is the input's reconstruction (C, L, 1).

Shape of every entry (a window of ``L`` samples, ``C`` channels)::

    encoder   n x ConvBNReLU stride 2             (C, L, 1) -> (c_n, L / 2^n, 1)
    bottleneck flatten -> FC(b, ReLU) -> FC(c_n * L / 2^n, ReLU) -> reshape (c_n, L / 2^n, 1)
    decoder   (n - 2) x [ConvBNReLU to 2*d_i channels -> DepthToTime(2)]   sub-pixel upsampling by 2
              ConvLayer to 4*C channels -> DepthToTime(4)                  (C, L, 1), linear output

The decoder upsamples without transposed convolutions or resize ops: a conv makes ``r`` times the channels and
``DepthToTimeLayer`` moves them into time (a plain RESHAPE in the NHWC .tflite). Every conv and FC obeys TI's
NPU rules (../shared/reference/ti-npu-rules.md): first conv on one input channel, channels in multiples of 4
(the last conv makes 4*C), kernels <= 7, stride 2, each FC reads >= 16 features. On an F28P55 the DepthToTime
steps are the only CPU work (a copy of the feature map each, no MACs); ``modelmaker check`` lists them.

The anomaly score of a window is its mean squared reconstruction error (see tinyverse.timeseries.evaluation.anomaly).
``L`` must be a multiple of 2^n (16 for the 4-stage entries, 32 for AD_3k_NPU).
"""
from __future__ import annotations

from typing import Any, Sequence

from tinyverse.layers.base import SpecError
from tinyverse.registry import MODEL_REGISTRY

TASK = "anomaly_detection"


def conv_autoencoder_spec(input_shape: Sequence[int], channels: Sequence[int], kernel_sizes: Sequence[int],
                          bottleneck: int, decoder_channels: Sequence[int],
                          decoder_kernel: int = 5) -> dict[str, Any]:
    """The spec described in the module docstring; ``bottleneck`` 0 leaves the FC pair out (all-conv)."""
    c_in, length = (int(d) for d in input_shape[:2])
    n = len(channels)
    if len(kernel_sizes) != n:
        raise SpecError("channels and kernel_sizes must have the same length")
    if n < 2 or len(decoder_channels) != n - 2:
        raise SpecError(f"{n} encoder stages (stride 2 each) need {max(n - 2, 0)} decoder_channels (x2 each) before "
                        f"the final x4 step, got {len(decoder_channels)}")
    if length % (2 ** n):
        raise SpecError(f"input length {length} is not a multiple of {2 ** n} (the encoder halves it {n} times and "
                        f"the decoder doubles it back); use a window of {length - length % (2 ** n) or 2 ** n} or "
                        f"{length + 2 ** n - length % (2 ** n)} samples")
    layers: dict[str, Any] = {}
    for i, (c, k) in enumerate(zip(channels, kernel_sizes), start=1):
        layers[f"enc{i}"] = {"type": "ConvBNReLULayer", "out_channels": int(c), "kernel_size": int(k), "stride": 2}
    code_len, code_ch = length // 2 ** n, int(channels[-1])
    if bottleneck:
        layers["flatten"] = {"type": "ReshapeLayer", "shape": [-1]}
        layers["code"] = {"type": "LinearLayer", "out_features": int(bottleneck), "relu": True}
        layers["expand"] = {"type": "LinearLayer", "out_features": code_ch * code_len, "relu": True}
        layers["unflatten"] = {"type": "ReshapeLayer", "shape": [code_ch, code_len, 1]}
    for i, d in enumerate(decoder_channels, start=1):
        layers[f"dec{i}"] = {"type": "ConvBNReLULayer", "out_channels": 2 * int(d), "kernel_size": decoder_kernel}
        layers[f"up{i}"] = {"type": "DepthToTimeLayer", "factor": 2}
    layers["out"] = {"type": "ConvLayer", "out_channels": 4 * c_in, "kernel_size": decoder_kernel}
    layers["up_out"] = {"type": "DepthToTimeLayer", "factor": 4}
    return {"inputs": {"x": [c_in, length, 1]}, "layers": layers}


def _ladder(name: str, channels: list[int], kernel_sizes: list[int], bottleneck: int, decoder_channels: list[int],
            description: str, decoder_kernel: int = 5) -> None:
    def entry(input_shape: Sequence[int] = (1, 256), channels: Sequence[int] = channels,
              kernel_sizes: Sequence[int] = kernel_sizes, bottleneck: int = bottleneck,
              decoder_channels: Sequence[int] = decoder_channels,
              decoder_kernel: int = decoder_kernel) -> dict[str, Any]:
        return conv_autoencoder_spec(input_shape, channels, kernel_sizes, bottleneck, decoder_channels,
                                     decoder_kernel)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = description
    MODEL_REGISTRY.register(name, entry, task=TASK, family="autoencoder")


# Parameter counts at the default (1, 256) input, one channel; the FC pair grows with L.
_ladder("AD_3k_NPU", [4, 8, 8, 8, 8], [5, 3, 3, 3, 3], 16, [4, 4, 4],
        "Conv autoencoder, ~3.4k params at (1, 256): 5 stride-2 encoder convs (4-8 channels), 16-value code, "
        "sub-pixel conv decoder (kernel 3).", decoder_kernel=3)
_ladder("AD_7k_NPU", [4, 8, 8, 8], [5, 5, 5, 5], 16, [8, 8],
        "Conv autoencoder, ~6.6k params at (1, 256): 4 stride-2 encoder convs (4-8 channels), 16-value code, "
        "sub-pixel conv decoder.")
_ladder("AD_14k_NPU", [8, 16, 16, 16], [5, 5, 5, 5], 16, [8, 8],
        "Conv autoencoder, ~14k params at (1, 256): 4 stride-2 encoder convs (8-16 channels), 16-value code, "
        "sub-pixel conv decoder.")
