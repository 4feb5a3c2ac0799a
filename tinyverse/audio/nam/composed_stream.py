"""The streaming graphs of a composed model (:class:`~.sequential.NAMSequential`, :class:`~.dag.NAMDAG`): its stages'
own streaming graphs wired as the chain or the graph, every stage with its own state.

NAM Core runs each child of a container with its own buffers, pre-warmed on its own silence: at the start of a stream
a cabinet's history holds zeros, not the amp's answer to silence. One block-with-context graph for the whole chain
cannot express that (and would recompute the first stages over the later stages' context on every block), so a
composed model streams as a ``"state"`` model (:class:`tinyverse.models.contract.StreamingModel`): the graph takes the
block and returns the block, and each stage keeps what it needs between blocks —

* a ``"context"`` stage (WaveNet, Linear / IR, ConvNet): its own input history, the last ``receptive_field − 1``
  samples it was fed (zeros at the start: the stage's own silence, exactly Core's pre-warm);
* a ``"state"`` stage (LSTM, a nested Sequential / DAG): its own state tensors, from its own initial state.

Fan-out reads one tensor twice (each reader keeps its own history); fan-in is a sum, a mean or a weighted sum of
block-aligned branches. Nothing here knows a stage's class: a stage is asked for its ``stream_kind``,
``receptive_field``, ``streaming_module()``, ``initial_stream_state()`` and ``streaming_twin()``.

* **ONNX** (:meth:`ComposedStream.streaming_module`): ``(x, *states) → (y, *states_out)``, states named
  ``s<k>_history`` (a context stage's history, (N, rf − 1)) or ``s<k>_<name>`` (a state stage's own, e.g. ``s1_h``),
  ``k`` the stage's index in stream order; their initial values are in the file's metadata (``initial_state``: name
  → nested list, or ``{"zeros": shape}``).
* **TFLite** (:meth:`ComposedStream.streaming_twin`): one input (the block) and one output; each history is a
  resource variable inside the file (``history`` op: VAR_HANDLE / READ_VARIABLE / ASSIGN_VARIABLE, zeros at the
  start, carried from one invoke to the next by LiteRT and TFLite Micro), so a host — or an MCU with the C array —
  feeds blocks and nothing else. A stage whose twin keeps its state in a fused LSTM op cannot be part of it yet.

A rig with knob stages (:class:`~.knob_stage.KnobStage`) takes the rig's knob vector as a second ONNX input
``params`` (N, K), ordered by name (the union of its stages' knobs, ``KnobsOfStages``), after ``x`` and before the
states; each knob stage's graph reads its own columns (in TFLite: a second input ``params`` (1, K), each knob stage
reading its columns through a constant 0/1 FULLY_CONNECTED). A knob stage that keeps a recurrent state (CatLSTM: it
settles at its setting before a stream starts) cannot stream inside a rig yet; ``unavailable_exports`` says why.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from tinyverse.audio.twin import AudioExportError, TwinPlan

from .knob_stage import takes_knobs

__all__ = ["AUDIO_INPUT", "ComposedStream", "StreamNode", "TWIN_STATE_OPS"]

AUDIO_INPUT = "input"  # the name a node uses to read the audio input
# Twin ops that keep their state inside the op (a fused LSTM): the composed twin's history variables and the Keras
# path such an op converts through do not mix yet.
TWIN_STATE_OPS = ("lstm",)


@dataclass(frozen=True)
class StreamNode:
    """One node in stream order: a stage (``model`` reading ``sources[0]``) or a fan-in (``mix`` of ``sources``;
    ``weights`` for "weighted", one per source)."""

    name: str
    sources: tuple[str, ...]
    model: nn.Module | None = None
    mix: str | None = None
    weights: torch.Tensor | None = None


@dataclass(frozen=True)
class _StageState:
    """What stage ``index`` keeps between blocks: a history of ``history`` samples (a context stage), or its own named
    states (a state stage, whose streaming graph returns ``(y, *states_out)``)."""

    index: int
    history: int = 0
    names: tuple[str, ...] = ()  # a state stage's own state names, in its order
    stateful: bool = False


def _stage_states(nodes: Sequence[StreamNode]) -> dict[str, _StageState]:
    out: dict[str, _StageState] = {}
    k = 0
    for node in nodes:
        if node.model is None:
            continue
        m = node.model
        if m.stream_kind == "context":
            out[node.name] = _StageState(k, history=int(m.receptive_field) - 1)
        else:
            out[node.name] = _StageState(k, names=tuple(m.initial_stream_state()), stateful=True)
        k += 1
    return out


def _mix(kind: str, ins: list[torch.Tensor], weights: torch.Tensor | None) -> torch.Tensor:
    if kind == "sum":
        return torch.stack(ins).sum(0)
    if kind == "mean":
        return torch.stack(ins).mean(0)
    w = weights.to(ins[0].dtype)  # type: ignore[union-attr]
    return sum(t * w[i] for i, t in enumerate(ins))  # type: ignore[return-value]


class _ComposedStep(nn.Module):
    """``(x, *states) → (y, *states_out)`` of a composed model (states batch-first, in ``initial_stream_state``
    order); with knob stages ``(x, params, *states)``, ``knob_columns`` naming each knob stage's columns of
    ``params``."""

    def __init__(self, nodes: Sequence[StreamNode], output: str,
                 knob_columns: dict[str, list[int]] | None = None) -> None:
        super().__init__()
        self.nodes = list(nodes)
        self.output = output
        self.states = _stage_states(nodes)
        self.knob_columns = dict(knob_columns or {})
        # the stages' own streaming graphs, in stream order (submodules, so .float() / .eval() reach them)
        self.steps = nn.ModuleList(n.model.streaming_module() for n in nodes if n.model is not None)  # type: ignore

    def forward(self, x: torch.Tensor, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        params, states = (inputs[0], inputs[1:]) if self.knob_columns else (None, inputs)
        outs = {AUDIO_INPUT: x}
        new: list[torch.Tensor] = []
        pos, k = 0, 0
        for node in self.nodes:
            if node.model is None:
                outs[node.name] = _mix(node.mix, [outs[s] for s in node.sources], node.weights)  # type: ignore
                continue
            u, st, step = outs[node.sources[0]], self.states[node.name], self.steps[k]
            k += 1
            cols = self.knob_columns.get(node.name)
            knob = () if cols is None else (params[:, cols],)  # type: ignore[index]
            if st.history:
                full = torch.cat([states[pos], u], dim=1)
                pos += 1
                outs[node.name] = step(full, *knob)
                new.append(full[:, full.shape[1] - st.history:])
            elif st.stateful:
                res = step(u, *knob, *states[pos:pos + len(st.names)])
                pos += len(st.names)
                outs[node.name] = res[0]
                new += list(res[1:])
            else:  # a context stage of receptive field 1: nothing to keep
                outs[node.name] = step(u, *knob)
        return (outs[self.output], *new)


def _embed(plan: TwinPlan, child: TwinPlan, prefix: str, src: str, extra: dict[str, str] | None = None) -> str:
    """Append ``child``'s ops to ``plan`` with names prefixed, its input ``x`` read from ``src`` (and each of its extra
    inputs, e.g. a knob stage's ``params``, from ``extra[name]``); its output's name."""
    rename = {"x": src, **(extra or {})}
    for op in child.ops:
        rename[op["name"]] = prefix + op["name"]
        plan.ops.append({**op, "name": rename[op["name"]], "src": [rename[s] for s in op["src"]]})
        plan.offset[rename[op["name"]]] = 0  # every stage's output is aligned to the block
    for key, value in child.weights.items():
        plan.weights[prefix + key] = value
    return rename[child.output]


class ComposedStream:
    """The streaming half of the model contract for a composed model; the class gives ``stream_nodes()`` (the nodes
    in stream order), ``stream_output`` (the node whose output is the model's) and ``composed_name``."""

    composed_name = "composed model"

    def stream_nodes(self) -> list[StreamNode]:
        raise NotImplementedError

    @property
    def stream_output(self) -> str:
        raise NotImplementedError

    def stream_stages(self) -> list[nn.Module]:
        return [n.model for n in self.stream_nodes() if n.model is not None]  # type: ignore[misc]

    @property
    def stream_kind(self) -> str:
        return "state"  # every stage keeps its own history / state between blocks

    def stream_blockers(self) -> list[str]:
        """Why the streaming graph cannot be built (a stage that needs more than the audio and its knobs, a knob stage
        with a recurrent state, or one without a streaming graph); [] when it can."""
        out = []
        for i, m in enumerate(self.stream_stages()):
            extra = sorted(set(m.input_shapes) - {"audio", "params"})  # type: ignore[attr-defined]
            if extra:
                out.append(f"stage {i} ({m.describe()['architecture']}) takes {', '.join(extra)} "  # type: ignore
                           "besides the audio, which the streaming graph of a composed model has no input for yet")
            elif takes_knobs(m) and m.stream_kind == "state":  # type: ignore[attr-defined]
                out.append(f"stage {i} ({m.describe().get('knob_architecture', 'knob model')}) is a knob model "  # type: ignore
                           "with a recurrent state, which settles at its setting before a stream starts; the "
                           "streaming graph of a composed model cannot settle it yet")
            else:
                out += [f"stage {i}: {why}" for why in m.stream_blockers()] if hasattr(m, "stream_blockers") else []
        return out

    def knob_columns(self) -> dict[str, list[int]]:
        """Node name → the columns of the composed model's knob vector (``knobs``, ordered by name) its knob stage
        reads; {} without knob stages."""
        knobs = getattr(self, "knobs", None)
        if knobs is None:
            return {}
        return {n.name: [knobs.names.index(k) for k in n.model.knobs.names]  # type: ignore[union-attr]
                for n in self.stream_nodes() if n.model is not None and takes_knobs(n.model)}

    def _check_streamable(self) -> None:
        blockers = self.stream_blockers()
        if blockers:
            raise AudioExportError(f"no streaming graph for this {self.composed_name}: {blockers[0]}")

    def initial_stream_state(self) -> dict[str, torch.Tensor]:
        """Each stage's state at the start of a stream, by input name of the streaming graph (no batch axis): zeros
        for a history (the stage's own silence), a state stage's own initial state."""
        out: dict[str, torch.Tensor] = {}
        nodes = self.stream_nodes()
        states = _stage_states(nodes)
        for node in nodes:
            if node.model is None:
                continue
            st = states[node.name]
            if st.history:
                p = next(node.model.parameters(), None)
                out[f"s{st.index}_history"] = torch.zeros(st.history,
                                                          dtype=p.dtype if p is not None else torch.float32)
            else:
                for name, t in node.model.initial_stream_state().items():  # type: ignore[operator]
                    out[f"s{st.index}_{name}"] = t.detach()
        return out

    def streaming_module(self) -> nn.Module:
        self._check_streamable()
        return _ComposedStep(self.stream_nodes(), self.stream_output, self.knob_columns())

    def composed_stream_metadata(self) -> dict[str, Any]:
        """What a streaming file of the model carries besides the base fields: every state's initial value, a
        history as ``{"zeros": shape}`` (thousands of zeros for a cabinet IR would bloat the file, and the C array)."""
        if self.stream_blockers():
            return {}
        knobs = getattr(self, "knobs", None)  # a rig with knob stages: what a host needs to set them by name
        return {"initial_state": {k: {"zeros": list(v.shape)} if not bool(v.any()) else v.double().tolist()
                                  for k, v in self.initial_stream_state().items()},
                **({} if knobs is None else {"params_size": len(knobs), "knobs": knobs.declaration()})}

    @torch.no_grad()
    def twin_reference(self, x: torch.Tensor, params: torch.Tensor | None = None) -> torch.Tensor:
        """What the TFLite twin computes on the rows of ``x`` (N, block) fed one after the other, as one stream from
        the start (its history variables start at zero and carry from one invoke to the next); a rig with knob stages
        each row at its row of ``params`` (N, K)."""
        step = self.streaming_module()
        states = [t[None].to(x.dtype) for t in self.initial_stream_state().values()]
        out = []
        for i, row in enumerate(x):
            knob = () if params is None else (params[i:i + 1].to(x.dtype),)
            res = step(row[None], *knob, *states)
            out.append(res[0])
            states = list(res[1:])
        return torch.cat(out)

    def streaming_twin(self, block_size: int) -> TwinPlan:
        """The stages' twins wired as the model: a ``history`` op (a resource variable of ``receptive_field − 1``
        samples) before each context stage, a nested composed stage's own twin as it is, fan-ins as ``add`` /
        ``mean`` / scaled ``add``. Input: the block."""
        self._check_streamable()
        plan = TwinPlan([block_size, 1, 1])
        where = {AUDIO_INPUT: "x"}
        states = _stage_states(self.stream_nodes())
        columns = self.knob_columns()
        if columns:  # the rig's knob vector, (K,) in knob-name order
            plan.add_input("params", [len(self.knobs)])  # type: ignore[attr-defined]
        for node in self.stream_nodes():
            if node.model is None:
                srcs = [where[s] for s in node.sources]
                name = f"mix_{len(where)}"
                if node.mix == "weighted":
                    w = node.weights.detach().double().numpy()  # type: ignore[union-attr]
                    srcs = [_scale(plan, f"{name}_w{i}", s, float(w[i])) for i, s in enumerate(srcs)]
                kind = "mean" if node.mix == "mean" else "add"
                where[node.name] = plan.op(kind, name, srcs) if len(srcs) > 1 else srcs[0]
                continue
            st = states[node.name]
            extra = {}
            if node.name in columns:  # a knob stage reads its own columns: a constant 0/1 selection (FULLY_CONNECTED)
                extra["params"] = _select(plan, f"s{st.index}_params", columns[node.name], len(self.knobs))  # type: ignore
            src = where[node.sources[0]]
            if st.history:
                src = plan.op("history", f"s{st.index}_history", [src], length=st.history, shape=[st.history, 1, 1])
            child = node.model.streaming_twin(block_size)  # type: ignore[operator]
            inner = [op["kind"] for op in child.ops if op["kind"] in TWIN_STATE_OPS]
            if inner:
                raise AudioExportError(f"no streaming TFLite twin for this {self.composed_name}: stage {st.index} "
                                       f"keeps its state in a fused {inner[0].upper()} op, which the composed twin "
                                       "(history variables) cannot hold yet; the streaming ONNX export has it")
            where[node.name] = _embed(plan, child, f"s{st.index}_", src, extra)
        plan.output = where[self.stream_output]
        return plan

    def unavailable_exports(self) -> dict[str, str]:
        """Every streaming export when a stage blocks the streaming graph; the TFLite ones when only the twin cannot
        be built; {} otherwise."""
        from .models import TWIN_EXPORTS

        blockers = self.stream_blockers()
        if blockers:
            why = f"no streaming graph for this {self.composed_name}: {blockers[0]}"
            return {step: why for step in ("onnx", "onnx_int8", *TWIN_EXPORTS)}
        try:
            self.streaming_twin(64)
        except AudioExportError as e:
            return {step: str(e) for step in TWIN_EXPORTS}
        return {}


def _select(plan: TwinPlan, name: str, cols: list[int], k: int) -> str:
    """``params[cols]``: the knob vector itself when ``cols`` is all of it in order, else a dense op with one-hot
    columns (exact in float; in int8 one requantization of values already on the params input's grid)."""
    if cols == list(range(k)):
        return "params"
    w = np.zeros((k, len(cols)), np.float32)
    w[cols, np.arange(len(cols))] = 1.0
    plan.weights[f"{name}/w"] = w
    return plan.op("dense", name, ["params"], activation=None)


def _scale(plan: TwinPlan, name: str, src: str, w: float) -> str:
    plan.weights[f"{name}/scale"] = np.array([w], np.float32)
    plan.weights[f"{name}/shift"] = np.zeros(1, np.float32)
    return plan.op("affine", name, [src])
