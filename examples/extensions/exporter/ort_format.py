"""Exporters for ONNX Runtime's ORT format (``.ort``): what onnxruntime's minimal and mobile builds load.

Each one *needs* another exporter's file — the float (``onnx``) or int8 (``onnx_int8``) ONNX of the same run —
so the compile stage runs that one first and verifies it too. The ORT file is the same graph after onnxruntime's
basic, hardware-independent optimizations (constant folding, redundant nodes removed), serialized as a flatbuffer.

It runs in both modalities: time series on the whole test split (``run``), audio block by block
(``stream_processor``: the streaming ONNX file's metadata — receptive field, LSTM state — survives the conversion,
so tinyverse's ONNX stream runner plays it). Use it from a config:

    extensions: [examples/extensions/exporter/ort_format.py]
    compilation:
      enable: true
      exporters: [onnx_ort, onnx_int8_ort]      # onnx and onnx_int8 run first (they are needed)
"""
from __future__ import annotations

import time
from pathlib import Path

from tinyverse.audio.stream import OnnxStreamProcessor
from tinyverse.export import Exporter, run_onnx
from tinyverse.export.base import Verification
from tinyverse.quantization import onnx_output_step
from tinyverse.registry import EXPORTERS


def convert_to_ort(onnx_path: Path, ort_path: Path) -> Path:
    """Write ``ort_path``: ``onnx_path`` in ORT format after basic graph optimizations."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # portable across CPUs and EPs
    opts.optimized_model_filepath = str(ort_path)
    opts.add_session_config_entry("session.save_model_format", "ORT")
    ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    return ort_path


@EXPORTERS.register("onnx_ort")
class OrtFormatExporter(Exporter):
    """The float ONNX file in ORT format: ``model_float.ort`` (time series) / ``model_stream.ort`` (audio)."""

    name = "onnx_ort"
    suffix = ".ort"
    file_name = "model_float.ort"
    label = "ONNX float (ORT format)"
    kind = "float"  # the float rule: same outputs as PyTorch within float_rel_diff (audio: ESR ≤ audio_float_max_esr)
    needs = ("onnx",)
    modalities = ("timeseries", "audio")
    source = "onnx"  # the exporter whose file is converted

    def write(self, ctx):
        src = Path(ctx.artifacts[self.source])
        t0 = time.perf_counter()
        path = convert_to_ort(src, ctx.out_dir / f"{src.stem}.ort")
        self.info = {"seconds": time.perf_counter() - t0, "bytes": path.stat().st_size}
        return path

    def export(self, model, spec, out_dir, calib, **opts):  # outside a compile: convert a given ONNX file
        return convert_to_ort(Path(opts["onnx_path"]), Path(out_dir) / opts.get("file_name", self.file_name))

    def verifications(self):
        return [Verification(self.label, runtime="onnxruntime")]

    def run(self, path, X):
        return run_onnx(path, X)

    def stream_processor(self, path, verification):
        return OnnxStreamProcessor(path)


@EXPORTERS.register("onnx_int8_ort")
class OrtFormatInt8Exporter(OrtFormatExporter):
    """The int8 QDQ ONNX file in ORT format; judged by the int8 rule, and it must reproduce the int8 ONNX row."""

    name = "onnx_int8_ort"
    file_name = "model_int8.ort"
    label = "ONNX int8 (ORT format)"
    kind = "int8"  # the int8 rule: agreement / metric drop (audio: ESR ≤ audio_int8_max_esr)
    needs = ("onnx_int8",)
    source = "onnx_int8"

    def verifications(self):
        # the same quantized graph as the ONNX int8 row: within runtime_max_steps output steps of it
        return [Verification(self.label, runtime="onnxruntime", same_as="ONNX int8")]

    def output_step(self, path, ctx):
        return onnx_output_step(ctx.artifacts[self.source])
