"""Streaming exports of audio models: a block of samples plus the receptive-field context in, the block out.

The ONNX graph takes ``x`` of shape (N, block + receptive_field − 1) and returns (N, block) — the model in
"valid" mode — so a host keeps the last ``receptive_field − 1`` input samples between blocks
(:class:`tinyverse.audio.stream.OnnxStreamProcessor`). The block length is dynamic.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["export_streaming_onnx", "onnx_stream_render"]


class _Valid(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def export_streaming_onnx(model: nn.Module, path: str | Path, block_size: int = 512) -> Path:
    """Export a WaveNet / Linear model as a block-with-context ONNX graph (opset 18, dynamic block length).

    LSTMs carry state instead of context; they are not exported by this function.
    """
    from tinyverse.audio.nam import NAMLSTM

    if isinstance(model, NAMLSTM):
        raise NotImplementedError("streaming ONNX export of an LSTM needs state inputs/outputs (not implemented)")
    path = Path(path)
    rf = int(getattr(model, "receptive_field", 1))
    m = _Valid(model).eval().float()
    example = torch.randn(2, block_size + rf - 1)  # batch 2: never let the trace pin the batch to 1
    torch.onnx.export(m, (example,), str(path), input_names=["x"], output_names=["y"], opset_version=18,
                      dynamic_axes={"x": {0: "batch", 1: "samples"}, "y": {0: "batch", 1: "block"}}, dynamo=False)
    return path


def onnx_stream_render(path: str | Path, model: nn.Module, x: np.ndarray, block_size: int = 512) -> np.ndarray:
    """Render ``x`` block by block through the ONNX file (zero history at the start)."""
    from tinyverse.audio.stream import OnnxStreamProcessor, process_file

    proc = OnnxStreamProcessor(path, int(getattr(model, "receptive_field", 1)))
    y, _ = process_file(proc, np.asarray(x, np.float32), block_size)
    return y
