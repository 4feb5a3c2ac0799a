"""The compilation stage of the time-series runner: prepare (model + device check before the run folder),
QAT, ``compile_model`` with calibration from the TRAIN split, compile-only from a model file, report blocks."""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from modelmaker.compilation import (ModelFileError, Prepared, compile_onnx_file, load_model_file, onnx_outputs,
                                    precheck_device, target_device, write_device_check)
from modelmaker.ai_modules.timeseries.layout import as_nchw
from modelmaker.run_folder import write_json

log = logging.getLogger("modelmaker")

# Rows to read the deployed int8 metric from, best first.
INT8_ROWS = ("TFLite int8 (TFLM)", "TFLite int8 (LiteRT)", "ONNX int8")


def prepare(module, cfg, data) -> Prepared:
    """Build (or load) the model and check it against ``common.target_device``; raises before a run folder."""
    comp, t = cfg.compilation, cfg.training
    if data is None:
        raise ModelFileError(
            "dataset.enable is false, but int8 calibration (and the verification table) need data: set "
            "dataset.enable: true with the dataset the model was trained on (training.enable: false keeps the model "
            "as it is); to check a zoo model against a device without data use `modelmaker check`")
    if comp.model_path and t.enable:
        raise ModelFileError("compilation.model_path compiles a model you already have: set training.enable: false "
                             "(fine-tuning a loaded model is not supported)")
    if comp.model_path:
        prep = load_model_file(cfg, lambda: module.build_model(cfg, data))
        if prep.spec is not None:
            want = tuple(as_nchw(data.X_test[:1]).shape[1:])
            have = tuple(next(iter(prep.spec.inputs.values())))
            if have != want:
                raise ModelFileError(f"compilation.model_path: the model takes input {'x'.join(map(str, have))}, "
                                     f"the dataset gives {'x'.join(map(str, want))}")
    else:
        model, args = module.build_model(cfg, data)
        prep = Prepared(model=model, model_args=args, model_name=t.model_name)
    built = {k: v for k, v in prep.model_args.items() if k in ("input_shape", "num_classes", "num_outputs")}
    prep.device_report = precheck_device(
        prep.model, target_device(cfg), comp.strict, prep.model_name or "model",
        alternatives=(lambda profile: zoo_alternatives(cfg, profile, built)) if prep.source == "zoo" else None)
    return prep


def zoo_alternatives(cfg, profile, args: dict) -> list[str]:
    """The zoo entries of the run's task that fit ``profile`` for the same input and outputs (``args``: input_shape,
    num_classes / num_outputs as the data gave them), each with its estimated latency."""
    from tinyverse.devices.fitting import fitting_entries

    return [row.label for row in fitting_entries(profile, args, task=cfg.common.task_type) if row.fits]


def split_outputs(model, X: dict, batch_size: int) -> dict[str, np.ndarray]:
    """The model's outputs on the val and test splits (what a task's ``evaluate`` reads)."""
    from tinyverse.export import torch_outputs

    return {s: torch_outputs(model, X[s], batch_size=batch_size) for s in ("val", "test") if len(X[s])}


def evaluate(task, outputs: dict[str, np.ndarray], data):
    """``task.evaluate(outputs, data)``; None for a registered LightningModule that is not a TaskModule."""
    fn = getattr(task, "evaluate", None)
    return fn(outputs, data) if callable(fn) else None


def _verification_metric(evaluation) -> tuple[str, Any]:
    """(metric name, outputs → value) of the verification table; output differences only without a task metric."""
    if evaluation is None or evaluation.metric_fn is None:
        return "mse", None
    return evaluation.headline, evaluation.metric_fn


def _higher_is_better(evaluation) -> bool:
    return bool(getattr(evaluation, "higher_is_better", False)) if evaluation is not None else False


def header_state(evaluation) -> tuple[dict[str, Any], list[str]]:
    """The evaluation's ``state`` for model_int8.h: each number becomes ``#define TV_<KEY>`` (e.g. the anomaly
    threshold as ``TV_ANOMALY_THRESHOLD``), each string a comment line above them (how to use the numbers)."""
    state = getattr(evaluation, "state", None) or {}
    defines = {"TV_" + re.sub(r"[^0-9A-Za-z]+", "_", str(k)).strip("_").upper(): v for k, v in state.items()
               if isinstance(v, (int, float, np.integer, np.floating))}
    notes = [f"{k}: {v}" for k, v in state.items() if isinstance(v, str)]
    return defines, notes


def _calibration(X_train: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` samples of the training split (a seeded random subset; the split may be ordered by class)."""
    if len(X_train) <= n:
        return X_train
    idx = np.sort(np.random.default_rng(seed).permutation(len(X_train))[:n])
    return X_train[idx]


def clip_to_percentile(calib: np.ndarray, percentile: float) -> tuple[np.ndarray, tuple[float, float] | None]:
    """The calibration samples clipped to [the (100 - p)th, the p-th] percentile of their values, and that range
    (None at 100: unchanged). The int8 exporters take the input's range from these samples, so a few spikes no
    longer set a step that erases the small differences of every other sample (ACSF1: docs/timeseries.md)."""
    if percentile >= 100:
        return calib, None
    lo, hi = (float(v) for v in np.percentile(calib, [100 - percentile, percentile]))
    return np.clip(calib, lo, hi).astype(calib.dtype, copy=False), (lo, hi)


def int8_calibration(X_train: np.ndarray, comp, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """The calibration samples of either compile path (a trained model or an .onnx file), clipped to
    ``compilation.input_range_percentile``, and what ``summary.json`` -> ``quantization`` records of that range."""
    calib, input_range = clip_to_percentile(_calibration(X_train, comp.calibration_samples, seed),
                                            comp.input_range_percentile)
    if input_range is None:
        return calib, {}
    log.info("int8 input range: calibration samples clipped to [%.4g, %.4g] (compilation.input_range_percentile: %g)",
             *input_range, comp.input_range_percentile)
    return calib, {"input_range": {"percentile": comp.input_range_percentile, "low": input_range[0],
                                   "high": input_range[1]}}


def _int8_metric(rep) -> tuple[str | None, float | None]:
    for name in INT8_ROWS:
        row = next((r for r in rep.rows if r.artifact == name), None)
        if row is not None and row.error is None and row.metric is not None:
            return name, row.metric
    return None, None


def quantization_summary(mode: str, metric: str, float_metric, rep, qat_float=None) -> dict[str, Any]:
    artifact, int8 = _int8_metric(rep)
    out: dict[str, Any] = {"mode": mode, "metric": metric, "float_metric": float_metric, "int8_metric": int8,
                           "int8_artifact": artifact, "drop_points": None}
    if float_metric is not None and int8 is not None:
        out["drop_points"] = round(100 * (float_metric - int8), 4) if metric == "accuracy" else None
        out["delta"] = int8 - float_metric
    if qat_float is not None:
        out["qat_float_metric"] = qat_float
        if int8 is not None:  # the int8 model's own float twin: what quantizing after QAT itself cost
            out["qat_float_drop_points"] = round(100 * (qat_float - int8), 4) if metric == "accuracy" else None
            out["qat_float_delta"] = int8 - qat_float
    return out


def compile_stage(module, cfg, run_dir: Path, model, X: dict, y: dict, summary: dict, task=None, data=None,
                  evaluation=None, outputs: dict | None = None) -> tuple[Any, list[str]]:
    """QAT (optional), then ``compile_model`` into the run folder; fills summary and the report blocks.

    Returns the model (QAT changes it) and the rows that failed verification (``artifact: why``).

    ``evaluation`` and ``outputs`` (the model's val/test outputs) are the testing stage's (computed here when
    testing is disabled); the evaluation's ``metric_fn`` is the verification table's metric, recomputed for every
    artifact.
    """
    from tinyverse.compile import DEFAULT_EXPORTERS, compile_model
    from tinyverse.export import torch_outputs

    comp, t = cfg.compilation, cfg.training
    outputs = outputs if outputs is not None else split_outputs(model, X, cfg.testing.batch_size)
    if evaluation is None and task is not None and data is not None:
        evaluation = evaluate(task, outputs, data)
    metric, metric_fn = _verification_metric(evaluation)
    ref = outputs["test"]
    float_metric = metric_fn(ref) if metric_fn else None
    qat_float = None
    if t.quantization == "qat" and t.qat_epochs > 0:
        from tinyverse.quantization import qat_finetune

        log.info("QAT: %d epoch(s) of int8 fake-quant fine-tuning from the trained float model", t.qat_epochs)
        has_val = len(y["val"]) > 0
        # The task's own training step: its loss and targets (an autoencoder reconstructs x, labels are not targets).
        # quantize_input: the int8 exports take an int8 input, and its rounding alone can cost more than the
        # weights' (ACSF1: 91 -> 81 % from the input's 256 levels, docs/timeseries.md); QAT must see it to learn it.
        qat_finetune(model, (X["train"], y["train"]), (X["val"], y["val"]) if has_val else None,
                     epochs=t.qat_epochs, lr=t.learning_rate * 0.1, batch_size=t.batch_size, seed=cfg.common.seed,
                     task=task, quantize_input=True)
        import torch

        torch.save(model.state_dict(), run_dir / "model_qat.pt")
        ref = torch_outputs(model, X["test"], batch_size=cfg.testing.batch_size)
        qat_float = metric_fn(ref) if metric_fn else None
        if qat_float is not None and float_metric is not None:
            log.info("QAT: float %s %.4f before, %.4f after fine-tuning", metric, float_metric, qat_float)
    calib, input_range = int8_calibration(X["train"], comp, cfg.common.seed)
    exporters = list(comp.exporters) if comp.exporters is not None else list(DEFAULT_EXPORTERS)
    defines, notes = header_state(evaluation)  # e.g. the anomaly threshold, next to the weights in model_int8.h
    log.info("compiling: %s, calibration on %d training samples, device %s", ", ".join(exporters), len(calib),
             cfg.common.target_device or "-")
    rep = compile_model(model, getattr(model, "spec", None), run_dir, calib, X["test"], None, metric=metric,
                        device=target_device(cfg), exporters=exporters, golden_vectors=comp.golden_vectors,
                        reference_outputs=ref, float_onnx=_reusable_float_onnx(run_dir, qat_float is None),
                        metric_fn=metric_fn, header_defines=defines, header_notes=notes,
                        tolerances=comp.tolerances, higher_is_better=_higher_is_better(evaluation),
                        classifier=data.is_classification if data is not None else None)
    failures = finish(module, cfg, run_dir, rep, summary, {**quantization_summary(
        "qat" if qat_float is not None else "ptq", metric, float_metric, rep, qat_float), **input_range}, len(calib))
    return model, failures


def _reusable_float_onnx(run_dir: Path, weights_unchanged: bool) -> Path | None:
    """The testing stage's model.onnx, when QAT has not changed the weights since it was exported."""
    path = run_dir / "model.onnx"
    return path if weights_unchanged and path.is_file() else None


def finish(module, cfg, run_dir: Path, rep, summary: dict, quant: dict | None, calib_samples: int) -> list[str]:
    """compile_report.json, summary sections, log lines and report blocks of a compile step; returns the rows that
    failed verification (``summary["verification"]`` is the AI module's, from them)."""
    data = rep.to_dict()
    data.pop("device", None)  # it is summary["device"]
    data["calibration"] = {"split": "train", "samples": calib_samples,
                           "requested": cfg.compilation.calibration_samples}
    write_json(run_dir / "compile_report.json", rep.to_dict())
    summary["compilation"] = data
    if quant is not None:
        summary["quantization"] = quant
    if rep.device is not None:
        summary["device"] = rep.device.to_dict()
        write_device_check(run_dir, rep.device, "device_report")
    for r in rep.rows:
        if r.error:
            log.warning("%-22s FAIL  failed: %s", r.artifact, r.error)
        else:
            (log.info if r.status != "FAIL" else log.warning)(
                "%-22s %-4s  %s %s | max |diff| %s%s%s", r.artifact, r.status, rep.metric,
                "-" if r.metric is None else f"{r.metric:.4f}",
                "-" if r.max_abs_diff is None else f"{r.max_abs_diff:.3g}",
                f" | arena {r.arena_bytes:,} B" if r.arena_bytes else "",
                "" if r.status != "FAIL" else " | " + "; ".join(r.verdict.failures if r.verdict else []))
    if quant and quant.get("int8_metric") is not None and quant.get("float_metric") is not None:
        log.info("float %s %.4f → int8 (%s) %.4f", quant["metric"], quant["float_metric"], quant["int8_artifact"],
                 quant["int8_metric"])
    if rep.device is not None:
        if rep.device.fits:
            log.info("device: fits %s", rep.device.device)
        else:
            log.warning("device: does NOT fit %s:\n  - %s", rep.device.device, "\n  - ".join(rep.device.violations))
    blocks = getattr(module, "report_blocks", None) or {}
    md = rep.to_markdown().replace("## Compilation\n\n", "", 1)
    if rep.device is not None:  # CompileReport.to_markdown() ends with the device table: its own section here
        dev_md = rep.device.to_markdown()
        md = md.replace(dev_md, "").rstrip()
        blocks["Device"] = dev_md
    blocks["Verification"] = md
    module.report_blocks = blocks
    return rep.failures


def report_blocks(module, spec, device_report) -> None:
    """Blocks known before compilation: the spec summary and the pre-training device check."""
    blocks: dict[str, str] = {}
    if spec is not None:
        blocks["Model summary"] = "```\n" + spec.summary() + "\n```"
    if device_report is not None:
        blocks["Device"] = device_report.to_markdown()
    module.report_blocks = blocks


def onnx_file_summary(module, cfg, data, prep: Prepared) -> dict[str, Any]:
    """What a run of a bare ``.onnx`` file is (its summary head; the notes go into the report)."""
    module.report_blocks = {"Notes": "\n".join(f"- {n}" for n in prep.notes)}
    return {"modality": module.name, "task_type": cfg.common.task_type, "dataset": data.summary(),
            "model": {"name": prep.model_name, "source": f"onnx file {prep.model_path}"}}


def run_onnx_file(module, cfg, run_dir: Path, data, prep: Prepared, summary: dict[str, Any]) -> list[str]:
    """Compile-only for an ``.onnx`` file: int8 QDQ, verification on the test split, spec-free device checks.

    Fills ``summary``; returns the rows that failed verification."""
    from tinyverse.compile import DEFAULT_EXPORTERS
    from tinyverse.registry import TASKS

    X = {s: as_nchw(getattr(data, f"X_{s}")) for s in ("train", "val", "test")}
    comp = cfg.compilation
    # The task's metric on the file's own outputs (there is no PyTorch model to compare with).
    outputs = {s: onnx_outputs(prep.model_path, X[s]) for s in ("val", "test") if len(X[s])}
    evaluation = evaluate(TASKS.get(cfg.common.task_type), outputs, data)
    if evaluation is not None:
        summary["test"] = evaluation.to_dict()
    metric, metric_fn = _verification_metric(evaluation)
    calib, input_range = int8_calibration(X["train"], comp, cfg.common.seed)
    rep = compile_onnx_file(prep.model_path, run_dir, calib, X["test"], None, metric, target_device(cfg),
                            list(comp.exporters) if comp.exporters is not None else list(DEFAULT_EXPORTERS),
                            metric_fn=metric_fn, tolerances=comp.tolerances,
                            higher_is_better=_higher_is_better(evaluation), classifier=data.is_classification)
    float_metric = rep.rows[0].metric
    failures = finish(module, cfg, run_dir, rep, summary,
                      {**quantization_summary("ptq", metric, float_metric, rep), **input_range}, len(calib))
    module.report_blocks["Skipped"] = "\n".join(f"- {k}: {v}" for k, v in rep.info.get("skipped", {}).items())
    return failures
