"""What a model is for, beyond its shapes: a model marked ``never_ships`` (a float teacher) trains other models and
is never checked against a device or exported as if it were meant for one.

The mark lives in the spec's ``metadata`` (``{"role": "teacher", "never_ships": "<why>"}``), so it survives
``model_spec.yaml`` and a checkpoint rebuilt from it, and in the registry entry's metadata (``role="teacher"``), so
``modelmaker models`` can say so without building the model.
"""
from __future__ import annotations

from typing import Any

from tinyverse.models.spec import ModelSpec
from tinyverse.registry import MODEL_REGISTRY

TEACHER = "teacher"


def spec_metadata(obj: Any) -> dict:
    """The spec metadata of a ModelSpec, a spec model, or {} for anything else."""
    spec = obj if isinstance(obj, ModelSpec) else getattr(obj, "spec", None)
    return dict(spec.metadata) if isinstance(spec, ModelSpec) else {}


def never_ships(obj: Any) -> str | None:
    """Why the model must not be deployed (its ``never_ships`` mark), or None for a model meant for a device."""
    reason = spec_metadata(obj).get("never_ships")
    return str(reason) if reason else None


def registered_role(name: str) -> str | None:
    """The ``role`` a zoo entry was registered with (e.g. "teacher"), or None."""
    if name not in MODEL_REGISTRY:
        return None
    return MODEL_REGISTRY.entry(name).metadata.get("role")


__all__ = ["TEACHER", "never_ships", "registered_role", "spec_metadata"]
