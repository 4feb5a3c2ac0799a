"""Reading YAML for configs: safe loading, one-line errors with line numbers, key → line map.

The loader is ``yaml.SafeLoader`` with two fixes that matter for configs:
- ``1e-3`` is a float (PyYAML follows YAML 1.1 and would read it as the *string* "1e-3");
- a key written twice in one mapping is an error instead of the last one silently winning.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, one_line

# Path of keys/indices inside the document → 1-based line where that key (or list item) is written.
LineMap = dict[tuple[str, ...], int]


class ConfigLoader(yaml.SafeLoader):
    """SafeLoader (no arbitrary objects) that reads exponent floats and rejects duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may be overridden, by design
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # unhashable key: SafeConstructor reports it below
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first written on line {first + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                 |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                 |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                 |[-+]?\.(?:inf|Inf|INF)
                 |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def _collect_lines(node: yaml.Node | None, path: tuple[str, ...], out: LineMap) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            sub = path + (str(key_node.value),)
            out.setdefault(sub, key_node.start_mark.line + 1)
            _collect_lines(value_node, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            sub = path + (str(i),)
            out.setdefault(sub, item.start_mark.line + 1)
            _collect_lines(item, sub, out)


def _unknown_tag(exc: yaml.MarkedYAMLError) -> str | None:
    """The tag, as written (``!!python/object:os.system``, ``!custom``), of a node SafeLoader refused."""
    m = re.match(r"could not determine a constructor for the tag '([^']*)'", str(exc.problem or ""))
    if not isinstance(exc, yaml.constructor.ConstructorError) or not m:
        return None
    tag = m.group(1)
    return "!!" + tag[len("tag:yaml.org,2002:"):] if tag.startswith("tag:yaml.org,2002:") else tag


def parse_yaml(text: str, source: str) -> tuple[Any, LineMap]:
    """Parse one YAML document. Raises ConfigError (one line, with the line number) on bad syntax."""
    loader = ConfigLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        tag = _unknown_tag(exc)
        if tag:  # SafeLoader knows only the standard tags; this is no indentation problem
            raise ConfigError(source, f"YAML tags such as {tag} are not allowed (plain YAML only)",
                              key=f"line {mark.line + 1}" if mark else "") from None
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context:  # "while parsing a block mapping" is only useful with its line
            started = f" started on line {exc.context_mark.line + 1}" if exc.context_mark else ""
            problem = f"{exc.problem} ({exc.context}{started})"
        raise ConfigError(source, f"YAML syntax error: {one_line(problem)}", key=where,
                          hint="check the indentation and quote values that contain ':' or '#'") from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, f"YAML syntax error: {one_line(str(exc))}") from None
    finally:
        loader.dispose()
    lines: LineMap = {(): node.start_mark.line + 1} if node is not None else {}
    _collect_lines(node, (), lines)
    return data, lines


def read_yaml(path: Path, source: str | None = None) -> tuple[Any, LineMap]:
    """Read and parse a YAML file; a missing or unreadable file is a one-line ConfigError."""
    source = source or str(path)
    if not path.is_file():
        raise ConfigError(source, "config file not found" if not path.exists() else "not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(source, f"not UTF-8 text (byte {exc.start})", hint="save the file as UTF-8") from None
    except OSError as exc:
        raise ConfigError(source, f"cannot read the file: {exc.strerror or exc}") from None
    return parse_yaml(text, source)
