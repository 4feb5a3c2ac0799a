"""Teachers: large float classifiers that never ship. They exist to be distilled into a device-sized student
(``training.teacher``): the reference deep-learning architectures of Fawaz et al. 2019 ("Deep learning for time
series classification: a review", DMKD) and InceptionTime (Fawaz et al. 2020), as spec models.

Their kernels (8, 39, ...), widths (128-256 channels) and parameter counts (~270k-500k) break the NPU rules and any
MCU budget on purpose. Each spec carries ``metadata: {role: teacher, never_ships: ...}``
(:mod:`tinyverse.models.roles`): the runner refuses one as the model to ship, ``modelmaker models`` lists them as
teachers and ``modelmaker check`` says they never ship instead of judging their fit.
"""
from __future__ import annotations

from typing import Any, Sequence

from tinyverse.models.roles import TEACHER
from tinyverse.registry import MODEL_REGISTRY
from tinyverse.timeseries.zoo.classification import spec_inputs

TASK = "classification"
NEVER_SHIPS = ("a float teacher for distillation (training.teacher.model_name): it trains device-sized students and is "
               "not meant for a device")


def teacher_spec(input_shape: Sequence[int], layers: dict[str, Any], num_classes: int) -> dict[str, Any]:
    """GAP → FC head on ``layers``, with the teacher mark."""
    layers = {**layers, "gap": {"type": "GlobalAvgPoolLayer"}, "flatten": {"type": "ReshapeLayer", "shape": [-1]},
              "fc": {"type": "LinearLayer", "out_features": int(num_classes)}}
    return {"inputs": spec_inputs(input_shape), "layers": layers,
            "metadata": {"role": TEACHER, "never_ships": NEVER_SHIPS}}


@MODEL_REGISTRY.register("TEACHER_FCN", task=TASK, family="fcn", role=TEACHER)
def TEACHER_FCN(input_shape: Sequence[int] = (1, 512), num_classes: int = 2,
                channels: Sequence[int] = (128, 256, 128), kernel_sizes: Sequence[int] = (8, 5, 3)) -> dict[str, Any]:
    """Fully convolutional network (Wang et al. 2017; Fawaz et al. 2019's FCN): ConvBNReLU 128/k8, 256/k5, 128/k3,
    stride 1, global average pool, FC. ~270k parameters on one channel."""
    if len(channels) != len(kernel_sizes):
        raise ValueError("channels and kernel_sizes must have the same length")
    layers = {f"conv{i}": {"type": "ConvBNReLULayer", "out_channels": int(c), "kernel_size": int(k)}
              for i, (c, k) in enumerate(zip(channels, kernel_sizes), start=1)}
    return teacher_spec(input_shape, layers, num_classes)


@MODEL_REGISTRY.register("TEACHER_ResNet", task=TASK, family="resnet", role=TEACHER)
def TEACHER_ResNet(input_shape: Sequence[int] = (1, 512), num_classes: int = 2,
                   widths: Sequence[int] = (64, 128, 128), kernel_sizes: Sequence[int] = (7, 5, 3)) -> dict[str, Any]:
    """Fawaz et al. 2019's ResNet: per width a block of ConvBNReLU k7 → ConvBNReLU k5 → ConvBN k3, plus a shortcut
    (a 1x1 ConvBN where the channel count changes, else the block's input), then ReLU; GAP, FC. ~500k parameters.
    The paper's first kernel is 8; 7 keeps "same" padding symmetric, so the shortcut and the block agree in length."""
    layers: dict[str, Any] = {}
    prev, prev_c = "x", int(input_shape[0])
    for b, width in enumerate(widths, start=1):
        n = len(kernel_sizes)
        for j, k in enumerate(kernel_sizes, start=1):
            kind = "ConvBNLayer" if j == n else "ConvBNReLULayer"
            layers[f"b{b}_conv{j}"] = {"type": kind, "out_channels": int(width), "kernel_size": int(k),
                                       **({"input": prev} if j == 1 else {})}
        shortcut = prev
        if prev_c != width:
            shortcut = f"b{b}_short"
            layers[shortcut] = {"type": "ConvBNLayer", "out_channels": int(width), "kernel_size": 1, "padding": 0,
                                "input": prev}
        layers[f"b{b}_add"] = {"type": "Add", "inputs": [f"b{b}_conv{n}", shortcut]}
        layers[f"b{b}_relu"] = {"type": "ReLULayer"}
        prev, prev_c = f"b{b}_relu", int(width)
    return teacher_spec(input_shape, layers, num_classes)


@MODEL_REGISTRY.register("TEACHER_InceptionTime", task=TASK, family="inception", role=TEACHER)
def TEACHER_InceptionTime(input_shape: Sequence[int] = (1, 512), num_classes: int = 2, depth: int = 6,
                          filters: int = 32, bottleneck: int = 32,
                          kernel_sizes: Sequence[int] = (39, 19, 9)) -> dict[str, Any]:
    """One InceptionTime network (Fawaz et al. 2020): ``depth`` inception modules (a 1x1 bottleneck, then convs of
    ``kernel_sizes`` side by side with a max-pool → 1x1 branch, concatenated, BN, ReLU), a residual shortcut every
    third module; GAP, FC. Odd kernels (39/19/9 for the paper's 40/20/10) keep "same" padding symmetric."""
    layers: dict[str, Any] = {}
    prev, prev_c, residual, residual_c = "x", int(input_shape[0]), "x", int(input_shape[0])
    out_c = filters * (len(kernel_sizes) + 1)
    for m in range(1, depth + 1):
        p = f"m{m}_"
        source = prev
        if prev_c > 1:
            layers[p + "bottleneck"] = {"type": "ConvLayer", "out_channels": int(bottleneck), "kernel_size": 1,
                                        "padding": 0, "bias": False, "input": prev}
            source = p + "bottleneck"
        branches = []
        for k in kernel_sizes:
            layers[f"{p}conv{k}"] = {"type": "ConvLayer", "out_channels": int(filters), "kernel_size": int(k),
                                     "bias": False, "input": source}
            branches.append(f"{p}conv{k}")
        layers[p + "pool"] = {"type": "MaxPoolLayer", "kernel_size": [3, 1], "stride": 1, "padding": [1, 0],
                              "input": prev}
        layers[p + "pool_conv"] = {"type": "ConvLayer", "out_channels": int(filters), "kernel_size": 1, "padding": 0,
                                   "bias": False}
        layers[p + "cat"] = {"type": "Concat", "inputs": [*branches, p + "pool_conv"]}
        layers[p + "bn"] = {"type": "BatchNormLayer"}
        layers[p + "relu"] = {"type": "ReLULayer"}
        prev, prev_c = p + "relu", out_c
        if m % 3 == 0:  # the residual shortcut of every third module
            layers[p + "short"] = {"type": "ConvBNLayer", "out_channels": out_c, "kernel_size": 1, "padding": 0,
                                   "input": residual}
            layers[p + "add"] = {"type": "Add", "inputs": [p + "bn", p + "short"]}
            layers[p + "res_relu"] = {"type": "ReLULayer"}
            # the module's own ReLU is not on the residual path: the sum is activated once
            layers.pop(p + "relu")
            prev, residual, residual_c = p + "res_relu", p + "res_relu", out_c
    return teacher_spec(input_shape, layers, num_classes)
