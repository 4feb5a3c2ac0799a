"""Time-series classification zoo: a ladder of NPU-friendly CNNs from ~100 to ~150k parameters.

Every entry obeys TI's NPU rules (../shared/reference/ti-npu-rules.md) for a single-channel input: the
first conv has in_channels 1 and out_channels a multiple of 4, later convs have channels in multiples of 4
and kernels of at most 7 taps, strides are 1 or 2 along time, the classifier's FC reads at least 16 features,
and global average pooling sees more than 2 time steps at the default length.

Each entry is a function of ``input_shape`` (channels, length) and ``num_classes`` plus its own architecture
arguments; a ``training.model_config`` file overrides any of them.
"""
from __future__ import annotations

from typing import Any, Sequence

from tinyverse.registry import MODEL_REGISTRY

TASK = "classification"


def spec_inputs(input_shape: Sequence[int]) -> dict[str, list[int]]:
    c, length = (int(d) for d in input_shape[:2])
    return {"x": [c, length, 1]}


def pool_chain(length: int, target: int, max_kernel: int = 4) -> list[int]:
    """Kernels of successive non-overlapping average pools taking ``length`` down to between ``target`` and
    2*target steps. TI's NPU runs a non-global average pool as a depthwise conv (kernel <= 7), so one long
    pool would fall back to the CPU; a chain of short ones stays on the NPU."""
    kernels = []
    while length // target >= 2:
        k = min(max_kernel, length // target)
        kernels.append(k)
        length //= k
    return kernels


def conv_classifier_spec(input_shape: Sequence[int], num_classes: int, channels: Sequence[int],
                         kernel_sizes: Sequence[int], strides: Sequence[int], head: str = "gap",
                         pooled_length: int = 4, dropout: float = 0.0) -> dict[str, Any]:
    """A plain stack of ConvBNReLU layers, then a head.

    head="gap": global average pool → FC (needs the last conv to have >= 16 channels for the NPU FC rule);
    head="flatten": average-pool down to ``pooled_length``..2*``pooled_length`` steps, flatten, FC — used by the
    smallest models, whose channel count is below 16, so the FC still reads >= 16 features.
    """
    if not (len(channels) == len(kernel_sizes) == len(strides)):
        raise ValueError("channels, kernel_sizes and strides must have the same length")
    layers: dict[str, Any] = {}
    for i, (c, k, s) in enumerate(zip(channels, kernel_sizes, strides), start=1):
        layers[f"conv{i}"] = {"type": "ConvBNReLULayer", "out_channels": int(c), "kernel_size": int(k),
                              "stride": int(s)}
    if head == "gap":
        layers["gap"] = {"type": "GlobalAvgPoolLayer"}
    elif head == "flatten":
        length = int(input_shape[1])
        for s in strides:
            length = (length - 1) // int(s) + 1
        for i, k in enumerate(pool_chain(length, pooled_length), start=1):
            layers[f"pool{i}"] = {"type": "AvgPoolLayer", "kernel_size": k, "stride": k}
    else:
        raise ValueError(f"head must be 'gap' or 'flatten', got {head!r}")
    layers["flatten"] = {"type": "ReshapeLayer", "shape": [-1]}
    if dropout:
        layers["dropout"] = {"type": "DropoutLayer", "p": float(dropout)}
    layers["fc"] = {"type": "LinearLayer", "out_features": int(num_classes)}
    return {"inputs": spec_inputs(input_shape), "layers": layers}


def _ladder(name: str, channels: list[int], kernel_sizes: list[int], strides: list[int], head: str = "gap",
            description: str = "") -> None:
    def entry(input_shape: Sequence[int] = (1, 512), num_classes: int = 2, channels: Sequence[int] = channels,
              kernel_sizes: Sequence[int] = kernel_sizes, strides: Sequence[int] = strides, head: str = head,
              dropout: float = 0.0) -> dict[str, Any]:
        return conv_classifier_spec(input_shape, num_classes, channels, kernel_sizes, strides, head=head,
                                    dropout=dropout)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = description or f"{name}: ConvBNReLU channels {channels}, kernels {kernel_sizes}, strides {strides}."
    MODEL_REGISTRY.register(name, entry, task=TASK, family="cnn")


# name, channels, kernels, strides, head — sized so that params (at 2 classes) land near the name.
_ladder("CLS_100_NPU", [4, 4], [5, 3], [2, 2], head="flatten")
_ladder("CLS_500_NPU", [8, 8, 8], [5, 3, 3], [2, 2, 2], head="flatten")
_ladder("CLS_1k_NPU", [8, 12, 16], [5, 3, 3], [2, 2, 2])
_ladder("CLS_2k_NPU", [8, 16, 16, 16], [5, 3, 3, 3], [2, 2, 2, 2])
_ladder("CLS_4k_NPU", [8, 16, 24, 32], [7, 5, 3, 3], [2, 2, 2, 2])
_ladder("CLS_6k_NPU", [16, 16, 32, 32], [7, 5, 3, 3], [1, 2, 2, 2])
_ladder("CLS_8k_NPU", [16, 24, 32, 40], [7, 5, 3, 3], [1, 2, 2, 2])
_ladder("CLS_13k_NPU", [16, 32, 32, 48, 48], [7, 5, 3, 3, 1], [1, 2, 2, 2, 1])
_ladder("CLS_20k_NPU", [16, 32, 48, 64, 48], [7, 5, 3, 3, 1], [1, 2, 2, 2, 1])
_ladder("CLS_55k_NPU", [32, 64, 64, 96, 96], [7, 5, 3, 3, 1], [1, 2, 2, 2, 1])
# The top of the ladder: still inside F28P55 at 1,024 steps (~128 kB of int8 activations at its widest, < 160 kB of
# weights); on ACSF1 it reads 1,024 steps to 86 % where CLS_55k_NPU reaches 83 % (docs/timeseries.md).
_ladder("CLS_150k_NPU", [64, 128, 128, 128, 128], [7, 5, 3, 3, 1], [1, 2, 2, 2, 1])


@MODEL_REGISTRY.register("CLS_RES_5k_NPU", task=TASK, family="resnet")
def CLS_RES_5k_NPU(input_shape: Sequence[int] = (1, 512), num_classes: int = 2, width: int = 16,
                   blocks: int = 2, stem_kernel: int = 7, dropout: float = 0.0) -> dict[str, Any]:
    """Residual CNN: a strided stem, then ``blocks`` of [strided ConvBNReLU → ConvBNReLU → ConvBN, + skip from
    the strided conv, ReLU]. Every block keeps ``width`` channels so each Add needs no projection."""
    layers: dict[str, Any] = {
        "stem": {"type": "ConvBNReLULayer", "out_channels": width, "kernel_size": stem_kernel, "stride": 2}}
    prev = "stem"
    for b in range(1, blocks + 1):
        down = f"down{b}"
        layers[down] = {"type": "ConvBNReLULayer", "out_channels": width, "kernel_size": 3, "stride": 2,
                        "input": prev}
        layers[f"b{b}_conv1"] = {"type": "ConvBNReLULayer", "out_channels": width, "kernel_size": 3}
        layers[f"b{b}_conv2"] = {"type": "ConvBNLayer", "out_channels": width, "kernel_size": 3}
        layers[f"b{b}_add"] = {"type": "Add", "inputs": [f"b{b}_conv2", down]}
        layers[f"b{b}_relu"] = {"type": "ReLULayer"}
        prev = f"b{b}_relu"
    layers["gap"] = {"type": "GlobalAvgPoolLayer"}
    layers["flatten"] = {"type": "ReshapeLayer", "shape": [-1]}
    if dropout:
        layers["dropout"] = {"type": "DropoutLayer", "p": float(dropout)}
    layers["fc"] = {"type": "LinearLayer", "out_features": int(num_classes)}
    return {"inputs": spec_inputs(input_shape), "layers": layers}


@MODEL_REGISTRY.register("CLS_DSCNN_2k_NPU", task=TASK, family="dscnn")
def CLS_DSCNN_2k_NPU(input_shape: Sequence[int] = (1, 512), num_classes: int = 2,
                     channels: Sequence[int] = (16, 32, 32), stem_kernel: int = 7, dw_kernel: int = 5,
                     dropout: float = 0.0) -> dict[str, Any]:
    """Depthwise-separable CNN: a strided stem conv, then (DWConv stride 2 → PWConv) blocks, GAP, FC."""
    layers: dict[str, Any] = {
        "stem": {"type": "ConvBNReLULayer", "out_channels": int(channels[0]), "kernel_size": stem_kernel,
                 "stride": 2}}
    for i, c in enumerate(channels[1:], start=1):
        layers[f"dw{i}"] = {"type": "DWConvBNReLULayer", "kernel_size": dw_kernel, "stride": 2}
        layers[f"pw{i}"] = {"type": "PWConvBNReLULayer", "out_channels": int(c)}
    layers["gap"] = {"type": "GlobalAvgPoolLayer"}
    layers["flatten"] = {"type": "ReshapeLayer", "shape": [-1]}
    if dropout:
        layers["dropout"] = {"type": "DropoutLayer", "p": float(dropout)}
    layers["fc"] = {"type": "LinearLayer", "out_features": int(num_classes)}
    return {"inputs": spec_inputs(input_shape), "layers": layers}
