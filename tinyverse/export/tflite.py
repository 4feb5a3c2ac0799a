"""TFLite export through a Keras twin built from the spec, and runners (LiteRT reference kernels, TFLM).

Why a twin: rebuilding the model layer by layer in Keras and converting with ``tf.lite.TFLiteConverter`` is
the path that gave the smallest graphs (CONV_2D with (k, 1) kernels, no transposes) and worked for every model
measured (shared/reference/toolchain.md). The conversion runs in a subprocess (``_keras_twin.py``), so
TensorFlow is never imported by ``import tinyverse`` and a converter crash cannot kill a run.

Layout: the twin takes NHWC ``(N, L, 1, C)``; ``run_litert``/``run_tflm`` accept the torch layout
``(N, C, L, 1)`` and transpose it once outside the graph (4-D outputs are transposed back).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from tinyverse.export.base import CALIBRATION, Exporter, RunResult, Verification, spec_of
from tinyverse.export.onnx_float import ExportError, torch_outputs
from tinyverse.export.twin_plan import build_plan, nchw_to_nhwc, nhwc_to_nchw
from tinyverse.models.spec import ModelSpec
from tinyverse.registry import EXPORTERS

log = logging.getLogger(__name__)

WORKER = Path(__file__).with_name("_keras_twin.py")
TWIN_TOLERANCE = 1e-4  # relative to max(1, max |torch output|): float32 convs agree to ~1e-6
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


def convert_tflite(model: nn.Module, spec: ModelSpec | None, calib: np.ndarray, float_path: str | Path | None,
                   int8_path: str | Path | None, num_calib: int = 200, num_check: int = 16) -> dict[str, Any]:
    """Build the Keras twin, check it against torch, write the float and/or full-int8 .tflite files.

    ``calib`` is torch-layout data from the training split (the int8 representative dataset). Returns what
    the worker measured: ``twin_max_abs_diff``, ``convert_float_s``, ``convert_int8_s``.
    """
    spec = _require_spec(model, spec)
    calib = np.asarray(calib, dtype=np.float32)
    plan = build_plan(model, spec)
    model.eval()
    ref_in = calib[:num_check]
    ref_out = torch_outputs(model, ref_in)
    with tempfile.TemporaryDirectory(prefix="tinyverse_tflite_") as tmp:
        job = Path(tmp)
        (job / "plan.json").write_text(json.dumps(plan.to_json()))
        np.savez(job / "weights.npz", **plan.weights)
        np.save(job / "calib.npy", nchw_to_nhwc(calib[:num_calib]))
        np.save(job / "ref_in.npy", nchw_to_nhwc(ref_in))
        np.save(job / "ref_out.npy", ref_out)
        (job / "job.json").write_text(json.dumps({
            "float": str(Path(float_path).resolve()) if float_path else None,
            "int8": str(Path(int8_path).resolve()) if int8_path else None,
            "tolerance": TWIN_TOLERANCE}))
        t0 = time.perf_counter()
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1", "CUDA_VISIBLE_DEVICES": ""}
        try:
            proc = subprocess.run([sys.executable, str(WORKER), str(job)], capture_output=True, text=True,
                                  env=env, timeout=CONVERT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ExportError(f"TFLite conversion timed out after {CONVERT_TIMEOUT_S} s") from None
        result_file = job / "result.json"
        result = json.loads(result_file.read_text()) if result_file.exists() else {}
        if "error" in result:
            raise ExportError(result["error"])
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            raise ExportError(f"TFLite conversion failed (worker exit {proc.returncode}): " + " | ".join(tail))
    result["subprocess_s"] = time.perf_counter() - t0
    log.info("TFLite twin max abs diff %.3g; conversion %.1f s", result["twin_max_abs_diff"],
             result["subprocess_s"])
    return result


# -- running .tflite files -------------------------------------------------------------------------------

@dataclass(frozen=True)
class TensorQuant:
    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int

    def quantize(self, x: np.ndarray) -> np.ndarray:
        if self.dtype != "int8":
            return x.astype(np.float32)
        return np.clip(np.round(x / self.scale) + self.zero_point, -128, 127).astype(np.int8)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        if self.dtype != "int8":
            return q.astype(np.float32)
        return ((q.astype(np.float32) - self.zero_point) * self.scale).astype(np.float32)


def _model_bytes(path_or_bytes: str | Path | bytes) -> bytes:
    return bytes(path_or_bytes) if isinstance(path_or_bytes, (bytes, bytearray)) else Path(path_or_bytes).read_bytes()


def litert_interpreter(path_or_bytes: str | Path | bytes):
    """A LiteRT interpreter on the reference kernels (no XNNPACK: it refused some valid int8 files)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_content=_model_bytes(path_or_bytes),
                         experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    return interp


def _quant(detail: dict) -> TensorQuant:
    scale, zp = detail.get("quantization", (0.0, 0))
    return TensorQuant(tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"]).name, float(scale), int(zp))


def io_details(path_or_bytes: str | Path | bytes) -> tuple[TensorQuant, TensorQuant]:
    """Input and output shape, dtype, scale and zero point of a one-input, one-output .tflite file."""
    interp = litert_interpreter(path_or_bytes)
    return _quant(interp.get_input_details()[0]), _quant(interp.get_output_details()[0])


def tflite_ops(path_or_bytes: str | Path | bytes) -> list[str]:
    """The builtin op names of a .tflite file, in graph order (read with delegates disabled)."""
    interp = litert_interpreter(path_or_bytes)
    return [op["op_name"] for op in interp._get_ops_details()]


def run_litert(path_or_bytes: str | Path | bytes, X: np.ndarray, raw: bool = False) -> np.ndarray:
    """Run a .tflite file sample by sample on torch-layout ``X``; float (dequantized) outputs in torch layout.

    ``raw=True`` returns the int8 outputs of an int8 model as they are (NHWC when 4-D).
    """
    interp = litert_interpreter(path_or_bytes)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    qin, qout = _quant(inp), _quant(out)
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
    for _ in range(6):  # grow the arena until allocation succeeds; a real MCU build sizes it from the report
        try:
            return runtime.Interpreter.from_bytes(model, arena_size=size), size
        except RuntimeError:
            if arena_size:
                raise
            size *= 4
    raise ExportError(f"TFLM could not allocate tensors even with a {size} byte arena")


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
    """Run an int8 (or float) .tflite file in the TFLite Micro interpreter, one sample at a time.

    Inputs are quantized with the model's input scale/zero point, outputs dequantized (``raw=True``: the
    int8 outputs). Returns ``(outputs, arena_bytes_used)``.
    """
    model = _model_bytes(path_or_bytes)
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
    interp, _ = _tflm_interpreter(_model_bytes(path_or_bytes), None)
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


# -- exporters -------------------------------------------------------------------------------------------

class _TFLiteBase(Exporter):
    int8: bool = False
    needs = (CALIBRATION,)

    def write(self, ctx):
        """Within a compile, one conversion job writes every planned TFLite file (one twin build, one TF start)."""
        conv = ctx.shared.get("tflite_conversion")
        if conv is None:
            planned = [cls for cls in (TFLiteFloatExporter, TFLiteInt8Exporter) if cls.name in ctx.planned]
            paths = {"int8_path" if cls.int8 else "float_path": ctx.out_dir / cls.file_name for cls in planned}
            try:
                targets = {"float_path": None, "int8_path": None, **paths}
                num_calib = ctx.options.get("tflite_num_calib", 200)
                conv = convert_tflite(ctx.model, ctx.spec, ctx.calib, num_calib=num_calib, **targets)
                ctx.info["tflite_conversion"] = conv
            except Exception as err:  # noqa: BLE001 - every TFLite row records it
                conv = {"error": str(err).splitlines()[0][:300] if str(err) else type(err).__name__}
            ctx.shared["tflite_conversion"] = conv
        if "error" in conv:
            raise ExportError(conv["error"])
        self.info = {"seconds": conv.get("convert_int8_s" if self.int8 else "convert_float_s")}
        return ctx.out_dir / self.file_name

    def run_on(self, verification, path, X):
        if verification.runtime == "tflm":
            y, arena = run_tflm(path, X)
            return RunResult(y, arena)
        return run_litert(path, X)

    def output_step(self, path, ctx):
        return io_details(path)[1].scale

    def export(self, model, spec, out_dir, calib, **opts):
        if calib is None:
            raise ExportError(f"{self.name} needs calibration data (the twin is checked on it"
                              + ("; int8 uses it as the representative dataset)" if self.int8 else ")"))
        path = Path(out_dir) / opts.get("file_name", self.file_name)
        paths = {"float_path": None, "int8_path": None}
        paths["int8_path" if self.int8 else "float_path"] = path
        self.info = convert_tflite(model, spec, calib, num_calib=opts.get("num_calib", 200), **paths)
        self.info["ops"] = tflite_ops(path)
        self.info["bytes"] = path.stat().st_size
        return path

    def run(self, path, X):
        return run_litert(path, X)


@EXPORTERS.register("tflite")
class TFLiteFloatExporter(_TFLiteBase):
    """Float32 .tflite from the Keras twin; ``run`` uses LiteRT's reference kernels."""

    name = "tflite"
    suffix = ".tflite"
    file_name = "model_float.tflite"
    modalities = ("timeseries", "audio")  # audio: the streaming graph of tinyverse.audio.verify

    def verifications(self):
        return [Verification("TFLite float (LiteRT)", "litert")]


@EXPORTERS.register("tflite_int8")
class TFLiteInt8Exporter(_TFLiteBase):
    """Full-integer .tflite (int8 weights, activations, input and output); ``run`` uses LiteRT reference
    kernels, ``run_tflm`` the TFLite Micro interpreter (what an MCU runs)."""

    name = "tflite_int8"
    suffix = ".tflite"
    file_name = "model_int8.tflite"
    int8 = True
    kind = "int8"
    modalities = ("timeseries", "audio")  # audio: the streaming graph of tinyverse.audio.verify

    def verifications(self):
        # TFLM runs the file LiteRT's reference kernels ran: they must agree to a few output steps
        return [Verification("TFLite int8 (LiteRT)", "litert"),
                Verification("TFLite int8 (TFLM)", "tflm", same_as="TFLite int8 (LiteRT)",
                             same_as_check="vs LiteRT reference kernels")]

    def record(self, ctx, path, rows):
        ctx.info["tflite_int8_ops"] = tflite_ops(path)
        ctx.info["tflite_int8_bytes"] = path.stat().st_size
        arena = next((r.arena_bytes for r in rows if r.arena_bytes), None)
        if arena is not None:
            ctx.info["tflm_arena_bytes"] = arena

    def run_tflm(self, path, X, arena_size: int | None = None) -> np.ndarray:
        y, arena = run_tflm(path, X, arena_size)
        self.info["tflm_arena_bytes"] = arena
        return y
