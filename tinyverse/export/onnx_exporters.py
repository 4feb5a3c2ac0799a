"""ONNX exporters: float (torch dynamo exporter) and int8 (onnxruntime static PTQ, QDQ) — both run in onnxruntime."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from tinyverse.export.base import CALIBRATION, Exporter
from tinyverse.export.onnx_float import ExportError, export_onnx, run_onnx
from tinyverse.quantization import onnx_output_step, quantize_onnx_static
from tinyverse.registry import EXPORTERS
from tinyverse.verification import Check, Tolerances, runtime_check


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
    """Float ONNX (opset 18, dynamic batch)."""

    name = "onnx"
    suffix = ".onnx"
    file_name = "model_float.onnx"
    label = "ONNX float"
    modalities = ("timeseries", "audio")  # audio: the streaming graph of tinyverse.audio.verify

    def export(self, model, spec, out_dir, calib, **opts):
        path = Path(out_dir) / opts.get("file_name", self.file_name)
        t0 = time.perf_counter()
        export_onnx(model, path, _example_inputs(model, calib))
        self.info = {"export_s": time.perf_counter() - t0, "seconds": time.perf_counter() - t0,
                     "bytes": path.stat().st_size}
        return path

    def run(self, path, X):
        return run_onnx(path, X)


@EXPORTERS.register("onnx_int8")
class OnnxInt8Exporter(Exporter):
    """int8 ONNX in QDQ format: per-channel symmetric weights, MinMax-calibrated activations.

    Quantizes ``opts['float_path']`` when given (the float export of the same run), else exports float first.
    """

    name = "onnx_int8"
    suffix = ".onnx"
    file_name = "model_int8.onnx"
    label = "ONNX int8"
    kind = "int8"
    needs = ("onnx", CALIBRATION)
    modalities = ("timeseries", "audio")  # audio: the streaming graph of tinyverse.audio.verify

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

    def run(self, path, X):
        return run_onnx(path, X)

    def checks(self, verification, path, X, y, tol):
        return [onnx_int8_runtime_check(path, X, tol, y)]


def onnx_int8_runtime_check(path: str | Path, X: np.ndarray | Sequence[np.ndarray], tol: Tolerances,
                            fused: np.ndarray | None = None) -> Check:
    """onnxruntime's default session (fused int8 kernels, CPU-specific; ``fused`` if already run) against the same
    QDQ file run as written (``ORT_DISABLE_ALL``)."""
    fused = run_onnx(path, X) if fused is None else fused
    reference = run_onnx(path, X, optimized=False)
    return runtime_check("fused kernels vs QDQ reference", fused, reference, onnx_output_step(path), tol)
