"""Turning a YAML file (or a dict) into a validated Config, and a Config back into YAML.

Every failure is a ConfigError whose message is one line starting with the file name.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml
from pydantic import ValidationError

from .errors import ConfigError, ConfigIssue, one_line
from .schema import Config, ExtensionsOnly, suggestions
from .yaml_io import LineMap, parse_yaml, read_yaml

ExtensionLoader = Callable[[list[str]], Any]

_MAX_ISSUES = 3  # more than this on one line stops being readable
_SECTIONS_HINT = "common, dataset, feature_extraction, training, testing, compilation, extensions"

_EXPECTED = {
    "int_type": "expected an integer", "int_parsing": "expected an integer", "int_from_float": "expected an integer",
    "float_type": "expected a number", "float_parsing": "expected a number",
    "bool_type": "expected true or false", "bool_parsing": "expected true or false",
    "string_type": "expected a string", "list_type": "expected a list", "tuple_type": "expected a list",
    "dict_type": "expected a mapping", "model_type": "expected a mapping", "model_attributes_type": "expected a mapping",
}
_BOUNDS = {"greater_than": ("gt", ">"), "greater_than_equal": ("ge", ">="), "less_than": ("lt", "<"),
           "less_than_equal": ("le", "<=")}


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _dotted(loc: list[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int) or (isinstance(part, str) and part.isdigit()):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _describe(err: Mapping[str, Any]) -> tuple[str, str]:
    """(problem, hint) for one of pydantic's own error types, in the words of a config file."""
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "missing":
        return "required key missing", "add it"
    if kind in _EXPECTED:
        return f"{_EXPECTED[kind]}, got {_short(value)}", ""
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        hint = ""
        if isinstance(value, str):
            hits = suggestions(value, choices)
            hint = f"did you mean {', '.join(repr(h) for h in hits)}?" if hits else ""
        return f"expected one of {', '.join(repr(c) for c in choices)}, got {_short(value)}", hint
    if kind in _BOUNDS:
        name, op = _BOUNDS[kind]
        return f"must be {op} {ctx.get(name)}, got {_short(value)}", ""
    msg = str(err.get("msg", kind))
    return f"{msg[:1].lower()}{msg[1:]}, got {_short(value)}", ""


def issues_from(exc: ValidationError, lines: LineMap | None = None) -> list[ConfigIssue]:
    lines = lines or {}
    issues: list[ConfigIssue] = []
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        if err["type"] == "config":
            ctx = err.get("ctx") or {}
            if ctx.get("key"):
                loc += str(ctx["key"]).split(".")
            problem, hint = str(ctx.get("problem", "")), str(ctx.get("hint", ""))
        else:
            problem, hint = _describe(err)
        line = lines.get(tuple(str(p) for p in loc))
        if line:
            hint = f"{hint} (line {line})" if hint else f"line {line}"
        issue = ConfigIssue(_dotted(loc), problem, hint)
        if issue not in issues:
            issues.append(issue)
    if len(issues) > _MAX_ISSUES:
        extra = len(issues) - _MAX_ISSUES
        issues = issues[:_MAX_ISSUES] + [ConfigIssue("", f"and {extra} more problem{'s' * (extra > 1)}")]
    return issues


def apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any] | None) -> tuple[dict[str, Any], list[tuple[str, ...]]]:
    """Deep-merge ``overrides`` into a copy of ``data``; keys may be dotted (``"training.epochs": 2``).

    Mappings merge key by key, anything else replaces. Returns the merged data and the overridden paths.
    """
    merged = copy.deepcopy(data)
    touched: list[tuple[str, ...]] = []

    def put(target: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
        for part in path[:-1]:
            if not isinstance(target.get(part), dict):
                target[part] = {}
            target = target[part]
        last = path[-1]
        if isinstance(value, Mapping) and isinstance(target.get(last), dict):
            for k, v in value.items():
                put(target[last], (str(k),), v)
                touched.append(path + (str(k),))
        else:
            target[last] = copy.deepcopy(value)
            touched.append(path)

    for key, value in (overrides or {}).items():
        put(merged, tuple(str(key).split(".")), value)
    return merged, touched


def parse_overrides(items: list[str] | tuple[str, ...] | None) -> dict[str, Any]:
    """``["training.epochs=3", "compilation.exporters=[onnx,tflite]"]`` (the CLI's ``--set KEY=VALUE``) → a dict
    for :func:`load_config`. Each value is read as YAML (``3`` an int, ``[a, b]`` a list, ``{width: 8}`` a mapping,
    ``null``/empty None), so it is typed exactly as the same text in the file would be; a later KEY wins."""
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or not key or any(not part.strip() for part in key.split(".")):
            raise ConfigError("--set", f"expected KEY=VALUE with a dotted KEY, got {item!r}",
                              hint="e.g. --set training.epochs=3 or --set training.model_args=\"{width: 8}\"")
        out[key] = parse_yaml(text, f"--set {key}")[0]  # the file's own YAML rules (safe, no duplicate keys)
    return out


def _exists(data: Any, path: tuple[str, ...]) -> bool:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def _name_overrides(err: ConfigError, original: Any, touched: list[tuple[str, ...]]) -> ConfigError:
    """Problems with a value an override set (or a key it introduced) are named ``--set <key>``: that is where
    the user must look, not the file."""
    keys = {_dotted(list(t)) for t in touched}
    created = {_dotted(list(t[:i])) for t in touched for i in range(1, len(t) + 1) if not _exists(original, t[:i])}

    def from_override(key: str) -> bool:
        return key in created or any(key == k or key.startswith((k + ".", k + "[")) for k in keys)

    issues = [ConfigIssue(f"--set {i.key}", i.problem, i.hint) if i.key and from_override(i.key) else i
              for i in err.issues]
    return ConfigError(err.source, issues)


def config_from_dict(data: Any, source: str = "<dict>", *, base_dir: str | Path | None = None,
                     extension_loader: ExtensionLoader | None = None, lines: LineMap | None = None) -> Config:
    """Validate an already parsed config.

    ``base_dir`` is where relative paths (model_config, model_path, extensions) are looked up first (then the
    current directory). ``extension_loader`` is called with the resolved extension paths before the rest is
    validated, so models and datasets registered by extensions can be named in the same file.
    """
    if data is None:
        raise ConfigError(source, "config is empty", hint=f"expected a mapping with sections {_SECTIONS_HINT}")
    if not isinstance(data, dict):
        where = f"line {lines[()]}" if lines and () in lines else ""
        raise ConfigError(source, f"top level must be a mapping of sections, got {type(data).__name__}", key=where,
                          hint=f"sections are {_SECTIONS_HINT}")
    context = {"base_dir": Path(base_dir) if base_dir is not None else None}
    try:
        if extension_loader is not None and data.get("extensions"):
            extensions = ExtensionsOnly.model_validate(data, context=context).extensions
            extension_loader(extensions)
        return Config.model_validate(data, context=context)
    except ValidationError as exc:
        raise ConfigError(source, issues_from(exc, lines)) from None


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None, *,
                extension_loader: ExtensionLoader | None = None) -> Config:
    """Read, override and validate a config file. Relative paths inside it are relative to its folder.

    ``overrides`` (dotted keys, e.g. from :func:`parse_overrides`) are merged in before validation, so they are
    validated like the file; a problem with an overridden value names it ``--set <key>``."""
    path = Path(path)
    source = str(path)
    data, lines = read_yaml(path, source)
    if data is None:
        raise ConfigError(source, "config file is empty", hint=f"expected a mapping with sections {_SECTIONS_HINT}")
    touched: list[tuple[str, ...]] = []
    original = data
    if overrides and isinstance(data, dict):
        data, touched = apply_overrides(data, overrides)
        # A line number would point at the value the override replaced: drop those.
        lines = {k: v for k, v in lines.items() if not any(k[: len(t)] == t for t in touched)}
    try:
        return config_from_dict(data, source, base_dir=path.resolve().parent, extension_loader=extension_loader,
                                lines=lines)
    except ConfigError as err:
        if not touched:
            raise
        raise _name_overrides(err, original, touched) from None


def dump_resolved(cfg: Config) -> str:
    """YAML of the fully resolved config (every default written out) that loads back to an equal Config."""
    data = cfg.model_dump(mode="python", by_alias=True)
    header = "# resolved config written by modelmaker: every default filled in, paths absolute\n"
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=120)


__all__ = ["ConfigError", "ExtensionLoader", "apply_overrides", "config_from_dict", "dump_resolved", "issues_from",
           "load_config", "one_line", "parse_overrides"]
