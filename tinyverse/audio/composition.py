"""Composed models from files: a chain (NAM Core's ``Sequential``) or a graph file (a DAG), whose stages are .nam
files, impulse-response WAVs, zoo model names or checkpoints of audio runs (docs/composition.md).

A graph file (YAML)::

    nodes:
      amp:   {model: amp.nam}                  # a node without `input` reads the audio input
      cab_a: {model: cab_a.wav, input: amp}    # .nam, IR .wav, zoo name or checkpoint (.ckpt)
      cab_b: {model: cab_b.wav, input: amp, channel: 0}
      mix:   {mean: [cab_a, cab_b]}            # or sum: [...], weighted: {cab_a: 0.7, cab_b: 0.3}
    output: mix
    sample_rate: 48000                         # optional

Paths in a graph file are relative to the file's folder. Sample rates: the NAM models' rates must agree (a NAM model
runs only at the rate it was captured at); IRs are resampled to the chain's rate (:mod:`tinyverse.audio.ir`) or,
with ``strict_rate``, refused. The chain's rate is the one asked for, else the NAM models', else the first IR's,
else 48 kHz. Every error is a one-line :class:`CompositionError` naming the file or node and the fix.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import soundfile as sf
import yaml
from pydantic import ValidationError
from torch import nn

from tinyverse.audio.ir import IRError, load_ir
from tinyverse.audio.nam import DagNode, NAMDAG, NamFormatError, NAMSequential, load_nam, model_from_nam
from tinyverse.audio.nam.dag import AUDIO_INPUT, MIX_KINDS
from tinyverse.audio.nam.knob_stage import KnobStage, takes_knobs
from tinyverse.audio.nam.sequential import check_stage
from tinyverse.audio.stage_spec import ChainStage

__all__ = ["Composed", "CompositionError", "IR_SUFFIXES", "combine", "graph_from_dict", "load_graph",
           "sequential_from_config"]

log = logging.getLogger(__name__)

IR_SUFFIXES = (".wav", ".flac", ".aif", ".aiff")
KNOB_SUFFIX = ".pt"  # a knob model file (tinyverse.audio.knob_file)
DEFAULT_RATE = 48_000
_MODEL_NODE_KEYS = ("model", "input", "channel", "config")
_GRAPH_KEYS = ("nodes", "output", "sample_rate")


class CompositionError(ValueError):
    """A chain or graph that cannot be built; ``str()`` is one line naming the file or node and the fix."""


@dataclass
class Composed:
    """A composed model, the sample rate it runs at, and what was done to build it (e.g. an IR resampled)."""

    model: nn.Module
    sample_rate: int
    notes: list[str] = field(default_factory=list)


@dataclass
class _Stage:
    label: str  # "node 'amp' (amp.nam)" or "amp.nam": how errors name it
    kind: str  # "nam", "ir", "ckpt", "zoo"
    path: Path | None
    model: nn.Module | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    rate: int | None = None
    channel: int | None = None


def _classify(ref: str, base: Path | None, label: str, config: Any) -> _Stage:
    from tinyverse.registry import MODEL_REGISTRY, RegistryError

    path = Path(ref) if base is None or Path(ref).is_absolute() else base / ref
    suffix = path.suffix.lower()
    if suffix in (".nam", ".ckpt", KNOB_SUFFIX, *IR_SUFFIXES):
        if not path.is_file():
            what = "no such file" if not path.exists() else "not a file"
            raise CompositionError(f"{label}: {what}: {path}; check the path"
                                   + (" (relative to the graph file's folder)" if base is not None else ""))
        kind = {".nam": "nam", ".ckpt": "ckpt", KNOB_SUFFIX: "knob"}.get(suffix, "ir")
        if config is not None:
            raise CompositionError(f"{label}: 'config' is for zoo models; {path.name} is a file")
        return _Stage(label, kind, path)
    if path.suffix and path.exists():
        raise CompositionError(f"{label}: {path} is not a model file this can read; use a .nam file, an impulse "
                               f"response ({', '.join(IR_SUFFIXES)}), a knob model ({KNOB_SUFFIX}), a checkpoint "
                               "(.ckpt) or a zoo model name")
    try:
        MODEL_REGISTRY.get(ref)
    except RegistryError as e:
        raise CompositionError(f"{label}: '{ref}' is neither a file nor a zoo model ({str(e).splitlines()[0]}); "
                               "check the path or the name (modelmaker models)") from None
    return _Stage(label, "zoo", None)


def _load_model(stage: _Stage, ref: str, config: Any) -> None:
    """Load a .nam, checkpoint or zoo stage (IRs wait for the chain's sample rate)."""
    if stage.kind == "nam":
        try:
            nf = load_nam(stage.path)  # type: ignore[arg-type]
            stage.model = model_from_nam(nf)
        except NamFormatError as e:
            raise CompositionError(f"{stage.label}: {e}") from None
        stage.metadata = dict(nf.metadata)
        stage.rate = int(nf.sample_rate) if nf.sample_rate else None
    elif stage.kind in ("ckpt", "knob"):
        from tinyverse.audio.stream import load_audio_model

        try:
            stage.model, info = load_audio_model(stage.path)  # type: ignore[arg-type]
            if takes_knobs(stage.model):  # a knob model (its .pt, or a knob run's checkpoint)
                stage.model = KnobStage(stage.model)  # type: ignore[arg-type]
        except (ValueError, FileNotFoundError, RuntimeError, KeyError) as e:
            why = " ".join(str(e).split()).removeprefix(f"{stage.path}: ")  # the label names the file already
            what = "the checkpoint" if stage.kind == "ckpt" else "the knob model"
            raise CompositionError(f"{stage.label}: cannot load {what}: {why}") from None
        stage.metadata = dict(info.get("metadata") or {})
        stage.rate = int(info["sample_rate"]) if info.get("sample_rate") else None
    elif stage.kind == "zoo":
        from tinyverse.models import create_model

        if config is not None and not isinstance(config, Mapping):
            raise CompositionError(f"{stage.label}: 'config' must map argument names to values")
        try:
            stage.model = create_model(ref, **dict(config or {}))
        except (TypeError, ValueError) as e:
            raise CompositionError(f"{stage.label}: {ref} cannot be built: {' '.join(str(e).split())}") from None
        log.info("%s: zoo model %s with its initial (untrained) weights", stage.label, ref)
    try:
        if stage.model is not None:  # an IR is always a Linear stage
            check_stage(stage.model, stage.label)
    except ValueError as e:
        raise CompositionError(str(e)) from None


def _chain_rate(stages: Sequence[_Stage], requested: int | None, where: str) -> int:
    first: _Stage | None = None
    for s in stages:
        if s.rate is None:
            continue
        if first is None:
            first = s
        elif s.rate != first.rate:
            raise CompositionError(f"{where}sample-rate mismatch: {s.label} runs at {s.rate} Hz but {first.label} at "
                                   f"{first.rate} Hz; a NAM model runs only at the rate it was captured at: "
                                   "combine models captured at one rate")
    if first is not None:
        if requested is not None and requested != first.rate:
            raise CompositionError(f"{where}sample rate {requested} Hz asked for, but {first.label} runs at "
                                   f"{first.rate} Hz; drop the sample-rate option or use models captured at "
                                   f"{requested} Hz")
        return int(first.rate)  # type: ignore[arg-type]
    if requested is not None:
        return int(requested)
    for s in stages:
        if s.kind == "ir":
            try:
                return int(sf.info(str(s.path)).samplerate)
            except (RuntimeError, OSError, TypeError):
                break  # load_ir reports the unreadable file
    return DEFAULT_RATE


def _load_irs(stages: Sequence[_Stage], rate: int, strict: bool, notes: list[str]) -> None:
    for s in stages:
        if s.kind != "ir":
            continue
        try:
            s.model, _ = load_ir(s.path, rate, strict=strict, channel=s.channel, label=s.label)  # type: ignore[arg-type]
        except IRError as e:
            raise CompositionError(str(e)) from None
        s.metadata = {"name": s.path.stem}  # type: ignore[union-attr]
        own = int(sf.info(str(s.path)).samplerate)
        if own != rate:
            notes.append(f"{s.label}: impulse response resampled from {own} Hz to {rate} Hz")


def combine(refs: Sequence[str], *, sample_rate: int | None = None, strict_rate: bool = False) -> Composed:
    """A ``Sequential`` of ``refs`` (.nam files, IR WAVs, zoo names, checkpoints) in order."""
    if not refs:
        raise CompositionError("give at least one model to combine (.nam, IR .wav, zoo name or .ckpt)")
    stages = []
    for ref in refs:
        stage = _classify(str(ref), None, str(ref), None)
        _load_model(stage, str(ref), None)
        stages.append(stage)
    rate = _chain_rate(stages, sample_rate, "")
    notes: list[str] = []
    _load_irs(stages, rate, strict_rate, notes)
    try:
        model = NAMSequential([s.model for s in stages], [s.metadata for s in stages])  # type: ignore[misc]
    except ValueError as e:
        raise CompositionError(str(e)) from None
    return Composed(model, rate, notes)


def sequential_from_config(models: Sequence[Any] | None, *, sample_rate: int | None = None, strict_rate: bool = False,
                           where: str = "models") -> Composed:
    """A ``Sequential`` to train from a config (``training.model_name: Sequential``): ``models`` lists the stages
    in order, each a :class:`tinyverse.audio.stage_spec.ChainStage` or its dict (``model``, ``frozen``, ``config``,
    ``channel``); a frozen stage keeps its weights exactly while the others train (:meth:`NAMSequential.freeze`).
    Paths are relative to the current directory. Errors are one line naming ``<where>[i]``."""
    if not models:
        raise CompositionError(f"{where}: list the chain's stages, e.g. [{{model: amp.nam, frozen: true}}, "
                               "{model: cab.wav}]")
    specs: list[ChainStage] = []
    for i, m in enumerate(models):
        try:
            specs.append(m if isinstance(m, ChainStage) else ChainStage.model_validate(m))
        except ValidationError as e:
            err = e.errors(include_url=False)[0]
            loc = "".join(f".{p}" for p in err["loc"])
            raise CompositionError(f"{where}[{i}]{loc}: {err['msg'][:1].lower()}{err['msg'][1:]} (a stage takes "
                                   f"{', '.join(ChainStage.model_fields)})") from None
    stages = []
    for i, spec in enumerate(specs):
        label = f"{where}[{i}] ({spec.model})"
        stage = _classify(spec.model, None, label, spec.config)
        if spec.channel is not None and stage.kind != "ir":
            raise CompositionError(f"{label}: 'channel' is for impulse-response files")
        stage.channel = spec.channel
        _load_model(stage, spec.model, spec.config)
        if takes_knobs(stage.model):
            raise CompositionError(f"{label}: a knob model cannot be a stage of a chain trained from a config yet (the "
                                   "amp-modelling task feeds no knob values); fix its setting first (modelmaker "
                                   "freeze) and use the .nam it writes")
        stages.append(stage)
    rate = _chain_rate(stages, sample_rate, f"{where}: ")
    notes: list[str] = []
    _load_irs(stages, rate, strict_rate, notes)
    try:
        model = NAMSequential([s.model for s in stages], [s.metadata for s in stages])  # type: ignore[misc]
    except ValueError as e:
        raise CompositionError(f"{where}: {e}") from None
    for i, spec in enumerate(specs):
        if spec.frozen:
            model.freeze(i)
    if all(specs_i.frozen for specs_i in specs):
        raise CompositionError(f"{where}: every stage is frozen: nothing would train; set frozen: false on the "
                               "stages to train")
    return Composed(model, rate, notes)


def load_graph(path: str | Path, *, sample_rate: int | None = None, strict_rate: bool = False) -> Composed:
    """The DAG a graph file (YAML, module docstring) describes; paths in it are relative to its folder."""
    path = Path(path)
    if not path.is_file():
        raise CompositionError(f"graph file {path}: {'no such file' if not path.exists() else 'not a file'}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise CompositionError(f"{path}: not valid YAML{at} ({getattr(e, 'problem', None) or e}); fix the syntax") \
            from None
    except (OSError, UnicodeDecodeError) as e:
        raise CompositionError(f"{path}: cannot read: {e}") from None
    return graph_from_dict(data, str(path), path.parent, sample_rate=sample_rate, strict_rate=strict_rate)


def graph_from_dict(data: Any, where: str = "<graph>", base: Path | None = None, *, sample_rate: int | None = None,
                    strict_rate: bool = False) -> Composed:
    """A DAG from a parsed graph file (``where`` names it in errors; ``base``: the folder paths are relative to)."""
    if not isinstance(data, Mapping):
        raise CompositionError(f"{where}: a graph file is a mapping with 'nodes' and 'output' (see docs/composition.md)")
    extra = sorted(set(data) - set(_GRAPH_KEYS))
    if extra:
        raise CompositionError(f"{where}: unknown key(s) {', '.join(map(str, extra))}; a graph file has "
                               f"{', '.join(_GRAPH_KEYS)}")
    nodes_in = data.get("nodes")
    if not isinstance(nodes_in, Mapping) or not nodes_in:
        raise CompositionError(f"{where}: 'nodes' must map node names to nodes, e.g. `amp: {{model: amp.nam}}`")
    if "output" not in data or not isinstance(data["output"], str):
        raise CompositionError(f"{where}: no 'output': name the node whose output is the model's, e.g. "
                               f"`output: {list(nodes_in)[-1]}`")
    file_rate = data.get("sample_rate")
    if file_rate is not None and (isinstance(file_rate, bool) or not isinstance(file_rate, int) or file_rate <= 0):
        raise CompositionError(f"{where}: sample_rate must be a positive whole number of Hz, got {file_rate!r}")
    if sample_rate is not None and file_rate is not None and sample_rate != file_rate:
        raise CompositionError(f"{where}: sample_rate {file_rate} in the file, {sample_rate} asked for; give one")
    stages: list[_Stage] = []
    specs: dict[str, dict[str, Any]] = {}
    for name, spec in nodes_in.items():
        if not isinstance(name, str) or not name:
            raise CompositionError(f"{where}: node name {name!r} must be a non-empty string")
        if not isinstance(spec, Mapping):
            raise CompositionError(f"{where}: node '{name}' must be a mapping, e.g. `{{model: amp.nam}}` or "
                                   "`{mean: [a, b]}`")
        kinds = [k for k in ("model", *MIX_KINDS) if k in spec]
        if len(kinds) != 1:
            raise CompositionError(f"{where}: node '{name}' needs exactly one of: model, {', '.join(MIX_KINDS)}")
        allowed = _MODEL_NODE_KEYS if kinds[0] == "model" else (kinds[0], "trainable") if kinds[0] == "weighted" \
            else (kinds[0],)
        extra = sorted(set(spec) - set(allowed))
        if extra:
            raise CompositionError(f"{where}: node '{name}' has unknown key(s) {', '.join(map(str, extra))} "
                                   f"(a {kinds[0]} node takes {', '.join(allowed)})")
        specs[name] = dict(spec)
        if kinds[0] == "model":
            ref = spec["model"]
            if not isinstance(ref, str) or not ref:
                raise CompositionError(f"{where}: node '{name}': model must be a file path or a zoo model name")
            src = spec.get("input")
            if src is not None and not isinstance(src, str):
                raise CompositionError(f"{where}: node '{name}': input must be one node name (mix several with a "
                                       "sum, mean or weighted node)")
            channel = spec.get("channel")
            if channel is not None and (isinstance(channel, bool) or not isinstance(channel, int) or channel < 0):
                raise CompositionError(f"{where}: node '{name}': channel must be a channel index (0, 1, ...)")
            stage = _classify(ref, base, f"{where}: node '{name}' ({ref})", spec.get("config"))
            if channel is not None and stage.kind != "ir":
                raise CompositionError(f"{where}: node '{name}': 'channel' is for impulse-response files")
            stage.channel = channel
            _load_model(stage, ref, spec.get("config"))
            stages.append(stage)
    rate = _chain_rate(stages, sample_rate if sample_rate is not None else file_rate, f"{where}: ")
    notes: list[str] = []
    _load_irs(stages, rate, strict_rate, notes)
    loaded = iter(stages)
    nodes: dict[str, DagNode] = {}
    for name, spec in specs.items():
        if "model" in spec:
            st = next(loaded)
            nodes[name] = DagNode(model=st.model, input=spec.get("input") or AUDIO_INPUT, metadata=st.metadata)
        elif "weighted" in spec:
            w = spec["weighted"]
            if not isinstance(w, Mapping) or not w:
                raise CompositionError(f"{where}: node '{name}': weighted maps input names to weights, e.g. "
                                       "`{cab_a: 0.7, cab_b: 0.3}`")
            trainable = spec.get("trainable", False)
            if not isinstance(trainable, bool):
                raise CompositionError(f"{where}: node '{name}': trainable must be true or false")
            nodes[name] = DagNode(mix="weighted", inputs=tuple(map(str, w)), weights=tuple(w.values()),
                                  trainable=trainable)
        else:
            kind = next(k for k in MIX_KINDS if k in spec)
            srcs = spec[kind]
            if not isinstance(srcs, list) or not srcs or not all(isinstance(s, str) for s in srcs):
                raise CompositionError(f"{where}: node '{name}': {kind} lists input node names, e.g. `[cab_a, cab_b]`")
            nodes[name] = DagNode(mix=kind, inputs=tuple(srcs))
    try:
        model = NAMDAG(nodes, data["output"])
    except ValueError as e:
        raise CompositionError(f"{where}: {e}") from None
    return Composed(model, rate, notes)
