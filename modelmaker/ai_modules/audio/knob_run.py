"""The audio runner's knob path: a knob capture (``DATASETS["knob_capture"]``) → a knob-conditioned model
(``NAM_CatLSTM_*``, ``NAM_CatWaveNet_*``, ``NAM_HyperConvNet_*``, ``NAM_FiLMWaveNet_*``) → ESR per setting, the knob
model file, frozen ``.nam`` snapshots at the corners of the knob ranges, listening files and the ESR heat map.

:class:`modelmaker.ai_modules.audio.runner.AudioModule` runs the same stages for plain and knob models and hands
over here where they differ; what tells them apart is the model (``"params"`` among its ``input_shapes``), never the
task name. A knob run trains on the windows of every training setting with their knob vectors, picks its checkpoint
on the seen settings' validation blocks only, and reports the ESR at the seen settings, at the settings held out
inside the trained range (``unseen``: interpolation) and outside it (``outside``: extrapolation) separately.
A knob model has no plain ``model.nam``: what a stock NAM plugin loads are the snapshots (``snapshots/*.nam``), each
checked against the knob model at its setting; ``modelmaker render --param`` / ``freeze`` take the run's
``knob_model.pt`` or ``checkpoints/best.ckpt``.
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import numpy as np

from modelmaker.ai_modules.base import RunContext
from modelmaker.ai_modules.keys import KeyIssue, task_key_issues
from modelmaker.compilation import ModelFileError
from modelmaker.run_folder import write_json

log = logging.getLogger("modelmaker")

KNOB_TASK = "knob_modelling"
KNOB_FILE = "knob_model.pt"
SNAPSHOT_DIR = "snapshots"
HEATMAP = "knob_esr.png"
ROLE_NAMES = {"train": "seen", "unseen": "unseen", "outside": "outside"}


def is_knob_model(model: Any) -> bool:
    """A model with a knob input (``params``) besides the audio."""
    return "params" in (getattr(model, "input_shapes", None) or {})


def is_knob_data(data: Any) -> bool:
    from tinyverse.audio.knob_capture import KnobCaptureData

    return isinstance(data, KnobCaptureData)


def knob_key_issues(cfg) -> list[KeyIssue]:
    """A knob task with a plain dataset or model (or the other way round), and the keys a knob run cannot use yet."""
    from tinyverse.registry import DATASETS, MODEL_REGISTRY

    task, t = cfg.common.task_type, cfg.training
    out: list[KeyIssue] = []
    dataset_task = DATASETS.entry(cfg.dataset.name).metadata.get("task") if cfg.dataset.name in DATASETS else None
    if dataset_task is not None and dataset_task != task and KNOB_TASK in (task, dataset_task):
        want = DATASETS.names(task=task, modality="audio")
        out.append(KeyIssue("dataset.name", f"{cfg.dataset.name!r} is a dataset of {dataset_task}, the task is {task}",
                            f"set dataset.name: {' or '.join(want)} (or common.task_type: {dataset_task})"))
    name = t.model_name
    model_task = MODEL_REGISTRY.entry(name).metadata.get("task") if name and name in MODEL_REGISTRY else None
    if model_task is not None and model_task != task and KNOB_TASK in (task, model_task):
        kind = "a knob-conditioned model" if model_task == KNOB_TASK else "a model without knob inputs"
        want = "NAM_CatWaveNet_nano, NAM_FiLMWaveNet_nano, ..." if task == KNOB_TASK else "NAM_WaveNet_nano, ..."
        out.append(KeyIssue("training.model_name", f"{name} is {kind} ({model_task}), the task is {task}",
                            f"pick a {task} model ({want}; modelmaker models --task {task})"))
    if task != KNOB_TASK:
        return out
    from tinyverse.audio.training import AmpModellingTask

    # The knob task passes its keywords on to the amp-modelling task: its keys are that task's.
    out += task_key_issues(cfg, AmpModellingTask)
    if t.output_level_dbfs is not None:
        out.append(KeyIssue("training.output_level_dbfs", "knob models train at the capture's own level (the knob "
                            "task has no output normalisation yet)", "remove it"))
    for key in ("knobs", "num_knobs"):
        if key in t.model_args:
            out.append(KeyIssue(f"training.model_args.{key}", "a knob model takes its knobs from the dataset",
                                "remove it and declare the knobs under dataset.knobs"))
    if t.quantization == "qat":
        out.append(KeyIssue("training.quantization", "QAT is not available for knob models yet (its fine-tuning "
                            "loop feeds audio only)", "use ptq (or none): the int8 exports calibrate on training "
                            "audio at knob values spread over the range"))
    if cfg.compilation.model_path is not None:
        out.append(KeyIssue("compilation.model_path", "compile-only runs take plain audio models; a knob model is "
                            "exported by the run that trains it", "remove it (render / freeze take a knob run's "
                            "knob_model.pt or checkpoints/best.ckpt)"))
    return out


def knob_model_args(args: dict[str, Any], data: Any) -> dict[str, Any] | None:
    """The zoo arguments of a knob run's model: ``args`` plus the capture's knob declaration; None for plain data."""
    return {**args, "knobs": data.knobs.declaration()} if is_knob_data(data) else None


def check_pairing(data: Any, model: Any, model_name: str | None) -> None:
    """A knob capture needs a knob model and a plain capture a plain one (a model registered without a task says so
    only here, after it is built)."""
    if is_knob_data(data) and not is_knob_model(model):
        raise ModelFileError(f"training.model_name: {model_name} takes audio only; a knob capture trains a "
                             "knob-conditioned model (NAM_CatWaveNet_nano, NAM_FiLMWaveNet_nano, ...)")
    if is_knob_model(model) and not is_knob_data(data):
        raise ModelFileError(f"dataset.name: {model_name} is a knob-conditioned model; it trains on a knob capture "
                             "(dataset.name: knob_capture)")


def knobs_summary(knobs: Any) -> dict[str, dict[str, Any]]:
    """``{name: {min, max, default, type}}`` (a switch: min 0, max 1)."""
    return {n: {"min": k.min, "max": k.max, "default": k.default_value, "type": k.type}
            for n, k in knobs.knobs.items()}


def slug(setting: dict[str, float]) -> str:
    """A file-name form of a setting: ``gain5_tone10``."""
    return "_".join(f"{k}{v:g}" for k, v in setting.items())


# -- the stages --------------------------------------------------------------------------------------------------
def describe(ctx: RunContext) -> None:
    """dataset.json (every setting's capture) and the knobs into the summary."""
    data = ctx.data
    write_json(ctx.run_dir / "dataset.json", {
        "summary": data.summary(),
        "settings": [{"setting": s.setting, "role": s.role, "source": s.source, "capture": s.capture.summary(),
                      "layout": s.capture.layout.__dict__, "latency": s.capture.latency.to_dict()}
                     for s in data.settings]})
    caps = [s.capture.summary() for s in data.settings]
    latency = data.info.get("latency") or {}
    # The report's dataset table reads these keys as it does a plain capture's (dataset.json has every setting).
    ctx.summary["dataset"] = {
        "name": data.name, "sample_rate": data.sample_rate, "source": data.info.get("source"),
        "settings": len(data.settings), "trained_settings": len(data.role("train")),
        "unseen_settings": [s.setting for s in data.role("unseen")],
        "outside_settings": [s.setting for s in data.role("outside")], "holdout": data.info.get("holdout"),
        "seconds": round(sum(c["seconds"] for c in caps), 2),
        "train_seconds": round(sum(c["train_seconds"] for s, c in zip(data.settings, caps) if s.role == "train"), 2),
        "validation_seconds": caps[0]["validation_seconds"], "latency": latency.get("samples"),
        "latency_per_setting": latency.get("per_setting"), "warnings": list(data.warnings)}
    ctx.summary["knobs"] = knobs_summary(data.knobs)
    ctx.summary["model"]["args"] = {k: v for k, v in ctx.summary["model"]["args"].items() if k != "knobs"}
    ctx.summary["model"]["conditioning_macs"] = ctx.extra["cost"].get("conditioning_macs")
    held = data.info.get("holdout") or {}
    log.info("knobs %s; %d settings: %d trained, unseen %s, outside the trained range %d", ", ".join(data.knobs.names),
             len(data.settings), len(data.role("train")), [s.label() for s in data.role("unseen")] or "none",
             len(data.role("outside")))
    if held.get("outside"):
        log.info("outside: %s = %g held out (trained up to %g)", held["outside"]["knob"], held["outside"]["value"],
                 held["outside"]["above"])


def training_arrays(data: Any, rf: int) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """((audio, knobs, target) windows of every training setting, the same of the seen settings' validation
    blocks) — the checkpoint is picked on seen settings only; the held-out ones stay unseen."""
    seen = [v for v in data.validation(rf) if v["role"] == "train"]
    n = min(v["y"].shape[1] for v in seen)
    xv = np.concatenate([v["x"][:, :n + rf - 1] for v in seen]).astype(np.float32)
    yv = np.concatenate([v["y"][:, :n] for v in seen]).astype(np.float32)
    pv = np.stack([v["params"] for v in seen]).astype(np.float32)
    return data.windows(rf), (xv, pv, yv)


def test(ctx: RunContext) -> dict[str, str]:
    """ESR per setting (seen / unseen / outside), the knob model file, snapshots, listening files and plots; returns
    the report's knob section."""
    import soundfile as sf
    import torch

    from tinyverse.audio import esr, esr_verdict
    from tinyverse.audio.knob_file import save_knob_model
    from tinyverse.audio.plots import plot_knob_esr, plot_spectra, plot_waveforms

    cfg, run_dir, data, model, summary = ctx.cfg, ctx.run_dir, ctx.data, ctx.model, ctx.summary
    rf, sr, model_name = ctx.extra["rf"], data.sample_rate, ctx.extra["model_name"]
    model.prepare_for_inference()
    rows = []
    with torch.no_grad():
        for v in data.validation(rf):
            pred = model(torch.as_tensor(v["x"]), torch.as_tensor(v["params"][None]))[0].numpy()
            rows.append({**v, "pred": pred, "esr": esr(v["y"][0], pred)})
    by_role = {r: [row["esr"] for row in rows if row["role"] == r] for r in ROLE_NAMES}
    means = {ROLE_NAMES[r]: (float(np.mean(e)) if e else None) for r, e in by_role.items()}
    seen, unseen = means["seen"], means["unseen"]
    summary.update(esr_seen=seen, esr_unseen=unseen, esr_outside=means["outside"])
    summary["validation"] = {
        "esr": seen, "verdict": esr_verdict(seen), "esr_seen": seen, "esr_unseen": unseen,
        "esr_outside": means["outside"], "unseen_over_seen": None if unseen is None else unseen / seen,
        "seconds": round(rows[0]["y"].shape[1] / sr, 2),
        "per_setting": [{"setting": r["setting"], "role": ROLE_NAMES[r["role"]], "esr": r["esr"]} for r in rows]}
    log.info("validation ESR: seen settings %.4f (%s), unseen %s, outside the trained range %s", seen,
             esr_verdict(seen), "-" if unseen is None else f"{unseen:.4f} ({unseen / seen:.2f}x seen)",
             "-" if means["outside"] is None else f"{means['outside']:.4f}")

    # The model: its own file (record + weights; the checkpoint holds the same) for render / freeze.
    name = cfg.common.run_name if "{" not in cfg.common.run_name else run_dir.name
    meta = {"name": name, "modeled_by": "tinyverse modelmaker", "esr_seen": seen, "esr_unseen": unseen,
            "latency": data.info.get("latency")}
    save_knob_model(model, run_dir / KNOB_FILE, sample_rate=sr, metadata=meta)
    summary["knob_model"] = {"path": KNOB_FILE, "checkpoint": "checkpoints/best.ckpt",
                             "render": f"modelmaker render {run_dir / KNOB_FILE} in.wav out.wav "
                                       + " ".join(f"--param {k}={v:g}" for k, v in
                                                  data.knobs.check({}, "defaults", fill_defaults=True).items())}
    summary["snapshots"] = snapshots(model, data, run_dir, name, sr)

    # Listening files per setting: one input when every setting heard the same one.
    listen = run_dir / "listening"
    listen.mkdir(exist_ok=True)
    inputs = [r["x"][0, rf - 1:] for r in rows]
    shared = all(len(x) == len(inputs[0]) and np.array_equal(x, inputs[0]) for x in inputs)
    files = []
    if shared:
        sf.write(listen / "input.wav", inputs[0], sr, subtype="FLOAT")
        files.append("listening/input.wav")
    for r, x in zip(rows, inputs):
        s = slug(r["setting"])
        if not shared:
            sf.write(listen / f"{s}_input.wav", x, sr, subtype="FLOAT")
            files.append(f"listening/{s}_input.wav")
        sf.write(listen / f"{s}_target.wav", r["y"][0], sr, subtype="FLOAT")
        sf.write(listen / f"{s}_prediction.wav", r["pred"].astype(np.float32), sr, subtype="FLOAT")
        files += [f"listening/{s}_target.wav", f"listening/{s}_prediction.wav"]

    # Plots: the ESR of every setting, and the waveforms / spectra where it matters most (an unseen setting).
    plot_knob_esr([{"setting": r["setting"], "role": ROLE_NAMES[r["role"]], "esr": r["esr"]} for r in rows],
                  run_dir / HEATMAP, f"{model_name}: validation ESR per knob setting")
    shown = next((r for r in rows if r["role"] == "unseen"), rows[0])
    title = f"{model_name} at {shown['label']} ({ROLE_NAMES[shown['role']]}): ESR {shown['esr']:.4f}"
    plot_waveforms(shown["y"][0], shown["pred"], sr, run_dir / "waveforms.png", title)
    plot_spectra(shown["y"][0], shown["pred"], sr, run_dir / "spectra.png", title)
    summary["artifacts"] = [KNOB_FILE, *[s["path"] for s in summary["snapshots"] if "path" in s], *files, HEATMAP,
                            "waveforms.png", "spectra.png"]
    return {"Knob settings": settings_block(summary)}


def snapshots(model: Any, data: Any, run_dir: Path, name: str, sr: int) -> list[dict[str, Any]]:
    """The model frozen at every corner of the knob ranges (``snapshots/<setting>.nam``), each read back and
    streamed against the knob model at that setting (float64, blocks of 512); a model that cannot be frozen gives
    a row saying why."""
    import torch

    from tinyverse.audio import esr
    from tinyverse.audio.nam import model_from_nam, save_nam
    from tinyverse.audio.stream import StreamProcessor, process_file

    out_dir = run_dir / SNAPSHOT_DIR
    out_dir.mkdir(exist_ok=True)
    rf = int(model.receptive_field)
    captured = {tuple(s.setting.values()): s for s in data.settings}
    reference = copy.deepcopy(model).to(torch.float64)  # StreamProcessor casts its model in place
    rows: list[dict[str, Any]] = []
    for setting in data.knobs.grid(2):
        label = ", ".join(f"{k}={v:g}" for k, v in setting.items())
        vector = data.knobs.vector(setting, "snapshot")
        row: dict[str, Any] = {"setting": setting}
        try:
            frozen = model.frozen(vector)
            path = out_dir / f"{slug(setting)}.nam"
            meta = {"name": f"{name} ({label})", "modeled_by": "tinyverse modelmaker",
                    "frozen": {"from": model.record()["architecture"], "setting": setting,
                               "knobs": data.knobs.declaration()}}
            nf = save_nam(frozen, path, metadata=meta, sample_rate=float(sr))
        except ValueError as e:  # FreezeError (what no plain NAM architecture holds): a row, not a crash
            row["error"] = str(e).splitlines()[0]
            log.warning("snapshot %s: %s", label, row["error"])
            rows.append(row)
            continue
        cap = captured.get(tuple(setting.values()))
        x, y = (cap or data.settings[0]).capture.validation(rf)
        ref, _ = process_file(StreamProcessor(reference, torch.float64, params=vector), x[0].astype(np.float64), 512)
        got, _ = process_file(StreamProcessor(model_from_nam(path), torch.float64), x[0].astype(np.float64), 512)
        row.update(path=f"{SNAPSHOT_DIR}/{path.name}", architecture=nf.architecture, version=nf.version,
                   weights=len(nf.weights), max_abs_diff_vs_knob_model=float(np.max(np.abs(ref - got))))
        if cap is not None:  # a captured setting: how the snapshot sounds against the recording
            row["esr_vs_target"] = esr(y[0], got[-y.shape[1]:])
        rows.append(row)
        log.info("snapshot %-28s %s (%s, %d weights): matches the knob model to %.1e%s", label, row["path"],
                 nf.architecture, len(nf.weights), row["max_abs_diff_vs_knob_model"],
                 f", ESR vs target {row['esr_vs_target']:.4f}" if "esr_vs_target" in row else "")
    return rows


def settings_block(summary: dict[str, Any]) -> str:
    """The report section: knobs, ESR per role and per setting, and the snapshots."""
    v = summary["validation"]
    fmt = lambda e: "–" if e is None else f"{e:.4f}"  # noqa: E731
    knobs = ", ".join(f"{n} [{k['min']:g}, {k['max']:g}] default {k['default']:g}"
                      + (" (switch)" if k["type"] == "bool" else "") for n, k in summary["knobs"].items())
    out = [f"Knobs: {knobs}.", "",
           "Validation ESR, mean over the settings of each kind: *seen* settings were trained on; *unseen* ones lie "
           "inside the trained range but were never trained on (interpolation); *outside* ones lie beyond it "
           "(extrapolation). The checkpoint was picked on the seen settings only.", "",
           "| seen | unseen | outside | unseen / seen |", "|---:|---:|---:|---:|",
           f"| {fmt(v['esr_seen'])} | {fmt(v['esr_unseen'])} | {fmt(v['esr_outside'])} | "
           f"{'–' if v['unseen_over_seen'] is None else format(v['unseen_over_seen'], '.2f')} |", "",
           f"Per setting (the heat map: `{HEATMAP}`):", "", "| setting | kind | ESR |", "|---|---|---:|"]
    out += [f"| {', '.join(f'{k}={x:g}' for k, x in r['setting'].items())} | {r['role']} | {r['esr']:.4f} |"
            for r in v["per_setting"]]
    out += ["", f"Knob model: [{summary['knob_model']['path']}](<{summary['knob_model']['path']}>) (and "
            f"`{summary['knob_model']['checkpoint']}`); render it at a setting with "
            f"`{summary['knob_model']['render']}`.",
            "", "Snapshots: the model frozen at each corner of the knob ranges, a plain `.nam` any NAM plugin loads, "
            "read back and streamed against the knob model at that setting.", "",
            "| setting | file | architecture | weights | max abs diff vs knob model | ESR vs target |",
            "|---|---|---|---:|---:|---:|"]
    for s in summary["snapshots"]:
        setting = ", ".join(f"{k}={x:g}" for k, x in s["setting"].items())
        if "error" in s:
            out.append(f"| {setting} | not written: {s['error']} | | | | |")
        else:
            out.append(f"| {setting} | [{s['path']}](<{s['path']}>) | {s['architecture']} {s['version']} | "
                       f"{s['weights']:,} | {s['max_abs_diff_vs_knob_model']:.1e} | {fmt(s.get('esr_vs_target'))} |")
    return "\n".join(out)


def verification_settings(data: Any, rf: int) -> tuple[list[dict[str, float]] | None, np.ndarray,
                                                        list[np.ndarray] | None]:
    """(settings, input, recordings) the exports are verified at: captured settings that heard the same input — every
    unseen one, one outside the trained range, then seen ones, at least three — each with its recording as the
    target; when the recordings heard different inputs (slices of one recording): None (every knob at its min, at its
    default, at its max) on the first setting's input, without targets."""
    val = data.validation(rf)
    x0 = val[0]["x"]
    same = [v for v in val if v["x"].shape == x0.shape and np.array_equal(v["x"], x0)]
    by_role = {r: [v for v in same if v["role"] == r] for r in ROLE_NAMES}
    picked = by_role["unseen"] + by_role["outside"][:1]
    picked += by_role["train"][:max(1, 3 - len(picked))]
    if len(picked) < 3:
        return None, x0[0], None
    return [v["setting"] for v in picked], x0[0], [v["y"][0] for v in picked]


def compile_exports(ctx: RunContext, block_size: int) -> tuple[dict[str, Any], str]:
    """The knob model's streaming exports (each with a ``params`` input; ONNX, TFLite float / int8 / int16x8, the
    int8 C array), every row rendered block by block at three or more knob settings and passing only if every
    setting does (:func:`tinyverse.audio.verify.knob_stream_rows`); (the summary's compilation entry, the report's
    verification table)."""
    from tinyverse.audio.verify import format_table, knob_stream_rows

    cfg, data, model, run_dir = ctx.cfg, ctx.data, ctx.model, ctx.run_dir
    comp = cfg.compilation
    settings, audio, targets = verification_settings(data, ctx.extra["rf"])
    first = data.role("train")[0].capture
    t0, t1 = first.layout.train
    num_calib = comp.calibration_samples if "calibration_samples" in comp.model_fields_set else 64

    def on_row(row: dict[str, Any]) -> None:
        status = (row.get("verdict") or {}).get("status", "-")
        if "error" in row:
            log.warning("%-24s FAIL  %s", row["artifact"], row["error"])
        else:
            (log.info if status != "FAIL" else log.warning)(
                "%-24s %-4s  worst setting: ESR vs PyTorch %.2e, max abs diff %.1e; render RTF %.3f", row["artifact"],
                status, row["esr_vs_torch"], row["max_abs_diff"], row["rtf"])

    log.info("compiling: streaming exports with a params input, blocks of %d, each verified at %s", block_size,
             "; ".join(", ".join(f"{k}={v:g}" for k, v in s.items()) for s in settings) if settings else
             "every knob at its min, default and max")
    result = knob_stream_rows(model, data.knobs, settings, audio, run_dir, comp.exporters, targets=targets,
                              calib_audio=first.x[t0:t1], sample_rate=data.sample_rate, block_size=block_size,
                              num_calib=num_calib, tolerances=comp.tolerances, on_row=on_row)
    labels = "; ".join(", ".join(f"{k}={v:g}" for k, v in s.items()) for s in result["settings"])
    table = format_table(result)
    head = (f"Streaming exports with a params input, rendered block by block ({block_size} samples, "
            f"{result['validation_seconds']} s of validation audio) at {len(result['settings'])} settings ({labels}); "
            "a row passes only if every setting does. ESR vs PyTorch: against the float64 knob model streamed at "
            "that setting; ESR vs target: against the recording (the worst setting).")
    (run_dir / "compile_report.md").write_text(f"# Knob model exports\n\n{head}\n\n{table}\n")
    write_json(run_dir / "compile_report.json", result)
    out = {"block_size": block_size, "settings": result["settings"], "rows": result["rows"],
           "exports": result["exports"], "not_available": result["not_available"], "files": result["files"],
           "report": "compile_report.md"}
    return out, f"{head}\n\n{table}"


__all__ = ["KNOB_FILE", "check_pairing", "compile_exports", "describe", "is_knob_data", "is_knob_model",
           "knob_key_issues", "knob_model_args", "knobs_summary", "slug", "snapshots", "test", "training_arrays",
           "verification_settings"]
