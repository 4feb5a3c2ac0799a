"""Block-by-block processing, as a plugin or a pedal runs a model.

:class:`StreamProcessor` keeps what the model needs between blocks — the receptive-field history (Linear),
Core's per-layer buffers (WaveNet) or the recurrent state (LSTM), through the model's stream hooks
(:class:`tinyverse.models.contract.StreamingModel`) — so processing a file in blocks of any size gives the
same samples as one whole-file render from silence. :class:`~tinyverse.export.onnx_stream.OnnxStreamProcessor` and
:class:`~tinyverse.export.tflite_stream.TFLiteStreamProcessor` (the streaming exports' runners, imported here) do the
same for the streaming exports.
``process_file`` adds file I/O and timing (the real-time factor).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from tinyverse.audio.knob_file import knob_model_from_checkpoint, load_knob_model
from tinyverse.audio.nam import load_nam, model_from_nam
from tinyverse.export.onnx_stream import STREAM_META_KEY, OnnxStreamProcessor
from tinyverse.export.tflite_stream import TFLiteStreamProcessor
from tinyverse.models.contract import StreamingModel

__all__ = ["StreamProcessor", "process_file", "load_audio_model", "OnnxStreamProcessor", "open_stream_processor",
           "onnx_stream_render", "tflite_stream_render", "STREAM_META_KEY"]


class StreamProcessor:
    """Feed blocks of mono samples, get the same number of output samples back. ``params``: a knob model's knob
    vector (normalised; held constant per block, moved with :meth:`set_params`)."""

    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.float32, params: Any = None) -> None:
        if not isinstance(model, StreamingModel):
            raise TypeError(f"{type(model).__name__} cannot be streamed: it does not implement "
                            "tinyverse.models.contract.StreamingModel")
        if params is not None and "params" not in model.input_shapes:
            raise ValueError(f"{type(model).__name__} has no knob inputs: it takes no params")
        self.model = model.to(dtype).eval()
        self.dtype = dtype
        self.rf = int(model.receptive_field)
        self.params = params
        self.reset()

    def reset(self) -> None:
        knobbed = "params" in self.model.input_shapes  # a knob model starts at its params (default: the defaults)
        self.state = self.model.stream_init(self.dtype, params=self.params) if knobbed else \
            self.model.stream_init(self.dtype)

    def set_params(self, params: Any) -> None:
        """Move a knob model's knobs from the next block on (its history / state carries over)."""
        self.params = params
        self.state = self.model.stream_params(self.state, params)

    @torch.no_grad()
    def process(self, block: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.asarray(block), dtype=self.dtype).reshape(1, -1)
        y, self.state = self.model.stream_block(x, self.state)
        return y.numpy()


def load_audio_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """A model from a .nam file, a knob model's ``.pt`` file, or a Lightning checkpoint of an audio run (a knob
    model's carries its record; otherwise ``best.ckpt`` next to a ``model.nam`` or a run's ``config.yaml``)."""
    path = Path(path)
    if path.suffix == ".nam":
        nf = load_nam(path)
        return model_from_nam(nf), {"sample_rate": nf.sample_rate, "metadata": nf.metadata}
    if path.suffix == ".pt":
        return load_knob_model(path)
    if path.suffix == ".ckpt":
        from tinyverse.training import load_checkpoint

        knob = knob_model_from_checkpoint(load_checkpoint(path), str(path))
        if knob is not None:
            return knob
        run_dir = path.parent.parent
        nam = run_dir / "model.nam"
        if not nam.is_file():
            raise FileNotFoundError(f"{path}: cannot tell the architecture: no model.nam in the run folder {run_dir}")
        model = model_from_nam(nam)
        from tinyverse.training import load_task_weights

        load_task_weights(model, path)
        return model, {"sample_rate": load_nam(nam).sample_rate}
    raise ValueError(f"{path}: unsupported model file (use .nam, .ckpt, a knob model's .pt or .onnx)")


def open_stream_processor(path: str | Path, runtime: str | None = None) -> tuple[Any, nn.Module | None, dict[str, Any]]:
    """A block processor for any audio model file: ``.nam``, checkpoint, streaming ``.onnx`` or ``.tflite``
    (``runtime``: "litert" (default) or "tflm"). Returns (processor, torch model or None, info)."""
    path = Path(path)
    if path.suffix == ".onnx":
        return OnnxStreamProcessor(path), None, {}
    if path.suffix == ".tflite":
        return TFLiteStreamProcessor(path, runtime or "litert"), None, {}
    model, info = load_audio_model(path)
    return StreamProcessor(model), model, info


def process_file(processor: Any, x: np.ndarray, block_size: int = 64,
                 on_block: Callable[[int], None] | None = None) -> tuple[np.ndarray, float]:
    """Run ``x`` through ``processor`` in blocks; returns (output, seconds spent processing)."""
    out = np.empty(len(x), np.float32)
    t = time.perf_counter()
    for i in range(0, len(x), block_size):
        out[i:i + block_size] = processor.process(x[i:i + block_size])
        if on_block:
            on_block(i)
    return out, time.perf_counter() - t


def onnx_stream_render(path: str | Path, model: nn.Module | None, x: np.ndarray, block_size: int = 512) -> np.ndarray:
    """Render ``x`` block by block through a streaming ONNX file (zero history / initial state at the start)."""
    rf = int(getattr(model, "receptive_field", 1)) if model is not None else None
    proc = OnnxStreamProcessor(path, rf)
    y, _ = process_file(proc, np.asarray(x, np.float32), block_size)
    return y


def tflite_stream_render(path: str | Path, x: np.ndarray, block_size: int | None = None,
                         runtime: str = "litert") -> np.ndarray:
    """Render ``x`` block by block through a streaming .tflite file (zero history / pre-warmed state)."""
    proc = TFLiteStreamProcessor(path, runtime)
    y, _ = process_file(proc, np.asarray(x, np.float32), block_size or proc.block)
    return y
