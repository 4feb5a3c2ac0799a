"""Building a dataset by its ``DATASETS`` name and checking it keeps the dataset interface.

A dataset entry is a class or factory: it is called with the config's dataset section (everything but ``name``
and ``enable``) as keyword arguments, and the object it returns has ``load()``, which returns the container of
the modality (``TimeSeriesData`` for time series). A dataset that breaks this gets a one-line ``DatasetError``
naming the file that defines it.
"""
from __future__ import annotations

import inspect
from typing import Any, Mapping

from tinyverse.errors import DatasetError
from tinyverse.registry import DATASETS


def defined_in(obj: Any) -> str:
    """``path/to/file.py`` defining ``obj`` (a class, a function or an instance), or its module name."""
    target = obj if inspect.isclass(obj) or inspect.isroutine(obj) else type(obj)
    target = getattr(target, "__tinyverse_origin__", target)
    try:
        return str(inspect.getsourcefile(target))
    except TypeError:
        return getattr(target, "__module__", "?")


def load_registered(name: str, params: Mapping[str, Any] | None = None, expected: type | tuple[type, ...] = object,
                    what: str = "this modality") -> Any:
    """``DATASETS[name](**params).load()``, checked to return ``expected``."""
    factory = DATASETS.get(name)
    dataset = factory(**dict(params or {}))
    if not callable(getattr(dataset, "load", None)):
        raise DatasetError(f"{defined_in(factory)}: dataset '{name}' has no load() method; a dataset object needs "
                           f"load() returning {_names(expected)}")
    data = dataset.load()
    if not isinstance(data, expected):
        raise DatasetError(f"{defined_in(factory)}: dataset '{name}'.load() returned {type(data).__name__}; "
                           f"{what} needs {_names(expected)}")
    return data


def _names(expected: type | tuple[type, ...]) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(f"{t.__module__.replace('.splits', '')}.{t.__name__}" for t in types)
