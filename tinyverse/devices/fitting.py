"""Which zoo entries fit a device for a given input: what a refused model's error suggests instead, and the
candidates a search starts from. Every entry is built for the input and checked as a run checks it
(:func:`tinyverse.devices.check_model`): rules, flash, RAM and the latency budget of the profile's cost model."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tinyverse.devices.check import check_model, get_device
from tinyverse.devices.latency import fmt_ms
from tinyverse.devices.profile import DeviceProfile
from tinyverse.registry import MODEL_REGISTRY

# Entries that train other models and never ship (float teachers): not candidates for a device.
NEVER_SHIPS_ROLES = ("teacher",)


@dataclass
class EntryFit:
    name: str
    fits: bool
    violations: list[str] = field(default_factory=list)
    params: int | None = None
    macs: int | None = None
    flash_bytes: int | None = None
    ram_bytes: int | None = None
    latency_ms: float | None = None

    @property
    def label(self) -> str:
        """``CLS_1k_NPU (0.61 ms)``: the name with its estimated latency, for one-line messages."""
        return self.name + (f" ({fmt_ms(self.latency_ms)} ms)" if self.latency_ms is not None else "")


def shippable_entries(task: str | None = None, include: str | None = None, exclude: str | None = None) -> list[str]:
    """Zoo entries of ``task`` that are meant for a device (teachers left out)."""
    from tinyverse.models import list_models

    return [n for n in list_models(include, exclude, task=task)
            if MODEL_REGISTRY.entry(n).metadata.get("role") not in NEVER_SHIPS_ROLES]


def check_entry(name: str, device: str | Path | DeviceProfile, args: dict[str, Any]) -> EntryFit:
    """Build zoo entry ``name`` with those of ``args`` it takes (e.g. input_shape, num_classes) and check it."""
    from tinyverse.models import create_model, model_arguments

    accepted = model_arguments(name)
    try:
        model = create_model(name, **{k: v for k, v in args.items() if k in accepted})
        report = check_model(model, device, model_name=name)
    except Exception as err:  # noqa: BLE001 - an entry that cannot take this input simply does not fit
        return EntryFit(name, False, [" ".join(str(err).split())])
    t = report.totals
    return EntryFit(name, report.fits, list(report.violations), t.get("params"), t.get("macs"),
                    t.get("flash_bytes"), t.get("ram_bytes"), t.get("latency_ms"))


def fitting_entries(device: str | Path | DeviceProfile, args: dict[str, Any], task: str | None = None,
                    names: Sequence[str] | None = None) -> list[EntryFit]:
    """Every shippable entry of ``task`` (or ``names``) checked against ``device`` with the model arguments ``args``
    (those an entry does not take are left out), smallest first (by MACs)."""
    profile = get_device(device)
    rows = [check_entry(n, profile, args) for n in (names if names is not None else shippable_entries(task))]
    return sorted(rows, key=lambda r: (r.macs is None, r.macs or 0, r.name))


__all__ = ["EntryFit", "check_entry", "fitting_entries", "shippable_entries"]
