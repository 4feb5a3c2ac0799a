"""Streaming ONNX exports of a streaming model (:class:`tinyverse.models.contract.StreamingModel`), float and int8,
and the block-by-block runner of such a file.

* "context" models (WaveNet, Linear): the graph takes ``x`` of shape (N, block + receptive_field − 1) and returns
  ``y`` (N, block) — the model in "valid" mode — so a host keeps the last ``receptive_field − 1`` input samples
  between blocks. The block length is dynamic.
* "state" models (LSTM): inputs ``x`` (N, block) and the recurrent state (``h``, ``c``: (N, num_layers, hidden));
  outputs ``y`` (N, block), ``h_out``, ``c_out``. The host feeds the state it got back from the previous block; the
  first block starts from the model's initial state (stored in the file's metadata).

* knob models (``"params"`` in ``model.input_shapes``): a second input ``params`` (N, K), the knob values normalised
  to [0, 1] and ordered by name, after ``x`` (and before ``h`` / ``c``); the file's metadata carries the knob
  declaration (``knobs``: names, ranges, defaults, type) so a host can normalise a setting given by name.

The model says what is exported (``streaming_module()``, ``stream_metadata()``, ``initial_stream_state()``): nothing
here knows a model class. Each file carries ``metadata_props["tinyverse_stream"]`` (JSON: kind, receptive_field, and
a state model's initial state), so :class:`OnnxStreamProcessor` needs nothing else to run it. The int8 copy is
onnxruntime static quantization (QDQ, per-channel int8 weights, MinMax-calibrated int8 activations) calibrated on
blocks of the training signal; onnxruntime leaves an LSTM op itself in float.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tinyverse.audio.calibration import calibration_blocks, calibration_params, calibration_states
from tinyverse.audio.knobs import KnobSet
from tinyverse.export.onnx_float import quiet_onnx_export
from tinyverse.quantization import quantize_onnx_static

__all__ = ["STREAM_META_KEY", "OnnxStreamProcessor", "export_streaming_onnx", "is_knob_model", "knob_vector",
           "quantize_streaming_onnx", "stream_metadata", "write_stream_metadata"]

# The metadata_props key of a streaming ONNX file (written here, read by OnnxStreamProcessor).
STREAM_META_KEY = "tinyverse_stream"


def is_knob_model(model: Any) -> bool:
    """Whether ``model`` takes a knob vector (``"params"`` among its ``input_shapes``) besides the audio."""
    return "params" in (getattr(model, "input_shapes", None) or {})


def stream_metadata(model: nn.Module) -> dict[str, Any]:
    """What the file carries (``model.stream_metadata()``, :class:`tinyverse.models.contract.StreamingModel`)."""
    return model.stream_metadata()


def write_stream_metadata(path: str | Path, meta: dict[str, Any]) -> None:
    """Store ``meta`` (JSON) under :data:`STREAM_META_KEY` in the ONNX file at ``path``, replacing an older copy."""
    import onnx

    m = onnx.load(str(path))
    for p in list(m.metadata_props):
        if p.key == STREAM_META_KEY:
            m.metadata_props.remove(p)
    m.metadata_props.add(key=STREAM_META_KEY, value=json.dumps(meta))
    onnx.save(m, str(path))


def export_streaming_onnx(model: nn.Module, path: str | Path, block_size: int = 512) -> Path:
    """Export the model's streaming graph (``model.streaming_module()``): a block-with-context graph for a
    "context" model, a block-with-state graph for a "state" model (opset 18, dynamic batch and block length)."""
    path = Path(path)
    model = model.eval().float()
    step = model.streaming_module().eval()
    n = 2  # batch 2: never let the trace pin it to 1
    # a knob model's second input: the knob vector of each stream (held for the block)
    knobbed = {"params": torch.rand(n, *model.input_shapes["params"])} if is_knob_model(model) else {}
    if model.stream_kind == "state":
        state = model.initial_stream_state()
        example = (torch.randn(n, block_size), *knobbed.values(), *(torch.zeros(n, *t.shape) for t in state.values()))
        outs = [f"{name}_out" for name in state]
        # "export with batch 1 or give h0/c0 as inputs" (they are inputs) and the tracer's shape-check notes
        # go to the run log with the rest of the exporter's output.
        with quiet_onnx_export():
            torch.onnx.export(step, example, str(path), input_names=["x", *knobbed, *state],
                              output_names=["y", *outs], opset_version=18, dynamo=False,
                              dynamic_axes={"x": {0: "batch", 1: "block"}, "y": {0: "batch", 1: "block"},
                                            **{name: {0: "batch"} for name in [*knobbed, *state, *outs]}})
    else:
        rf = int(model.receptive_field)
        example = torch.randn(n, block_size + rf - 1)
        with quiet_onnx_export():
            torch.onnx.export(step, (example, *knobbed.values()), str(path), input_names=["x", *knobbed],
                              output_names=["y"], opset_version=18, dynamo=False,
                              dynamic_axes={"x": {0: "batch", 1: "samples"}, "y": {0: "batch", 1: "block"},
                                            **{name: {0: "batch"} for name in knobbed}})
    write_stream_metadata(path, stream_metadata(model))
    return path


def quantize_streaming_onnx(model: nn.Module, float_path: str | Path, int8_path: str | Path,
                            calib_audio: np.ndarray, block_size: int = 512, num_calib: int = 64) -> Path:
    """int8 QDQ copy of a streaming ONNX export, calibrated on ``num_calib`` blocks of ``calib_audio`` (the
    training signal; a "state" model's blocks start from its initial state; a knob model's each at a knob vector
    spread over the range, :func:`tinyverse.audio.calibration.calibration_params`)."""
    X = calibration_blocks(model, calib_audio, block_size, num_calib)
    arrays: list[np.ndarray] = [X]
    params = calibration_params(model, len(X)) if is_knob_model(model) else None
    if params is not None:
        arrays.append(params)
    # the states a stream carries at those blocks (a rig's histories would calibrate to a zero range at their initial
    # zeros); a knob LSTM settles its state at its setting, so its stored initial state is what a stream starts from
    if model.stream_kind == "state" and (params is None or "settle_samples" not in model.stream_metadata()):
        arrays += calibration_states(model, calib_audio, block_size, num_calib, params=params)
    else:
        arrays += [t.detach().float().numpy()[None].repeat(len(X), 0) for t in model.initial_stream_state().values()]
    quantize_onnx_static(float_path, int8_path, arrays, batch_size=8, max_samples=num_calib)
    write_stream_metadata(Path(int8_path), stream_metadata(model))
    return Path(int8_path)


class OnnxStreamProcessor:
    """Runs a streaming ONNX export block by block (``process(block)`` → the same number of samples): a block with its
    receptive-field context in (WaveNet / Linear), or a block with the carried LSTM state in and out.

    The kind, receptive field and initial state are read from the file's metadata; ``receptive_field`` is only
    needed for files written before the metadata existed. ``optimized=False`` runs the graph as written
    (``ORT_DISABLE_ALL``): the QDQ reference that onnxruntime's fused int8 kernels are checked against.

    A knob model's file (a ``params`` input) runs at ``params`` (the normalised knob vector; default: the declared
    defaults of the file's ``knobs``), fed with every block; :meth:`set_params` moves the knobs from the next block
    on. A knob LSTM starts each stream from the state silence settles to at its setting (``settle_samples`` zeros
    from the initial state, as the torch model's stream does).
    """

    def __init__(self, path: str | Path, receptive_field: int | None = None, optimized: bool = True,
                 params: Any = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        if not optimized:  # the graph as written: the QDQ reference that fused int8 kernels are checked against
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.input_name = self.input_names[0]
        meta = self.session.get_modelmeta().custom_metadata_map.get(STREAM_META_KEY)
        self.meta = json.loads(meta) if meta else {}
        self.stateful = self.meta.get("kind") == "state" or {"h", "c"} <= set(self.input_names)
        rf = self.meta.get("receptive_field", receptive_field)
        if rf is None:
            raise ValueError(f"{path}: no stream metadata; pass the model's receptive_field")
        self.rf = int(rf)
        self.knobbed = "params" in self.input_names
        self.params: np.ndarray | None = None
        if self.knobbed:
            self.params = knob_vector(self.meta, params, str(path))
        elif params is not None:
            raise ValueError(f"{path}: this file has no params input (not a knob model's export)")
        self.reset()

    def set_params(self, params: Any) -> None:
        """Move the knobs (a normalised vector) from the next block on; history / state carry over."""
        if not self.knobbed:
            raise ValueError("this file has no params input (not a knob model's export)")
        self.params = knob_vector(self.meta, params, "params")

    def _feed(self, x: np.ndarray, **state: np.ndarray) -> dict[str, np.ndarray]:
        feed = {self.input_name: x[None, :], **state}
        if self.knobbed:
            if self.params is None:
                raise ValueError("this file declares no knobs (no defaults): give the knob vector (set_params)")
            feed["params"] = self.params[None, :]
        return feed

    def reset(self) -> None:
        self.history = np.zeros(self.rf - 1, np.float32)
        if self.stateful and "initial_state" in self.meta:  # named states (a composed model's, one set per stage)
            init = self.meta["initial_state"]  # name -> values, or {"zeros": shape}
            self.states = {n: (np.zeros(v["zeros"], np.float32) if isinstance(v, dict) else
                               np.asarray(v, np.float32))[None] for n, v in init.items()}
        elif self.stateful:
            shape = {i.name: i.shape for i in self.session.get_inputs()}["h"]
            if "initial_h" in self.meta:
                self.h = np.asarray(self.meta["initial_h"], np.float32)[None]
                self.c = np.asarray(self.meta["initial_c"], np.float32)[None]
            else:
                self.h = np.zeros((1, int(shape[1]), int(shape[2])), np.float32)
                self.c = np.zeros_like(self.h)
            settle = int(self.meta.get("settle_samples") or 0) if self.knobbed and self.params is not None else 0
            if settle:  # a knob LSTM: the state silence settles to at this setting
                _, self.h, self.c = self.session.run(None, self._feed(np.zeros(settle, np.float32), h=self.h, c=self.c))

    def process(self, block: np.ndarray) -> np.ndarray:
        block = np.asarray(block, np.float32)
        if self.stateful and "initial_state" in self.meta:
            y, *outs = self.session.run(None, self._feed(block, **self.states))
            self.states = dict(zip(self.states, outs))
            return y.reshape(-1)
        if self.stateful:
            y, self.h, self.c = self.session.run(None, self._feed(block, h=self.h, c=self.c))
            return y.reshape(-1)
        full = np.concatenate([self.history, block])
        y = self.session.run(None, self._feed(full))[0].reshape(-1)
        if self.rf > 1:
            self.history = full[-(self.rf - 1):]
        return y


def knob_vector(meta: dict[str, Any], params: Any, where: str) -> np.ndarray | None:
    """The normalised knob vector (float32, (K,)) a streaming file runs at: ``params`` (a vector of the file's
    ``params_size``), or without one every knob at the default its metadata declares (None for a file that declares
    no knobs: the caller must give the vector before processing)."""
    size = meta.get("params_size")
    if params is None:
        if not meta.get("knobs"):
            return None
        return KnobSet.from_declaration(meta["knobs"]).vector({}, "defaults", fill_defaults=True)
    vec = np.asarray(params, np.float32).reshape(-1)
    if size is not None and vec.shape != (int(size),):
        raise ValueError(f"{where}: expected {int(size)} knob values, got {vec.shape[0]}")
    return vec
