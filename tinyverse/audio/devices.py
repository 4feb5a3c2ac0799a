"""Check an audio model (NAM WaveNet / LSTM / Linear) against a pedal device profile.

A pedal counts compute per sample: the model's MACs per sample must fit ``max_macs_per_sample``, its sample
rate must be one the pedal runs, and each op class it needs (WAVENET, LSTM, FIR, and the activations) must
be native to the pedal and satisfy the profile's rules (e.g. ``WAVENET.gated: {equals: false}``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from tinyverse.audio.models import device_summary
from tinyverse.devices.check import DeviceReport, LayerCheck, _breaks, get_device
from tinyverse.devices.profile import DeviceProfile

__all__ = ["check_audio_model"]


def check_audio_model(model: nn.Module, device: str | Path | DeviceProfile, sample_rate: int | None = 48_000,
                      model_name: str | None = None) -> DeviceReport:
    profile = get_device(device)
    s = device_summary(model)
    name = model_name or type(model).__name__
    layers: list[LayerCheck] = []
    violations: list[str] = []
    for op in s["ops"]:
        cls = op["op_class"]
        reasons: list[str] = []
        if cls in profile.native_ops:
            placement = profile.accelerator
        elif cls in profile.cpu_ops:
            placement = "CPU"
        else:
            placement = "unsupported"
            reasons.append(f"{cls} is not supported by {profile.name} (runs: {', '.join(profile.native_ops)})")
        for attr, rule in profile.rules.get(cls, {}).items():
            msg = _breaks(attr, op.get(attr), rule)
            if msg:
                reasons.append(msg)
        layers.append(LayerCheck(layer=cls.lower(), type=s["architecture"], op_class=cls, placement=placement,
                                 reasons=reasons, params=s["params"] if op is s["ops"][0] else 0,
                                 macs=s["macs_per_sample"] if op is s["ops"][0] else 0,
                                 weight_bytes=s["weights"] * profile.weight_bits // 8 if op is s["ops"][0] else 0,
                                 out_shape=[1]))
        violations += [f"{cls}: {r}" for r in reasons]
    budget = profile.max_macs_per_sample
    if budget is not None and s["macs_per_sample"] > budget:
        violations.append(f"compute: {s['macs_per_sample']:,} MAC/sample exceeds the budget of {budget:,} "
                          f"→ use a smaller preset (e.g. feather ≈ 2.8 k, nano ≈ 0.73 k MAC/sample)")
    rates = profile.sample_rate
    if sample_rate is not None and rates is not None:
        allowed = rates if isinstance(rates, list) else [rates]
        if int(sample_rate) not in allowed:
            violations.append(f"sample rate {int(sample_rate)} Hz is not one of {allowed} → capture at "
                              f"{allowed[-1]} Hz")
    weight_bytes = s["weights"] * profile.weight_bits // 8
    if profile.flash_bytes is not None and weight_bytes > profile.flash_bytes:
        violations.append(f"flash: {weight_bytes:,} bytes of weights exceed {profile.flash_bytes:,}")
    rate = int(sample_rate or 48_000)
    notes = [f"{s['macs_per_sample']:,} MAC/sample × {rate} Hz = {s['macs_per_sample'] * rate / 1e6:.1f} M MAC/s",
             f"receptive field {s['receptive_field']:,} samples"]
    totals: dict[str, Any] = {"flash_bytes": weight_bytes, "ram_bytes": None, "macs": s["macs_per_sample"]}
    budgets: dict[str, Any] = {"flash_bytes": profile.flash_bytes, "ram_bytes": profile.ram_bytes, "macs": budget}
    return DeviceReport(device=profile.name, kind=profile.kind, model=name, layers=layers, totals=totals,
                        budgets=budgets, violations=violations, notes=notes,
                        measured={"macs_per_sample": s["macs_per_sample"], "params": s["params"]})
