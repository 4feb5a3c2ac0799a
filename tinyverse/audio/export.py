"""Streaming ONNX exports of audio models, float and int8.

* WaveNet / Linear ("context" models): the graph takes ``x`` of shape (N, block + receptive_field − 1) and
  returns ``y`` (N, block) — the model in "valid" mode — so a host keeps the last ``receptive_field − 1`` input
  samples between blocks. The block length is dynamic.
* LSTM ("state" models): inputs ``x`` (N, block), ``h`` and ``c`` (N, num_layers, hidden); outputs ``y``
  (N, block), ``h_out``, ``c_out``. The host feeds the state it got back from the previous block; the first block
  starts from the model's initial state (the .nam's, stored in the file's metadata).

The export is the model contract's (:mod:`tinyverse.export.onnx_stream`: the model gives its streaming graph and
metadata), so the built-in ``onnx`` / ``onnx_int8`` exporters write these files for any streaming model; this module
keeps the audio names. Each file carries ``metadata_props["tinyverse_stream"]`` (JSON: kind, receptive_field, and
for LSTMs the initial state), so :class:`tinyverse.audio.stream.OnnxStreamProcessor` needs nothing else to run it;
``tinyverse.audio.stream.onnx_stream_render`` renders a signal through one. The int8 copy is onnxruntime static
quantization (QDQ, per-channel int8 weights, MinMax-calibrated int8 activations) calibrated on blocks of the
training audio; onnxruntime leaves the LSTM op itself in float.
"""
from __future__ import annotations

from tinyverse.export.onnx_stream import (STREAM_META_KEY, export_streaming_onnx, quantize_streaming_onnx,
                                          stream_metadata)

__all__ = ["export_streaming_onnx", "quantize_streaming_onnx", "stream_metadata", "STREAM_META_KEY"]
