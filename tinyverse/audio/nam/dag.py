"""A directed acyclic graph of NAM models: fan-out copies a signal, fan-in mixes branches (``sum``, ``mean``,
``weighted``) — e.g. drive → amp → two cabinet IRs in parallel → mix.

NAM Core has no such container; a DAG is written in tinyverse's own extension of the .nam format (``"architecture":
"DAG"``, docs/composition.md), except that a DAG without a fan-in is a chain and is written as NAM Core's plain
``Sequential``. Fan-ins add branches sample by sample without delay compensation (as a hardware mixer does,
and as Core would if it chained the same models): every NAM model is sample-synchronous (latency 0), and an
IR's own pre-delay is part of its sound. The reported latency is the longest path's.

Every stage keeps its own stream state and pre-warms on its own silence, as in :mod:`.sequential`; the whole graph
streams as one ONNX / TFLite graph (:mod:`.composed_stream`).
"""
from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import Any

import torch
import torch.nn as nn

from tinyverse.models.contract import DeviceOp, ModelCost

from .composed_stream import AUDIO_INPUT, ComposedStream, StreamNode
from .knob_stage import KnobsOfStages, takes_knobs
from .models import FILE_VERSIONS, NAMModel, NamWeightError, nam_object
from .sequential import ChildrenFollowSlim, NAMSequential, check_stage

__all__ = ["AUDIO_INPUT", "DagNode", "MIX_KINDS", "NAMDAG"]

MIX_KINDS = ("sum", "mean", "weighted")
_NODE_KEYS = frozenset({"name", "input", "model", "trainable", *MIX_KINDS})


@dataclass
class DagNode:
    """A model node (``model`` reading ``input``: another node or the audio input) or a fan-in node (``mix`` of
    ``inputs``; ``weights`` for "weighted", one per input; ``trainable`` makes them parameters)."""

    model: nn.Module | None = None
    input: str = AUDIO_INPUT
    mix: str | None = None
    inputs: tuple[str, ...] = ()
    weights: tuple[float, ...] | None = None
    trainable: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)  # a model node's own .nam metadata

    @property
    def sources(self) -> tuple[str, ...]:
        return (self.input,) if self.model is not None else self.inputs


def _did_you_mean(name: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


class NAMDAG(ChildrenFollowSlim, KnobsOfStages, ComposedStream, NAMModel):
    """Nodes by name (:class:`DagNode`) and the node whose output is the model's. Checked on construction (one-line
    ValueErrors naming the node): known sources, no cycle, every node on a path to the output, mono audio stages."""

    def __init__(self, nodes: Mapping[str, DagNode], output: str) -> None:
        super().__init__()
        if not nodes:
            raise ValueError("a DAG needs at least one node")
        names = list(nodes)
        if AUDIO_INPUT in nodes:
            raise ValueError(f"node '{AUDIO_INPUT}': the name is reserved for the audio input; rename the node")
        if output not in nodes:
            raise ValueError(f"output '{output}' is not a node{_did_you_mean(output, names)}; "
                             f"set output to one of: {', '.join(names)}")
        for name, n in nodes.items():
            if (n.model is None) == (n.mix is None):
                raise ValueError(f"node '{name}': give either a model or a fan-in ({', '.join(MIX_KINDS)})")
            if n.model is not None:
                check_stage(n.model, f"node '{name}'")
            else:
                if n.mix not in MIX_KINDS:
                    raise ValueError(f"node '{name}': unknown fan-in {n.mix!r} (use {', '.join(MIX_KINDS)})")
                if not n.inputs:
                    raise ValueError(f"node '{name}': {n.mix} needs at least one input")
                if len(set(n.inputs)) != len(n.inputs):
                    raise ValueError(f"node '{name}': {n.mix} lists an input twice; list each once")
                if n.mix == "weighted":
                    if n.weights is None or len(n.weights) != len(n.inputs):
                        raise ValueError(f"node '{name}': weighted needs one weight per input")
                    bad = [w for w in n.weights if isinstance(w, bool) or not isinstance(w, (int, float))
                           or not math.isfinite(w)]
                    if bad:
                        raise ValueError(f"node '{name}': weighted weights must be finite numbers, got {bad[0]!r}")
                elif n.weights is not None or n.trainable:
                    raise ValueError(f"node '{name}': only a weighted fan-in has weights")
            for src in n.sources:
                if src != AUDIO_INPUT and src not in nodes:
                    raise ValueError(f"node '{name}' reads '{src}', which is not a node"
                                     f"{_did_you_mean(src, names)}; name a node or '{AUDIO_INPUT}' (the audio input)")
        deps = {name: {s for s in n.sources if s != AUDIO_INPUT} for name, n in nodes.items()}
        try:
            order = list(TopologicalSorter(deps).static_order())
        except CycleError as e:
            cycle = list(reversed(e.args[1]))
            raise ValueError(f"the graph has a cycle: {' -> '.join(cycle)}; a node cannot read its own output, "
                             "directly or through others") from None
        used, todo = set(), [output]
        while todo:
            name = todo.pop()
            if name not in used:
                used.add(name)
                todo += list(deps[name])
        unused = [n for n in names if n not in used]
        if unused:
            raise ValueError(f"node '{unused[0]}' is not on a path to the output '{output}'; connect it or remove it")
        self.order = order
        self.output = output
        self.nodes = {name: nodes[name] for name in order}
        # Lists, not ModuleDicts: a node name is the user's (it may hold dots or shadow a Module attribute).
        self.stages = nn.ModuleList(n.model for n in self.nodes.values() if n.model is not None)
        self.mix_weights = nn.ModuleList()  # weighted fan-ins: a parameter when trainable, else a buffer
        self._mix_index: dict[str, int] = {}
        for name, n in self.nodes.items():
            if n.mix == "weighted":
                holder = nn.Module()
                w = torch.tensor([float(v) for v in n.weights or ()])
                if n.trainable:
                    holder.w = nn.Parameter(w)
                else:
                    holder.register_buffer("w", w)
                self._mix_index[name] = len(self.mix_weights)
                self.mix_weights.append(holder)
        self._slim: float | None = None
        self.knobs  # noqa: B018 - a knob that two stages declare differently is refused here

    @classmethod
    def from_nam_config(cls, config: dict[str, Any],
                        read_child: Callable[[Any, str], tuple[nn.Module, dict[str, Any]]]) -> NAMDAG:
        """Build from the ``config`` of a ``"DAG"`` .nam object (docs/composition.md); ``read_child(obj, where)``
        reads one complete nested .nam object → (model, its metadata)."""
        extra = sorted(set(config) - {"nodes", "output"})
        if extra:
            raise ValueError(f"DAG config uses unsupported key(s): {', '.join(extra)} (known: nodes, output)")
        raw = config.get("nodes")
        if not isinstance(raw, list) or not raw:
            raise ValueError("DAG config needs a non-empty 'nodes' list")
        if not isinstance(config.get("output"), str):
            raise ValueError("DAG config needs 'output', the name of the node whose output is the model's")
        nodes: dict[str, DagNode] = {}
        for i, obj in enumerate(raw):
            if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
                raise ValueError(f"DAG node {i} must be an object with a 'name'")
            name = obj["name"]
            extra = sorted(set(obj) - _NODE_KEYS)
            if extra:
                raise ValueError(f"DAG node '{name}' uses unsupported key(s): {', '.join(extra)}")
            if name in nodes:
                raise ValueError(f"DAG node '{name}' is defined twice")
            mixes = [k for k in MIX_KINDS if k in obj]
            if ("model" in obj) + len(mixes) != 1:
                raise ValueError(f"DAG node '{name}' needs exactly one of: model, {', '.join(MIX_KINDS)}")
            if "model" in obj:
                src = obj.get("input")
                if src is not None and not isinstance(src, str):
                    raise ValueError(f"DAG node '{name}': 'input' must be a node name or null")
                model, meta = read_child(obj["model"], f"node '{name}'")
                nodes[name] = DagNode(model=model, input=src or AUDIO_INPUT, metadata=meta)
                continue
            kind = mixes[0]
            spec = obj[kind]
            if kind == "weighted":
                if not isinstance(spec, dict) or not spec:
                    raise ValueError(f"DAG node '{name}': weighted must map input names to weights")
                nodes[name] = DagNode(mix=kind, inputs=tuple(spec), weights=tuple(spec.values()),
                                      trainable=bool(obj.get("trainable", False)))
            else:
                if not isinstance(spec, list) or not all(isinstance(s, str) for s in spec):
                    raise ValueError(f"DAG node '{name}': {kind} must list input names")
                nodes[name] = DagNode(mix=kind, inputs=tuple(spec))
        return cls(nodes, config["output"])

    # -- structure -------------------------------------------------------------------------------------------
    @property
    def is_chain(self) -> bool:
        """No fan-in: the nodes form one path from the input to the output (every node is on that path)."""
        return all(n.model is not None for n in self.nodes.values())

    def chain(self) -> list[str]:
        """A chain's node names from the input to the output."""
        if not self.is_chain:
            raise ValueError("this DAG has a fan-in; it is not a chain")
        return list(self.order)  # one source per node, all on the path: the topological order is the path

    def as_sequential(self) -> NAMSequential:
        """The same models as NAM Core's Sequential (a chain only; shares the modules)."""
        names = self.chain()
        return NAMSequential([self.nodes[n].model for n in names],  # type: ignore[misc]
                             [self.nodes[n].metadata for n in names])

    def mix_weight(self, name: str) -> torch.Tensor:
        """A weighted fan-in's weights (a parameter when trainable)."""
        return self.mix_weights[self._mix_index[name]].w

    @property
    def nam_architecture(self) -> str:  # type: ignore[override]
        return "Sequential" if self.is_chain else "DAG"

    # -- .nam ------------------------------------------------------------------------------------------------
    @property
    def num_weights(self) -> int:
        return 0  # the node models hold their weights; fan-in weights are in the config

    def import_weights(self, flat: Sequence[float]) -> None:
        if len(flat):
            raise NamWeightError(f"weight count mismatch for DAG: expected 0 got {len(flat)} (the node models hold "
                                 "the weights)")

    def export_weights(self) -> list[float]:
        return []

    def nam_version(self) -> str:
        return FILE_VERSIONS[-1]

    def nam_config(self, sample_rate: float | None = None) -> dict[str, Any]:
        if self.is_chain:  # NAM Core loads a Sequential
            return self.as_sequential().nam_config(sample_rate)
        nodes = []
        for name, n in self.nodes.items():
            if n.model is not None:
                nodes.append({"name": name, "input": None if n.input == AUDIO_INPUT else n.input,
                              "model": nam_object(n.model, n.metadata, sample_rate)})  # type: ignore[arg-type]
            elif n.mix == "weighted":
                w = self.mix_weight(name).detach().double().tolist()
                nodes.append({"name": name, "weighted": dict(zip(n.inputs, w)), "trainable": n.trainable})
            else:
                nodes.append({"name": name, n.mix: list(n.inputs)})
        return {"nodes": nodes, "output": self.output}

    # -- the size knob: every slimmable stage follows it (ChildrenFollowSlim) -----------------------------------
    composed_name = "DAG"

    def slim_children(self) -> Sequence[nn.Module]:
        return self.stages

    # -- the knobs: each knob stage's (KnobsOfStages) ----------------------------------------------------------
    def knob_stages(self) -> list[tuple[str, nn.Module]]:
        return [(f"node '{name}'", n.model) for name, n in self.nodes.items()
                if n.model is not None and takes_knobs(n.model)]

    # -- the contract ----------------------------------------------------------------------------------------
    def stream_nodes(self) -> list[StreamNode]:
        return [StreamNode(name, (n.input,), model=n.model) if n.model is not None else
                StreamNode(name, n.inputs, mix=n.mix, weights=self.mix_weight(name) if n.mix == "weighted" else None)
                for name, n in self.nodes.items()]

    @property
    def stream_output(self) -> str:
        return self.output

    def _longest(self, stage: Callable[[nn.Module], int]) -> int:
        """The longest path from the input to the output, each model adding ``stage(model)``."""
        reach = {AUDIO_INPUT: 0}
        for name, n in self.nodes.items():
            top = max(reach[s] for s in n.sources)
            reach[name] = top + (stage(n.model) if n.model is not None else 0)
        return reach[self.output]

    @property
    def receptive_field(self) -> int:
        return 1 + self._longest(lambda m: int(m.receptive_field) - 1)

    def mix_macs(self) -> int:
        """MACs per sample of the fan-ins: weighted k (a multiply-add per input), mean k (k − 1 adds, one
        scale), sum k − 1 (adds)."""
        return sum(len(n.inputs) - (n.mix == "sum") for n in self.nodes.values() if n.mix is not None)

    def cost(self) -> ModelCost:
        costs = [m.cost() for m in self.stages]  # type: ignore[operator]
        mix_values = sum(len(n.inputs) for n in self.nodes.values() if n.mix == "weighted")
        knob = self.knob_cost()
        return ModelCost(params=int(sum(p.numel() for p in self.parameters())),
                         macs_per_sample=sum(int(c.macs_per_sample or 0) for c in costs) + self.mix_macs()
                         + knob["extra_macs_per_sample"],
                         receptive_field=self.receptive_field,
                         latency_samples=self._longest(lambda m: int(m.cost().latency_samples)),
                         weights=sum(int(c.weights if c.weights is not None else c.params) for c in costs)
                         + mix_values, conditioning_macs=knob["conditioning_macs"],
                         conditioning_per=knob["conditioning_per"])

    def _macs_per_sample(self) -> int:
        return int(self.cost().macs_per_sample or 0)

    def describe(self) -> dict[str, Any]:
        nodes = {}
        for name, n in self.nodes.items():
            nodes[name] = {"input": n.input, **n.model.describe()} if n.model is not None else \
                {n.mix: list(n.inputs)}  # type: ignore[operator]
        return {"architecture": self.nam_architecture, "output": self.output, "nodes": nodes}

    def device_ops(self) -> list[DeviceOp]:
        ops = [op for m in self.stages for op in m.device_ops()]  # type: ignore[operator]
        if any(n.mix is not None for n in self.nodes.values()):
            ops.append({"op_class": "ADD"})
        return ops

    def _mix(self, name: str, ins: list[torch.Tensor]) -> torch.Tensor:
        n = self.nodes[name]
        length = min(t.shape[-1] for t in ins)  # valid-mode branches end together; keep the samples all have
        stacked = torch.stack([t[..., t.shape[-1] - length:] for t in ins])
        if n.mix == "sum":
            return stacked.sum(0)
        if n.mix == "mean":
            return stacked.mean(0)
        w = self.mix_weight(name).to(stacked.dtype)
        return (stacked * w.reshape(-1, *([1] * (stacked.dim() - 1)))).sum(0)

    def forward(self, x: torch.Tensor, pad_start: bool = False, params: Any = None) -> torch.Tensor:
        """Valid mode (a fan-in keeps the samples every branch has) or, with ``pad_start``, each model padded with
        its own silence (Core's per-model pre-warm); (N, L) or (N, 1, L) → (N, L_out). ``params``: the knob vector
        (ordered by name, ``knobs``) the knob stages play at (default: their declared defaults)."""
        shares = self.stage_params(params)
        outs = {AUDIO_INPUT: x.reshape(x.shape[0], -1)}
        for name, n in self.nodes.items():
            if n.model is not None:
                outs[name] = self.stage_forward(n.model, outs[n.input], pad_start, shares)
            else:
                outs[name] = self._mix(name, [outs[s] for s in n.inputs])
        return outs[self.output]

    def stream_init(self, dtype: torch.dtype = torch.float32, params: Any = None) -> dict[str, Any]:
        shares = self.stage_params(params)
        return {name: self.stage_stream_init(n.model, dtype, shares)
                for name, n in self.nodes.items() if n.model is not None}

    def stream_params(self, state: Any, params: Any) -> dict[str, Any]:
        """``state`` with the knob stages moved to ``params`` from the next block on (every history carries over)."""
        shares = self.stage_params(params)
        return {name: self.stage_stream_params(self.nodes[name].model, s, shares) for name, s in state.items()}

    @torch.no_grad()
    def stream_block(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        outs = {AUDIO_INPUT: x.reshape(1, -1)}
        new = dict(state)
        for name, n in self.nodes.items():
            if n.model is not None:
                y, new[name] = n.model.stream_block(outs[n.input], state[name])  # type: ignore[operator]
                outs[name] = y.reshape(1, -1)
            else:
                outs[name] = self._mix(name, [outs[s] for s in n.inputs])
        return outs[self.output][0], new

    def stream_metadata(self) -> dict[str, Any]:
        return {**super().stream_metadata(), "nodes": list(self.nodes), **self.composed_stream_metadata()}

    def prepare_for_inference(self) -> None:
        for m in self.stages:
            m.prepare_for_inference()  # type: ignore[operator]
