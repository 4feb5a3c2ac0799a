"""Time-series regression zoo: small NPU-friendly CNNs and MLPs that output ``num_outputs`` values.

Same rules as the classification ladder (../shared/reference/ti-npu-rules.md): a first conv with in_channels 1 and
out_channels a multiple of 4, later convs with channels in multiples of 4 and kernels of at most 7 taps, strides
1 or 2 along time, every FC reading at least 16 features. Regression keeps *where* along the series a feature
sits (a spectrum's wavelength, a window's time step), so the conv models end with a flatten head (short average
pools down to a few steps, flatten, FC) instead of global average pooling; an optional hidden FC (ReLU) sits
before the output layer. The output is linear (no activation): targets are standardised by the dataset.

Entries are functions of ``input_shape`` (channels, length) and ``num_outputs`` plus their architecture
arguments; parameter counts in the names are at the default input (1, 128) and one output.
"""
from __future__ import annotations

from typing import Any, Sequence

from tinyverse.timeseries.zoo.classification import spec_inputs, pool_chain
from tinyverse.registry import MODEL_REGISTRY

TASK = "regression"


def conv_regressor_spec(input_shape: Sequence[int], num_outputs: int, channels: Sequence[int],
                        kernel_sizes: Sequence[int], strides: Sequence[int], pooled_length: int = 4,
                        hidden: int = 0, dropout: float = 0.0) -> dict[str, Any]:
    """ConvBNReLU stack → average pools down to ``pooled_length``..2*``pooled_length`` steps → flatten →
    [FC ``hidden`` + ReLU] → FC ``num_outputs``."""
    if not (len(channels) == len(kernel_sizes) == len(strides)):
        raise ValueError("channels, kernel_sizes and strides must have the same length")
    layers: dict[str, Any] = {}
    length = int(input_shape[1])
    for i, (c, k, s) in enumerate(zip(channels, kernel_sizes, strides), start=1):
        layers[f"conv{i}"] = {"type": "ConvBNReLULayer", "out_channels": int(c), "kernel_size": int(k),
                              "stride": int(s)}
        length = (length - 1) // int(s) + 1
    for i, k in enumerate(pool_chain(length, pooled_length), start=1):
        layers[f"pool{i}"] = {"type": "AvgPoolLayer", "kernel_size": k, "stride": k}
    layers["flatten"] = {"type": "ReshapeLayer", "shape": [-1]}
    if dropout:
        layers["dropout"] = {"type": "DropoutLayer", "p": float(dropout)}
    if hidden:
        layers["fc1"] = {"type": "LinearLayer", "out_features": int(hidden), "relu": True}
    layers["fc"] = {"type": "LinearLayer", "out_features": int(num_outputs)}
    return {"inputs": spec_inputs(input_shape), "layers": layers}


def mlp_spec(input_shape: Sequence[int], num_outputs: int, hidden: Sequence[int], dropout: float = 0.0
             ) -> dict[str, Any]:
    """Flatten the (C, L) input → FC + ReLU per ``hidden`` width → FC ``num_outputs`` (FC-only: every layer runs
    on the NPU when the flattened input has >= 16 values)."""
    layers: dict[str, Any] = {"flatten": {"type": "ReshapeLayer", "shape": [-1]}}
    for i, h in enumerate(hidden, start=1):
        layers[f"fc{i}"] = {"type": "LinearLayer", "out_features": int(h), "relu": True}
        if dropout:
            layers[f"dropout{i}"] = {"type": "DropoutLayer", "p": float(dropout)}
    layers["fc"] = {"type": "LinearLayer", "out_features": int(num_outputs)}
    return {"inputs": spec_inputs(input_shape), "layers": layers}


def register_conv(name: str, task: str, channels: list[int], kernel_sizes: list[int], strides: list[int],
                  hidden: int = 0, pooled_length: int = 4, default_input: Sequence[int] = (1, 128),
                  default_outputs: int = 1, description: str = "") -> None:
    def entry(input_shape: Sequence[int] = default_input, num_outputs: int = default_outputs,
              channels: Sequence[int] = channels,
              kernel_sizes: Sequence[int] = kernel_sizes, strides: Sequence[int] = strides, hidden: int = hidden,
              pooled_length: int = pooled_length, dropout: float = 0.0) -> dict[str, Any]:
        return conv_regressor_spec(input_shape, num_outputs, channels, kernel_sizes, strides,
                                   pooled_length=pooled_length, hidden=hidden, dropout=dropout)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = description or (f"{name}: ConvBNReLU channels {channels}, kernels {kernel_sizes}, strides "
                                    f"{strides}, flatten head{f' + FC {hidden}' if hidden else ''} → num_outputs.")
    MODEL_REGISTRY.register(name, entry, task=task, family="cnn")


def register_mlp(name: str, task: str, hidden: list[int], default_input: Sequence[int] = (1, 128),
                 default_outputs: int = 1, description: str = "") -> None:
    def entry(input_shape: Sequence[int] = default_input, num_outputs: int = default_outputs,
              hidden: Sequence[int] = hidden,
              dropout: float = 0.0) -> dict[str, Any]:
        return mlp_spec(input_shape, num_outputs, hidden, dropout=dropout)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = description or f"{name}: flatten → FC {hidden} (ReLU) → FC num_outputs."
    MODEL_REGISTRY.register(name, entry, task=task, family="mlp")


# name, channels, kernels, strides, hidden — params near the name at input (1, 128), one output. Hidden FCs are
# >= 16 wide: the FC after them reads them (NPU FC rule).
register_conv("REGR_500_NPU", TASK, [4, 8], [5, 3], [2, 2], hidden=16, pooled_length=2)
register_conv("REGR_1k_NPU", TASK, [8, 8, 8], [5, 3, 3], [2, 2, 2], hidden=16)
register_conv("REGR_2k_NPU", TASK, [8, 12, 16], [5, 3, 3], [2, 2, 2], hidden=16)
register_conv("REGR_4k_NPU", TASK, [8, 16, 16, 24], [7, 5, 3, 3], [2, 2, 2, 2], hidden=16)
register_conv("REGR_8k_NPU", TASK, [16, 16, 32, 32], [7, 5, 3, 3], [2, 2, 2, 2], hidden=16)
register_mlp("REGR_MLP_2k", TASK, [16])
register_mlp("REGR_MLP_4k", TASK, [32])
register_mlp("REGR_MLP_8k", TASK, [48, 32])
