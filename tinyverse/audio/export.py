"""Streaming ONNX exports of audio models, float and int8.

* WaveNet / Linear ("context" models): the graph takes ``x`` of shape (N, block + receptive_field − 1) and
  returns ``y`` (N, block) — the model in "valid" mode — so a host keeps the last ``receptive_field − 1`` input
  samples between blocks. The block length is dynamic.
* LSTM ("state" models): inputs ``x`` (N, block), ``h`` and ``c`` (N, num_layers, hidden); outputs ``y``
  (N, block), ``h_out``, ``c_out``. The host feeds the state it got back from the previous block; the first block
  starts from the model's initial state (the .nam's, stored in the file's metadata).

Each file carries ``metadata_props["tinyverse_stream"]`` (JSON: kind, receptive_field, and for LSTMs the
initial state), so :class:`tinyverse.audio.stream.OnnxStreamProcessor` needs nothing else to run it.
The int8 copy is onnxruntime static quantization (QDQ, per-channel int8 weights, MinMax-calibrated int8
activations) calibrated on blocks of the training audio; onnxruntime leaves the LSTM op itself in float.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["export_streaming_onnx", "quantize_streaming_onnx", "onnx_stream_render", "stream_metadata",
           "STREAM_META_KEY"]

STREAM_META_KEY = "tinyverse_stream"


class _Valid(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class _LSTMStep(nn.Module):
    """One block of an NAM LSTM with explicit state; states batch-first so a batch of streams stacks on axis 0."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        state = (h.transpose(0, 1).contiguous(), c.transpose(0, 1).contiguous())
        out, (h1, c1) = self.model.core(x.unsqueeze(-1), state)
        return self.model.head(out)[..., 0], h1.transpose(0, 1), c1.transpose(0, 1)


def stream_metadata(model: nn.Module) -> dict[str, Any]:
    from tinyverse.audio.nam import NAMLSTM

    meta: dict[str, Any] = {"receptive_field": int(getattr(model, "receptive_field", 1)),
                            "architecture": getattr(model, "nam_architecture", type(model).__name__)}
    if isinstance(model, NAMLSTM):
        meta.update(kind="state", num_layers=model.num_layers, hidden_size=model.hidden_size,
                    initial_h=model.initial_hidden.detach().double().tolist(),
                    initial_c=model.initial_cell.detach().double().tolist())
    else:
        meta["kind"] = "context"
    return meta


def _write_metadata(path: Path, meta: dict[str, Any]) -> None:
    import onnx

    m = onnx.load(str(path))
    for p in list(m.metadata_props):
        if p.key == STREAM_META_KEY:
            m.metadata_props.remove(p)
    m.metadata_props.add(key=STREAM_META_KEY, value=json.dumps(meta))
    onnx.save(m, str(path))


def export_streaming_onnx(model: nn.Module, path: str | Path, block_size: int = 512) -> Path:
    """Export a WaveNet / Linear model as a block-with-context graph, or an LSTM as a block-with-state graph
    (opset 18, dynamic batch and block length)."""
    from tinyverse.audio.nam import NAMLSTM
    from tinyverse.export.onnx_float import quiet_onnx_export

    path = Path(path)
    model = model.eval().float()
    if isinstance(model, NAMLSTM):
        m = _LSTMStep(model).eval()
        n, layers, hidden = 2, model.num_layers, model.hidden_size  # batch 2: never let the trace pin it to 1
        example = (torch.randn(n, block_size), torch.zeros(n, layers, hidden), torch.zeros(n, layers, hidden))
        # "export with batch 1 or give h0/c0 as inputs" (they are inputs) and the tracer's shape-check notes
        # go to the run log with the rest of the exporter's output.
        with quiet_onnx_export():
            torch.onnx.export(m, example, str(path), input_names=["x", "h", "c"],
                              output_names=["y", "h_out", "c_out"], opset_version=18, dynamo=False,
                              dynamic_axes={"x": {0: "batch", 1: "block"}, "h": {0: "batch"}, "c": {0: "batch"},
                                            "y": {0: "batch", 1: "block"}, "h_out": {0: "batch"},
                                            "c_out": {0: "batch"}})
    else:
        rf = int(getattr(model, "receptive_field", 1))
        example = torch.randn(2, block_size + rf - 1)
        with quiet_onnx_export():
            torch.onnx.export(_Valid(model).eval(), (example,), str(path), input_names=["x"], output_names=["y"],
                              opset_version=18, dynamo=False,
                              dynamic_axes={"x": {0: "batch", 1: "samples"}, "y": {0: "batch", 1: "block"}})
    _write_metadata(path, stream_metadata(model))
    return path


def quantize_streaming_onnx(model: nn.Module, float_path: str | Path, int8_path: str | Path,
                            calib_audio: np.ndarray, block_size: int = 512, num_calib: int = 64) -> Path:
    """int8 QDQ copy of a streaming ONNX export, calibrated on ``num_calib`` blocks of ``calib_audio`` (the
    training audio; LSTM blocks start from the model's initial state)."""
    from tinyverse.audio.nam import NAMLSTM
    from tinyverse.audio.tflite import calibration_blocks
    from tinyverse.quantization import quantize_onnx_static

    X = calibration_blocks(model, calib_audio, block_size, num_calib)
    arrays: list[np.ndarray] = [X]
    if isinstance(model, NAMLSTM):
        h = model.initial_hidden.detach().float().numpy()[None].repeat(len(X), 0)
        c = model.initial_cell.detach().float().numpy()[None].repeat(len(X), 0)
        arrays += [h, c]
    quantize_onnx_static(float_path, int8_path, arrays, batch_size=8, max_samples=num_calib)
    _write_metadata(Path(int8_path), stream_metadata(model))
    return Path(int8_path)


def onnx_stream_render(path: str | Path, model: nn.Module | None, x: np.ndarray, block_size: int = 512) -> np.ndarray:
    """Render ``x`` block by block through a streaming ONNX file (zero history / initial state at the start)."""
    from tinyverse.audio.stream import OnnxStreamProcessor, process_file

    rf = int(getattr(model, "receptive_field", 1)) if model is not None else None
    proc = OnnxStreamProcessor(path, rf)
    y, _ = process_file(proc, np.asarray(x, np.float32), block_size)
    return y
