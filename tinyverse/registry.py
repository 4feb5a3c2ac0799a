"""One Registry type for every kind of thing tinyverse and modelmaker look up by name.

A name is the entrypoint, the registry key and the config key (as in timm). Registering a taken name is
an error unless ``overwrite=True`` (as in torchvision). Every entry remembers where it came from, so a user
can tell a built-in from an extension file or an entry point (as pluggy does).
"""
from __future__ import annotations

import contextlib
import contextvars
import difflib
import fnmatch
import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

# Set by the extension loader while it imports a file or an entry point, so registrations made during
# that import record it as their source.
_CURRENT_SOURCE: contextvars.ContextVar[str | None] = contextvars.ContextVar("tinyverse_source", default=None)


class RegistryError(KeyError):
    """A name that is missing or taken. ``str()`` is a one-line message meant for users."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Entry:
    name: str
    obj: Any
    source: str  # "builtin", "extension:<file>", "entry_point:<group>:<name>", "user:<module>"
    module: str
    location: str  # file:line of the object's definition, where it can be found
    metadata: dict


@contextlib.contextmanager
def registration_source(source: str) -> Iterator[None]:
    """Attribute every registration made inside this block to ``source``."""
    token = _CURRENT_SOURCE.set(source)
    try:
        yield
    finally:
        _CURRENT_SOURCE.reset(token)


def _source_of(obj: Any) -> tuple[str, str, str]:
    module = getattr(obj, "__module__", None) or type(obj).__module__
    origin = getattr(obj, "__tinyverse_origin__", obj)  # adapters (e.g. config-dict constructors) point at the original
    try:
        location = f"{inspect.getsourcefile(origin)}:{inspect.getsourcelines(origin)[1]}"
    except (TypeError, OSError):
        location = module
    explicit = _CURRENT_SOURCE.get()
    if explicit:
        return explicit, module, location
    if module.split(".")[0] in ("tinyverse", "modelmaker"):
        return "builtin", module, location
    return f"user:{module}", module, location


def closest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The closest spellings of ``name`` among ``candidates`` (case-insensitive), best first."""
    candidates = list(candidates)
    lowered = {c.lower(): c for c in candidates}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    return [lowered[h] for h in hits]


class Registry:
    """Maps names to objects (classes, factories, profiles) of one kind.

    ``builtins`` names modules imported on first lookup, so asking a registry for a name always sees the
    built-in entries without import-order games.
    """

    def __init__(self, kind: str, builtins: Iterable[str] = ()):
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._builtin_modules = list(builtins)
        self._builtins_loaded = not self._builtin_modules

    # -- registration -------------------------------------------------------------------------------------
    def register(self, name: str | Callable | None = None, obj: Any = None, *, overwrite: bool = False,
                 **metadata: Any) -> Any:
        """``@REG.register``, ``@REG.register("Name", task="classification")`` or ``REG.register("Name", obj)``."""
        if callable(name) and obj is None and not isinstance(name, str):  # bare decorator
            return self._add(name.__name__, name, overwrite, metadata)
        if obj is not None:
            return self._add(name or obj.__name__, obj, overwrite, metadata)

        def decorator(target: Any) -> Any:
            return self._add(name or target.__name__, target, overwrite, metadata)

        return decorator

    def _add(self, name: str, obj: Any, overwrite: bool, metadata: dict) -> Any:
        if not isinstance(name, str) or not name:
            raise RegistryError(f"{self.kind} names must be non-empty strings, got {name!r}")
        source, module, location = _source_of(obj)
        # A user's registration loads the built-ins first, so a clash with one is reported now. Ours does not: a
        # tinyverse module imported on its own would import the built-ins from inside its own import, and one of
        # them may import it back half-initialised. Clashes among built-ins raise when a lookup loads them.
        if source != "builtin":
            self.load_builtins()
        if name in self._entries and not overwrite:
            old = self._entries[name]
            raise RegistryError(
                f"{self.kind} '{name}' is already registered (from {old.source}, {old.location}); "
                f"pick another name or pass overwrite=True")
        self._entries[name] = Entry(name, obj, source, module, location, dict(metadata))
        return obj

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    @property
    def builtin_modules(self) -> tuple[str, ...]:
        """The modules imported on first lookup (each registers its built-ins)."""
        return tuple(self._builtin_modules)

    # -- lookup -----------------------------------------------------------------------------------------
    def load_builtins(self) -> None:
        """Import the built-in modules (once; every lookup does this first)."""
        if self._builtins_loaded:
            return
        self._builtins_loaded = True  # set first: builtin modules register into this very registry
        token = _CURRENT_SOURCE.set(None)  # built-ins first imported while an extension loads stay built-ins
        try:
            for module in self._builtin_modules:
                importlib.import_module(module)
        finally:
            _CURRENT_SOURCE.reset(token)

    def get(self, name: str) -> Any:
        return self.entry(name).obj

    def entry(self, name: str) -> Entry:
        self.load_builtins()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise RegistryError(self.unknown_message(name)) from None

    def unknown_message(self, name: Any) -> str:
        hint = closest(str(name), self._entries)
        msg = f"unknown {self.kind} '{name}'"
        if hint:
            msg += f"; did you mean {', '.join(repr(h) for h in hint)}?"
        else:
            shown = sorted(self._entries)[:12]
            msg += f"; registered: {', '.join(shown)}{' ...' if len(self._entries) > 12 else ''}"
        return msg

    def names(self, include: str | Iterable[str] | None = None, exclude: str | Iterable[str] | None = None,
              **metadata: Any) -> list[str]:
        """Sorted names matching any ``include`` wildcard, none of ``exclude``, and the given metadata."""
        self.load_builtins()
        inc = [include] if isinstance(include, str) else list(include or ["*"])
        exc = [exclude] if isinstance(exclude, str) else list(exclude or [])
        out = []
        for name, entry in self._entries.items():
            if not any(fnmatch.fnmatchcase(name, p) for p in inc):
                continue
            if any(fnmatch.fnmatchcase(name, p) for p in exc):
                continue
            if any(entry.metadata.get(k) != v for k, v in metadata.items()):
                continue
            out.append(name)
        return sorted(out)

    def entries(self) -> list[Entry]:
        self.load_builtins()
        return [self._entries[n] for n in sorted(self._entries)]

    def __contains__(self, name: object) -> bool:
        self.load_builtins()
        return name in self._entries

    def __len__(self) -> int:
        self.load_builtins()
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"


# The registries of tinyverse. modelmaker adds AI_MODULES in its own package.
LAYERS = Registry("layer", builtins=["tinyverse.layers"])
MODEL_REGISTRY = Registry("model", builtins=["tinyverse.timeseries.zoo", "tinyverse.audio.models",
                                              "tinyverse.audio.knob_zoo"])
DATASETS = Registry("dataset", builtins=["tinyverse.timeseries.data", "tinyverse.timeseries.data.regression", "tinyverse.timeseries.data.forecasting",
                                        "tinyverse.timeseries.data.anomaly", "tinyverse.audio.dataset",
                                        "tinyverse.audio.knob_capture"])
TRANSFORMS = Registry("transform", builtins=[
    "tinyverse.timeseries.transforms", "tinyverse.timeseries.transforms.framing", "tinyverse.timeseries.transforms.spectral",
    "tinyverse.timeseries.transforms.scaling", "tinyverse.timeseries.transforms.resampling", "tinyverse.timeseries.transforms.statistics",
    "tinyverse.timeseries.transforms.presets"])
TASKS = Registry("task", builtins=["tinyverse.training.tasks", "tinyverse.timeseries.tasks.regression",
                                  "tinyverse.timeseries.tasks.forecasting", "tinyverse.timeseries.tasks.anomaly",
                                  "tinyverse.audio.training", "tinyverse.audio.knob_training"])
TRAINERS = TASKS  # the design map's second name for training recipes; one registry, not two
DEVICES = Registry("device", builtins=["tinyverse.devices"])
EXPORTERS = Registry("exporter", builtins=["tinyverse.export"])
