"""The spec language: a model is data — declared inputs and an ordered mapping of named layers.

```yaml
inputs: {x: [1, 150, 1]}           # per-sample shapes; several inputs are allowed
layers:
  conv1: {type: ConvBNReLULayer, out_channels: 8, kernel_size: 5, stride: 2}
  conv2: {type: ConvBNLayer, out_channels: 8, kernel_size: 3}
  res:   {type: Add, inputs: [conv2, conv1]}     # layers may name their inputs
  ...
outputs: [fc]                      # default: the last layer
```

Shapes are inferred layer by layer, so in_channels / in_features are never written by hand. Each layer
knows its parameters, MACs and device op class, so a spec can be summarised and checked before training.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import ValidationError
from torch import nn

from tinyverse.layers.base import Layer, LayerOp, Shape, SpecError, count_params, numel
from tinyverse.registry import LAYERS, RegistryError, closest

SPEC_VERSION = 1


@dataclass(frozen=True)
class LayerInfo:
    """A layer with everything inferred about it."""

    name: str
    layer: Layer
    sources: tuple[str, ...]
    in_shapes: tuple[Shape, ...]
    out_shape: Shape
    params: int
    macs: int
    ops: tuple[LayerOp, ...]

    @property
    def op_class(self) -> str:
        return "+".join(dict.fromkeys(op.op_class for op in self.ops)) or "-"


def _layer_from_dict(name: str, data: Any) -> Layer:
    if isinstance(data, Layer):
        return data
    if not isinstance(data, Mapping):
        raise SpecError(f"layers.{name}: expected a mapping with a 'type', got {type(data).__name__}")
    data = dict(data)
    type_name = data.pop("type", None)
    if type_name is None:
        raise SpecError(f"layers.{name}: missing 'type' (one of {', '.join(LAYERS.names())})")
    try:
        cls = LAYERS.get(type_name)
    except RegistryError as err:
        raise SpecError(f"layers.{name}.type: {err}") from None
    try:
        return cls(**data)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        if first["type"] == "extra_forbidden":
            valid = [f for f in cls.model_fields]
            hint = closest(key, valid)
            fix = f"did you mean {hint[0]!r}? " if hint else ""
            raise SpecError(f"layers.{name}.{key}: unknown argument of {type_name}; {fix}"
                            f"(valid: {', '.join(valid)})") from None
        raise SpecError(f"layers.{name}.{key}: {first['msg']}") from None


class ModelSpec:
    """Validated, shape-inferred spec. Build it with ``ModelSpec(dict)`` or ``ModelSpec.from_yaml(path)``."""

    def __init__(self, spec: Mapping[str, Any] | "ModelSpec"):
        if isinstance(spec, ModelSpec):
            spec = spec.to_dict()
        unknown = set(spec) - {"inputs", "layers", "outputs", "name", "version", "metadata"}
        if unknown:
            key = sorted(unknown)[0]
            hint = closest(key, ["inputs", "layers", "outputs", "name", "metadata"])
            raise SpecError(f"spec.{key}: unknown key" + (f"; did you mean {hint[0]!r}?" if hint else ""))
        inputs = spec.get("inputs")
        if not isinstance(inputs, Mapping) or not inputs:
            raise SpecError("spec.inputs: declare at least one input, e.g. inputs: {x: [1, 512, 1]}")
        self.inputs: dict[str, Shape] = {}
        for k, v in inputs.items():
            if not isinstance(v, (list, tuple)) or not v or not all(isinstance(d, int) and d > 0 for d in v):
                raise SpecError(f"spec.inputs.{k}: expected a list of positive ints (per-sample shape), got {v!r}")
            self.inputs[str(k)] = tuple(v)
        layers = spec.get("layers")
        if not isinstance(layers, Mapping) or not layers:
            raise SpecError("spec.layers: expected a non-empty mapping of named layers")
        self.name: str | None = spec.get("name")
        self.metadata: dict = dict(spec.get("metadata") or {})
        self.layers: dict[str, Layer] = {}
        for name, data in layers.items():
            if name in self.inputs:
                raise SpecError(f"layers.{name}: name is already used by a model input")
            self.layers[str(name)] = _layer_from_dict(str(name), data)
        outputs = spec.get("outputs") or [list(self.layers)[-1]]
        self.outputs: list[str] = [outputs] if isinstance(outputs, str) else list(outputs)
        self.info: dict[str, LayerInfo] = {}
        self._infer()

    # -- inference ---------------------------------------------------------------------------------------
    def _infer(self) -> None:
        shapes: dict[str, Shape] = dict(self.inputs)
        previous = list(self.inputs)[0]
        for name, layer in self.layers.items():
            sources = layer.sources(previous)
            for s in sources:
                if s not in shapes:
                    where = "a later layer" if s in self.layers else "no layer or input"
                    hint = closest(s, shapes)
                    raise SpecError(f"layers.{name}: input '{s}' is {where}"
                                    + (f"; did you mean {hint[0]!r}?" if hint else ""))
            if layer.arity == 1 and len(sources) != 1:
                raise SpecError(f"layers.{name}: {layer.type_name()} takes one input, got {len(sources)}")
            in_shapes = [shapes[s] for s in sources]
            try:
                out = tuple(int(d) for d in layer.output_shape(in_shapes))
                module = layer.build(in_shapes)
                macs = int(layer.macs(in_shapes, out))
            except (SpecError, ValueError) as err:
                raise SpecError(f"layers.{name} ({layer.type_name()}): {err}") from None
            params = count_params(module)
            ops = layer.device_ops(name, in_shapes, out, on_model_input=all(s in self.inputs for s in sources),
                                   params=params, macs=macs)
            self.info[name] = LayerInfo(name, layer, tuple(sources), tuple(in_shapes), out, params, macs,
                                        tuple(ops))
            shapes[name] = out
            previous = name
        for o in self.outputs:
            if o not in self.layers:
                hint = closest(o, self.layers)
                raise SpecError(f"spec.outputs: '{o}' is not a layer" + (f"; did you mean {hint[0]!r}?" if hint else ""))

    # -- facts -------------------------------------------------------------------------------------------
    @property
    def params(self) -> int:
        return sum(i.params for i in self.info.values())

    @property
    def macs(self) -> int:
        return sum(i.macs for i in self.info.values())

    @property
    def output_shapes(self) -> dict[str, Shape]:
        return {o: self.info[o].out_shape for o in self.outputs}

    def ops(self) -> list[LayerOp]:
        return [op for i in self.info.values() for op in i.ops]

    def activation_sizes(self) -> dict[str, int]:
        """Values held by each layer's output: a first-order input to RAM estimates."""
        return {name: numel(i.out_shape) for name, i in self.info.items()}

    def build_modules(self) -> dict[str, nn.Module]:
        return {name: i.layer.build(list(i.in_shapes)) for name, i in self.info.items()}

    # -- data round trip ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.name:
            out["name"] = self.name
        out["version"] = SPEC_VERSION
        out["inputs"] = {k: list(v) for k, v in self.inputs.items()}
        out["layers"] = {name: {"type": layer.type_name(), **layer.args()} for name, layer in self.layers.items()}
        out["outputs"] = list(self.outputs)
        if self.metadata:
            out["metadata"] = dict(self.metadata)
        return out

    def to_yaml(self, path: str | Path | None = None) -> str:
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_yaml(cls, source: str | Path) -> "ModelSpec":
        """From a YAML/JSON file path or a YAML string."""
        text = Path(source).read_text() if isinstance(source, Path) or (
            isinstance(source, str) and "\n" not in source and Path(source).is_file()) else str(source)
        data = yaml.safe_load(text)
        if not isinstance(data, Mapping):
            raise SpecError(f"{source}: a model spec must be a mapping with inputs and layers")
        return cls(data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelSpec) and self.to_dict() == other.to_dict()

    # -- human view --------------------------------------------------------------------------------------
    def summary_rows(self) -> list[dict[str, Any]]:
        return [{"name": i.name, "type": i.layer.type_name(), "inputs": ",".join(i.sources),
                 "output_shape": list(i.out_shape), "params": i.params, "macs": i.macs, "op_class": i.op_class}
                for i in self.info.values()]

    def summary(self) -> str:
        """A printable table: one row per layer, then totals."""
        header = ["layer", "type", "inputs", "output", "params", "MACs", "op"]
        rows = [[r["name"], r["type"], r["inputs"], "x".join(map(str, r["output_shape"])), f"{r['params']:,}",
                 f"{r['macs']:,}", r["op_class"]] for r in self.summary_rows()]
        ins = ", ".join(f"{k}: {'x'.join(map(str, v))}" for k, v in self.inputs.items())
        rows.append(["total", "", "", "", f"{self.params:,}", f"{self.macs:,}", ""])
        widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
        right = {4, 5}
        fmt = lambda row: "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)  # noqa: E731
                                    for i, (c, w) in enumerate(zip(row, widths))).rstrip()
        line = "-" * len(fmt(header))
        title = f"{self.name or 'model'}  (inputs {ins})"
        return "\n".join([title, line, fmt(header), line, *map(fmt, rows[:-1]), line, fmt(rows[-1])])

    def __repr__(self) -> str:
        return f"ModelSpec({self.name or 'model'}: {len(self.layers)} layers, {self.params:,} params)"

    def to_json(self) -> str:
        return json.dumps(self.to_dict())
