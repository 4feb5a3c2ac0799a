"""Streaming ONNX exports of audio models, float and int8.

* WaveNet / Linear ("context" models): the graph takes ``x`` of shape (N, block + receptive_field − 1) and
  returns ``y`` (N, block) — the model in "valid" mode — so a host keeps the last ``receptive_field − 1`` input
  samples between blocks. The block length is dynamic.
* LSTM ("state" models): inputs ``x`` (N, block), ``h`` and ``c`` (N, num_layers, hidden); outputs ``y``
  (N, block), ``h_out``, ``c_out``. The host feeds the state it got back from the previous block; the first block
  starts from the model's initial state (the .nam's, stored in the file's metadata).

Each file carries ``metadata_props["tinyverse_stream"]`` (JSON: kind, receptive_field, and for LSTMs the
initial state), so :class:`tinyverse.audio.stream.OnnxStreamProcessor` needs nothing else to run it;
``tinyverse.audio.stream.onnx_stream_render`` renders a signal through one.
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

from tinyverse.audio.calibration import calibration_blocks
from tinyverse.audio.stream import STREAM_META_KEY
from tinyverse.export.onnx_float import quiet_onnx_export
from tinyverse.quantization import quantize_onnx_static

__all__ = ["export_streaming_onnx", "quantize_streaming_onnx", "stream_metadata", "STREAM_META_KEY"]


def stream_metadata(model: nn.Module) -> dict[str, Any]:
    """What the file carries (``model.stream_metadata()``, :class:`tinyverse.models.contract.StreamingModel`)."""
    return model.stream_metadata()


def _write_metadata(path: Path, meta: dict[str, Any]) -> None:
    import onnx

    m = onnx.load(str(path))
    for p in list(m.metadata_props):
        if p.key == STREAM_META_KEY:
            m.metadata_props.remove(p)
    m.metadata_props.add(key=STREAM_META_KEY, value=json.dumps(meta))
    onnx.save(m, str(path))


def export_streaming_onnx(model: nn.Module, path: str | Path, block_size: int = 512) -> Path:
    """Export the model's streaming graph (``model.streaming_module()``): a block-with-context graph for a
    "context" model, a block-with-state graph for a "state" model (opset 18, dynamic batch and block length)."""
    path = Path(path)
    model = model.eval().float()
    step = model.streaming_module().eval()
    if model.stream_kind == "state":
        state = model.initial_stream_state()
        n = 2  # batch 2: never let the trace pin it to 1
        example = (torch.randn(n, block_size), *(torch.zeros(n, *t.shape) for t in state.values()))
        outs = [f"{name}_out" for name in state]
        # "export with batch 1 or give h0/c0 as inputs" (they are inputs) and the tracer's shape-check notes
        # go to the run log with the rest of the exporter's output.
        with quiet_onnx_export():
            torch.onnx.export(step, example, str(path), input_names=["x", *state],
                              output_names=["y", *outs], opset_version=18, dynamo=False,
                              dynamic_axes={"x": {0: "batch", 1: "block"}, "y": {0: "batch", 1: "block"},
                                            **{name: {0: "batch"} for name in [*state, *outs]}})
    else:
        rf = int(model.receptive_field)
        example = torch.randn(2, block_size + rf - 1)
        with quiet_onnx_export():
            torch.onnx.export(step, (example,), str(path), input_names=["x"], output_names=["y"],
                              opset_version=18, dynamo=False,
                              dynamic_axes={"x": {0: "batch", 1: "samples"}, "y": {0: "batch", 1: "block"}})
    _write_metadata(path, stream_metadata(model))
    return path


def quantize_streaming_onnx(model: nn.Module, float_path: str | Path, int8_path: str | Path,
                            calib_audio: np.ndarray, block_size: int = 512, num_calib: int = 64) -> Path:
    """int8 QDQ copy of a streaming ONNX export, calibrated on ``num_calib`` blocks of ``calib_audio`` (the
    training audio; a "state" model's blocks start from its initial state)."""
    X = calibration_blocks(model, calib_audio, block_size, num_calib)
    arrays: list[np.ndarray] = [X]
    arrays += [t.detach().float().numpy()[None].repeat(len(X), 0) for t in model.initial_stream_state().values()]
    quantize_onnx_static(float_path, int8_path, arrays, batch_size=8, max_samples=num_calib)
    _write_metadata(Path(int8_path), stream_metadata(model))
    return Path(int8_path)
