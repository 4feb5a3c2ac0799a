"""Reading and writing .nam files (JSON) for WaveNet, LSTM and Linear models.

Compatibility rules (see shared/reference/nam-format.md):

* read 0.5.x files; 0.6.x / 0.7.x files are read when they only use the 0.5.x layout;
* write ``"version": "0.5.4"`` with the old WaveNet layout (``"head": null``) so that every Core since
  0.5 — including hardware pedals running old engines — loads the file;
* always write ``sample_rate``; never write ``null`` for the metadata numbers Core reads (``loudness``,
  ``input_level_dbu``, ``output_level_dbu``): old Core converts them to double and throws on null.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import torch.nn as nn

from .models import CORE_ACTIVATIONS, NAMLSTM, NAMLinear, NAMWaveNet, NamWeightError

__all__ = [
    "GEAR_TYPES",
    "NamFile",
    "NamFormatError",
    "TONE_TYPES",
    "WRITE_VERSION",
    "load_nam",
    "model_from_nam",
    "nam_from_dict",
    "nam_to_dict",
    "save_nam",
]

WRITE_VERSION = "0.5.4"
SUPPORTED_ARCHITECTURES = ("WaveNet", "LSTM", "Linear")
# Minor versions we read: 0.5 fully; 0.6 / 0.7 only where the config keeps the 0.5 layout.
_READ_MINORS = (5, 6, 7)

GEAR_TYPES = ("amp", "pedal", "pedal_amp", "amp_cab", "amp_pedal_cab", "preamp", "studio")
TONE_TYPES = ("clean", "overdrive", "crunch", "hi_gain", "fuzz")
# Metadata numbers that Core itself reads: omitted rather than null when unknown.
_CORE_NUMBERS = ("loudness", "input_level_dbu", "output_level_dbu")
# Fields NAM's trainer always writes (null when unknown), in its order.
_TRAINER_FIELDS = ("name", "modeled_by", "gear_type", "gear_make", "gear_model", "tone_type")
_WAVENET_LAYER_KEYS = {
    "input_size",
    "condition_size",
    "head_size",
    "channels",
    "kernel_size",
    "dilations",
    "activation",
    "gated",
    "head_bias",
}

PathLike = Union[str, "os.PathLike[str]"]


class NamFormatError(ValueError):
    """A .nam file that cannot be read or written; the message is one line and names the file."""


@dataclass
class NamFile:
    version: str
    architecture: str
    config: dict[str, Any]
    weights: list[float]
    sample_rate: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    path: str | None = None  # where it was read from, for error messages


# ------------------------------------------------------------------------------------------------- read


def _parse_version(v: Any) -> tuple[int, int, int]:
    parts = str(v).split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"malformed version {v!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])


def _check_wavenet_config(config: dict[str, Any]) -> None:
    layers = config.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ValueError("WaveNet config has no 'layers' list")
    if config.get("head") is not None:
        raise ValueError("WaveNet post-stack 'head' is not supported (Core ignores files with one)")
    if "head_scale" not in config:
        raise ValueError("WaveNet config has no 'head_scale'")
    for i, la in enumerate(layers):
        if not isinstance(la, dict):
            raise ValueError(f"WaveNet layer array {i} is not an object")
        missing = sorted(_WAVENET_LAYER_KEYS - {"gated", "head_bias", "activation"} - set(la))
        if missing:
            raise ValueError(f"WaveNet layer array {i} lacks {', '.join(missing)}")
        extra = sorted(set(la) - _WAVENET_LAYER_KEYS)
        if extra:
            # 0.6/0.7 (A2-style) features: refuse instead of silently computing something else.
            raise ValueError(f"WaveNet layer array {i} uses unsupported keys: {', '.join(extra)}")
        act = la.get("activation", "Tanh")
        if not isinstance(act, str) or act not in CORE_ACTIVATIONS:
            raise ValueError(f"WaveNet layer array {i}: unsupported activation {act!r} (supported: {', '.join(CORE_ACTIVATIONS)})")


def _build(nf: NamFile, **kwargs: Any) -> nn.Module:
    """Model for ``nf`` (weights not yet imported). Raises ValueError / KeyError on a bad config."""
    c = nf.config
    if nf.architecture == "WaveNet":
        _check_wavenet_config(c)
        return NAMWaveNet(c["layers"], float(c["head_scale"]), **kwargs)
    if nf.architecture == "LSTM":
        return NAMLSTM(int(c["hidden_size"]), int(c["num_layers"]), int(c.get("input_size", 1)))
    if nf.architecture == "Linear":
        # One Core release spelled it "receptiveField"; the trainer writes "receptive_field".
        rf = c["receptive_field"] if "receptive_field" in c else c["receptiveField"]
        return NAMLinear(int(rf), bool(c.get("bias", False)))
    raise ValueError(f"unsupported architecture {nf.architecture!r} (supported: {', '.join(SUPPORTED_ARCHITECTURES)})")


def _fail(where: str, msg: str) -> NamFormatError:
    return NamFormatError(f"{where}: {msg}".replace("\n", " "))


def nam_from_dict(d: Any, where: str = "<nam>") -> NamFile:
    """Validate a parsed .nam JSON object and return a NamFile (``where`` names it in errors)."""
    if not isinstance(d, dict):
        raise _fail(where, "not a .nam file (top level is not a JSON object)")
    for key in ("version", "architecture", "config", "weights"):
        if key not in d:
            raise _fail(where, f"missing '{key}'")
    try:
        major, minor, _ = _parse_version(d["version"])
    except ValueError as e:
        raise _fail(where, str(e)) from None
    if major != 0 or minor not in _READ_MINORS:
        raise _fail(where, f"unsupported version {d['version']} (supported: 0.5.x, and 0.6.x/0.7.x in the 0.5 layout)")
    arch = d["architecture"]
    if arch not in SUPPORTED_ARCHITECTURES:
        raise _fail(where, f"unsupported architecture {arch!r} (supported: {', '.join(SUPPORTED_ARCHITECTURES)})")
    weights = d["weights"]
    if not isinstance(weights, list) or not all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights):
        raise _fail(where, "'weights' must be a list of numbers")
    if not isinstance(d["config"], dict):
        raise _fail(where, "'config' must be an object")
    sr = d.get("sample_rate")
    if sr is not None and (not isinstance(sr, (int, float)) or sr <= 0):
        raise _fail(where, f"invalid sample_rate {sr!r}")
    meta = d.get("metadata") or {}
    if not isinstance(meta, dict):
        raise _fail(where, "'metadata' must be an object")
    nf = NamFile(
        version=str(d["version"]),
        architecture=arch,
        config=d["config"],
        weights=[float(w) for w in weights],
        sample_rate=float(sr) if sr is not None else None,
        metadata=meta,
        path=where,
    )
    try:
        expected = _build(nf).num_weights  # type: ignore[union-attr]
    except (ValueError, KeyError, TypeError) as e:
        msg = f"missing config key {e}" if isinstance(e, KeyError) else str(e)
        raise _fail(where, f"invalid {arch} config: {msg}") from None
    if expected != len(nf.weights):
        raise _fail(where, f"weight count mismatch: expected {expected} got {len(nf.weights)}")
    return nf


def load_nam(path: PathLike) -> NamFile:
    """Read and validate a .nam file. Errors are NamFormatError with a one-line message naming the file."""
    where = os.fspath(path)
    try:
        with open(where, encoding="utf-8") as f:
            d = json.load(f)
    except json.JSONDecodeError as e:
        raise _fail(where, f"not valid JSON ({e.msg} at line {e.lineno})") from None
    except OSError as e:
        raise _fail(where, f"cannot read: {e.strerror}") from None
    return nam_from_dict(d, where)


def model_from_nam(src: PathLike | NamFile, **kwargs: Any) -> nn.Module:
    """Build the float32 module for a .nam file (path or NamFile) and import its weights.

    ``kwargs`` go to the model (NAMWaveNet: ``legacy_gating``, ``fast_tanh``).
    """
    nf = src if isinstance(src, NamFile) else load_nam(src)
    where = nf.path or "<nam>"
    try:
        model = _build(nf, **kwargs) if nf.architecture == "WaveNet" else _build(nf)
        model.import_weights(nf.weights)  # type: ignore[operator]
    except NamWeightError as e:
        raise _fail(where, str(e)) from None
    except (ValueError, KeyError) as e:
        raise _fail(where, f"invalid {nf.architecture} config: {e}") from None
    return model


# ------------------------------------------------------------------------------------------------ write


def _now_date() -> dict[str, int]:
    t = _dt.datetime.now()
    return {"year": t.year, "month": t.month, "day": t.day, "hour": t.hour, "minute": t.minute, "second": t.second}


def _build_metadata(metadata: dict[str, Any] | None, where: str) -> dict[str, Any]:
    """Trainer-style metadata. Convenience keys: ``validation_esr`` (-> training.validation_esr) and
    ``latency`` (int samples -> training.data.latency.manual, or a full latency dict)."""
    src = dict(metadata or {})
    esr = src.pop("validation_esr", None)
    latency = src.pop("latency", None)

    out: dict[str, Any] = {"date": src.pop("date", None) or _now_date()}
    for key in _TRAINER_FIELDS:
        out[key] = src.pop(key, None)
    for key in _CORE_NUMBERS + ("gain",):
        val = src.pop(key, None)
        if val is not None:
            if isinstance(val, bool) or not isinstance(val, (int, float)) or not math.isfinite(val):
                raise _fail(where, f"metadata '{key}' must be a finite number, got {val!r}")
            out[key] = float(val)
    if out["gear_type"] is not None and out["gear_type"] not in GEAR_TYPES:
        raise _fail(where, f"metadata gear_type {out['gear_type']!r} is not one of {', '.join(GEAR_TYPES)}")
    if out["tone_type"] is not None and out["tone_type"] not in TONE_TYPES:
        raise _fail(where, f"metadata tone_type {out['tone_type']!r} is not one of {', '.join(TONE_TYPES)}")

    training = src.pop("training", None)
    if esr is not None or latency is not None:
        training = json.loads(json.dumps(training)) if isinstance(training, dict) else {}
        if esr is not None:
            training["validation_esr"] = float(esr)
        if latency is not None:
            lat = latency if isinstance(latency, dict) else {"manual": int(latency), "calibration": None}
            training.setdefault("data", {})["latency"] = lat
    if training is not None:
        out["training"] = training
    out.update(src)  # anything else the caller adds is kept (Core ignores unknown keys)
    return out


def nam_to_dict(model: nn.Module, metadata: dict[str, Any] | None = None, sample_rate: float = 48_000.0, where: str = "<nam>") -> dict[str, Any]:
    """The JSON object ``save_nam`` writes."""
    arch = getattr(model, "nam_architecture", None)
    if arch not in SUPPORTED_ARCHITECTURES:
        raise _fail(where, f"cannot export {type(model).__name__}: not a NAMWaveNet, NAMLSTM or NAMLinear")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float)) or not sample_rate > 0:
        raise _fail(where, f"sample_rate must be a positive number, got {sample_rate!r}")
    weights = model.export_weights()  # type: ignore[operator]
    if not all(math.isfinite(w) for w in weights):
        raise _fail(where, "model has non-finite weights (NaN/inf cannot be written to a .nam)")
    sr: float | int = int(sample_rate) if float(sample_rate).is_integer() else float(sample_rate)
    return {
        "version": WRITE_VERSION,
        "metadata": _build_metadata(metadata, where),
        "architecture": arch,
        "config": model.nam_config(),  # type: ignore[operator]
        "weights": weights,
        "sample_rate": sr,
    }


def save_nam(model: nn.Module, path: PathLike, metadata: dict[str, Any] | None = None, sample_rate: float = 48_000.0) -> NamFile:
    """Write ``model`` as a version-0.5.4 .nam file and return what was written (re-validated)."""
    where = os.fspath(path)
    d = nam_to_dict(model, metadata, sample_rate, where)
    nf = nam_from_dict(json.loads(json.dumps(d)), where)  # never write a file we could not read back
    tmp = where + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(d, f)
    os.replace(tmp, where)
    return nf
