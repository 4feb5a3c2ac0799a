"""TFLite exporters: float32 (``tflite``), full int8 (``tflite_int8``), int16x8 (``tflite_int16``), both modalities.

Within a compile, one conversion job (:mod:`tinyverse.export.tflite_job`) writes every TFLite file the compile plans:
one twin build, one TensorFlow start. The model says what is converted (:func:`tinyverse.export.base.streams`):

- a spec model (time series): the twin of its spec (each layer's ``twin_ops``), on whole inputs —
  ``model_float.tflite`` / ``model_int8.tflite`` / ``model_int16.tflite``, run on the test split;
- a streaming model (audio): its ``streaming_twin(block_size)`` — ``model_stream_float.tflite`` /
  ``model_stream_int8.tflite`` / ``model_stream_int16.tflite``, rendered block by block.

Every file is verified on LiteRT's reference kernels; the quantized ones in TFLite Micro too (what an MCU runs),
which must reproduce the reference kernels to a few output steps; streaming files also on XNNPACK (a host's
real-time figure).
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from tinyverse.export import tflite_stream  # the module: a test may replace its converter
from tinyverse.export.base import CALIBRATION, Exporter, RunResult, Verification, stream_block_size, streams
from tinyverse.export.onnx_float import ExportError
from tinyverse.export.tflite import convert_tflite, io_details, run_litert, run_tflm, tflite_ops
from tinyverse.export.tflite_job import MODES
from tinyverse.registry import EXPORTERS

__all__ = ["TFLiteExporter", "TFLiteFloatExporter", "TFLiteInt8Exporter", "TFLiteInt16Exporter"]


def _tflm_row(label: str, reference: str) -> Verification:
    # TFLM runs the file LiteRT's reference kernels ran: they must agree to a few output steps
    return Verification(label, "tflm", same_as=reference, same_as_check="vs LiteRT reference kernels")


class TFLiteExporter(Exporter):
    """What the three TFLite exporters share: the one conversion job of a compile, the runtimes."""

    mode: ClassVar[str] = "float"  # the conversion job's mode (tinyverse.export.tflite_job.MODES)
    suffix = ".tflite"
    needs = (CALIBRATION,)
    modalities = ("timeseries", "audio")

    def write(self, ctx):
        """Within a compile, one conversion job writes every planned TFLite file (one twin build, one TF start)."""
        conv = ctx.shared.get("tflite_conversion")
        if conv is None:
            planned = [EXPORTERS.get(name) for name in ctx.planned]
            paths = {cls.mode: ctx.out_dir / cls().artifact_name(ctx.model) for cls in planned
                     if isinstance(cls, type) and issubclass(cls, TFLiteExporter)}
            try:
                if streams(ctx.model):
                    conv = tflite_stream.export_streaming_tflite(
                        ctx.model, ctx.calib, stream_block_size(ctx), num_calib=ctx.options.get("num_calib", 64),
                        **{f"{mode}_path": path for mode, path in paths.items()})
                else:
                    conv = convert_tflite(ctx.model, ctx.spec, ctx.calib, paths.get("float"), paths.get("int8"),
                                          num_calib=ctx.options.get("tflite_num_calib", 200),
                                          int16_path=paths.get("int16"))
                ctx.info["tflite_conversion"] = conv
            except Exception as err:  # noqa: BLE001 - every TFLite row records it
                conv = {"error": str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__}
            ctx.shared["tflite_conversion"] = conv
        if "error" in conv:
            raise ExportError(conv["error"])
        if self.mode in conv.get("errors", {}):
            raise ExportError(conv["errors"][self.mode])
        self.info = {"seconds": conv.get(f"convert_{self.mode}_s"), "twin_max_abs_diff": conv.get("twin_max_abs_diff")}
        return ctx.out_dir / self.artifact_name(ctx.model)

    def run_on(self, verification, path, X):
        if verification.runtime == "tflm":
            y, arena = run_tflm(path, X)
            return RunResult(y, arena)
        return run_litert(path, X)

    def stream_processor(self, path, verification):
        return tflite_stream.TFLiteStreamProcessor(path, verification.runtime)

    def output_step(self, path, ctx):
        return io_details(path)[1].scale

    def export(self, model, spec, out_dir, calib, **opts):
        if calib is None:
            raise ExportError(f"{self.name} needs calibration data (the twin is checked on it"
                              + ("; the quantized files use it as the representative dataset)"
                                 if self.mode != "float" else ")"))
        path = Path(out_dir) / opts.get("file_name", self.file_name)
        paths = {mode: path if mode == self.mode else None for mode in MODES}
        self.info = convert_tflite(model, spec, calib, paths["float"], paths["int8"],
                                   num_calib=opts.get("num_calib", 200), int16_path=paths["int16"])
        error = self.info["errors"].get(self.mode)
        if error:
            raise ExportError(error)
        self.info["ops"] = tflite_ops(path)
        self.info["bytes"] = path.stat().st_size
        return path

    def run(self, path, X):
        return run_litert(path, X)


@EXPORTERS.register("tflite")
class TFLiteFloatExporter(TFLiteExporter):
    """Float32 .tflite from the twin; ``run`` uses LiteRT's reference kernels."""

    name = "tflite"
    file_name = "model_float.tflite"
    stream_file_name = "model_stream_float.tflite"

    def verifications(self):
        return [Verification("TFLite float (LiteRT)", "litert")]

    def stream_verifications(self):
        return [Verification("TFLite float", "litert"), Verification("TFLite float (XNNPACK)", "xnnpack")]


@EXPORTERS.register("tflite_int8")
class TFLiteInt8Exporter(TFLiteExporter):
    """Full-integer .tflite (int8 weights, activations, input and output); ``run`` uses LiteRT reference
    kernels, ``run_tflm`` the TFLite Micro interpreter (what an MCU runs)."""

    name = "tflite_int8"
    file_name = "model_int8.tflite"
    stream_file_name = "model_stream_int8.tflite"
    mode = "int8"
    kind = "int8"

    def verifications(self):
        return [Verification("TFLite int8 (LiteRT)", "litert"), _tflm_row("TFLite int8 (TFLM)", "TFLite int8 (LiteRT)")]

    def stream_verifications(self):
        return [Verification("TFLite int8 (LiteRT)", "litert"), Verification("TFLite int8 (XNNPACK)", "xnnpack"),
                _tflm_row("TFLite int8 (TFLM)", "TFLite int8 (LiteRT)")]

    def record(self, ctx, path, rows):
        ctx.info["tflite_int8_ops"] = tflite_ops(path)
        ctx.info["tflite_int8_bytes"] = path.stat().st_size
        arena = next((a for a in (getattr(r, "arena_bytes", None) for r in rows) if a), None)
        if arena is not None:
            ctx.info["tflm_arena_bytes"] = arena

    def run_tflm(self, path, X, arena_size: int | None = None) -> np.ndarray:
        y, arena = run_tflm(path, X, arena_size)
        self.info["tflm_arena_bytes"] = arena
        return y


@EXPORTERS.register("tflite_int16")
class TFLiteInt16Exporter(TFLiteExporter):
    """int16x8 .tflite: int16 activations, input and output, int8 weights (TFLite's "16x8" mode) — for models whose
    int8 activations lose too much. Written by the same conversion job as the float and int8 files of a compile;
    verified on LiteRT's reference kernels and in TFLM (which must reproduce LiteRT to a few output steps).

    Pass rule (kind ``"int16"``): in time series, the int8 rules of ``tinyverse.verification.judge_outputs`` (argmax
    agreement or rms error, and the metric drop), with the same bounds. Deliberately: those bounds say what a
    deployment may lose to quantization, whatever the format; int16x8 is the more precise format, so it passes where
    int8 does. Audio judges it by its own, tighter ESR bound (``audio_int16_max_esr``)."""

    name = "tflite_int16"
    file_name = "model_int16.tflite"
    stream_file_name = "model_stream_int16.tflite"
    mode = "int16"
    kind = "int16"

    def verifications(self):
        return [Verification("TFLite int16x8 (LiteRT)", "litert"),
                _tflm_row("TFLite int16x8 (TFLM)", "TFLite int16x8 (LiteRT)")]

    def record(self, ctx, path, rows):
        ctx.info["tflite_int16_bytes"] = path.stat().st_size
