"""Export every streaming artifact of an audio model and verify each one block by block.

:func:`export_and_verify` runs the exporters named in ``compilation.exporters`` (default :data:`DEFAULT_EXPORTERS`:
``onnx``, ``onnx_int8``, ``tflite``, ``tflite_int8``, ``tflite_int16`` — the streaming ONNX files, float and int8, and
TFLite files, float, full int8 and int16x8) from the ``EXPORTERS`` registry, each after what it needs, through the
per-exporter loop time series shares (:func:`tinyverse.export.pipeline.export_each`). The model says what each
exporter writes (a streaming model: its streaming ONNX graph, its TFLite twin at the block size). Each exporter
declares its rows (``stream_verifications``: the runtime of each, and the checks against other runs of the same
file); every row renders the validation audio through the exporter's ``stream_processor`` in blocks, as a plugin or
pedal would, and records: ESR vs the PyTorch float model (whole-signal render) and vs the target (the recorded
device), max abs difference vs PyTorch, the render real-time factor (processing seconds / audio seconds, on this
machine's CPU, one thread) and the file size. TFLite files are verified on LiteRT's reference kernels and in the
TFLite Micro interpreter; the XNNPACK rows time what a desktop or phone host would run. An artifact that fails
to export or run records its error in its rows; the others go on. Every row carries a ``verdict`` (PASS/FAIL) by
the pass rule of its kind (``tinyverse.verification``): float rows ESR vs PyTorch ≤ ``audio_float_max_esr``, int8 and
int16x8 rows their own bounds; the ONNX int8 row is also checked against the same file run without onnxruntime's
fused kernels, and the TFLM rows against LiteRT's reference kernels, to ``runtime_max_steps`` output steps.
``format_table`` prints the rows as Markdown.

Why the row loop is not :func:`tinyverse.compile.compile_model`'s: a streaming row renders a signal block by block
and is judged by its ESR; a time-series row runs the test split at once and is judged by its metric. The exporters,
their order and failures, the files they write and the cross-checks of a row are the shared part.
"""
from __future__ import annotations

import logging
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from tinyverse.audio.metrics import esr
from tinyverse.audio.stream import StreamProcessor, process_file
from tinyverse.export.base import ExportContext, Verification, exporter_order, get_exporter
from tinyverse.export.pipeline import cross_checks, export_each
from tinyverse.registry import EXPORTERS
from tinyverse.verification import Tolerances, Verdict, audio_esr_check

__all__ = ["DEFAULT_EXPORTERS", "RUNTIMES", "audio_exporters", "export_and_verify", "format_table", "stream_rows"]

log = logging.getLogger(__name__)

# compilation.exporters of an audio run when none are named: every streaming artifact
DEFAULT_EXPORTERS = ("onnx", "onnx_int8", "tflite", "tflite_int8", "tflite_int16")

RUNTIMES = {"torch": "PyTorch (StreamProcessor)", "onnxruntime": "onnxruntime CPU",
            "litert": "LiteRT reference kernels", "xnnpack": "LiteRT + XNNPACK", "tflm": "TFLite Micro interpreter"}


def _err(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".strip().rstrip(":")


def _render(proc: Any, x: np.ndarray, block_size: int) -> tuple[np.ndarray, float]:
    return process_file(proc, x, block_size)


def audio_exporters() -> list[str]:
    """The ``compilation.exporters`` names the audio modality can run: registered exporters that declare
    ``"audio"`` in their ``modalities`` (the built-ins write the streaming artifacts)."""
    return [name for name in EXPORTERS.names() if "audio" in getattr(EXPORTERS.get(name), "modalities", ())]


def stream_rows(exporters: Sequence[str] | None = None) -> list[tuple[str, Verification]]:
    """``(exporter name, row)`` of every row :func:`export_and_verify` makes for ``exporters`` (default
    :data:`DEFAULT_EXPORTERS`), exporters in the order of their needs; the "PyTorch float" row comes first, apart."""
    names = exporter_order(list(DEFAULT_EXPORTERS if exporters is None else exporters))
    return [(name, v) for name in names for v in get_exporter(name).stream_verifications()]


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
    arena = proc.arena() if callable(getattr(proc, "arena", None)) else None
    if arena is not None:  # the TFLM interpreter's
        row["tflm_arena_bytes"] = arena
    if getattr(proc, "block", None):  # a file with a fixed block length (TFLite)
        row["model_block"] = proc.block
    return y


def export_and_verify(model: nn.Module, out_dir: str | Path, x_val: np.ndarray, target: np.ndarray,
                      calib_audio: np.ndarray, sample_rate: int, block_size: int = 512,
                      exporters: Sequence[str] | None = None, num_calib: int = 64,
                      on_row: Callable[[dict[str, Any]], None] | None = None,
                      tolerances: Tolerances | None = None) -> dict[str, Any]:
    """Export and verify. ``x_val``: the validation input with ``receptive_field − 1`` samples of context
    before the block (1-D); ``target``: the recorded output for the block. ``calib_audio``: training audio (int8
    calibration). ``exporters``: ``EXPORTERS`` names (``compilation.exporters``; None: :data:`DEFAULT_EXPORTERS`).
    Returns ``{"block_size", "validation_seconds", "rows": [...], "exports": {...}}``: the
    "PyTorch float" row (the model's own stream), then each exporter's rows, exporters in the order of their needs;
    ``exports``: per exporter its export seconds (and TFLite's twin check) or its error."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x_val = np.asarray(x_val, np.float32).reshape(-1)
    target = np.asarray(target, np.float32).reshape(-1)
    n = len(target)
    seconds = len(x_val) / sample_rate
    model = model.float().eval()
    with torch.no_grad():
        ref = model(torch.as_tensor(x_val)[None]).numpy()[0][-n:]
    exporters = list(DEFAULT_EXPORTERS if exporters is None else exporters)
    for name in exporters:
        EXPORTERS.get(name)  # an unknown name fails here, naming the close ones
    tol = tolerances or Tolerances()
    rows: list[dict[str, Any]] = []

    def done(row: dict[str, Any]) -> None:
        rows.append(row)
        if on_row:
            on_row(row)

    torch_row: dict[str, Any] = {"artifact": "PyTorch float", "file": None, "runtime": "torch", "kind": "reference"}
    rendered: dict[str, np.ndarray] = {}  # row label -> its render, for the runtime-vs-runtime checks
    try:
        rendered["PyTorch float"] = _render_row(torch_row, StreamProcessor(model), x_val, block_size, ref, target,
                                                seconds, None)
        torch_row["verdict"] = Verdict().to_dict()
    except Exception as e:
        torch_row["error"] = _err(e)
        torch_row["verdict"] = Verdict(error=torch_row["error"]).to_dict()
        log.debug("%s", traceback.format_exc())
    done(torch_row)

    ctx = ExportContext(model, getattr(model, "spec", None), out_dir, calib_audio, "audio", block_size=block_size,
                        options={"num_calib": num_calib})
    exports: dict[str, dict[str, Any]] = {}
    for step in export_each(ctx, exporters, describe=_err):
        exp = step.exporter
        if step.error is not None:
            exports[step.name] = {"error": step.error}
        else:
            twin = exp.info.get("twin_max_abs_diff")
            exports[step.name] = {"seconds": None if step.seconds is None else round(step.seconds, 2),
                                  **({"twin_max_abs_diff": twin} if twin is not None else {})}
        for v in step.verifications:
            row = {"artifact": v.label, "file": step.path.name if step.path else None, "runtime": v.runtime,
                   "kind": v.kind or exp.kind, "exporter": step.name}
            try:
                if step.error is not None:
                    row["error"] = "export failed: " + step.error
                    row["verdict"] = Verdict(error=row["error"]).to_dict()
                else:
                    proc = exp.stream_processor(step.path, v)
                    y = _render_row(row, proc, x_val, block_size, ref, target, seconds, step.path)
                    rendered[v.label] = y
                    checks = [c for c in [audio_esr_check(row["kind"], row["esr_vs_torch"], tol)] if c is not None]
                    checks += cross_checks(step, v, y, rendered, ctx, tol, lambda r: _render(
                        exp.stream_processor(step.path, r), x_val, block_size)[0][-len(y):])
                    row["verdict"] = Verdict(checks).to_dict()
            except Exception as e:
                row["error"] = _err(e)
                row["verdict"] = Verdict(error=row["error"]).to_dict()
                log.debug("%s", traceback.format_exc())
            step.rows.append(row)
            done(row)
    return {"block_size": int(block_size), "validation_seconds": round(n / sample_rate, 3),
            "rows": rows, "exports": exports}


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
