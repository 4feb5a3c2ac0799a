"""Streaming TFLite exports of the audio models (float, full int8, int16x8) and their block-by-block runner.

The streaming TFLite path is the model contract's, not audio's own: :mod:`tinyverse.export.tflite_stream` builds the
conversion job from ``model.streaming_twin(block_size)`` (:mod:`tinyverse.audio.twin`: for a WaveNet every dilated
conv is one CONV_2D with a (K, 1) kernel and a dilation factor, 1×1 convs are CONV_2D, the residual / head /
condition alignment are STRIDED_SLICE crops, gating is LOGISTIC + MUL, ``head_scale`` is folded into the last head
conv; an LSTM is one fused UNIDIRECTIONAL_SEQUENCE_LSTM per layer) and checks the twin against
``model.twin_reference`` before the one TFLite worker both modalities share converts it
(:mod:`tinyverse.export.tflite_job`). This module keeps the audio names of that path.

* WaveNet / Linear: the file takes ``block + receptive_field − 1`` samples (the block plus the context before
  it) and returns the ``block`` output samples; the host keeps the last ``receptive_field − 1`` input samples.
* LSTM: the file takes ``block`` samples and returns ``block`` samples; the recurrent state lives inside the fused
  LSTM op, pre-warmed on zeros by the runner (:class:`TFLiteStreamProcessor`).
"""
from __future__ import annotations

from torch import nn

from tinyverse.audio.twin import AudioExportError, TwinPlan
from tinyverse.export.tflite_stream import LSTM_PREWARM, TFLiteStreamProcessor, export_streaming_tflite

__all__ = ["AudioExportError", "LSTM_PREWARM", "audio_twin_plan", "export_streaming_tflite", "TFLiteStreamProcessor"]


def audio_twin_plan(model: nn.Module, block_size: int) -> TwinPlan:
    """The twin's op list and weights (Keras layout) for ``model`` at a fixed ``block_size``."""
    twin = getattr(model, "streaming_twin", None)
    if twin is None:
        raise AudioExportError(f"no streaming TFLite twin for {type(model).__name__} (it does not implement "
                               "tinyverse.models.contract.StreamingModel)")
    return twin(block_size)
