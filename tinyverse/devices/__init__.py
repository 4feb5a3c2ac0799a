"""Device profiles (``DEVICES``) and the rule checker that reads a model against them before training
(``check_model``: a spec layer by layer, a streaming model by its own cost).

Built-in profiles are YAML files in ``profiles/``; ``load_device_profile(path)`` reads a user's file and
``register_device_profile`` adds it to the registry.
"""
from __future__ import annotations

from pathlib import Path

from tinyverse.devices.check import (DeviceReport, LayerCheck, UncheckableModel, check_cost, check_model, check_spec,
                                     check_tflite_ops, get_device, model_cost)
from tinyverse.devices.profile import DeviceProfile, FieldRule, ProfileError, load_device_profile
from tinyverse.registry import DEVICES

PROFILE_DIR = Path(__file__).with_name("profiles")


def register_device_profile(profile: DeviceProfile | str | Path, overwrite: bool = False) -> DeviceProfile:
    if not isinstance(profile, DeviceProfile):
        profile = load_device_profile(profile)
    DEVICES.register(profile.name, profile, overwrite=overwrite, kind=profile.kind)
    return profile


for _file in sorted(PROFILE_DIR.glob("*.yaml")):
    register_device_profile(load_device_profile(_file, source="builtin"))

__all__ = ["DEVICES", "DeviceProfile", "FieldRule", "ProfileError", "DeviceReport", "LayerCheck", "UncheckableModel",
           "check_cost", "check_model", "check_spec", "check_tflite_ops", "get_device", "load_device_profile",
           "model_cost", "register_device_profile"]
