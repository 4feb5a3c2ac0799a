"""Reading and writing .nam files (JSON): WaveNet (A1 and A2 layer arrays), LSTM, Linear, SlimmableContainer.

Compatibility rules (see shared/reference/nam-format.md and NeuralAmpModelerCore's ``docs/nam_file_version.rst``):

* read 0.5.x, 0.6.x and 0.7.x files: every WaveNet feature NAM Core 0.5.5 reads (``condition_dsp``, FiLM, grouped
  and bottleneck convs, ``layer1x1`` / ``head1x1``, per-layer kernel sizes and activations, the 0.7 layout with
  ``head`` objects, post-stack heads, slimmable layer arrays) and ``SlimmableContainer`` files. A config key we do
  not implement is an error naming it, never silently ignored;
* write the oldest version that expresses the model (``model.nam_version()``): ``"0.5.4"`` with the old WaveNet
  layout (``"head": null``) for A1 models, so every Core since 0.5 — including hardware pedals running old
  engines — loads them; 0.6.0 for the layer-array features Core 0.4.0 reads; 0.7.0 for containers, slimmable
  WaveNets, per-layer kernel sizes and head convs;
* always write ``sample_rate`` (nested models get the parent's: Core requires them to match); never write
  ``null`` for the metadata numbers Core reads (``loudness``, ``input_level_dbu``, ``output_level_dbu``): old
  Core converts them to double and throws on null.
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

from .container import NAMSlimmableContainer
from .convnet import NAMConvNet
from .dag import NAMDAG
from .knob_stage import KNOB_STAGE_ARCHITECTURE, KnobStage
from .models import FILE_VERSIONS, NAMLSTM, NAMLinear, NAMModel, NAMWaveNet, NamWeightError
from .sequential import NAMSequential

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

WRITE_VERSION = FILE_VERSIONS[0]  # what A1 models are written as
SUPPORTED_ARCHITECTURES = ("WaveNet", "LSTM", "Linear", "SlimmableContainer", "Sequential", "DAG", "ConvNet",
                           KNOB_STAGE_ARCHITECTURE)
# Containers of complete nested .nam objects: Core's Sequential, and our DAG extension (docs/composition.md).
_COMPOSED = {"Sequential": NAMSequential, "DAG": NAMDAG}
_READ_MINORS = (5, 6, 7)

GEAR_TYPES = ("amp", "pedal", "pedal_amp", "amp_cab", "amp_pedal_cab", "preamp", "studio")
TONE_TYPES = ("clean", "overdrive", "crunch", "hi_gain", "fuzz")
# Metadata numbers that Core itself reads: omitted rather than null when unknown.
_CORE_NUMBERS = ("loudness", "input_level_dbu", "output_level_dbu")
# Fields NAM's trainer always writes (null when unknown), in its order.
_TRAINER_FIELDS = ("name", "modeled_by", "gear_type", "gear_make", "gear_model", "tone_type")
_WAVENET_KEYS = frozenset({"layers", "head", "head_scale", "condition_dsp", "in_channels"})
_CONTAINER_KEYS = frozenset({"submodels"})
_SUBMODEL_KEYS = frozenset({"max_value", "model"})

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


def _number(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{what} must be a number, got {v!r}")
    return float(v)


def _check_keys(config: dict[str, Any], known: frozenset[str], what: str) -> None:
    extra = sorted(set(config) - known)
    if extra:
        raise ValueError(f"{what} uses unsupported key(s): {', '.join(extra)} (known: {', '.join(sorted(known))})")


def _nested(obj: Any, where: str, parent: NamFile, role: str, kwargs: dict[str, Any]) -> tuple[NamFile, NAMModel]:
    """A complete .nam object nested in ``parent`` (a submodel or a condition DSP), read and built with weights."""
    nf = _parse(obj, where, role)
    if nf.sample_rate is not None and parent.sample_rate is not None and nf.sample_rate != parent.sample_rate:
        raise _fail(where, f"sample_rate {nf.sample_rate:g} differs from the enclosing model's "
                           f"{parent.sample_rate:g} (NAM Core refuses the file)")
    if role == "condition_dsp" and nf.sample_rate is None and parent.sample_rate is not None:
        raise _fail(where, "has no sample_rate: NAM Core requires the condition DSP's to equal the model's")
    return nf, _model(nf, role, kwargs)


def _build(nf: NamFile, role: str = "model", **kwargs: Any) -> NAMModel:
    """Model for ``nf`` (its own weights not yet imported; nested models are complete). ``role``: "model",
    "submodel" or "condition_dsp" (which may have more than one output channel). Raises ValueError / KeyError
    on a bad config, NamFormatError for a nested model."""
    c, where = nf.config, nf.path or "<nam>"
    if nf.architecture == "WaveNet":
        _check_keys(c, _WAVENET_KEYS, "WaveNet config")
        if not isinstance(c.get("layers"), list) or not c["layers"]:
            raise ValueError("WaveNet config has no 'layers' list")
        if "head_scale" not in c:
            raise ValueError("WaveNet config has no 'head_scale'")
        cond, cond_meta = None, None
        if c.get("condition_dsp") is not None:
            cnf, cond = _nested(c["condition_dsp"], f"{where}: condition_dsp", nf, "condition_dsp", kwargs)
            cond_meta = cnf.metadata
        return NAMWaveNet(c["layers"], _number(c["head_scale"], "head_scale"), head=c.get("head"),
                          condition_dsp=cond, condition_dsp_metadata=cond_meta,  # type: ignore[arg-type]
                          in_channels=c.get("in_channels", 1), mono_output=role != "condition_dsp", **kwargs)
    if role == "condition_dsp":
        raise ValueError(f"only a WaveNet condition DSP is supported, got {nf.architecture!r}")
    if nf.architecture == "SlimmableContainer":
        _check_keys(c, _CONTAINER_KEYS, "SlimmableContainer config")
        subs = c.get("submodels")
        if not isinstance(subs, list) or not subs:
            raise ValueError("SlimmableContainer config needs a non-empty 'submodels' list")
        models, metas = [], []
        for i, entry in enumerate(subs):
            w = f"submodel {i}"
            if not isinstance(entry, dict):
                raise ValueError(f"{w} is not an object")
            _check_keys(entry, _SUBMODEL_KEYS, w)
            if "max_value" not in entry or "model" not in entry:
                raise ValueError(f"{w} needs 'max_value' and 'model'")
            snf, model = _nested(entry["model"], f"{where}: {w}", nf, "submodel", kwargs)
            models.append((_number(entry["max_value"], f"{w}: max_value"), model))
            metas.append(snf.metadata)
        return NAMSlimmableContainer(models, metas)
    if nf.architecture in _COMPOSED:
        def read_child(obj: Any, w: str) -> tuple[NAMModel, dict[str, Any]]:
            cnf, child = _nested(obj, f"{where}: {w}", nf, "submodel", kwargs)
            return child, cnf.metadata

        return _COMPOSED[nf.architecture].from_nam_config(c, read_child)
    if nf.architecture == KNOB_STAGE_ARCHITECTURE:  # our extension: a knob model as a stage (docs/composition.md)
        if role != "submodel":
            raise ValueError("a KnobModel object is a stage of a Sequential or DAG; a knob model alone is a .pt file "
                             "(tinyverse.audio.knob_file)")
        return KnobStage.from_nam_config(c)
    if nf.architecture == "ConvNet":  # Core's ConvNet (what a frozen HyperConvNet is)
        return NAMConvNet.from_config(c)
    if nf.architecture == "LSTM":
        return NAMLSTM(int(c["hidden_size"]), int(c["num_layers"]), int(c.get("input_size", 1)))
    if nf.architecture == "Linear":
        # One Core release spelled it "receptiveField"; the trainer writes "receptive_field".
        rf = c["receptive_field"] if "receptive_field" in c else c["receptiveField"]
        return NAMLinear(int(rf), bool(c.get("bias", False)))
    raise ValueError(f"unsupported architecture {nf.architecture!r} (supported: {', '.join(SUPPORTED_ARCHITECTURES)})")


def _fail(where: str, msg: str) -> NamFormatError:
    return NamFormatError(f"{where}: {msg}".replace("\n", " "))


def _model(nf: NamFile, role: str, kwargs: dict[str, Any]) -> NAMModel:
    """Build ``nf``'s model and import its weights; errors become one-line NamFormatErrors naming the file."""
    where = nf.path or "<nam>"
    try:
        model = _build(nf, role, **kwargs)
        model.import_weights(nf.weights)
    except NamFormatError:
        raise
    except NamWeightError as e:
        raise _fail(where, str(e)) from None
    except (ValueError, KeyError, TypeError) as e:
        msg = f"missing config key {e}" if isinstance(e, KeyError) else str(e)
        raise _fail(where, f"invalid {nf.architecture} config: {msg}") from None
    return model


def nam_from_dict(d: Any, where: str = "<nam>") -> NamFile:
    """Validate a parsed .nam JSON object and return a NamFile (``where`` names it in errors)."""
    return _parse(d, where, "model")


def _parse(d: Any, where: str, role: str) -> NamFile:
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
        raise _fail(where, f"unsupported version {d['version']} (supported: 0.5.x, 0.6.x, 0.7.x)")
    arch = d["architecture"]
    if arch not in SUPPORTED_ARCHITECTURES:
        raise _fail(where, f"unsupported architecture {arch!r} (supported: {', '.join(SUPPORTED_ARCHITECTURES)})")
    weights = d["weights"]
    if not isinstance(weights, list) or not all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights):
        raise _fail(where, "'weights' must be a list of numbers")
    if not isinstance(d["config"], dict):
        raise _fail(where, "'config' must be an object")
    sr = d.get("sample_rate")
    if sr is not None and (isinstance(sr, bool) or not isinstance(sr, (int, float)) or sr <= 0):
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
        expected = _build(nf, role).num_weights
    except NamFormatError:
        raise
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

    ``kwargs`` go to every WaveNet in it (NAMWaveNet: ``legacy_gating``, ``fast_tanh``). A SlimmableContainer
    starts at its full size, as Core does; pick another with ``model.set_slim(value)``.
    """
    nf = src if isinstance(src, NamFile) else load_nam(src)
    return _model(nf, "model", kwargs)


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
    """The JSON object ``save_nam`` writes, in the oldest version that expresses ``model``."""
    arch = getattr(model, "nam_architecture", None)
    if arch not in SUPPORTED_ARCHITECTURES:
        raise _fail(where, f"cannot export {type(model).__name__}: not a NAM model ({', '.join(SUPPORTED_ARCHITECTURES)})")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float)) or not sample_rate > 0:
        raise _fail(where, f"sample_rate must be a positive number, got {sample_rate!r}")
    sr: float | int = int(sample_rate) if float(sample_rate).is_integer() else float(sample_rate)
    out = {
        "version": model.nam_version(),  # type: ignore[operator]
        "metadata": _build_metadata(metadata, where),
        "architecture": arch,
        "config": model.nam_config(sample_rate=sr),  # type: ignore[operator]
        "weights": model.export_weights(),  # type: ignore[operator]
        "sample_rate": sr,
    }
    try:  # nested models (submodels, a condition DSP) carry weights too
        json.dumps(out["config"], allow_nan=False)
        json.dumps(out["weights"], allow_nan=False)
    except ValueError:
        raise _fail(where, "model has non-finite weights (NaN/inf cannot be written to a .nam)") from None
    return out


def save_nam(model: nn.Module, path: PathLike, metadata: dict[str, Any] | None = None, sample_rate: float = 48_000.0) -> NamFile:
    """Write ``model`` as a .nam file of the oldest version that expresses it (0.5.4 for A1 models) and return
    what was written (re-validated)."""
    where = os.fspath(path)
    d = nam_to_dict(model, metadata, sample_rate, where)
    nf = nam_from_dict(json.loads(json.dumps(d)), where)  # never write a file we could not read back
    tmp = where + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(d, f)
    os.replace(tmp, where)
    return nf
