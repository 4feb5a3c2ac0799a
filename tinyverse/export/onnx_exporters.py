"""ONNX exporters: float (torch dynamo exporter) and int8 (onnxruntime static PTQ, QDQ) — both run in onnxruntime.

The model says what is exported (:func:`tinyverse.export.base.streams`): a whole-input model's graph
(``model_float.onnx`` / ``model_int8.onnx``, run on the test split), or a streaming model's block graph
(``model.streaming_module()``: ``model_stream.onnx`` / ``model_stream_int8.onnx``, rendered block by block,
:mod:`tinyverse.export.onnx_stream`). The int8 row is checked against the same file run as written (onnxruntime
without graph optimizations: the QDQ reference arithmetic), because fused int8 kernels differ between CPUs.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from tinyverse.export.base import CALIBRATION, Exporter, Verification, stream_block_size, streams
from tinyverse.export.onnx_float import ExportError, export_onnx, run_onnx
from tinyverse.export.onnx_stream import OnnxStreamProcessor, export_streaming_onnx, quantize_streaming_onnx
from tinyverse.quantization import onnx_output_step, quantize_onnx_static
from tinyverse.registry import EXPORTERS
from tinyverse.verification import Check, Tolerances, runtime_check

# The runtime of the int8 check's reference: onnxruntime running the QDQ graph as written (ORT_DISABLE_ALL).
ORT_REFERENCE = "onnxruntime (QDQ reference)"


def _example_inputs(model, calib) -> tuple[torch.Tensor, ...]:
    if calib is not None:
        arrays = [calib] if not isinstance(calib, (list, tuple)) else list(calib)
        if arrays[0].shape[0] >= 2:
            return tuple(torch.as_tensor(a[:2], dtype=torch.float32) for a in arrays)
    if hasattr(model, "example_inputs"):
        return tuple(model.example_inputs(batch_size=2))
    raise ExportError("pass calibration data (>= 2 samples) so the ONNX export has an example input")


@EXPORTERS.register("onnx")
class OnnxFloatExporter(Exporter):
    """Float ONNX (opset 18, dynamic batch); a streaming model's block graph (dynamic block length)."""

    name = "onnx"
    suffix = ".onnx"
    file_name = "model_float.onnx"
    stream_file_name = "model_stream.onnx"
    label = "ONNX float"
    modalities = ("timeseries", "audio")

    def write(self, ctx):
        if not streams(ctx.model):
            return super().write(ctx)
        path = ctx.out_dir / self.stream_file_name
        t0 = time.perf_counter()
        export_streaming_onnx(ctx.model, path, stream_block_size(ctx))
        self.info = {"seconds": time.perf_counter() - t0, "bytes": path.stat().st_size}
        return path

    def export(self, model, spec, out_dir, calib, **opts):
        path = Path(out_dir) / opts.get("file_name", self.file_name)
        t0 = time.perf_counter()
        export_onnx(model, path, _example_inputs(model, calib))
        self.info = {"export_s": time.perf_counter() - t0, "seconds": time.perf_counter() - t0,
                     "bytes": path.stat().st_size}
        return path

    def verifications(self):
        return [Verification(self.label, "onnxruntime")]

    def run_on(self, verification, path, X):
        return run_onnx(path, X, optimized=verification.runtime != ORT_REFERENCE)

    def run(self, path, X):
        return run_onnx(path, X)

    def stream_processor(self, path, verification):
        return OnnxStreamProcessor(path, optimized=verification.runtime != ORT_REFERENCE)


@EXPORTERS.register("onnx_int8")
class OnnxInt8Exporter(OnnxFloatExporter):
    """int8 ONNX in QDQ format: per-channel symmetric weights, MinMax-calibrated activations; checked against the same
    file run as written (onnxruntime without graph optimizations).

    Quantizes ``opts['float_path']`` when given (the float export of the same run), else exports float first.
    """

    name = "onnx_int8"
    file_name = "model_int8.onnx"
    stream_file_name = "model_stream_int8.onnx"
    label = "ONNX int8"
    kind = "int8"
    needs = ("onnx", CALIBRATION)

    def write(self, ctx):
        if not streams(ctx.model):
            return Exporter.write(self, ctx)
        path = ctx.out_dir / self.stream_file_name
        t0 = time.perf_counter()
        quantize_streaming_onnx(ctx.model, ctx.artifacts["onnx"], path, ctx.calib, stream_block_size(ctx),
                                ctx.options.get("num_calib", 64))
        self.info = {"seconds": time.perf_counter() - t0, "bytes": path.stat().st_size}
        return path

    def export_options(self, ctx):
        return {"float_path": ctx.artifacts["onnx"], "num_calib": ctx.options.get("num_calib", 512)}

    def export(self, model, spec, out_dir, calib, **opts):
        if calib is None:
            raise ExportError("onnx_int8 needs calibration data from the training split")
        out_dir = Path(out_dir)
        float_path = opts.get("float_path")
        if float_path is None:
            float_path = OnnxFloatExporter().export(model, spec, out_dir, calib)
        path = out_dir / opts.get("file_name", self.file_name)
        t0 = time.perf_counter()
        quantize_onnx_static(float_path, path, calib, max_samples=opts.get("num_calib", 512))
        self.info = {"quantize_s": time.perf_counter() - t0, "seconds": time.perf_counter() - t0,
                     "bytes": path.stat().st_size}
        return path

    def verifications(self):
        return [Verification(self.label, "onnxruntime", reference=ORT_REFERENCE,
                             reference_check="fused kernels vs QDQ reference")]

    def output_step(self, path, ctx):
        return onnx_output_step(path)


def onnx_int8_runtime_check(path: str | Path, X: np.ndarray | Sequence[np.ndarray], tol: Tolerances,
                            fused: np.ndarray | None = None) -> Check:
    """onnxruntime's default session (fused int8 kernels, CPU-specific; ``fused`` if already run) against the same
    QDQ file run as written (``ORT_DISABLE_ALL``)."""
    fused = run_onnx(path, X) if fused is None else fused
    reference = run_onnx(path, X, optimized=False)
    return runtime_check("fused kernels vs QDQ reference", fused, reference, onnx_output_step(path), tol)
