"""TFLite export of a spec model through its TensorFlow twin, and runners (LiteRT reference kernels, TFLM).

Why a twin: rebuilding the model layer by layer in TensorFlow and converting with ``tf.lite.TFLiteConverter`` is
the path that gave the smallest graphs (CONV_2D with (k, 1) kernels, no transposes) and worked for every model
measured (shared/reference/toolchain.md). Each layer writes its part of the plan (``twin_ops``,
:mod:`tinyverse.export.twin_plan`); the conversion job (:mod:`tinyverse.export.tflite_job`) runs the worker both
modalities share in a subprocess, so TensorFlow is never imported by ``import tinyverse`` and a converter crash
cannot kill a run.

Layout: the twin takes NHWC ``(N, L, 1, C)``; ``run_litert``/``run_tflm`` accept the torch layout
``(N, C, L, 1)`` and transpose it once outside the graph (4-D outputs are transposed back).
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from tinyverse.export.base import spec_of
from tinyverse.export.onnx_float import ExportError, torch_outputs
from tinyverse.export.tflite_job import TwinJob, run_tflite_job
from tinyverse.export.twin_plan import build_plan, nchw_to_nhwc, nhwc_to_nchw
from tinyverse.models.spec import ModelSpec

log = logging.getLogger(__name__)

CONVERT_TIMEOUT_S = 600


def _require_spec(model: nn.Module, spec: ModelSpec | None) -> ModelSpec:
    spec = spec_of(model, spec)
    if spec is None or not hasattr(model, "layers"):
        raise ExportError(
            f"the TFLite path needs a spec-dict model (GenericModelWithSpec); {type(model).__name__} is a plain "
            f"nn.Module. Its Keras twin is built from the spec; litert-torch (PyTorch → TFLite directly) is not "
            f"installed here. Export ONNX instead, or describe the model as a spec.")
    if len(spec.inputs) != 1 or len(spec.outputs) != 1:
        raise ExportError("the TFLite path supports one input and one output for now "
                          f"(spec has inputs {list(spec.inputs)} and outputs {spec.outputs})")
    return spec


def spec_twin_job(model: nn.Module, spec: ModelSpec | None, calib: np.ndarray, num_calib: int = 200,
                  num_check: int = 16) -> TwinJob:
    """The conversion job of a spec model: its twin plan (each layer's ``twin_ops``), ``num_calib`` samples of
    ``calib`` (torch layout, from the training split) as the representative dataset and torch's outputs on the first
    ``num_check`` of them for the twin check, all moved to the twin's NHWC layout. The files keep the
    "serving_default" signature the Keras twin gave them (LiteRT's signature runner)."""
    spec = _require_spec(model, spec)
    calib = np.asarray(calib, dtype=np.float32)
    plan = build_plan(model, spec)
    model.eval()
    ref_in = calib[:num_check]
    return TwinJob(plan.to_json(), plan.weights, nchw_to_nhwc(calib[:num_calib]), nchw_to_nhwc(ref_in),
                   nchw_to_nhwc(torch_outputs(model, ref_in)), signature=True)


def convert_tflite(model: nn.Module, spec: ModelSpec | None, calib: np.ndarray, float_path: str | Path | None,
                   int8_path: str | Path | None, num_calib: int = 200, num_check: int = 16,
                   int16_path: str | Path | None = None) -> dict[str, Any]:
    """Build the twin, check it against torch, write the float, full-int8 and/or int16x8 .tflite files (one job).

    ``calib`` is torch-layout data from the training split (the representative dataset of the quantized files).
    Returns what the worker measured: ``twin_max_abs_diff``, ``convert_<mode>_s`` and ``errors`` (mode → why that
    file was not written); raises :class:`ExportError` when the twin disagrees with torch or the worker fails.
    """
    job = spec_twin_job(model, spec, calib, num_calib, num_check)
    result = run_tflite_job(job, {"float": float_path, "int8": int8_path, "int16": int16_path},
                            timeout_s=CONVERT_TIMEOUT_S)
    log.info("TFLite twin max abs diff %.3g; conversion %.1f s", result["twin_max_abs_diff"], result["subprocess_s"])
    return result


# -- running .tflite files -------------------------------------------------------------------------------

@dataclass(frozen=True)
class TensorQuant:
    """A tensor's shape, dtype and quantization: float32, or int8 / int16 with a scale and zero point."""

    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int

    @property
    def quantized(self) -> bool:
        return self.dtype in ("int8", "int16")

    def quantize(self, x: np.ndarray) -> np.ndarray:
        if not self.quantized:
            return x.astype(np.float32)
        info = np.iinfo(self.dtype)
        return np.clip(np.round(x / self.scale) + self.zero_point, info.min, info.max).astype(self.dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        if not self.quantized:
            return q.astype(np.float32)
        return ((q.astype(np.float32) - self.zero_point) * self.scale).astype(np.float32)


def model_bytes(path_or_bytes: str | Path | bytes) -> bytes:
    """The bytes of a .tflite file (a path, or the bytes themselves)."""
    return bytes(path_or_bytes) if isinstance(path_or_bytes, (bytes, bytearray)) else Path(path_or_bytes).read_bytes()


def tflite_metadata(path_or_bytes: str | Path | bytes) -> dict[str, str]:
    """The metadata entries of a .tflite file (``Model.metadata``: name → the buffer's text), read with LiteRT's
    flatbuffer schema; entries that are not text (the converter's own) are left out."""
    from ai_edge_litert import schema_py_generated as schema_fb

    model = schema_fb.Model.GetRootAs(model_bytes(path_or_bytes), 0)
    out: dict[str, str] = {}
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        data = model.Buffers(entry.Buffer()).DataAsNumpy()
        if isinstance(data, np.ndarray):
            try:
                out[entry.Name().decode()] = data.tobytes().decode()
            except UnicodeDecodeError:
                continue
    return out


def litert_interpreter(path_or_bytes: str | Path | bytes, xnnpack: bool = False):
    """A LiteRT interpreter on the reference kernels (what verifies a file: XNNPACK refused some valid int8 files),
    or with the XNNPACK delegate on one thread (``xnnpack=True``: what a desktop or phone host runs)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    if xnnpack:
        interp = Interpreter(model_content=model_bytes(path_or_bytes), num_threads=1)
    else:
        interp = Interpreter(model_content=model_bytes(path_or_bytes),
                             experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    return interp


def litert_quant(detail: dict) -> TensorQuant:
    """A LiteRT tensor detail (``get_input_details()[i]``) as a :class:`TensorQuant`."""
    scale, zp = detail.get("quantization", (0.0, 0))
    return TensorQuant(tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"]).name, float(scale), int(zp))


def io_details(path_or_bytes: str | Path | bytes) -> tuple[TensorQuant, TensorQuant]:
    """Input and output shape, dtype, scale and zero point of a one-input, one-output .tflite file."""
    interp = litert_interpreter(path_or_bytes)
    return litert_quant(interp.get_input_details()[0]), litert_quant(interp.get_output_details()[0])


def tflite_ops(path_or_bytes: str | Path | bytes) -> list[str]:
    """The builtin op names of a .tflite file, in graph order (read with delegates disabled)."""
    interp = litert_interpreter(path_or_bytes)
    return [op["op_name"] for op in interp._get_ops_details()]


def run_litert(path_or_bytes: str | Path | bytes, X: np.ndarray, raw: bool = False) -> np.ndarray:
    """Run a .tflite file sample by sample on torch-layout ``X``; float (dequantized) outputs in torch layout.

    ``raw=True`` returns the integer outputs of a quantized model as they are (NHWC when 4-D).
    """
    interp = litert_interpreter(path_or_bytes)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    qin, qout = litert_quant(inp), litert_quant(out)
    xs = nchw_to_nhwc(np.asarray(X, dtype=np.float32))
    outs = []
    for i in range(xs.shape[0]):
        interp.set_tensor(inp["index"], qin.quantize(xs[i:i + 1]))
        interp.invoke()
        outs.append(interp.get_tensor(out["index"]).copy())
    y = np.concatenate(outs, axis=0)
    return y if raw else nhwc_to_nchw(qout.dequantize(y))


@contextlib.contextmanager
def capture_fd(fd: int):
    """Capture what C++ code writes to a file descriptor (TFLM prints its arena use to stderr)."""
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(fd)
        sys.stderr.flush()
        os.dup2(tmp.fileno(), fd)
        box: list[str] = []
        try:
            yield box
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            box.append(tmp.read().decode(errors="replace"))


def _tflm_interpreter(model: bytes, arena_size: int | None):
    from tflite_micro.python.tflite_micro import runtime

    size = arena_size or max(16 * 1024, 4 * len(model))
    printed = ""
    for _ in range(6):  # grow the arena until allocation succeeds; a real MCU build sizes it from the report
        error = None
        with capture_fd(2) as box:  # TFLM prints each failed try ("Failed to resize buffer"): not the user's problem
            try:
                interp = runtime.Interpreter.from_bytes(model, arena_size=size)
            except RuntimeError as e:
                error = e
        if error is None:
            return interp, size
        printed = (box[0] if box else "").strip()
        if arena_size:
            raise RuntimeError(f"{error}: {printed}" if printed else str(error)) from error
        size *= 4
    raise ExportError(f"TFLM could not allocate tensors even with a {size // 4} byte arena"
                      + (f" ({printed.splitlines()[-1]})" if printed else ""))


def tflm_arena_bytes(interp) -> int | None:
    """Bytes of the arena TFLM actually used, parsed from its allocation report."""
    with capture_fd(2) as box:
        interp.print_allocations()
    m = re.search(r"\[RecordingMicroAllocator\] Arena allocation total (\d+) bytes", box[0] if box else "")
    if m is None:
        m = re.search(r"total (\d+) bytes", box[0] if box else "")
    return int(m.group(1)) if m else None


def run_tflm(path_or_bytes: str | Path | bytes, X: np.ndarray, arena_size: int | None = None,
             raw: bool = False) -> tuple[np.ndarray, int | None]:
    """Run an int8, int16x8 (or float) .tflite file in the TFLite Micro interpreter, one sample at a time.

    Inputs are quantized with the model's input scale/zero point, outputs dequantized (``raw=True``: the
    integer outputs). Returns ``(outputs, arena_bytes_used)``.
    """
    model = model_bytes(path_or_bytes)
    interp, _ = _tflm_interpreter(model, arena_size)
    qin, qout = _tflm_quant(interp.get_input_details(0)), _tflm_quant(interp.get_output_details(0))
    xs = nchw_to_nhwc(np.asarray(X, dtype=np.float32))
    outs = []
    for i in range(xs.shape[0]):
        interp.set_input(qin.quantize(xs[i:i + 1]), 0)
        interp.invoke()
        outs.append(np.array(interp.get_output(0), copy=True))
    arena = tflm_arena_bytes(interp)
    y = np.concatenate(outs, axis=0)
    return (y if raw else nhwc_to_nchw(qout.dequantize(y))), arena


def measure_tflm_arena(path_or_bytes: str | Path | bytes) -> int | None:
    """Arena bytes TFLM uses for one inference (on a zero input)."""
    interp, _ = _tflm_interpreter(model_bytes(path_or_bytes), None)
    d = interp.get_input_details(0)
    interp.set_input(np.zeros(tuple(int(s) for s in d["shape"]), dtype=d["dtype"]), 0)
    interp.invoke()
    return tflm_arena_bytes(interp)


def _tflm_quant(detail: dict) -> TensorQuant:
    """TFLM reports quantization as arrays under ``quantization_parameters`` (LiteRT: a (scale, zp) tuple)."""
    q = detail.get("quantization_parameters") or {}
    scales, zps = q.get("scales", []), q.get("zero_points", [])
    return TensorQuant(tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"]).name,
                       float(scales[0]) if len(scales) else 0.0, int(zps[0]) if len(zps) else 0)
