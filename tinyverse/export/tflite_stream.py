"""Streaming TFLite exports of a streaming model (float, full int8, int16x8) and the block-by-block runner of one.

Contract (the same as the streaming ONNX export, :mod:`tinyverse.export.onnx_stream`):

* "context" models (WaveNet, Linear): the file takes ``block + receptive_field − 1`` samples (the block plus the
  context before it) and returns the ``block`` output samples; the host keeps the last ``receptive_field − 1``
  input samples. TFLite shapes are static, so the block length is fixed at export (``block_size``).
* "state" models (LSTM): the file takes ``block`` samples and returns ``block`` samples; the recurrent state lives
  inside the fused UNIDIRECTIONAL_SEQUENCE_LSTM op (a variable tensor that LiteRT and TFLite Micro carry from one
  invoke to the next). It starts at zero, so the runner pre-warms it on ``prewarm`` zeros (48,000 by default: what
  NAM's trainer does to settle the state it stores in the .nam).

The model writes its own twin plan (``model.streaming_twin(block_size)``, :mod:`tinyverse.audio.twin`) and says what
the twin must compute (``model.twin_reference``); the conversion job both modalities share
(:mod:`tinyverse.export.tflite_job`) checks the twin against it and converts. The quantized files are calibrated on
blocks of the training signal.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tinyverse.audio.calibration import calibration_blocks
from tinyverse.export.onnx_float import ExportError
from tinyverse.export.tflite import TensorQuant, capture_fd, litert_interpreter, model_bytes, tflm_arena_bytes
from tinyverse.export.tflite_job import CONVERT_TIMEOUT_S, TwinJob, run_tflite_job

__all__ = ["LSTM_PREWARM", "TFLiteStreamProcessor", "export_streaming_tflite", "streaming_twin_job"]

log = logging.getLogger(__name__)
LSTM_PREWARM = 48_000


def streaming_twin_job(model: nn.Module, calib_signal: np.ndarray, block_size: int, num_calib: int = 64,
                       num_check: int = 4) -> tuple[TwinJob, Any]:
    """The conversion job of a streaming model at ``block_size`` (and its twin plan): ``num_calib`` model inputs cut
    from ``calib_signal`` (the training signal) as the representative dataset, and what the twin must compute on the
    first ``num_check`` of them (``model.twin_reference``). No signature: a stream processor invokes the interpreter
    itself, and converting through a SavedModel would cost seconds per file on a 200-op WaveNet."""
    streaming_twin = getattr(model, "streaming_twin", None)
    if streaming_twin is None:
        raise ExportError(f"no streaming TFLite twin for {type(model).__name__} (it does not implement "
                          "tinyverse.models.contract.StreamingModel)")
    model = model.float().eval()
    plan = streaming_twin(block_size)
    calib = calibration_blocks(model, calib_signal, block_size, num_calib)
    ref_in = calib[:num_check]
    with torch.no_grad():
        ref_out = model.twin_reference(torch.as_tensor(ref_in, dtype=torch.float32)).numpy()
    shape = (-1, *plan.input_shape)
    return TwinJob(plan.to_json(), plan.weights, calib.reshape(shape), ref_in.reshape(shape), ref_out), plan


def export_streaming_tflite(model: nn.Module, calib_audio: np.ndarray, block_size: int = 512, *,
                            float_path: str | Path | None = None, int8_path: str | Path | None = None,
                            int16_path: str | Path | None = None, num_calib: int = 64,
                            timeout_s: int = CONVERT_TIMEOUT_S) -> dict[str, Any]:
    """Write the streaming .tflite files asked for (float32; full int8 with int8 input/output; int16 activations
    with int8 weights) from one twin. ``calib_audio``: the training signal, for the representative dataset and the
    twin check. Returns what the worker measured plus ``errors`` per mode (a mode that failed to convert does not
    stop the others); raises :class:`ExportError` when the twin disagrees with the model or the worker fails."""
    job, _ = streaming_twin_job(model, calib_audio, block_size, num_calib)
    result = run_tflite_job(job, {"float": float_path, "int8": int8_path, "int16": int16_path}, timeout_s=timeout_s)
    result["block_size"] = int(block_size)
    result["receptive_field"] = int(getattr(model, "receptive_field", 1))
    log.info("streaming TFLite twin max abs diff %.3g; conversion %.1f s", result["twin_max_abs_diff"],
             result["subprocess_s"])
    return result


class TFLiteStreamProcessor:
    """Runs a streaming .tflite file block by block (``process(block)`` → the same number of samples), on LiteRT's
    reference kernels (``runtime="litert"``), LiteRT with XNNPACK (``"xnnpack"``, a desktop / phone host) or in the
    TFLite Micro interpreter (``"tflm"``).

    The model's fixed block length and receptive field are read from its input/output shapes; blocks of any
    length are cut / zero-padded into model blocks (an LSTM's state is exact when the host block is a multiple
    of the model block, as a pedal's is). ``prewarm``: zeros run through a stateful (LSTM) model on reset.
    ``in_q`` / ``out_q``: (dtype, scale, zero point) of the input and output.
    """

    def __init__(self, path_or_bytes: str | Path | bytes, runtime: str = "litert", prewarm: int | None = None,
                 arena_size: int | None = None) -> None:
        self.model_bytes = model_bytes(path_or_bytes)
        ref = litert_interpreter(self.model_bytes)
        self.ops = [op["op_name"] for op in ref._get_ops_details()]
        din, dout = ref.get_input_details()[0], ref.get_output_details()[0]
        self.in_shape = tuple(int(s) for s in din["shape"])
        self.length, self.block = int(np.prod(self.in_shape)), int(np.prod(dout["shape"]))
        self.rf = self.length - self.block + 1
        self.in_q = (np.dtype(din["dtype"]), *din["quantization"])
        self.out_q = (np.dtype(dout["dtype"]), *dout["quantization"])
        self._qin = TensorQuant(self.in_shape, self.in_q[0].name, float(self.in_q[1]), int(self.in_q[2]))
        self._qout = TensorQuant(tuple(int(s) for s in dout["shape"]), self.out_q[0].name, float(self.out_q[1]),
                                 int(self.out_q[2]))
        self.stateful = "UNIDIRECTIONAL_SEQUENCE_LSTM" in self.ops
        self.prewarm = (LSTM_PREWARM if self.stateful else 0) if prewarm is None else int(prewarm)
        self.runtime = runtime
        self.arena_bytes: int | None = None
        if runtime in ("litert", "xnnpack"):
            self.interp = ref if runtime == "litert" else litert_interpreter(self.model_bytes, xnnpack=True)
            self._in_index, self._out_index = din["index"], dout["index"]
        elif runtime == "tflm":
            self.interp = self._tflm(ref, arena_size)
        else:
            raise ValueError(f"runtime must be 'litert', 'xnnpack' or 'tflm', got {runtime!r}")
        self.reset()

    def _tflm(self, ref: Any, arena_size: int | None) -> Any:
        """A TFLM interpreter; without ``arena_size``, one sized from the tensors (grown if TFLM asks for more;
        what it really uses is :meth:`arena`)."""
        from tflite_micro.python.tflite_micro import runtime

        if arena_size:
            return runtime.Interpreter.from_bytes(self.model_bytes, arena_size=arena_size)
        size = 64 * 1024 + sum(int(np.prod(t["shape"])) * np.dtype(t["dtype"]).itemsize
                               for t in ref.get_tensor_details())
        for _ in range(6):
            with capture_fd(2):  # TFLM prints "Failed to resize buffer" before raising
                try:
                    return runtime.Interpreter.from_bytes(self.model_bytes, arena_size=size)
                except RuntimeError:
                    pass
            size *= 2
        raise ExportError(f"TFLM could not allocate tensors even with a {size // 2} byte arena")

    def _invoke(self, frame: np.ndarray) -> np.ndarray:
        q = self._qin.quantize(frame.reshape(self.in_shape))
        if self.runtime != "tflm":
            self.interp.set_tensor(self._in_index, q)
            self.interp.invoke()
            out = self.interp.get_tensor(self._out_index)
        else:
            self.interp.set_input(q, 0)
            self.interp.invoke()
            out = np.array(self.interp.get_output(0), copy=True)
        return self._qout.dequantize(np.asarray(out)).reshape(-1)

    def reset(self) -> None:
        if self.stateful:
            if self.runtime != "tflm":
                self.interp.reset_all_variables()
            else:
                self.interp.reset()
        self.history = np.zeros(self.rf - 1, np.float32)
        if self.prewarm:
            zeros = np.zeros(self.block, np.float32)
            for _ in range(-(-self.prewarm // self.block)):
                self._invoke(np.concatenate([self.history, zeros]))

    def process(self, block: np.ndarray) -> np.ndarray:
        block = np.asarray(block, np.float32).reshape(-1)
        out = np.empty(len(block), np.float32)
        for i in range(0, len(block), self.block):
            chunk = block[i:i + self.block]
            n = len(chunk)
            padded = chunk if n == self.block else np.concatenate([chunk, np.zeros(self.block - n, np.float32)])
            out[i:i + n] = self._invoke(np.concatenate([self.history, padded]))[:n]
            if self.rf > 1:
                self.history = np.concatenate([self.history, chunk])[-(self.rf - 1):]
        return out

    def arena(self) -> int | None:
        """TFLM arena bytes used (``None`` on LiteRT)."""
        if self.runtime != "tflm":
            return None
        return tflm_arena_bytes(self.interp)
