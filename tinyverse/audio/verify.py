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

Knob models (two inputs, ``audio`` and ``params``): :func:`knob_stream_rows` exports once (every artifact takes the
knob vector as its second input) and renders each row at several knob settings; a row passes only when every setting
is within its bound, and carries the per-setting figures (``settings``).

Why the row loop is not :func:`tinyverse.compile.compile_model`'s: a streaming row renders a signal block by block
and is judged by its ESR; a time-series row runs the test split at once and is judged by its metric. The exporters,
their order and failures, the files they write and the cross-checks of a row are the shared part.
"""
from __future__ import annotations

import copy
import logging
import traceback
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from tinyverse.audio.knobs import KnobSet
from tinyverse.audio.metrics import esr
from tinyverse.audio.stream import StreamProcessor, process_file
from tinyverse.export.base import ExportContext, Verification, exporter_order, get_exporter
from tinyverse.export.c_header import parse_c_array, write_knob_c_header
from tinyverse.export.pipeline import cross_checks, export_each
from tinyverse.export.tflite_stream import TFLiteStreamProcessor
from tinyverse.registry import EXPORTERS
from tinyverse.verification import Check, Tolerances, Verdict, audio_esr_check, runtime_check

__all__ = ["DEFAULT_EXPORTERS", "RUNTIMES", "audio_exporters", "default_knob_settings", "export_and_verify",
           "format_table", "knob_stream_rows", "stream_rows"]

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
    _file_facts(row, file, proc)
    return y


def _file_facts(row: dict[str, Any], file: Path | None, proc: Any) -> None:
    """What a row records of its file and runtime: size, the TFLM interpreter's arena, a fixed block length."""
    if file is not None:
        row["bytes"] = file.stat().st_size
    arena = proc.arena() if callable(getattr(proc, "arena", None)) else None
    if arena is not None:  # the TFLM interpreter's
        row["tflm_arena_bytes"] = arena
    if getattr(proc, "block", None):  # a file with a fixed block length (TFLite)
        row["model_block"] = proc.block


def _export_entry(step: Any) -> dict[str, Any]:
    """What the summary keeps of one export step: its error, or its seconds (and the twin's agreement)."""
    if step.error is not None:
        return {"error": step.error}
    twin = step.exporter.info.get("twin_max_abs_diff")
    return {"seconds": None if step.seconds is None else round(step.seconds, 2),
            **({"twin_max_abs_diff": twin} if twin is not None else {})}


def _step_row(step: Any, v: Any) -> dict[str, Any]:
    """The start of a verification row of one export step."""
    return {"artifact": v.label, "file": step.path.name if step.path else None, "runtime": v.runtime,
            "kind": v.kind or step.exporter.kind, "exporter": step.name}


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
    if "params" in getattr(model, "input_shapes", {}):
        raise ValueError(f"{type(model).__name__} has a params input: verify it at several knob settings with "
                         "knob_stream_rows")
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
        exports[step.name] = _export_entry(step)
        for v in step.verifications:
            row = _step_row(step, v)
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


# -- knob models ------------------------------------------------------------------------------------------------

C_ARRAY_ROW = "C array (TFLM)"  # the knob run's model_int8.c, parsed back and run in TFLM at every setting


def default_knob_settings(knobs: KnobSet) -> list[dict[str, float]]:
    """The settings a knob model's exports are verified at when none are given: every knob at its minimum (a switch
    off), every knob at its default, every knob at its maximum (a switch on)."""
    low = {n: (0.0 if k.type == "bool" else k.min) for n, k in knobs.knobs.items()}
    high = {n: (1.0 if k.type == "bool" else k.max) for n, k in knobs.knobs.items()}
    return [low, knobs.check({}, "defaults", fill_defaults=True), high]


def setting_label(setting: Mapping[str, float]) -> str:
    """``bright=1, gain=7``: a setting as rows and reports name it."""
    return ", ".join(f"{k}={v:g}" for k, v in setting.items())


def _at(proc: Any, vec: np.ndarray) -> Any:
    """``proc`` restarted from silence at the knob vector ``vec`` (an LSTM settles / pre-warms at it)."""
    proc.set_params(vec)
    proc.reset()
    return proc


def knob_stream_rows(model: nn.Module, knobs: KnobSet | Mapping[str, Any] | None,
                     settings: Sequence[Mapping[str, Any]] | None, audio: np.ndarray, out_dir: str | Path,
                     exporters: Sequence[str] | None = None, *, targets: Sequence[np.ndarray] | None = None,
                     calib_audio: np.ndarray | None = None, sample_rate: int = 48_000, block_size: int = 512,
                     num_calib: int = 64, tolerances: Tolerances | None = None, c_header: bool = True,
                     on_row: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Export a knob-conditioned model (inputs ``audio`` and ``params``) once and verify every artifact at several
    knob settings, block by block, as :func:`export_and_verify` does for a plain model.

    ``model``: a knob model (:class:`tinyverse.audio.nam.knob_models.KnobModel`; prepared for inference);
    ``knobs``: its knob declaration (a :class:`KnobSet` or ``dataset.knobs``; None: the model's own);
    ``settings``: the settings to verify at, in knob units (``[{"gain": 7, "bright": 1}, ...]``; a knob left out takes
    its default; None: :func:`default_knob_settings`, i.e. every knob at min, at default, at max); at least one, three
    or more recommended. A setting outside the declared range is a one-line
    :class:`tinyverse.errors.DatasetError` naming ``settings[i]``.
    ``audio``: the input signal (1-D), rendered from silence at every setting; ``targets``: optional recorded outputs,
    one per setting (aligned to the end of the render), for ``esr_vs_target``; ``calib_audio``: training audio for the
    int8 calibration (default ``audio``; every calibration block gets a knob vector spread over the range);
    ``exporters``: ``EXPORTERS`` names (None: :data:`DEFAULT_EXPORTERS` less what ``model.unavailable_exports()``
    rules out, listed under ``not_available``); ``block_size``: the export / render block; ``tolerances``: the pass
    bounds (``compilation.tolerances``); ``c_header``: with ``tflite_int8``, also write ``model_int8.h`` / ``.c`` and
    ``golden_vectors.h`` (:func:`tinyverse.export.c_header.write_knob_c_header`, golden vectors at the first and the
    last setting) and verify the C array in TFLM at every setting (row "C array (TFLM)"); ``on_row``: called with each
    row when it is done.

    Returns ``{"block_size", "validation_seconds", "settings", "rows", "exports", "not_available", "files"}``:
    ``settings`` the checked settings (knob units) in order; ``rows`` the "PyTorch float" row, then each exporter's
    rows, then the C array's. Each row has ``artifact``, ``runtime``, ``kind``, ``file``, ``exporter``, the worst
    setting's ``esr_vs_torch`` / ``max_abs_diff`` (and ``esr_vs_target``), the mean ``rtf``, ``settings`` (per
    setting: ``setting``, ``label``, ``esr_vs_torch``, ``max_abs_diff``, ``esr_vs_target``, ``status``) and a
    ``verdict`` whose checks are named per setting: PASS only if every setting passes. The reference at each setting
    is the float64 torch model streamed from silence at that setting. ``not_available``: ``[{"artifact",
    "runtime", "exporter", "why"}]``; ``files``: extra files written (name → path). :func:`format_table` prints it.
    """
    ks = knobs if isinstance(knobs, KnobSet) else (KnobSet.from_declaration(knobs, "knobs") if knobs is not None
                                                   else getattr(model, "knobs", None))
    if ks is None:
        raise ValueError("knob_stream_rows: the model declares no knobs; pass its knob declaration (knobs)")
    chosen = default_knob_settings(ks) if settings is None else list(settings)
    if not chosen:
        raise ValueError("knob_stream_rows: give at least one setting")
    checked = [ks.check(s, f"settings[{i}]", fill_defaults=True) for i, s in enumerate(chosen)]
    vectors = [ks.vector(s, f"settings[{i}]") for i, s in enumerate(checked)]
    labels = [setting_label(s) for s in checked]
    if targets is not None and len(targets) != len(checked):
        raise ValueError(f"knob_stream_rows: {len(targets)} targets for {len(checked)} settings (give one per setting)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    audio = np.asarray(audio, np.float32).reshape(-1)
    seconds = len(audio) / sample_rate
    model = model.float().eval()
    ref64 = copy.deepcopy(model).double()
    refs = [process_file(StreamProcessor(ref64, torch.float64, params=v), audio.astype(np.float64), len(audio))[0]
            for v in vectors]
    tgts = [None] * len(checked) if targets is None else [np.asarray(t, np.float32).reshape(-1) for t in targets]
    tol = tolerances or Tolerances()
    missing = getattr(model, "unavailable_exports", dict)() if exporters is None else {}
    names = [e for e in (DEFAULT_EXPORTERS if exporters is None else exporters) if e not in missing]
    for name in names:
        EXPORTERS.get(name)  # an unknown name fails here, naming the close ones
    not_available = [{"artifact": v.label, "runtime": v.runtime, "exporter": e, "why": missing[e]}
                     for e, v in stream_rows([e for e in DEFAULT_EXPORTERS if e in missing])]
    rows: list[dict[str, Any]] = []
    per_setting: list[dict[str, np.ndarray]] = [{} for _ in checked]  # label -> render, per setting

    def done(row: dict[str, Any]) -> None:
        rows.append(row)
        if on_row:
            on_row(row)

    def judge(row: dict[str, Any], proc: Any, file: Path | None, extra: Callable[..., list[Check]]):
        """Render through ``proc``, restarted from silence at every setting; fill ``row`` and its verdict."""
        checks: list[Check] = []
        details, rtfs = [], []
        for i, (vec, ref, tgt, label) in enumerate(zip(vectors, refs, tgts, labels)):
            y, secs = _render_at(_at(proc, vec), audio, block_size)
            if not np.all(np.isfinite(y)):
                raise FloatingPointError(f"non-finite output at {label}")
            per_setting[i][row["artifact"]] = y
            d = {"setting": checked[i], "label": label, "esr_vs_torch": esr(ref, y),
                 "max_abs_diff": float(np.max(np.abs(ref - y)))}
            if tgt is not None:
                d["esr_vs_target"] = esr(tgt, y[-len(tgt):])
            mine = [c for c in [audio_esr_check(row["kind"], d["esr_vs_torch"], tol)] if c is not None]
            mine += extra(i, y)
            for c in mine:
                c.name = f"{c.name} @ {label}"
            d["status"] = Verdict(mine).status
            checks += mine
            details.append(d)
            rtfs.append(secs / seconds)
        row.update(esr_vs_torch=max(d["esr_vs_torch"] for d in details),
                   max_abs_diff=max(d["max_abs_diff"] for d in details), rtf=float(np.mean(rtfs)), settings=details)
        if tgts[0] is not None:
            row["esr_vs_target"] = max(d["esr_vs_target"] for d in details)
        _file_facts(row, file, proc)
        row["verdict"] = Verdict(checks).to_dict()

    def failed(row: dict[str, Any], e: BaseException) -> None:
        row["error"] = _err(e)
        row["verdict"] = Verdict(error=row["error"]).to_dict()
        log.debug("%s", traceback.format_exc())

    torch_row: dict[str, Any] = {"artifact": "PyTorch float", "file": None, "runtime": "torch", "kind": "reference"}
    try:
        judge(torch_row, StreamProcessor(model, params=vectors[0]), None, lambda i, y: [])
    except Exception as e:
        failed(torch_row, e)
    done(torch_row)

    ctx = ExportContext(model, None, out_dir, audio if calib_audio is None else np.asarray(calib_audio, np.float32),
                        "audio", block_size=block_size, options={"num_calib": num_calib})
    exports: dict[str, dict[str, Any]] = {}
    for step in export_each(ctx, names, describe=_err):
        exp = step.exporter
        exports[step.name] = _export_entry(step)
        for v in step.verifications:
            row = _step_row(step, v)
            if step.error is not None:
                row["error"] = "export failed: " + step.error
                row["verdict"] = Verdict(error=row["error"]).to_dict()
            else:
                def extra(i: int, y: np.ndarray, v=v, step=step, exp=exp) -> list[Check]:
                    return cross_checks(step, v, y, per_setting[i], ctx, tol, lambda r: _render_at(
                        _at(exp.stream_processor(step.path, r), vectors[i]), audio, block_size)[0])

                try:
                    judge(row, exp.stream_processor(step.path, v), step.path, extra)
                except Exception as e:
                    failed(row, e)
            step.rows.append(row)
            done(row)

    files: dict[str, str] = {}
    int8 = ctx.artifacts.get("tflite_int8")
    if c_header and int8 is not None:
        row = {"artifact": C_ARRAY_ROW, "file": "model_int8.c", "runtime": "tflm", "kind": "int8",
               "exporter": "c_header"}
        try:
            written = write_knob_c_header(int8, out_dir, ks, [checked[0], checked[-1]], audio)
            files.update({p.name: str(p) for p in written.values()})
            data = parse_c_array(written["source"])
            step_scale = TFLiteStreamProcessor(data, "litert").out_q[1]

            def c_extra(i: int, y: np.ndarray) -> list[Check]:
                lite = per_setting[i].get("TFLite int8 (LiteRT)")
                if lite is None:
                    return []
                return [runtime_check("vs LiteRT reference kernels", y, lite, step_scale, tol)]

            judge(row, TFLiteStreamProcessor(data, "tflm"), written["source"], c_extra)
        except Exception as e:
            failed(row, e)
        done(row)
    return {"block_size": int(block_size), "validation_seconds": round(seconds, 3), "settings": checked,
            "rows": rows, "exports": exports, "not_available": not_available, "files": files}


def _render_at(proc: Any, x: np.ndarray, block_size: int) -> tuple[np.ndarray, float]:
    """Render ``x`` through ``proc`` block by block on one thread (as a plugin)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _render(proc, x, block_size)
    finally:
        torch.set_num_threads(threads)


def format_table(result: dict[str, Any]) -> str:
    """The verification rows as a Markdown table (a knob model's rows: the worst setting, and each setting's ESR in
    the note; its not-available exports as rows that say why)."""
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
        if r.get("settings"):  # a knob model's row: the worst setting above, each setting here
            note = "; ".join(filter(None, [note, "ESR per setting: " + ", ".join(
                f"({d['label']}) {d['esr_vs_torch']:.2e}" for d in r["settings"])]))
            bounds = dict.fromkeys(f"{c['name'].split(' @ ')[0]} {'≤' if c['op'] == '<=' else '≥'} {c['bound']:.3g}"
                                   for c in verdict.get("checks", []))
            rule = "every setting: " + "; ".join(bounds) if bounds else "-"
        else:
            rule = verdict.get("rule", "-")
        target = f"{r['esr_vs_target']:.4f}" if r.get("esr_vs_target") is not None else "–"
        lines.append(f"| {r['artifact']} | {runtime} | {status} | {r['esr_vs_torch']:.2e} | {target} "
                     f"| {r['max_abs_diff']:.2e} | {r['rtf']:.3f} | {size} | {note} | {rule} |")
    for na in result.get("not_available") or []:
        runtime = RUNTIMES.get(na["runtime"], na["runtime"])
        lines.append(f"| {na['artifact']} | {runtime} | not available | – | – | – | – | – | {na['why']} | |")
    return "\n".join(lines)
