"""The TensorFlow twin of a streaming audio model, as data: an op list with Keras-layout weights.

A model builds its plan (``model.streaming_twin(block_size)``, :class:`tinyverse.models.contract.StreamingModel`);
the TFLite conversion job (:mod:`tinyverse.export.tflite_job`) hands it to the one TFLite worker
(:mod:`tinyverse.export.tflite_worker`, whose table lists the op vocabulary both modalities share), which checks it
against torch and converts it. The ops a streaming model uses: ``conv`` (a torch Conv1d as one CONV_2D with a (K, 1)
kernel and a dilation factor), ``crop`` (drop the oldest samples: valid-mode alignment), ``add``, ``mul``, ``act``
(``fn`` one of :data:`TWIN_ACTIVATIONS`' values), ``lstm`` and ``dense``; a knob model's plan has a second input,
``params`` (:meth:`TwinPlan.add_input`), and adds ``reshape``, ``broadcast`` and ``concat`` (the knobs held over the
block) and ``matmul`` (weights a hypernetwork computes). No torch here: the plan is plain numpy so it can be written to
the job's folder.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["AudioExportError", "TWIN_ACTIVATIONS", "TwinPlan"]

# NAM activation name → the worker's activation name.
TWIN_ACTIVATIONS = {"Tanh": "tanh", "Sigmoid": "sigmoid", "ReLU": "relu", "Hardtanh": "hardtanh",
                    "Fasttanh": "fasttanh"}


class AudioExportError(RuntimeError):
    """An audio export that could not be written; the message says why."""


class TwinPlan:
    """Ops in order, each naming its sources; tracks every tensor's offset (input samples dropped from its
    start) so crops align the residual, head and condition paths as valid-mode convs shorten them."""

    def __init__(self, input_shape: list[int]) -> None:
        self.input_shape = input_shape
        self.extra_inputs: dict[str, list[int]] = {}  # inputs after ``x`` (a knob model's ``params``)
        self.ops: list[dict[str, Any]] = []
        self.weights: dict[str, np.ndarray] = {}
        self.offset = {"x": 0}  # samples dropped from the start of the input (valid-mode alignment)
        self.output = "x"

    def add_input(self, name: str, shape: list[int]) -> str:
        """A second input (no time axis, e.g. a knob model's ``params`` of shape [K]): offset 0, so an op on it and a
        signal takes the signal's alignment (its value is constant over the block)."""
        self.extra_inputs[name] = list(shape)
        self.offset[name] = 0
        return name

    def conv(self, name: str, src: str, weight: np.ndarray, bias: np.ndarray | None, dilation: int = 1) -> str:
        """torch Conv1d weight (out, in, K) → Keras Conv2D kernel (K, 1, in, out)."""
        k = weight.shape[2]
        self.weights[f"{name}/w"] = np.ascontiguousarray(weight.transpose(2, 1, 0)[:, None, :, :], np.float32)
        if bias is not None:
            self.weights[f"{name}/b"] = np.asarray(bias, np.float32)
        self.ops.append({"kind": "conv", "name": name, "src": [src], "strides": [1, 1], "dilation": [int(dilation), 1],
                         "padding": "valid", "pad": None, "activation": None})
        self.offset[name] = self.offset[src] + dilation * (k - 1)
        return name

    def crop(self, name: str, src: str, offset: int) -> str:
        top = offset - self.offset[src]
        if top < 0:
            raise AudioExportError(f"internal: cannot crop {src} to offset {offset}")
        if top == 0:
            return src
        self.ops.append({"kind": "crop", "name": name, "src": [src], "top": int(top)})
        self.offset[name] = offset
        return name

    def op(self, kind: str, name: str, srcs: list[str], **kw: Any) -> str:
        self.ops.append({"kind": kind, "name": name, "src": srcs, **kw})
        self.offset[name] = max(self.offset[s] for s in srcs)
        return name

    def to_json(self) -> dict[str, Any]:
        """The worker's plan: input ``x`` of ``input_shape`` (no batch axis) then any :meth:`add_input`, the ops, one
        output."""
        inputs = [{"name": "x", "shape": list(self.input_shape)}]
        inputs += [{"name": n, "shape": list(s)} for n, s in self.extra_inputs.items()]
        return {"inputs": inputs, "ops": self.ops, "outputs": [self.output]}
