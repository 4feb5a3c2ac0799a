"""Knob models on disk, and knob settings given by name.

A knob model has no .nam form a stock plugin reads (see :mod:`tinyverse.audio.nam.knob_models`), so it travels as
a ``.pt`` file — ``{"format": "tinyverse-knob-model", "architecture", "config", "knobs", "sample_rate",
"metadata", "state_dict"}``, plain data and tensors, read with ``weights_only=True`` — or inside the training
checkpoint, whose ``knob_model`` entry (written by the knob task) holds the same record. Either way the model
carries its knob declaration, so ``--param gain=7`` is checked against the declared range and normalised.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinyverse.audio.nam.knob_models import KnobModel, knob_model_from_record
from tinyverse.errors import DatasetError

__all__ = ["KNOB_FILE_FORMAT", "KnobModelFileError", "knob_model_from_checkpoint", "load_knob_model",
           "parse_param_args", "resolve_setting", "save_knob_model"]

KNOB_FILE_FORMAT = "tinyverse-knob-model"


class KnobModelFileError(ValueError):
    """A knob model file that cannot be read; one line naming the file."""


def save_knob_model(model: KnobModel, path: str | os.PathLike[str], sample_rate: float | None = None,
                    metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` (its record and float weights) to ``path`` (written next to it, then renamed)."""
    path = Path(path)
    obj = {"format": KNOB_FILE_FORMAT, "version": 1, **model.record(),
           "sample_rate": float(sample_rate) if sample_rate is not None else None,
           "metadata": dict(metadata or {}),
           "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _build(record: Mapping[str, Any], state: Mapping[str, torch.Tensor], where: str) -> KnobModel:
    try:
        model = knob_model_from_record(record, where)
        model.load_state_dict(dict(state))
    except (ValueError, RuntimeError) as e:  # load_state_dict reports shape / key mismatches as RuntimeError
        raise KnobModelFileError(f"{where}: {str(e).splitlines()[0]}") from None
    return model.eval()


def load_knob_model(path: str | os.PathLike[str]) -> tuple[KnobModel, dict[str, Any]]:
    """A knob model from a ``.pt`` file written by :func:`save_knob_model`; (model, {sample_rate, metadata})."""
    where = os.fspath(path)
    try:
        obj = torch.load(where, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise KnobModelFileError(f"{where}: no such file") from None
    except Exception as e:  # pickled objects, corrupt files: weights_only refuses them
        raise KnobModelFileError(f"{where}: cannot read as a knob model (torch.load weights_only=True): "
                                 f"{str(e).splitlines()[0][:200]}") from None
    if not isinstance(obj, dict) or obj.get("format") != KNOB_FILE_FORMAT:
        raise KnobModelFileError(f"{where}: not a knob model file (no format {KNOB_FILE_FORMAT!r})")
    model = _build(obj, obj.get("state_dict") or {}, where)
    return model, {"sample_rate": obj.get("sample_rate"), "metadata": obj.get("metadata") or {}}


def knob_model_from_checkpoint(ckpt: Mapping[str, Any], where: str) -> tuple[KnobModel, dict[str, Any]] | None:
    """The knob model of a training checkpoint (its ``knob_model`` record, the task's ``model.*`` weights), or None
    for a checkpoint of another task."""
    record = ckpt.get("knob_model")
    if record is None:
        return None
    state = {k[len("model."):]: v for k, v in (ckpt.get("state_dict") or {}).items() if k.startswith("model.")}
    return _build(record, state, where), {"sample_rate": record.get("sample_rate"), "metadata": {}}


def parse_param_args(pairs: Sequence[str], where: str = "--param") -> dict[str, str]:
    """``["gain=7", "bright=on"]`` → ``{"gain": "7", "bright": "on"}``; a malformed or repeated one is an error."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise DatasetError(f"{where} {pair!r}: expected NAME=VALUE, e.g. {where} gain=7")
        if name in out:
            raise DatasetError(f"{where}: knob {name!r} is given twice")
        out[name] = value
    return out


def resolve_setting(model: Any, setting: Mapping[str, Any], where: str = "--param") -> tuple[np.ndarray, dict[str, float], list[str]]:
    """(normalised knob vector, the setting in knob units, the knobs that took their default) for a setting given
    by name. Unknown knobs and values outside [min, max] are one-line :class:`DatasetError` naming ``where``. A
    declared knob always has a default (:class:`tinyverse.audio.knobs.Knob`: the declared one, else the midpoint /
    off), so a missing knob takes it; a model that declares no knobs (built with ``num_knobs`` only) has no names
    and no defaults, and a model without knob inputs refuses any setting."""
    if "params" not in getattr(model, "input_shapes", {}):
        raise DatasetError(f"{where}: this model has no knob inputs (it is not a knob-conditioned model)")
    knobs = getattr(model, "knobs", None)
    if knobs is None:
        raise DatasetError(f"{where}: the model declares no knobs (names, ranges, defaults): it was built with "
                           "num_knobs only; rebuild it with the dataset's knob declaration (dataset.knobs)")
    missing = [n for n in knobs.names if n not in setting]
    checked = knobs.check(setting, where, fill_defaults=True)
    return knobs.vector(checked, where), checked, missing
