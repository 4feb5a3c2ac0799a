"""Keys a run would not use are errors, never silently ignored.

Three sources say what a config may use: the modality (``AI_MODULES`` class: its ``tasks`` and its
``unused_keys(cfg)``), the task kind (the ``TASKS`` class's constructor: a training key it does not take is
not used), and the stages themselves (quantization keys need the compilation stage). ``config_issues(cfg)`` gathers them; the config schema raises the first as a one-line ConfigError
naming the file and the key, before any data is read.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from pydantic import BaseModel

# training keys handed to the task's constructor; a task that takes none of them has no use for them
# (training.loss has its own rule in the config schema)
TASK_KEYS = ("label_smoothing", "augmentation", "teacher", "output_level_dbfs")


class KeyIssue(NamedTuple):
    """One key a run would not use: its dotted path, why, and what to do (the schema turns it into a ConfigError;
    this package does not import the config package, which imports it)."""

    key: str
    problem: str
    hint: str = ""


def changed(cfg: Any, path: str) -> bool:
    """Whether ``section.key`` differs from the schema's default (a resolved config, which writes every default
    out, is therefore not flagged for keys it merely repeats)."""
    section, _, name = path.partition(".")
    sec = getattr(cfg, section)
    value = getattr(sec, name)
    default = type(sec).model_fields[name].get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return value.model_dump() != (default.model_dump() if isinstance(default, BaseModel) else default)
    return value != default


def config_issues(cfg: Any) -> list[KeyIssue]:
    """Every key of ``cfg`` its modality or its task would ignore, each with what to do instead."""
    from modelmaker.ai_modules import AI_MODULES
    from tinyverse.registry import TASKS

    modality, task = cfg.common.modality, cfg.common.task_type
    module = AI_MODULES.get(modality)
    tasks = tuple(getattr(module, "tasks", None) or ())
    if tasks and task not in tasks:
        owner = next((n for n in AI_MODULES.names() if task in (getattr(AI_MODULES.get(n), "tasks", None) or ())),
                     None)
        given = "task_type" in cfg.common.model_fields_set  # else the schema's default, a time-series task
        other = f" (or set common.modality: {owner})" if owner and given else ""
        return [KeyIssue("common.task_type", f"{task!r}{'' if given else ' (the default)'} is not a task of the "
                            f"{modality} modality", f"set common.task_type: {' or '.join(tasks)}{other}")]
    unused = getattr(module, "unused_keys", None)
    issues = list(unused(cfg)) if callable(unused) else []
    issues += input_fit_issues(cfg, module, TASKS.get(task) if task in TASKS else None)
    if task in TASKS:
        issues += task_key_issues(cfg, TASKS.get(task))
    return issues + checkpoint_issues(cfg, module) + quantization_issues(cfg)


def checkpoint_issues(cfg: Any, module: Any) -> list[KeyIssue]:
    """training.final_checkpoint picks the weights a training stage keeps, in a modality that offers the choice
    (``chooses_checkpoint``); elsewhere, or without training, it would do nothing."""
    if not changed(cfg, "training.final_checkpoint"):
        return []
    if not getattr(module, "chooses_checkpoint", False):
        return [KeyIssue("training.final_checkpoint", f"not used by the {cfg.common.modality} modality (it keeps the "
                         "best checkpoint by training.monitor)", "remove it")]
    if not cfg.training.enable:
        return [KeyIssue("training.final_checkpoint", "used only when training runs, but training.enable is false",
                         "remove it, or enable training")]
    return []


def input_fit_issues(cfg: Any, module: Any, task_cls: Any) -> list[KeyIssue]:
    """dataset.input_channels / input_length shape the inputs of a modality that fits them (``fits_input``) for a task
    whose targets do not depend on the input's shape (the TASKS class's ``fits_input``); elsewhere they do nothing."""
    out = []
    for key in ("input_channels", "input_length"):
        if not changed(cfg, f"dataset.{key}"):
            continue
        if not getattr(module, "fits_input", False):
            out.append(KeyIssue(f"dataset.{key}", f"not used by the {cfg.common.modality} modality (it does not fit "
                                "its inputs to the model)", "remove it"))
        elif getattr(cfg.dataset, key) is not None and task_cls is not None \
                and not getattr(task_cls, "fits_input", False):
            out.append(KeyIssue(f"dataset.{key}", f"task {cfg.common.task_type!r} keeps its inputs as the data has them "
                                "(its targets depend on the input's channels or time axis)", "remove it"))
    return out


def quantization_issues(cfg: Any) -> list[KeyIssue]:
    """training.quantization shapes the int8 exports of the compilation stage; without that stage it, and
    qat_epochs without QAT, would do nothing."""
    t = cfg.training
    issues = []
    if t.quantization != "none" and not cfg.compilation.enable:
        issues.append(KeyIssue("training.quantization", f"{t.quantization} shapes the int8 exports of the "
                               "compilation stage, which is off", "set compilation.enable: true, or remove it"))
    if changed(cfg, "training.qat_epochs") and t.quantization != "qat":
        issues.append(KeyIssue("training.qat_epochs", "used only with training.quantization: qat",
                               "set training.quantization: qat, or remove it"))
    return issues


def task_key_issues(cfg: Any, task_cls: Any) -> list[KeyIssue]:
    """Training keys the task's constructor does not take, and augmentations it refuses."""
    import inspect

    try:
        params = inspect.signature(task_cls).parameters
    except (TypeError, ValueError):  # no signature to read: nothing to check against
        return []
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return []
    name = cfg.common.task_type
    issues = [KeyIssue(f"training.{key}", f"task {name!r} does not use it (its training step takes no {key})",
                          "remove it")
              for key in TASK_KEYS if changed(cfg, f"training.{key}") and key not in params]
    allowed = getattr(task_cls, "allowed_augmentations", None)
    if allowed is not None and "augmentation" in params:
        bad = [k for k, v in cfg.training.augmentation.model_dump().items() if v and k not in allowed]
        if bad:
            issues.append(KeyIssue(f"training.augmentation.{bad[0]}",
                                      f"task {name!r} cannot use it: it would change the inputs but not the targets",
                                      f"use only {', '.join(allowed)}"))
    return issues


__all__ = ["TASK_KEYS", "KeyIssue", "changed", "checkpoint_issues", "config_issues", "input_fit_issues",
           "quantization_issues", "task_key_issues"]
