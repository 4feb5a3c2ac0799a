"""Values given to a registered factory (a zoo model function) checked against its type annotations.

A zoo entry such as ``CLS_4k_NPU(channels: Sequence[int] = ...)`` would otherwise receive ``channels: wide`` from
a model_config file and fail deep inside, with a traceback. Pydantic validates each value against the annotation
(strict, like the rest of the config: ``"8"`` is not an int), so the problem is one line naming the argument, the
type and the default. Factories without annotations (or with ones that cannot be resolved) are not checked.
"""
from __future__ import annotations

import inspect
import json
import typing
from typing import Any, Mapping

from pydantic import TypeAdapter, ValidationError

# A YAML list cannot be a tuple or a set: a kind-only mismatch with an otherwise valid value is accepted.
_CONTAINER_KIND = {"tuple_type", "set_type", "frozen_set_type"}


def _hints(obj: Any) -> dict[str, Any]:
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        return typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - unresolvable forward references: nothing to check against
        return {}


def type_text(hint: Any) -> str:
    """``typing.Sequence[int]`` → ``Sequence[int]``, ``<class 'int'>`` → ``int``."""
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def _yaml_text(value: Any) -> str:
    try:
        return json.dumps(list(value) if isinstance(value, tuple) else value)
    except (TypeError, ValueError):
        return repr(value)


def _errors(adapter: TypeAdapter, value: Any, strict: bool) -> list[dict[str, Any]]:
    try:
        adapter.validate_python(value, strict=strict)
    except ValidationError as exc:
        return exc.errors(include_url=False)
    return []


def argument_type_problem(obj: Any, args: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(argument, problem, hint) for the first value in ``args`` that does not fit ``obj``'s annotation, else None."""
    hints = _hints(obj)
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return None
    for name, value in args.items():
        hint = hints.get(name)
        if hint is None or hint is Any or name not in params:
            continue
        try:
            adapter = TypeAdapter(hint)
        except Exception:  # noqa: BLE001 - an annotation pydantic cannot build a validator for
            continue
        errors = _errors(adapter, value, strict=True)
        if not errors:
            continue
        lax = _errors(adapter, value, strict=False)
        if not lax and all(e["type"] in _CONTAINER_KIND for e in errors):
            continue
        first = (lax or errors)[0] if any(e["type"] in _CONTAINER_KIND for e in errors) else errors[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
        detail = f" ({name}{where}: {first['msg'][:1].lower()}{first['msg'][1:]})" if where else ""
        text = repr(value)
        problem = f"expected {type_text(hint)}, got {text if len(text) <= 60 else text[:57] + '...'}{detail}"
        default = params[name].default
        hint_text = (f"e.g. {name}: {_yaml_text(default)} (the default)"
                     if default is not inspect.Parameter.empty and default is not None
                     else f"{name} takes {type_text(hint)}")
        return name, problem, hint_text
    return None
