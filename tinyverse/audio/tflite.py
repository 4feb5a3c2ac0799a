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
shared/reference/toolchain.md. Every dilated conv is one CONV_2D
with a (K, 1) kernel and a dilation factor, 1×1 convs are CONV_2D, the residual / head / condition alignment
are STRIDED_SLICE crops, gating is LOGISTIC + MUL, ``head_scale`` is folded into the last head conv. The twin is
checked against torch before conversion. Int8 models are calibrated on blocks of the training audio.
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

from tinyverse.audio.nam import NAMLSTM, NAMLinear, NAMWaveNet
from tinyverse.export.tflite import capture_fd, tflm_arena_bytes

__all__ = ["AudioExportError", "audio_twin_plan", "export_streaming_tflite", "TFLiteStreamProcessor",
           "calibration_blocks", "tflite_stream_render"]

log = logging.getLogger(__name__)
WORKER = Path(__file__).with_name("_tflite_worker.py")
TWIN_TOLERANCE = 1e-4  # relative to max(1, max |torch output|)
CONVERT_TIMEOUT_S = 900
LSTM_PREWARM = 48_000

_ACT = {"Tanh": "tanh", "Sigmoid": "sigmoid", "ReLU": "relu", "Hardtanh": "hardtanh", "Fasttanh": "fasttanh"}


class AudioExportError(RuntimeError):
    """An audio export that could not be written; the message says why."""


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy()


# -- plans ----------------------------------------------------------------------------------------------

class _Plan:
    def __init__(self, input_shape: list[int]) -> None:
        self.input_shape = input_shape
        self.ops: list[dict[str, Any]] = []
        self.weights: dict[str, np.ndarray] = {}
        self.offset = {"x": 0}  # samples dropped from the start of the input (valid-mode alignment)
        self.output = "x"

    def conv(self, name: str, src: str, weight: np.ndarray, bias: np.ndarray | None, dilation: int = 1) -> str:
        """torch Conv1d weight (out, in, K) → Keras Conv2D kernel (K, 1, in, out)."""
        k = weight.shape[2]
        self.weights[f"{name}/w"] = np.ascontiguousarray(weight.transpose(2, 1, 0)[:, None, :, :], np.float32)
        if bias is not None:
            self.weights[f"{name}/b"] = np.asarray(bias, np.float32)
        self.ops.append({"kind": "conv", "name": name, "src": [src], "dilation": int(dilation),
                         "bias": bias is not None})
        self.offset[name] = self.offset[src] + dilation * (k - 1)
        return name

    def crop(self, name: str, src: str, offset: int) -> str:
        top = offset - self.offset[src]
        if top < 0:
            raise AudioExportError(f"internal: cannot crop {src} to offset {offset}")
        if top == 0:
            return src
        self.ops.append({"kind": "crop", "name": name, "src": [src], "top": int(top)})
        self.offset[name] = offset
        return name

    def op(self, kind: str, name: str, srcs: list[str], **kw: Any) -> str:
        self.ops.append({"kind": kind, "name": name, "src": srcs, **kw})
        self.offset[name] = max(self.offset[s] for s in srcs)
        return name

    def to_json(self) -> dict[str, Any]:
        return {"input_shape": self.input_shape, "ops": self.ops, "output": self.output}


def _wavenet_plan(model: NAMWaveNet, length: int) -> _Plan:
    p = _Plan([length, 1, 1])
    y, head = "x", None
    n_arrays = len(model.layer_arrays)
    scale = float(model.head_scale)
    for i, la in enumerate(model.layer_arrays):
        cfg = la.config
        act = _ACT["Fasttanh" if model.fast_tanh and cfg["activation"] == "Tanh" else cfg["activation"]]
        ch = cfg["channels"]
        h = p.conv(f"a{i}_rechannel", y, _np(la.rechannel.weight), None)
        for j, layer in enumerate(la.layers):
            pre = f"a{i}_l{j}"
            w, b, m = _np(layer.conv.weight), _np(layer.conv.bias), _np(layer.input_mixer.weight)
            parts = {"": slice(None)} if not layer.gated else {"_top": slice(0, ch), "_bot": slice(ch, 2 * ch)}
            z = {}
            for part, sl in parts.items():
                zc = p.conv(f"{pre}_conv{part}", h, w[sl], b[sl], layer.dilation)
                cond = p.crop(f"{pre}_cond", "x", p.offset[zc]) if f"{pre}_cond" not in p.offset else f"{pre}_cond"
                zm = p.conv(f"{pre}_mix{part}", cond, m[sl], None)
                z[part] = p.op("add", f"{pre}_z{part}", [zc, zm])
            if not layer.gated:
                a = p.op("act", f"{pre}_act", [z[""]], fn=act)
            else:
                top = p.op("act", f"{pre}_act_top", [z["_top"]], fn=act)
                bot = z["_bot"]
                if layer.legacy_gating:
                    bot = p.op("act", f"{pre}_act_bot", [bot], fn=act)
                gate = p.op("act", f"{pre}_gate", [bot], fn="sigmoid")
                a = p.op("mul", f"{pre}_act", [top, gate])
            res = p.conv(f"{pre}_1x1", a, _np(layer.one_by_one.weight), _np(layer.one_by_one.bias))
            h = p.op("add", f"{pre}_out", [p.crop(f"{pre}_skip", h, p.offset[a]), res])
            head = a if head is None else p.op("add", f"{pre}_head", [p.crop(f"{pre}_head_in", head, p.offset[a]), a])
        hw = _np(la.head_rechannel.weight)
        hb = _np(la.head_rechannel.bias) if la.head_rechannel.bias is not None else None
        if i == n_arrays - 1:  # fold y = head_scale · head into the last head conv
            hw = hw * scale
            hb = hb * scale if hb is not None else None
        head = p.conv(f"a{i}_head_rechannel", head, hw, hb)
        y = h
    p.output = head
    return p


def _linear_plan(model: NAMLinear, length: int) -> _Plan:
    p = _Plan([length, 1, 1])
    bias = _np(model.conv.bias) if model.conv.bias is not None else None
    p.output = p.conv("fir", "x", _np(model.conv.weight), bias)
    return p


def _lstm_plan(model: NAMLSTM, length: int) -> _Plan:
    p = _Plan([length, 1])
    src = "x"
    for k in range(model.num_layers):
        name = f"lstm{k}"
        core = model.core
        p.weights[f"{name}/kernel"] = np.ascontiguousarray(_np(getattr(core, f"weight_ih_l{k}")).T, np.float32)
        p.weights[f"{name}/recurrent"] = np.ascontiguousarray(_np(getattr(core, f"weight_hh_l{k}")).T, np.float32)
        bias = _np(getattr(core, f"bias_ih_l{k}")) + _np(getattr(core, f"bias_hh_l{k}"))  # Keras: one bias
        p.weights[f"{name}/b"] = bias.astype(np.float32)
        src = p.op("lstm", name, [src], units=model.hidden_size)
    p.weights["head/w"] = np.ascontiguousarray(_np(model.head.weight).T, np.float32)
    p.weights["head/b"] = _np(model.head.bias).astype(np.float32)
    p.output = p.op("dense", "head", [src])
    return p


def audio_twin_plan(model: nn.Module, block_size: int) -> _Plan:
    """The Keras twin's op list and weights (Keras layout) for ``model`` at a fixed ``block_size``."""
    rf = int(getattr(model, "receptive_field", 1))
    if isinstance(model, NAMWaveNet):
        return _wavenet_plan(model, block_size + rf - 1)
    if isinstance(model, NAMLinear):
        return _linear_plan(model, block_size + rf - 1)
    if isinstance(model, NAMLSTM):
        if model.input_size != 1:
            raise AudioExportError("streaming TFLite of an LSTM with extra input channels is not supported")
        return _lstm_plan(model, block_size)
    raise AudioExportError(f"no streaming TFLite twin for {type(model).__name__} (NAM WaveNet, LSTM, Linear only)")


# -- calibration and reference ---------------------------------------------------------------------------

def calibration_blocks(model: nn.Module, audio: np.ndarray, block_size: int, count: int = 64,
                       seed: int = 0) -> np.ndarray:
    """``count`` model inputs cut from ``audio`` (the training audio): blocks with their receptive-field context
    for WaveNet / Linear, plain blocks for the LSTM. Shape (count, block + rf − 1)."""
    rf = int(getattr(model, "receptive_field", 1))
    length = block_size + rf - 1
    audio = np.asarray(audio, np.float32).reshape(-1)
    if len(audio) < length:
        audio = np.concatenate([np.zeros(length - len(audio), np.float32), audio])
    starts = np.random.default_rng(seed).integers(0, len(audio) - length + 1, size=count)
    return np.stack([audio[s:s + length] for s in np.sort(starts)]).astype(np.float32)


@torch.no_grad()
def _twin_reference(model: nn.Module, X: np.ndarray) -> np.ndarray:
    """What the twin must compute on ``X``: valid-mode output, or (LSTM) the output from a zero state."""
    m = model.float().eval()
    x = torch.as_tensor(X, dtype=torch.float32)
    if isinstance(m, NAMLSTM):
        zeros = torch.zeros(m.num_layers, x.shape[0], m.hidden_size)
        out, _ = m.core(x.unsqueeze(-1), (zeros, zeros))
        return m.head(out)[..., 0].numpy()
    return m(x).numpy()


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


def tflite_stream_render(path: str | Path, x: np.ndarray, block_size: int | None = None,
                         runtime: str = "litert") -> np.ndarray:
    """Render ``x`` block by block through a streaming .tflite file (zero history / pre-warmed state)."""
    from tinyverse.audio.stream import process_file

    proc = TFLiteStreamProcessor(path, runtime)
    y, _ = process_file(proc, np.asarray(x, np.float32), block_size or proc.block)
    return y
