"""Audio compile-only: the model of ``compilation.model_path`` — a checkpoint of an audio run (Lightning
``best.ckpt``/``last.ckpt``, or ``torch.save(model.state_dict())``) or a ``.nam`` file.

A checkpoint holds weights only; the model they belong to is ``training.model_name`` + ``model_args`` when given,
else the ``config.yaml`` of the run the checkpoint sits in (next to it, or one folder up).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import yaml

from modelmaker.compilation import CHECKPOINT_SUFFIXES, ModelFileError, Prepared, load_weights, read_state_dict

log = logging.getLogger("modelmaker")
RUN_CONFIG = "config.yaml"


def load_audio_model(cfg, sample_rate: int, build: Callable[[str, dict[str, Any]], Any]) -> Prepared:
    """``compilation.model_path`` as a Prepared model; ``build(name, args)`` builds a zoo model (one-line errors).
    Every problem is a one-line ModelFileError naming ``compilation.model_path``."""
    path = Path(cfg.compilation.model_path)
    if not path.is_file():
        raise ModelFileError(f"compilation.model_path: {path} not found (give a trained audio run's "
                             f"checkpoints/best.ckpt or a .nam file)")
    suffix = path.suffix.lower()
    if suffix == ".nam":
        return _from_nam(path, sample_rate)
    if suffix not in CHECKPOINT_SUFFIXES:
        raise ModelFileError(f"compilation.model_path: {path.name}: expected a .nam file or a .ckpt/.pt/.pth "
                             f"checkpoint of an audio run")
    name, args, how = _model_of(cfg, path)
    model = build(name, args)
    state = read_state_dict(path)
    load_weights(model, state, path, f"{name} built from {how}")
    log.info("compile-only: %s built from %s, weights from %s", name, how, path)
    return Prepared(model=model, model_args=args, model_name=name, source="checkpoint", model_path=str(path),
                    notes=[f"model built from {how}; weights from {path}"])


def _from_nam(path: Path, sample_rate: int) -> Prepared:
    from tinyverse.audio.nam import NamFormatError, load_nam, model_from_nam

    try:
        nam = load_nam(path)
        model = model_from_nam(nam)
    except NamFormatError as err:
        raise ModelFileError(f"compilation.model_path: {err}") from None
    if nam.sample_rate is not None and int(nam.sample_rate) != int(sample_rate):
        raise ModelFileError(f"compilation.model_path: {path.name} is a {nam.sample_rate:g} Hz model, the capture is "
                             f"{sample_rate} Hz; use a capture at {nam.sample_rate:g} Hz")
    name = f"NAM_{nam.architecture}"
    log.info("compile-only: %s (%s) from %s", name, path.name, path)
    return Prepared(model=model.eval(), model_args={}, model_name=name, source="nam", model_path=str(path),
                    notes=[f"model and weights from {path}"])


def _model_of(cfg, path: Path) -> tuple[str, dict[str, Any], str]:
    """(model name, arguments, where they came from) of a checkpoint's weights."""
    t = cfg.training
    if t.model_name:
        return t.model_name, dict(t.model_args), f"training.model_name {t.model_name}"
    for folder in (path.parent, path.parent.parent):
        run_config = folder / RUN_CONFIG
        if run_config.is_file():
            break
    else:
        raise ModelFileError(f"compilation.model_path: no {RUN_CONFIG} of an audio run next to {path} (or one folder "
                             f"up); set training.model_name (and model_args) to say which model the weights belong to")
    try:
        data = yaml.safe_load(run_config.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ModelFileError(f"compilation.model_path: cannot read {run_config}: {' '.join(str(err).split())[:200]}; "
                             f"set training.model_name (and model_args)") from None
    common, training = data.get("common") or {}, data.get("training") or {}
    if common.get("modality") != "audio" or not training.get("model_name"):
        raise ModelFileError(f"compilation.model_path: {run_config} is not the config of an audio run with a "
                             f"training.model_name; set training.model_name (and model_args)")
    return training["model_name"], dict(training.get("model_args") or {}), f"{run_config}"
