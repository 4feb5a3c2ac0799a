"""Export every streaming artifact of an audio model and verify each one block by block.

:func:`export_and_verify` writes the streaming ONNX (float, int8) and TFLite (float, full int8, int16x8)
files, then renders the validation audio through each artifact in blocks, as a plugin or pedal would, and
records per artifact: ESR vs the PyTorch float model (whole-signal render) and vs the target (the recorded
device), max abs difference vs PyTorch, the render real-time factor (processing seconds / audio seconds, on this
machine's CPU, one thread) and the file size. TFLite files are verified on LiteRT's reference kernels and in the
TFLite Micro interpreter; the XNNPACK rows time what a desktop or phone host would run. An artifact that fails
to export or run records its error in its row; the others go on. Every row carries a ``verdict`` (PASS/FAIL) by
the pass rule of its kind (``tinyverse.verification``): float rows ESR vs PyTorch ≤ ``audio_float_max_esr``, int8 and
int16x8 rows their own bounds; the ONNX int8 row is also checked against the same file run without onnxruntime's
fused kernels, and the TFLM rows against LiteRT's reference kernels, to ``runtime_max_steps`` output steps.
``format_table`` prints the rows as Markdown.
"""
from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from tinyverse.audio import tflite as audio_tflite  # the module, so a test can replace its exporter
from tinyverse.audio.export import export_streaming_onnx, quantize_streaming_onnx
from tinyverse.audio.metrics import esr
from tinyverse.audio.stream import OnnxStreamProcessor, StreamProcessor, process_file
from tinyverse.quantization import onnx_output_step
from tinyverse.export.base import ExportContext, cannot_run, exporter_order, get_exporter
from tinyverse.registry import EXPORTERS
from tinyverse.verification import Check, Tolerances, Verdict, audio_esr_check, runtime_check

__all__ = ["ARTIFACTS", "export_and_verify", "format_table", "audio_exporters", "registered_exporters"]

log = logging.getLogger(__name__)

# name → (file name, export step it needs, runtime)
ARTIFACTS: dict[str, tuple[str | None, str | None, str]] = {
    "PyTorch float": (None, None, "torch"),
    "ONNX float": ("model_stream.onnx", "onnx", "onnxruntime"),
    "ONNX int8": ("model_stream_int8.onnx", "onnx_int8", "onnxruntime"),
    "TFLite float": ("model_stream_float.tflite", "tflite", "litert"),
    "TFLite float (XNNPACK)": ("model_stream_float.tflite", "tflite", "xnnpack"),
    "TFLite int8 (LiteRT)": ("model_stream_int8.tflite", "tflite_int8", "litert"),
    "TFLite int8 (XNNPACK)": ("model_stream_int8.tflite", "tflite_int8", "xnnpack"),
    "TFLite int8 (TFLM)": ("model_stream_int8.tflite", "tflite_int8", "tflm"),
    "TFLite int16x8 (LiteRT)": ("model_stream_int16.tflite", "tflite_int16", "litert"),
    "TFLite int16x8 (TFLM)": ("model_stream_int16.tflite", "tflite_int16", "tflm"),
}
DEFAULT_ARTIFACTS = tuple(ARTIFACTS)


def artifact_kind(name: str) -> str:
    """Which pass rule a row gets: reference (PyTorch), float, int8 or int16 (int16x8)."""
    if ARTIFACTS[name][1] is None:
        return "reference"
    return "int16" if "int16" in name else "int8" if "int8" in name else "float"

RUNTIMES = {"torch": "PyTorch (StreamProcessor)", "onnxruntime": "onnxruntime CPU",
            "litert": "LiteRT reference kernels", "xnnpack": "LiteRT + XNNPACK", "tflm": "TFLite Micro interpreter"}


def _err(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".strip().rstrip(":")


def _render(proc: Any, x: np.ndarray, block_size: int) -> tuple[np.ndarray, float]:
    return process_file(proc, x, block_size)


def audio_exporters() -> list[str]:
    """The ``compilation.exporters`` names the audio modality can run: registered exporters that declare
    ``"audio"`` in their ``modalities`` (the built-in names map to the streaming artifacts above)."""
    return [name for name in EXPORTERS.names() if "audio" in getattr(EXPORTERS.get(name), "modalities", ())]


def registered_exporters(exporters: Sequence[str] | None,
                         artifacts: Sequence[str]) -> tuple[list[str], list[str]]:
    """Exporters named beyond the built-in streaming artifacts, each after what it needs, and ``artifacts`` plus
    the built-in rows they need (an artifact another one is made from is verified too)."""
    builtin = {step for _, step, _ in ARTIFACTS.values()} - {None}
    order = exporter_order(list(exporters or ()))
    extra = [name for name in order if name not in builtin]
    needed = {name for name in order if name in builtin} if extra else set()
    return extra, list(artifacts) + [a for a in ARTIFACTS if ARTIFACTS[a][1] in needed and a not in artifacts]


def _render_row(row: dict[str, Any], proc: Any, x_val: np.ndarray, block_size: int, ref: np.ndarray,
                target: np.ndarray, seconds: float, file: Path | None) -> np.ndarray:
    """Render the validation audio through ``proc`` block by block (one thread, as a plugin) and fill ``row``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a plugin renders on one audio thread; onnxruntime / LiteRT use one too
    try:
        y, secs = _render(proc, x_val, block_size)
    finally:
        torch.set_num_threads(threads)
    y = y[-len(target):]
    if not np.all(np.isfinite(y)):
        raise FloatingPointError("non-finite output")
    row.update(esr_vs_torch=esr(ref, y), esr_vs_target=esr(target, y),
               max_abs_diff=float(np.max(np.abs(ref - y))), rtf=secs / seconds)
    if file is not None:
        row["bytes"] = file.stat().st_size
    if row["runtime"] == "tflm":
        row["tflm_arena_bytes"] = proc.arena()
    if row["runtime"] in ("litert", "xnnpack", "tflm"):
        row["model_block"] = proc.block
    return y


def export_and_verify(model: nn.Module, out_dir: str | Path, x_val: np.ndarray, target: np.ndarray,
                      calib_audio: np.ndarray, sample_rate: int, block_size: int = 512,
                      artifacts: tuple[str, ...] | list[str] = DEFAULT_ARTIFACTS, num_calib: int = 64,
                      on_row: Callable[[dict[str, Any]], None] | None = None,
                      tolerances: Tolerances | None = None,
                      exporters: Sequence[str] | None = None) -> dict[str, Any]:
    """Export and verify. ``x_val``: the validation input with ``receptive_field − 1`` samples of context
    before the block (1-D); ``target``: the recorded output for the block. ``calib_audio``: training audio (int8
    calibration). Returns ``{"block_size", "rows": [...], "exports": {...}}``; rows follow ``artifacts``, then
    the rows of the registered exporters among ``exporters`` (``compilation.exporters``) that are not built-in
    streaming artifacts: each is written by its ``write`` (it gets the built-in files it needs), rendered block by
    block through its ``stream_processor`` and judged like the other rows (ESR vs PyTorch by its kind)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x_val = np.asarray(x_val, np.float32).reshape(-1)
    target = np.asarray(target, np.float32).reshape(-1)
    n = len(target)
    seconds = len(x_val) / sample_rate
    model = model.float().eval()
    with torch.no_grad():
        ref = model(torch.as_tensor(x_val)[None]).numpy()[0][-n:]
    unknown = [a for a in artifacts if a not in ARTIFACTS]
    if unknown:
        raise ValueError(f"unknown artifacts {unknown}; choose from {list(ARTIFACTS)}")
    extra, artifacts = registered_exporters(exporters, artifacts)

    steps = {ARTIFACTS[a][1] for a in artifacts} - {None}
    exports: dict[str, dict[str, Any]] = {}
    paths: dict[str, Path] = {}
    if steps & {"onnx", "onnx_int8"}:
        t0 = time.perf_counter()
        try:
            paths["onnx"] = export_streaming_onnx(model, out_dir / ARTIFACTS["ONNX float"][0], block_size)
            exports["onnx"] = {"seconds": round(time.perf_counter() - t0, 2)}
        except Exception as e:
            exports["onnx"] = {"error": _err(e)}
            log.debug("%s", traceback.format_exc())
        if "onnx_int8" in steps:
            if "onnx" in paths:
                t0 = time.perf_counter()
                try:
                    paths["onnx_int8"] = quantize_streaming_onnx(model, paths["onnx"],
                                                                 out_dir / ARTIFACTS["ONNX int8"][0], calib_audio,
                                                                 block_size, num_calib)
                    exports["onnx_int8"] = {"seconds": round(time.perf_counter() - t0, 2)}
                except Exception as e:
                    exports["onnx_int8"] = {"error": _err(e)}
            else:
                exports["onnx_int8"] = {"error": "no float ONNX to quantize: " + exports["onnx"]["error"]}
    tfl = {"tflite": ("float_path", "TFLite float"), "tflite_int8": ("int8_path", "TFLite int8 (LiteRT)"),
           "tflite_int16": ("int16_path", "TFLite int16x8 (LiteRT)")}
    wanted = {k: v for k, v in tfl.items() if k in steps}
    if wanted:
        kwargs = {arg: out_dir / ARTIFACTS[art][0] for arg, art in wanted.values()}
        try:
            info = audio_tflite.export_streaming_tflite(model, calib_audio, block_size, num_calib=num_calib, **kwargs)
            errors = info.pop("errors", {})
            for step, (arg, _) in wanted.items():
                mode = {"float_path": "float", "int8_path": "int8", "int16_path": "int16"}[arg]
                if mode in errors:
                    exports[step] = {"error": errors[mode]}
                else:
                    paths[step] = kwargs[arg]
                    exports[step] = {"seconds": round(info.get(f"convert_{mode}_s", float("nan")), 2),
                                     "twin_max_abs_diff": info.get("twin_max_abs_diff")}
        except Exception as e:
            for step in wanted:
                exports[step] = {"error": _err(e)}

    tol = tolerances or Tolerances()
    rendered: dict[str, np.ndarray] = {}  # row name -> its render, for the runtime-vs-runtime checks
    rows: list[dict[str, Any]] = []
    for name in artifacts:
        file_name, step, runtime = ARTIFACTS[name]
        row: dict[str, Any] = {"artifact": name, "file": file_name, "runtime": runtime, "kind": artifact_kind(name)}
        try:
            if step is not None and step not in paths:
                row["error"] = "export failed: " + exports.get(step, {}).get("error", "not exported")
                row["verdict"] = Verdict(error=row["error"]).to_dict()
                rows.append(row)
                if on_row:
                    on_row(row)
                continue
            if runtime == "torch":
                proc = StreamProcessor(model)
            elif runtime == "onnxruntime":
                proc = OnnxStreamProcessor(paths[step])
            else:
                proc = audio_tflite.TFLiteStreamProcessor(paths[step], runtime)
            y = _render_row(row, proc, x_val, block_size, ref, target, seconds, out_dir / file_name if file_name else None)
            rendered[name] = y
            checks = [c for c in [audio_esr_check(row["kind"], row["esr_vs_torch"], tol)] if c is not None]
            checks += _runtime_checks(name, y, paths.get(step), x_val, block_size, rendered, proc, tol)
            row["verdict"] = Verdict(checks).to_dict()
        except Exception as e:
            row["error"] = _err(e)
            row["verdict"] = Verdict(error=row["error"]).to_dict()
            log.debug("%s", traceback.format_exc())
        rows.append(row)
        if on_row:
            on_row(row)

    # Registered exporters (compilation.exporters beyond the built-in artifacts), after the files they need.
    ctx = ExportContext(model, getattr(model, "spec", None), out_dir, calib_audio, "audio", block_size=block_size,
                        planned=tuple(extra), artifacts=dict(paths), options={"num_calib": num_calib})
    failed = {step: e["error"] for step, e in exports.items() if "error" in e}
    for name in extra:
        exp = get_exporter(name)
        t0 = time.perf_counter()
        why = cannot_run(exp, ctx, failed)
        if why is None:
            try:
                ctx.artifacts[name] = Path(exp.write(ctx))
                exports[name] = {"seconds": round(exp.info.get("seconds", time.perf_counter() - t0), 2)}
            except Exception as e:
                why = _err(e)
                log.debug("%s", traceback.format_exc())
        if why is not None:
            exports[name] = {"error": why}
            failed[name] = why
        for v in exp.verifications():
            row = {"artifact": v.label, "file": ctx.artifacts[name].name if name in ctx.artifacts else None,
                   "runtime": v.runtime, "kind": v.kind or exp.kind, "exporter": name}
            try:
                if name not in ctx.artifacts:
                    raise RuntimeError("export failed: " + failed[name])
                proc = exp.stream_processor(ctx.artifacts[name], v)
                y = _render_row(row, proc, x_val, block_size, ref, target, seconds, ctx.artifacts[name])
                rendered[v.label] = y
                checks = [c for c in [audio_esr_check(row["kind"], row["esr_vs_torch"], tol)] if c is not None]
                if v.same_as is not None and rendered.get(v.same_as) is not None:
                    checks.append(runtime_check(v.same_as_check or f"vs {v.same_as}", y, rendered[v.same_as],
                                                exp.output_step(ctx.artifacts[name], ctx), tol))
                row["verdict"] = Verdict(checks).to_dict()
            except Exception as e:
                row["error"] = str(e) if str(e).startswith("export failed: ") else _err(e)
                row["verdict"] = Verdict(error=row["error"]).to_dict()
                log.debug("%s", traceback.format_exc())
            rows.append(row)
            if on_row:
                on_row(row)
    return {"block_size": int(block_size), "validation_seconds": round(n / sample_rate, 3),
            "rows": rows, "exports": exports}


def _runtime_checks(name: str, y: np.ndarray, path: Path | None, x_val: np.ndarray, block_size: int,
                    rendered: dict[str, np.ndarray], proc: Any, tol: Tolerances) -> list[Check]:
    """The ONNX int8 render against the same file without fused kernels; TFLM against LiteRT's reference kernels."""
    if name == "ONNX int8" and path is not None:
        y_ref, _ = _render(OnnxStreamProcessor(path, optimized=False), x_val, block_size)
        return [runtime_check("fused kernels vs QDQ reference", y, y_ref[-len(y):], onnx_output_step(path), tol)]
    if name.endswith("(TFLM)"):
        reference = rendered.get(name.replace("(TFLM)", "(LiteRT)"))
        if reference is not None:
            return [runtime_check("vs LiteRT reference kernels", y, reference, float(proc.out_q[1]), tol)]
    return []


def format_table(result: dict[str, Any]) -> str:
    """The verification rows as a Markdown table."""
    lines = ["| artifact | runtime | verdict | ESR vs PyTorch | ESR vs target | max abs diff | render RTF | size | "
             "note | rule |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        runtime = RUNTIMES.get(r["runtime"], r["runtime"])
        verdict = r.get("verdict") or {}
        if "error" in r:
            lines.append(f"| {r['artifact']} | {runtime} | **FAIL** | – | – | – | – | – | {r['error']} | |")
            continue
        status = "PASS" if verdict.get("status") != "FAIL" else "**FAIL**: " + "; ".join(verdict.get("failures", []))
        size = f"{r['bytes'] / 1024:.1f} kB" if r.get("bytes") else ""
        note = f"TFLM arena {r['tflm_arena_bytes'] / 1024:.0f} kB" if r.get("tflm_arena_bytes") else ""
        lines.append(f"| {r['artifact']} | {runtime} | {status} | {r['esr_vs_torch']:.2e} | {r['esr_vs_target']:.4f} "
                     f"| {r['max_abs_diff']:.2e} | {r['rtf']:.3f} | {size} | {note} | {verdict.get('rule', '-')} |")
    return "\n".join(lines)
