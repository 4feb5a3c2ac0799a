"""Extensions: user code and data that register models, datasets, trainers, transforms, devices or modalities.

Where extensions come from (each is loaded once, keyed by its resolved path or entry point):

- **folders**: every ``*.py`` file and every package (a sub-folder with ``__init__.py``) directly inside, in
  name order; files and folders starting with ``_`` or ``.`` are skipped. Device-profile YAML files go in the
  folder's ``devices/`` sub-folder (``devices/*.yaml``, ``devices/*.yml``) and are registered in ``DEVICES``.
- **files**: a ``.py`` file, a package folder (has ``__init__.py``), or a device-profile ``.yaml``/``.yml`` file.
- **entry points** of the groups in :data:`ENTRY_POINT_GROUPS` (``tinyverse.models``, ``tinyverse.datasets``,
  ``tinyverse.trainers``, ``tinyverse.transforms``, ``tinyverse.devices``, ``modelmaker.ai_modules``). An entry
  point names a module (importing it registers things), a zero-argument function called ``register`` (called),
  or an object, which is registered under the entry point's name in the group's registry.
- **defaults**: the folder ``~/.tinyverse/extensions`` (:data:`DEFAULT_FOLDER`) and the paths in the
  ``TINYVERSE_EXTENSIONS`` environment variable (``os.pathsep``-separated); ``TINYVERSE_NO_EXTENSIONS=1`` turns
  both off (explicit paths, e.g. a config's ``extensions:`` list, still load).

Every import runs inside ``registration_source("extension:<file>")`` (or ``"entry_point:<group>:<name>"``), so
each registry entry records where it came from. An extension that raises is recorded (:func:`failed_extensions`:
file, exception, the traceback line inside the extension) and skipped — anything it registered before raising is
removed again — unless ``strict=True``, where it raises :class:`ExtensionError` (one line).

tinyverse does not import modelmaker: ``modelmaker.ai_modules`` is only a group name here; modelmaker binds its
registry with :func:`bind_group`.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import logging
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from tinyverse.registry import (DATASETS, DEVICES, EXPORTERS, LAYERS, MODEL_REGISTRY, TASKS, TRANSFORMS, Registry,
                                registration_source)

log = logging.getLogger("tinyverse.extensions")

DEFAULT_FOLDER = Path("~/.tinyverse/extensions")
ENV_PATHS = "TINYVERSE_EXTENSIONS"
ENV_OFF = "TINYVERSE_NO_EXTENSIONS"
DEVICE_SUBFOLDER = "devices"
_YAML_SUFFIXES = (".yaml", ".yml")

#: entry-point group -> registry (None: bound later by the package that owns it, see :func:`bind_group`)
ENTRY_POINT_GROUPS: dict[str, Registry | None] = {
    "tinyverse.models": MODEL_REGISTRY,
    "tinyverse.datasets": DATASETS,
    "tinyverse.trainers": TASKS,
    "tinyverse.transforms": TRANSFORMS,
    "tinyverse.devices": DEVICES,
    "modelmaker.ai_modules": None,
}

#: every registry an extension can add to, by the name `modelmaker extensions` prints
_REGISTRIES: dict[str, Registry] = {
    "models": MODEL_REGISTRY, "layers": LAYERS, "datasets": DATASETS, "transforms": TRANSFORMS,
    "tasks": TASKS, "devices": DEVICES, "exporters": EXPORTERS,
}


class ExtensionError(RuntimeError):
    """An extension that failed to load under ``strict``, or an extension object that breaks its interface.
    ``str()`` is one line naming the extension file."""


@dataclass(frozen=True)
class LoadedExtension:
    path: str  # resolved file/folder, or "<group>:<name>" for an entry point
    source: str  # the registration source its entries carry
    kind: str  # "file", "package", "device", "entry_point"
    registered: tuple[str, ...] = ()  # "<registry>:<name>" of what it added


@dataclass(frozen=True)
class FailedExtension:
    path: str
    source: str
    error: str  # "ExceptionType: message"
    where: str  # "file:line: code" of the deepest frame inside the extension ("" if none)

    def line(self) -> str:
        return f"{self.path}: {self.error}" + (f" (at {self.where})" if self.where else "")


@dataclass
class _State:
    loaded: dict[str, LoadedExtension] = field(default_factory=dict)
    failed: dict[str, FailedExtension] = field(default_factory=dict)


_STATE = _State()


# -- public records ---------------------------------------------------------------------------------------------
def loaded_extensions() -> list[LoadedExtension]:
    return list(_STATE.loaded.values())


def failed_extensions() -> list[FailedExtension]:
    return list(_STATE.failed.values())


def registries() -> dict[str, Registry]:
    """Every registry extensions can add to (including bound ones such as modelmaker's ``ai_modules``)."""
    return dict(_REGISTRIES)


def bind_group(group: str, registry: Registry, label: str | None = None) -> None:
    """Attach a registry owned by another package (e.g. modelmaker's AI_MODULES) to an entry-point group."""
    ENTRY_POINT_GROUPS[group] = registry
    _REGISTRIES[label or group.rsplit(".", 1)[-1]] = registry


def source_of_extension(path: str | Path) -> str:
    return f"extension:{Path(path).expanduser().resolve()}"


def entries_from(source: str) -> list[tuple[str, str]]:
    """(registry label, name) of every entry registered by ``source``."""
    out = []
    for label, reg in _REGISTRIES.items():
        for entry in reg.entries():
            if entry.source == source:
                out.append((label, entry.name))
    return out


def unload(path_or_source: str | Path) -> None:
    """Remove what an extension registered and forget it was loaded (for tests and interactive reloads)."""
    text = str(path_or_source)
    source = text if text.startswith(("extension:", "entry_point:")) else source_of_extension(text)
    for label, name in entries_from(source):
        _REGISTRIES[label].unregister(name)
    for store in (_STATE.loaded, _STATE.failed):
        for key in [k for k, v in store.items() if v.source == source]:
            del store[key]


def error_in_extension(obj: Any, problem: str) -> ExtensionError:
    """A one-line error about a registered object, naming the file that defines it."""
    where = ""
    try:
        where = f"{inspect.getsourcefile(obj if inspect.isclass(obj) or inspect.isfunction(obj) else type(obj))}: "
    except TypeError:
        where = f"{getattr(obj, '__module__', '')}: "
    return ExtensionError(f"{where}{problem}")


# -- loading ----------------------------------------------------------------------------------------------------
def _ensure_builtins() -> None:
    """Load every registry's built-ins first, so none of them is attributed to the extension being imported."""
    for reg in _REGISTRIES.values():
        try:
            reg.load_builtins()
        except Exception as err:  # a broken built-in is not the extension's fault; say so once
            log.debug("built-ins of %s failed to load: %s", reg.kind, err)


def _where(exc: BaseException, root: Path) -> str:
    """The deepest traceback frame inside the extension's file or folder."""
    root_text = str(root)
    hit = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        filename = str(Path(frame.filename).resolve()) if frame.filename and not frame.filename.startswith("<") \
            else frame.filename
        if filename == root_text or filename.startswith(root_text + os.sep):
            hit = f"{Path(filename).name}:{frame.lineno}: {(frame.line or '').strip()}"
    if not hit and isinstance(exc, SyntaxError) and exc.filename:
        hit = f"{Path(exc.filename).name}:{exc.lineno}: {(exc.text or '').strip()}"
    return hit


def _module_name(path: Path) -> str:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"tinyverse_ext_{stem}_{digest}"


def _import_file(path: Path) -> None:
    name = _module_name(path)
    if path.is_dir():
        spec = importlib.util.spec_from_file_location(name, path / "__init__.py",
                                                      submodule_search_locations=[str(path)])
    else:
        spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses, pickling and relative imports look the module up here
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise


def _register_device_yaml(path: Path) -> None:
    from tinyverse.devices import register_device_profile
    from tinyverse.devices.profile import load_device_profile

    register_device_profile(load_device_profile(path, source=source_of_extension(path)))


def _attempt(key: str, source: str, kind: str, root: Path | None, action: Any, strict: bool) -> bool:
    if key in _STATE.loaded:
        return True
    if key in _STATE.failed:
        if strict:
            raise ExtensionError(f"extension failed to load: {_STATE.failed[key].line()}")
        return False
    _ensure_builtins()
    try:
        with registration_source(source):
            action()
    except Exception as exc:  # SystemExit / KeyboardInterrupt propagate
        for label, name in entries_from(source):  # half-registered extensions leave nothing behind
            _REGISTRIES[label].unregister(name)
        message = " ".join(str(exc).split()) or "(no message)"
        failure = FailedExtension(key, source, f"{type(exc).__name__}: {message}",
                                  _where(exc, root) if root is not None else "")
        _STATE.failed[key] = failure
        if strict:
            raise ExtensionError(f"extension failed to load: {failure.line()}") from None
        log.warning("skipped extension %s", failure.line())
        return False
    added = tuple(f"{label}:{name}" for label, name in entries_from(source))
    _STATE.loaded[key] = LoadedExtension(key, source, kind, added)
    log.debug("loaded extension %s: %s", key, ", ".join(added) or "nothing registered")
    return True


def load_path(path: str | Path, *, strict: bool = False) -> bool:
    """Load one file, package or folder of extensions. Returns False if anything in it failed (and not strict)."""
    p = Path(path).expanduser()
    if not p.exists():
        failure_key = str(p.absolute())
        if strict:
            raise ExtensionError(f"extension path not found: {failure_key}")
        _STATE.failed.setdefault(failure_key, FailedExtension(failure_key, source_of_extension(p),
                                                              "FileNotFoundError: no such file or folder", ""))
        log.warning("skipped extension %s: no such file or folder", failure_key)
        return False
    p = p.resolve()
    if p.is_dir() and not (p / "__init__.py").is_file():
        return load_folder(p, strict=strict)
    if p.is_dir():
        return _attempt(str(p), source_of_extension(p), "package", p, lambda: _import_file(p), strict)
    if p.suffix in _YAML_SUFFIXES:
        return _attempt(str(p), source_of_extension(p), "device", p, lambda: _register_device_yaml(p), strict)
    if p.suffix == ".py":
        return _attempt(str(p), source_of_extension(p), "file", p, lambda: _import_file(p), strict)
    if strict:
        raise ExtensionError(f"{p}: not an extension (expected a .py file, a package folder or a device .yaml)")
    _STATE.failed.setdefault(str(p), FailedExtension(str(p), source_of_extension(p),
                                                     "ValueError: expected a .py file, a package or a device .yaml", ""))
    return False


def load_folder(folder: str | Path, *, strict: bool = False) -> bool:
    """Every ``*.py`` file and package in ``folder`` (not recursive), then ``devices/*.yaml``."""
    folder = Path(folder).expanduser().resolve()
    ok = True
    for item in sorted(folder.iterdir()):
        if item.name.startswith(("_", ".")):
            continue
        if (item.is_file() and item.suffix == ".py") or (item.is_dir() and (item / "__init__.py").is_file()):
            ok = load_path(item, strict=strict) and ok
    devices = folder / DEVICE_SUBFOLDER
    if devices.is_dir():
        for item in sorted(devices.iterdir()):
            if item.is_file() and item.suffix in _YAML_SUFFIXES and not item.name.startswith((".", "_")):
                ok = load_path(item, strict=strict) and ok
    return ok


def load_extensions(paths: Iterable[str | Path], *, strict: bool = False) -> bool:
    """Load files, packages and folders in order (the config's ``extensions:`` list)."""
    ok = True
    for path in paths:
        ok = load_path(path, strict=strict) and ok
    return ok


def default_paths() -> list[Path]:
    """The default folder (if it exists) and ``TINYVERSE_EXTENSIONS``; nothing when ``TINYVERSE_NO_EXTENSIONS=1``."""
    if os.environ.get(ENV_OFF, "").strip().lower() in ("1", "true", "yes", "on"):
        return []
    out = []
    default = DEFAULT_FOLDER.expanduser()
    if default.is_dir():
        out.append(default)
    for item in os.environ.get(ENV_PATHS, "").split(os.pathsep):
        if item.strip():
            out.append(Path(item.strip()).expanduser())
    return out


def _entry_point_action(group: str, ep: Any) -> Any:
    def action() -> None:
        obj = ep.load()
        if inspect.ismodule(obj):
            return
        if callable(obj) and getattr(obj, "__name__", "") in ("register", "register_extensions"):
            obj()
            return
        registry = ENTRY_POINT_GROUPS.get(group)
        if registry is None:
            raise ExtensionError(f"entry point group {group} has no registry bound (is its package imported?)")
        if ep.name not in registry:
            registry.register(ep.name, obj)
    return action


def load_entry_points(groups: Iterable[str] | None = None, *, strict: bool = False) -> bool:
    """Load installed packages' entry points of ``groups`` (default: all of :data:`ENTRY_POINT_GROUPS`)."""
    ok = True
    for group in list(groups or ENTRY_POINT_GROUPS):
        for ep in importlib.metadata.entry_points(group=group):
            key = f"{group}:{ep.name}"
            source = f"entry_point:{group}:{ep.name}"
            module_root = None
            try:
                spec = importlib.util.find_spec(ep.module)
                if spec is not None and spec.origin:
                    origin = Path(spec.origin).resolve()
                    module_root = origin.parent if origin.name == "__init__.py" else origin
            except (ImportError, ValueError):
                pass
            ok = _attempt(key, source, "entry_point", module_root, _entry_point_action(group, ep), strict) and ok
    return ok


def load_defaults(*, strict: bool = False, entry_points: bool = True) -> bool:
    """Entry points, the default folder and ``TINYVERSE_EXTENSIONS`` (the latter two unless turned off)."""
    ok = load_entry_points(strict=strict) if entry_points else True
    return load_extensions(default_paths(), strict=strict) and ok


__all__ = ["DEFAULT_FOLDER", "ENTRY_POINT_GROUPS", "ENV_OFF", "ENV_PATHS", "ExtensionError", "FailedExtension",
           "LoadedExtension", "bind_group", "default_paths", "entries_from", "error_in_extension",
           "failed_extensions", "load_defaults", "load_entry_points", "load_extensions", "load_folder", "load_path",
           "loaded_extensions", "registries", "source_of_extension", "unload"]
