"""Build models by name, timm-style: the registry key is the entrypoint and the config key."""
from __future__ import annotations

import inspect
from typing import Any, Iterable, Mapping

from torch import nn

from tinyverse.layers.base import SpecError
from tinyverse.models.generic import GenericModelWithSpec
from tinyverse.models.spec import ModelSpec
from tinyverse.registry import MODEL_REGISTRY, closest


def model_arguments(name: str) -> dict[str, Any]:
    """The keyword arguments a zoo entry takes, with their defaults (``inspect.Parameter.empty`` if required)."""
    entry = MODEL_REGISTRY.get(name)
    target = entry.__init__ if inspect.isclass(entry) else entry
    params = inspect.signature(target).parameters
    return {k: p.default for k, p in params.items()
            if k != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def check_model_arguments(name: str, kwargs: Mapping[str, Any], where: str = "model_config") -> None:
    """Unknown arguments are an error naming the valid ones (model_config overrides are these arguments)."""
    entry = MODEL_REGISTRY.get(name)
    target = entry.__init__ if inspect.isclass(entry) else entry
    if any(p.kind == p.VAR_KEYWORD for p in inspect.signature(target).parameters.values()):
        return
    valid = list(model_arguments(name))
    for key in kwargs:
        if key not in valid:
            hint = closest(key, valid)
            raise SpecError(f"{where}.{key}: {name} takes no argument '{key}'"
                            + (f"; did you mean {hint[0]!r}?" if hint else "") + f" (valid: {', '.join(valid)})")


def get_model_spec(name: str, **kwargs: Any) -> ModelSpec:
    """The spec a zoo entry returns for these arguments (spec-dict entries only)."""
    check_model_arguments(name, kwargs)
    out = MODEL_REGISTRY.get(name)(**kwargs)
    if isinstance(out, nn.Module):
        raise SpecError(f"model '{name}' is a plain nn.Module, not a spec-dict model")
    spec = out if isinstance(out, ModelSpec) else ModelSpec({"name": name, **out} if "name" not in out else out)
    return spec


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model. Spec-dict entries give a :class:`GenericModelWithSpec`; entries that return
    an ``nn.Module`` (plain torch nets registered by users) are returned as they are."""
    check_model_arguments(name, kwargs)
    out = MODEL_REGISTRY.get(name)(**kwargs)
    if isinstance(out, nn.Module):
        return out
    if isinstance(out, Mapping) and "name" not in out:
        out = {"name": name, **out}
    return GenericModelWithSpec(out)


def list_models(include: str | Iterable[str] | None = None, exclude: str | Iterable[str] | None = None,
                task: str | None = None) -> list[str]:
    """Registered model names, filtered by wildcards and task (as torchvision's ``list_models``)."""
    return MODEL_REGISTRY.names(include, exclude, **({"task": task} if task else {}))
