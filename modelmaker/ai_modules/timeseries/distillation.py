"""``training.teacher``: the teacher stage of a time-series classification run.

Before the run folder exists the teacher is built (``model_name``) or loaded (``checkpoint``) and checked against the
data, so a wrong name, argument or file fails in seconds. In the run: the teacher is trained into ``<run>/teacher/``
(checkpoints, metrics.csv, model_spec.yaml: the folder ``training.teacher.checkpoint`` of a later run can point at),
optionally the same student without a teacher into ``<run>/student_alone/`` (same seed, recipe and initial weights),
then the student proper is trained by the run on the teacher's soft targets plus the labels
(:class:`tinyverse.training.distill.Distillation`; the KD term is the task's own training step). The teacher never
ships: nothing of it is exported or checked against the device.

``summary["distillation"]`` holds the three side by side (float test accuracy; the shipped student's int8 TFLM
accuracy once compiled) and the report gets a "Distillation" table.
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import numpy as np

from modelmaker.compilation import ModelFileError
from modelmaker.config.errors import one_line
from modelmaker.run_folder import write_json

log = logging.getLogger("modelmaker")

TEACHER_DIR = "teacher"
ALONE_DIR = "student_alone"


def _spec_file(path: Path) -> Path | None:
    """``model_spec.yaml`` of the run (or teacher folder) a checkpoint belongs to: beside it or one folder up."""
    for folder in (path.parent, path.parent.parent):
        if (folder / "model_spec.yaml").is_file():
            return folder / "model_spec.yaml"
    return None


def load_teacher(path: Path):
    """The model of a teacher checkpoint (weights only, ``weights_only=True``), rebuilt from its model_spec.yaml."""
    import torch

    from tinyverse.layers import SpecError
    from tinyverse.models import GenericModelWithSpec, ModelSpec

    key = "training.teacher.checkpoint"
    spec_file = _spec_file(path)
    if spec_file is None:
        raise ModelFileError(f"{key}: no model_spec.yaml next to {path} or one folder up; point it at a run's "
                             f"checkpoints/best.ckpt (the run folder holds model_spec.yaml)")
    try:
        model = GenericModelWithSpec(ModelSpec.from_yaml(spec_file))
    except SpecError as err:
        raise ModelFileError(f"{key}: {spec_file}: {one_line(str(err))}") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickled modules, corrupt files: one line naming the file
        raise ModelFileError(f"{key}: cannot read {path} as weights (torch.load weights_only=True): "
                             f"{one_line(str(err))[:200]}") from None
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        raise ModelFileError(f"{key}: {path} holds no state dict (expected a Lightning checkpoint)")
    if any(str(k).startswith("model.") for k in state):
        state = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ModelFileError(f"{key}: the weights of {path.name} do not fit the model of {spec_file}: "
                             f"{one_line(str(err))[:300]}") from None
    return model.eval()


def prepare_teacher(cfg, data, build) -> tuple[Any, str, str] | None:
    """(teacher model, its name, where it comes from) for ``training.teacher``, checked against the data before the
    run folder; None without a teacher. ``build(name, args)`` builds a zoo model the runner's way."""
    t = cfg.training.teacher
    if t is None or not cfg.training.enable:
        return None
    from tinyverse.training.tasks import infer_num_classes

    shape = tuple(int(d) for d in data.input_shape)
    if t.checkpoint:
        model = load_teacher(Path(t.checkpoint))
        name, source = model.spec.name or Path(t.checkpoint).stem, t.checkpoint
        have = tuple(next(iter(model.spec.inputs.values())))[:2]
        if have != shape:
            raise ModelFileError(f"training.teacher.checkpoint: the teacher takes input {'x'.join(map(str, have))}, "
                                 f"the data gives {'x'.join(map(str, shape))} (after the input fit of dataset."
                                 f"input_channels / input_length); use a teacher trained on this data set")
        key = "training.teacher.checkpoint"
    else:
        model = build(t.model_name, {"input_shape": list(shape), "num_classes": data.num_classes, **t.model_args})
        name, source, key = t.model_name, "trained in this run", "training.teacher.model_name"
    classes = infer_num_classes(model)
    if classes != data.num_classes:
        raise ModelFileError(f"{key}: the teacher predicts {classes} classes, the data has {data.num_classes}")
    return model, name, source


def _accuracy(model, X: np.ndarray, y: np.ndarray, batch_size: int) -> float | None:
    from tinyverse.export import torch_outputs

    if not len(y):
        return None
    return float((torch_outputs(model, X, batch_size=batch_size).argmax(1) == y).mean())


def _train(ctx, model, out_dir: Path, train_cfg, task_kwargs: dict[str, Any], resume: bool):
    """Train ``model`` with the run's recipe into ``out_dir``; returns (trained model, FitResult)."""
    from tinyverse.training import fit, load_task_weights
    from tinyverse.training.plots import plot_loss_curves
    from tinyverse.training.tasks import build_task

    X, y = ctx.extra["X"], ctx.extra["y"]
    task = build_task(ctx.cfg.common.task_type, model, **task_kwargs)
    last = out_dir / "checkpoints" / "last.ckpt"
    result = fit(task, (X["train"], y["train"]), (X["val"], y["val"]) if len(y["val"]) else None, out_dir,
                 train_cfg, resume_from=last if resume and last.is_file() else None)
    load_task_weights(task, result.checkpoint(ctx.cfg.training.final_checkpoint))  # the student's choice, too
    plot_loss_curves(result.metrics_csv, out_dir / "loss_curves.png")
    return task.model.eval(), result


def _record(model, name: str, role: str, source: str, result, ctx) -> dict[str, Any]:
    X, y, bs = ctx.extra["X"], ctx.extra["y"], ctx.cfg.testing.batch_size
    spec = getattr(model, "spec", None)
    row = {"role": role, "model": name, "source": source, "params": int(sum(p.numel() for p in model.parameters())),
           "macs": int(spec.macs) if spec is not None else None,
           "val_accuracy": _accuracy(model, X["val"], y["val"], bs),
           "test_accuracy": _accuracy(model, X["test"], y["test"], bs)}
    if result is not None:
        row.update(epochs_run=result.epochs_run, best_checkpoint=str(result.best_checkpoint),
                   kept_checkpoint=str(result.checkpoint(ctx.cfg.training.final_checkpoint)))
    return row


def teacher_stage(ctx, teacher, task_kwargs: dict[str, Any], train_cfg) -> Any:
    """Train (or take the loaded) teacher and, if asked, the student alone; fills ``summary["distillation"]`` and
    returns the :class:`Distillation` the student's task trains with."""
    import dataclasses

    import torch

    from tinyverse.training.distill import Distillation

    cfg, run_dir = ctx.cfg, Path(ctx.run_dir)
    t = cfg.training.teacher
    model, name, source = teacher
    info: dict[str, Any] = {"temperature": t.temperature, "alpha": t.alpha, "rows": []}
    if t.checkpoint:
        log.info("teacher %s loaded from %s", name, t.checkpoint)
        info["rows"].append(_record(model, name, "teacher", source, None, ctx))
    else:
        out = run_dir / TEACHER_DIR
        out.mkdir(exist_ok=True)
        model.spec.to_yaml(out / "model_spec.yaml")  # beside checkpoints/: a later run's teacher.checkpoint
        epochs = t.epochs or cfg.training.epochs
        kwargs = {**task_kwargs, "epochs": epochs, "learning_rate": t.learning_rate or cfg.training.learning_rate}
        log.info("teacher %s (%s params): training %d epochs into %s", name,
                 f"{sum(p.numel() for p in model.parameters()):,}", epochs, out)
        model, result = _train(ctx, model, out, dataclasses.replace(train_cfg, epochs=epochs), kwargs, ctx.resume)
        info["rows"].append(_record(model, name, "teacher", source, result, ctx))
    log.info("teacher %s: test accuracy %s", name, _pct(info["rows"][0]["test_accuracy"]))

    if t.compare_student_alone:
        out = run_dir / ALONE_DIR
        out.mkdir(exist_ok=True)
        student = copy.deepcopy(ctx.model)  # the very initial weights the distilled student starts from
        log.info("student alone (no teacher): training %d epochs into %s", cfg.training.epochs, out)
        alone, result = _train(ctx, student, out, train_cfg, task_kwargs, ctx.resume)
        info["rows"].append(_record(alone, cfg.training.model_name, "student alone", "trained in this run", result,
                                    ctx))
        log.info("student alone: test accuracy %s", _pct(info["rows"][-1]["test_accuracy"]))
        torch.save(alone.state_dict(), out / "model.pt")
    ctx.summary["distillation"] = info
    return Distillation(model, temperature=t.temperature, alpha=t.alpha)


def record_student(ctx) -> None:
    """The distilled student's row (after testing; its int8 accuracy is added by :func:`record_int8`)."""
    info = ctx.summary.get("distillation")
    if info is None or any(r["role"] == "student (distilled)" for r in info["rows"]):
        return
    tr = ctx.summary.get("training") or {}
    row = _record(ctx.model, ctx.cfg.training.model_name, "student (distilled)", "trained in this run", None, ctx)
    row["epochs_run"] = tr.get("epochs_run")
    info["rows"].append(row)


def record_int8(summary: dict[str, Any]) -> None:
    """The shipped student's int8 accuracy (the compile stage's deployed row) in its distillation row."""
    info, quant = summary.get("distillation"), summary.get("quantization") or {}
    if info is None or quant.get("metric") != "accuracy":
        return
    for row in info["rows"]:
        if row["role"] == "student (distilled)":
            row["int8_accuracy"], row["int8_artifact"] = quant.get("int8_metric"), quant.get("int8_artifact")


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f} %"


def report_block(summary: dict[str, Any]) -> str | None:
    """The report's "Distillation" table."""
    info = summary.get("distillation")
    if not info:
        return None
    lines = [f"Hinton distillation: loss = {info['alpha']:g} · T² · KL(teacher ‖ student at T = "
             f"{info['temperature']:g}) + {1 - info['alpha']:g} · cross-entropy(labels). The teacher never ships.", "",
             "| role | model | params | MACs | epochs | val accuracy | test accuracy (float) | test accuracy (int8) |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in info["rows"]:
        lines.append(f"| {r['role']} | {r['model']} | {r['params']:,} | "
                     f"{'-' if r.get('macs') is None else format(r['macs'], ',')} | {r.get('epochs_run') or '-'} | "
                     f"{_pct(r.get('val_accuracy'))} | {_pct(r.get('test_accuracy'))} | "
                     f"{_pct(r.get('int8_accuracy'))} |")
    return "\n".join(lines)


def write_summary_file(run_dir: Path, summary: dict[str, Any]) -> None:
    """``<run>/teacher/summary.json``: the teacher's row alone (what a later run loading it would want to know)."""
    info = summary.get("distillation") or {}
    teacher = next((r for r in info.get("rows", []) if r["role"] == "teacher"), None)
    if teacher is not None and (Path(run_dir) / TEACHER_DIR).is_dir():
        write_json(Path(run_dir) / TEACHER_DIR / "summary.json", teacher)


__all__ = ["load_teacher", "prepare_teacher", "record_int8", "record_student", "report_block", "teacher_stage",
           "write_summary_file"]
