"""Forecasting zoo: small models mapping a (C, window) input to C*horizon values (``num_outputs``).

- ``FCST_*_NPU``: ConvBNReLU stacks with a flatten head (the time position of a feature matters for a
  forecast, so no global pooling), every layer within TI's NPU rules (../shared/reference/ti-npu-rules.md);
- ``FCST_MLP_*``: flatten → FC layers (on the NPU when the window has >= 16 values);
- ``FCST_LSTM``: a one-layer LSTM over the window, the last hidden state → FC. A plain ``nn.Module``, not a spec:
  it exports to ONNX (float and int8 run in onnxruntime), but there is no TFLite / TFLM export for it (the spec
  language and its Keras twin have no LSTM layer) and LSTMs run on the CPU, never on TI's NPU.

Parameter counts in the names are at the default input (1, 24) and 12 outputs (a 12-step forecast).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from tinyverse.timeseries.zoo.regression import register_conv, register_mlp
from tinyverse.registry import MODEL_REGISTRY

TASK = "forecasting"
DEFAULT_INPUT = (1, 24)

# name, channels, kernels, strides, hidden — pooled_length 8 keeps every time step of a 24-step window's
# stride-2 feature map (12 steps) for the FC.
register_conv("FCST_500_NPU", TASK, [4], [5], [2], pooled_length=8, default_input=DEFAULT_INPUT,
              default_outputs=12)
register_conv("FCST_1k_NPU", TASK, [4, 8], [5, 3], [1, 2], pooled_length=8, default_input=DEFAULT_INPUT,
              default_outputs=12)
register_conv("FCST_2k_NPU", TASK, [8, 12], [5, 3], [1, 2], pooled_length=8, default_input=DEFAULT_INPUT,
              default_outputs=12)
register_conv("FCST_4k_NPU", TASK, [8, 16, 16], [5, 3, 3], [1, 2, 1], pooled_length=8, hidden=16,
              default_input=DEFAULT_INPUT, default_outputs=12)
register_mlp("FCST_MLP_1k", TASK, [32], default_input=DEFAULT_INPUT, default_outputs=12)
register_mlp("FCST_MLP_2k", TASK, [48, 16], default_input=DEFAULT_INPUT, default_outputs=12)


class LSTMForecaster(nn.Module):
    """(N, C, L, 1) → LSTM over the L steps → last hidden state → Linear → (N, num_outputs)."""

    def __init__(self, input_shape: Sequence[int] = DEFAULT_INPUT, num_outputs: int = 12, hidden_size: int = 16,
                 num_layers: int = 1):
        super().__init__()
        self.input_shape = tuple(int(d) for d in input_shape[:2])
        self.num_outputs = int(num_outputs)
        self.lstm = nn.LSTM(self.input_shape[0], int(hidden_size), num_layers=int(num_layers), batch_first=True)
        self.fc = nn.Linear(int(hidden_size), self.num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.reshape(x.shape[0], x.shape[1], x.shape[2]).transpose(1, 2)  # (N, L, C)
        out, _ = self.lstm(seq)
        return self.fc(out[:, -1])


@MODEL_REGISTRY.register("FCST_LSTM", task=TASK, family="lstm")
def FCST_LSTM(input_shape: Sequence[int] = DEFAULT_INPUT, num_outputs: int = 12, hidden_size: int = 16,
              num_layers: int = 1) -> nn.Module:
    """A one-layer LSTM forecaster (plain nn.Module: ONNX export only; no TFLite/TFLM, CPU only on devices)."""
    return LSTMForecaster(input_shape, num_outputs, hidden_size, num_layers)
