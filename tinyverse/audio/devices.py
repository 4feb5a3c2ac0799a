"""Check an audio model (NAM WaveNet / LSTM / Linear) against a pedal device profile.

A pedal counts compute per sample: the model's MACs per sample must fit ``max_macs_per_sample``, its sample
rate must be one the pedal runs, and each op class it needs (WAVENET, LSTM, FIR, and the activations) must
be native to the pedal and satisfy the profile's rules (e.g. ``WAVENET.gated: {equals: false}``). The check
itself is :func:`tinyverse.devices.check_model`, the one device check of every model; this name stays for
callers that check audio models at NAM's default rate.
"""
from __future__ import annotations

from pathlib import Path

from torch import nn

from tinyverse.devices.check import DeviceReport, check_model
from tinyverse.devices.profile import DeviceProfile

__all__ = ["check_audio_model"]


def check_audio_model(model: nn.Module, device: str | Path | DeviceProfile, sample_rate: int | None = 48_000,
                      model_name: str | None = None) -> DeviceReport:
    """``check_model`` at ``sample_rate`` (48 kHz, NAM's rate, unless given; None skips the rate rule)."""
    return check_model(model, device, sample_rate=sample_rate, model_name=model_name or type(model).__name__)
