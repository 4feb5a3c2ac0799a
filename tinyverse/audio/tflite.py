"""Streaming TFLite exports of the NAM audio models (float, full-int8, int16x8) and a block-by-block runner.

Contract (the same as the streaming ONNX export):

* WaveNet / Linear: the model takes ``block + receptive_field − 1`` samples (the block plus the context before
  it) and returns the ``block`` output samples; the host keeps the last ``receptive_field − 1`` input samples.
  TFLite shapes are static, so the block length is fixed at export (``block_size``).
* LSTM: the model takes ``block`` samples and returns ``block`` samples; the recurrent state lives inside the
  fused UNIDIRECTIONAL_SEQUENCE_LSTM op (a variable tensor that LiteRT and TFLite Micro carry from one invoke
  to the next). It starts at zero, so the runner pre-warms it on ``prewarm`` zeros (48,000 by default: what NAM's
  trainer does to settle the state it stores in the .nam).

How: a TF twin rebuilt layer by layer from the torch weights (a ``tf.function`` graph with constant weights;
tf_keras for the LSTM) and ``TFLiteConverter``, in a subprocess — see ``_tflite_worker.py`` and
shared/reference/toolchain.md. The model writes its own twin plan (``model.streaming_twin(block_size)``,
:mod:`tinyverse.audio.twin`): for a WaveNet every dilated conv is one CONV_2D with a (K, 1) kernel and a
dilation factor, 1×1 convs are CONV_2D, the residual / head / condition alignment are STRIDED_SLICE crops,
gating is LOGISTIC + MUL, ``head_scale`` is folded into the last head conv. The twin is checked against torch
(``model.twin_reference``) before conversion. Int8 models are calibrated on blocks of the training audio.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tinyverse.audio.calibration import calibration_blocks
from tinyverse.audio.twin import AudioExportError, TwinPlan
from tinyverse.export.tflite import capture_fd, tflm_arena_bytes

__all__ = ["AudioExportError", "audio_twin_plan", "export_streaming_tflite", "TFLiteStreamProcessor"]

log = logging.getLogger(__name__)
WORKER = Path(__file__).with_name("_tflite_worker.py")
TWIN_TOLERANCE = 1e-4  # relative to max(1, max |torch output|)
CONVERT_TIMEOUT_S = 900
LSTM_PREWARM = 48_000


def audio_twin_plan(model: nn.Module, block_size: int) -> TwinPlan:
    """The Keras twin's op list and weights (Keras layout) for ``model`` at a fixed ``block_size``."""
    twin = getattr(model, "streaming_twin", None)
    if twin is None:
        raise AudioExportError(f"no streaming TFLite twin for {type(model).__name__} (it does not implement "
                               "tinyverse.models.contract.StreamingModel)")
    return twin(block_size)


@torch.no_grad()
def _twin_reference(model: nn.Module, X: np.ndarray) -> np.ndarray:
    """What the twin must compute on ``X`` (``model.twin_reference``)."""
    m = model.float().eval()
    return m.twin_reference(torch.as_tensor(X, dtype=torch.float32)).numpy()


# -- export ---------------------------------------------------------------------------------------------

def export_streaming_tflite(model: nn.Module, calib_audio: np.ndarray, block_size: int = 512, *,
                            float_path: str | Path | None = None, int8_path: str | Path | None = None,
                            int16_path: str | Path | None = None, num_calib: int = 64,
                            timeout_s: int = CONVERT_TIMEOUT_S) -> dict[str, Any]:
    """Write the streaming .tflite files asked for (float32; full int8 with int8 input/output; int16
    activations with int8 weights) from one Keras twin. ``calib_audio``: training audio for the
    representative dataset (and the twin check). Returns what the worker measured plus ``errors`` per mode
    (a mode that failed to convert does not stop the others)."""
    model = model.float().eval()
    plan = audio_twin_plan(model, block_size)
    calib = calibration_blocks(model, calib_audio, block_size, num_calib)
    ref_in = calib[:4]
    ref_out = _twin_reference(model, ref_in)
    shape = (-1, *plan.input_shape)
    with tempfile.TemporaryDirectory(prefix="tinyverse_audio_tflite_") as tmp:
        job = Path(tmp)
        (job / "plan.json").write_text(json.dumps(plan.to_json()))
        np.savez(job / "weights.npz", **plan.weights)
        np.save(job / "calib.npy", calib.reshape(shape))
        np.save(job / "ref_in.npy", ref_in.reshape(shape))
        np.save(job / "ref_out.npy", ref_out)
        paths = {"float": float_path, "int8": int8_path, "int16": int16_path}
        (job / "job.json").write_text(json.dumps({
            **{k: str(Path(v).resolve()) if v else None for k, v in paths.items()}, "tolerance": TWIN_TOLERANCE}))
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1", "CUDA_VISIBLE_DEVICES": ""}
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, str(WORKER), str(job)], capture_output=True, text=True, env=env,
                                  timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise AudioExportError(f"TFLite conversion timed out after {timeout_s} s") from None
        result_file = job / "result.json"
        result = json.loads(result_file.read_text()) if result_file.exists() else {}
        if "error" in result:
            raise AudioExportError(result["error"])
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            if not result:
                raise AudioExportError(f"TFLite conversion failed (worker exit {proc.returncode}): " + " | ".join(tail))
            # the worker died mid-way (a converter segfault): modes not written are errors
            for mode, p in paths.items():
                if p and f"convert_{mode}_s" not in result:
                    result.setdefault("errors", {})[mode] = (f"converter crashed (exit {proc.returncode}): "
                                                             + " | ".join(tail))
    result["subprocess_s"] = time.perf_counter() - t0
    result["block_size"] = int(block_size)
    result["receptive_field"] = int(getattr(model, "receptive_field", 1))
    log.info("streaming TFLite twin max abs diff %.3g; conversion %.1f s", result["twin_max_abs_diff"],
             result["subprocess_s"])
    return result


# -- running --------------------------------------------------------------------------------------------

def _quantize(x: np.ndarray, dtype: np.dtype, scale: float, zp: int) -> np.ndarray:
    if dtype == np.float32:
        return x.astype(np.float32)
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zp, info.min, info.max).astype(dtype)


def _dequantize(q: np.ndarray, scale: float, zp: int) -> np.ndarray:
    if q.dtype == np.float32:
        return q
    return ((q.astype(np.float32) - zp) * scale).astype(np.float32)


# A stream's interpreter: reference kernels for verification, or XNNPACK for a host's real-time figure.
def _litert_interpreter(model: bytes, xnnpack: bool = False) -> Any:
    """LiteRT on its reference kernels (what verifies a file: XNNPACK refused some valid int8 files,
    toolchain.md), or with the XNNPACK delegate on one thread (what a desktop / phone host runs)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    if xnnpack:
        interp = Interpreter(model_content=model, num_threads=1)
        interp.allocate_tensors()
        return interp
    interp = Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    return interp


class TFLiteStreamProcessor:
    """Runs a streaming .tflite file block by block (``process(block)`` → the same number of samples), on
    LiteRT's reference kernels (``runtime="litert"``) or in the TFLite Micro interpreter (``"tflm"``).

    The model's fixed block length and receptive field are read from its input/output shapes; blocks of any
    length are cut / zero-padded into model blocks (an LSTM's state is exact when the host block is a multiple
    of the model block, as a pedal's is). ``prewarm``: zeros run through a stateful (LSTM) model on reset.
    """

    def __init__(self, path_or_bytes: str | Path | bytes, runtime: str = "litert", prewarm: int | None = None,
                 arena_size: int | None = None) -> None:
        self.model_bytes = bytes(path_or_bytes) if isinstance(path_or_bytes, (bytes, bytearray)) \
            else Path(path_or_bytes).read_bytes()
        ref = _litert_interpreter(self.model_bytes)
        self.ops = [op["op_name"] for op in ref._get_ops_details()]
        din, dout = ref.get_input_details()[0], ref.get_output_details()[0]
        self.in_shape = tuple(int(s) for s in din["shape"])
        self.length, self.block = int(np.prod(self.in_shape)), int(np.prod(dout["shape"]))
        self.rf = self.length - self.block + 1
        self.in_q = (np.dtype(din["dtype"]), *din["quantization"])
        self.out_q = (np.dtype(dout["dtype"]), *dout["quantization"])
        self.stateful = "UNIDIRECTIONAL_SEQUENCE_LSTM" in self.ops
        self.prewarm = (LSTM_PREWARM if self.stateful else 0) if prewarm is None else int(prewarm)
        self.runtime = runtime
        self.arena_bytes: int | None = None
        if runtime in ("litert", "xnnpack"):
            self.interp = ref if runtime == "litert" else _litert_interpreter(self.model_bytes, xnnpack=True)
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
        raise AudioExportError(f"TFLM could not allocate tensors even with a {size // 2} byte arena")

    def _invoke(self, frame: np.ndarray) -> np.ndarray:
        q = _quantize(frame.reshape(self.in_shape), *self.in_q)
        if self.runtime != "tflm":
            self.interp.set_tensor(self._in_index, q)
            self.interp.invoke()
            out = self.interp.get_tensor(self._out_index)
        else:
            self.interp.set_input(q, 0)
            self.interp.invoke()
            out = np.array(self.interp.get_output(0), copy=True)
        return _dequantize(np.asarray(out), *self.out_q[1:]).reshape(-1)

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
