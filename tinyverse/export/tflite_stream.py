"""Streaming TFLite exports of a streaming model (float, full int8, int16x8) and the block-by-block runner of one.

Contract (the same as the streaming ONNX export, :mod:`tinyverse.export.onnx_stream`):

* "context" models (WaveNet, Linear): the file takes ``block + receptive_field − 1`` samples (the block plus the
  context before it) and returns the ``block`` output samples; the host keeps the last ``receptive_field − 1``
  input samples. TFLite shapes are static, so the block length is fixed at export (``block_size``).
* "state" models (LSTM): the file takes ``block`` samples and returns ``block`` samples; the recurrent state lives
  inside the fused UNIDIRECTIONAL_SEQUENCE_LSTM op (a variable tensor that LiteRT and TFLite Micro carry from one
  invoke to the next). It starts at zero, so the runner pre-warms it on ``prewarm`` zeros (48,000 by default: what
  NAM's trainer does to settle the state it stores in the .nam).

* knob models (``"params"`` in ``model.input_shapes``): a second input ``params`` (1, K), the knob values normalised
  to [0, 1] and ordered by name, held for the block.

Every file carries the model's stream metadata (``model.stream_metadata()``: kind, receptive field, a knob model's
knob declaration) as the TFLite metadata entry ``tinyverse_stream`` (JSON), as the streaming ONNX file does.

The model writes its own twin plan (``model.streaming_twin(block_size)``, :mod:`tinyverse.audio.twin`) and says what
the twin must compute (``model.twin_reference``); the conversion job both modalities share
(:mod:`tinyverse.export.tflite_job`) checks the twin against it and converts. The quantized files are calibrated on
blocks of the training signal.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tinyverse.audio.calibration import calibration_blocks, calibration_params
from tinyverse.export.onnx_float import ExportError
from tinyverse.export.onnx_stream import STREAM_META_KEY, is_knob_model, knob_vector
from tinyverse.export.tflite import (TensorQuant, capture_fd, litert_interpreter, litert_quant, model_bytes,
                                     tflite_metadata, tflm_arena_bytes)
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
    shape = (-1, *plan.input_shape)
    meta = {STREAM_META_KEY: json.dumps(model.stream_metadata())}
    if is_knob_model(model):  # each calibration block at its own knob vector, spread over the range
        params = calibration_params(model, len(calib))
        with torch.no_grad():
            ref_out = model.twin_reference(torch.as_tensor(ref_in), torch.as_tensor(params[:num_check])).numpy()
        return TwinJob(plan.to_json(), plan.weights, [calib.reshape(shape), params],
                       [ref_in.reshape(shape), params[:num_check]], ref_out, metadata=meta), plan
    with torch.no_grad():
        ref_out = model.twin_reference(torch.as_tensor(ref_in, dtype=torch.float32)).numpy()
    return TwinJob(plan.to_json(), plan.weights, calib.reshape(shape), ref_in.reshape(shape), ref_out,
                   metadata=meta), plan


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
    ``in_q`` / ``out_q``: (dtype, scale, zero point) of the input and output. ``meta``: the file's stream
    metadata (empty for a file written before it was stored).

    A knob model's file (a ``params`` input) runs at ``params`` (normalised; default: the declared defaults in its
    metadata), fed with every invoke; :meth:`set_params` moves the knobs from the next block on, and a reset
    pre-warms an LSTM at the current knobs.
    """

    def __init__(self, path_or_bytes: str | Path | bytes, runtime: str = "litert", prewarm: int | None = None,
                 arena_size: int | None = None, params: Any = None) -> None:
        self.model_bytes = model_bytes(path_or_bytes)
        ref = litert_interpreter(self.model_bytes)
        self.ops = [op["op_name"] for op in ref._get_ops_details()]
        text = tflite_metadata(self.model_bytes).get(STREAM_META_KEY)
        self.meta: dict[str, Any] = json.loads(text) if text else {}
        inputs = ref.get_input_details()
        # the knob vector is the input named params (or, failing a name, the one without a time axis)
        self.params_index = next((i for i, d in enumerate(inputs) if "params" in d["name"]), None)
        if self.params_index is None and len(inputs) > 1:
            self.params_index = next(i for i, d in enumerate(inputs) if len(d["shape"]) == 2)
        self.audio_index = next(i for i in range(len(inputs)) if i != self.params_index)
        self.knobbed = self.params_index is not None
        self.params: np.ndarray | None = None
        if self.knobbed:
            self._qp = litert_quant(inputs[self.params_index])
            self.params = knob_vector(self.meta, params, "params")
        elif params is not None:
            raise ValueError("this .tflite file has no params input (not a knob model's export)")
        din, dout = inputs[self.audio_index], ref.get_output_details()[0]
        self.in_shape = tuple(int(s) for s in din["shape"])
        self.length, self.block = int(np.prod(self.in_shape)), int(np.prod(dout["shape"]))
        self.rf = self.length - self.block + 1
        self.in_q = (np.dtype(din["dtype"]), *din["quantization"])
        self.out_q = (np.dtype(dout["dtype"]), *dout["quantization"])
        self._qin = TensorQuant(self.in_shape, self.in_q[0].name, float(self.in_q[1]), int(self.in_q[2]))
        self._qout = TensorQuant(tuple(int(s) for s in dout["shape"]), self.out_q[0].name, float(self.out_q[1]),
                                 int(self.out_q[2]))
        # state inside the file: a fused LSTM's variable tensor (pre-warmed on silence), or resource variables (a
        # composed model's per-stage histories, zeros at the start: each stage's own silence, no pre-warm)
        self.variables = "VAR_HANDLE" in self.ops
        lstm = "UNIDIRECTIONAL_SEQUENCE_LSTM" in self.ops
        self.stateful = lstm or self.variables
        # a knob LSTM settles at its setting for as long as its torch stream does (stored with the file)
        settle = int(self.meta["settle_samples"]) if self.meta.get("settle_samples") else LSTM_PREWARM
        self.prewarm = (settle if lstm else 0) if prewarm is None else int(prewarm)
        self.runtime = runtime
        self.arena_bytes: int | None = None
        if runtime in ("litert", "xnnpack"):
            self.interp = ref if runtime == "litert" else litert_interpreter(self.model_bytes, xnnpack=True)
            self._in_index, self._out_index = din["index"], dout["index"]
            self._p_index = inputs[self.params_index]["index"] if self.knobbed else None
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

    @property
    def audio_quant(self) -> TensorQuant:
        """The audio input's shape, dtype, scale and zero point (input ``audio_index`` of the file)."""
        return self._qin

    @property
    def params_quant(self) -> TensorQuant | None:
        """The knob vector input's (input ``params_index``), or None for a file without one."""
        return self._qp if self.knobbed else None

    @property
    def output_quant(self) -> TensorQuant:
        return self._qout

    def set_params(self, params: Any) -> None:
        """Move the knobs (a normalised vector) from the next block on; history / state carry over."""
        if not self.knobbed:
            raise ValueError("this .tflite file has no params input (not a knob model's export)")
        self.params = knob_vector(self.meta, params, "params")

    def _invoke(self, frame: np.ndarray) -> np.ndarray:
        q = self._qin.quantize(frame.reshape(self.in_shape))
        if self.knobbed and self.params is None:
            raise ValueError("this .tflite file declares no knobs (no defaults): give the knob vector (set_params)")
        qp = self._qp.quantize(self.params.reshape(self._qp.shape)) if self.knobbed else None
        if self.runtime != "tflm":
            self.interp.set_tensor(self._in_index, q)
            if qp is not None:
                self.interp.set_tensor(self._p_index, qp)
            self.interp.invoke()
            out = self.interp.get_tensor(self._out_index)
        else:  # TFLM numbers the inputs as the file does (LiteRT's order)
            self.interp.set_input(q, self.audio_index)
            if qp is not None:
                self.interp.set_input(qp, self.params_index)
            self.interp.invoke()
            out = np.array(self.interp.get_output(0), copy=True)
        return self._qout.dequantize(np.asarray(out)).reshape(-1)

    def golden(self, frame: np.ndarray) -> dict[str, np.ndarray]:
        """One invoke on ``frame`` (``length`` samples: a block with its context) at the current knobs, from the
        current state, as the integer tensors a firmware test compares: ``input``, ``params`` (a knob model's) and
        ``output`` (the raw output tensor)."""
        q = self._qin.quantize(np.asarray(frame, np.float32).reshape(self.in_shape))
        out = {"input": q.reshape(-1)}
        if self.knobbed:
            out["params"] = self._qp.quantize(self.params.reshape(self._qp.shape)).reshape(-1)
        y = self._invoke(np.asarray(frame, np.float32))
        out["output"] = self._qout.quantize(y) if self._qout.quantized else y
        return out

    def reset(self) -> None:
        if self.stateful:
            if self.runtime == "tflm":
                self.interp.reset()
            elif self.variables:  # LiteRT resets variable tensors only: a new interpreter runs the variables' init
                self.interp = litert_interpreter(self.model_bytes, xnnpack=self.runtime == "xnnpack")
            else:
                self.interp.reset_all_variables()
        self.history = np.zeros(self.rf - 1, np.float32)
        if self.prewarm and not (self.knobbed and self.params is None):  # a knob file pre-warms at its setting
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
