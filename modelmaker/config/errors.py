"""The one error type of the config layer.

``str(ConfigError)`` is a single line, ``<file>: <key.path>: <problem>; <fix>``, so it reads well in a
terminal, a log line and a CI annotation alike. Several problems are joined on that same line with `` | ``.
"""
from __future__ import annotations

from dataclasses import dataclass


def one_line(text: str) -> str:
    """Collapse newlines and runs of whitespace: every message of this package stays on one line."""
    return " ".join(str(text).split())


@dataclass(frozen=True)
class ConfigIssue:
    """One problem: where (dotted key path, may be empty), what, and how to fix it."""

    key: str
    problem: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.key}: {self.problem}" if self.key else self.problem
        if self.hint:
            text += f"; {self.hint}"
        return one_line(text)


class ConfigError(ValueError):
    """A config that cannot be used. ``source`` is the file name (or ``<dict>``)."""

    def __init__(self, source: str, problem: str | ConfigIssue | list[ConfigIssue], key: str = "",
                 hint: str = ""):
        if isinstance(problem, str):
            issues = [ConfigIssue(key, problem, hint)]
        elif isinstance(problem, ConfigIssue):
            issues = [problem]
        else:
            issues = list(problem)
        if not issues:
            raise ValueError("ConfigError needs at least one issue")
        self.source = str(source)
        self.issues: list[ConfigIssue] = issues
        super().__init__(str(self))

    # The first issue, for callers (and tests) that look at one problem.
    @property
    def key(self) -> str:
        return self.issues[0].key

    @property
    def problem(self) -> str:
        return self.issues[0].problem

    @property
    def hint(self) -> str:
        return self.issues[0].hint

    def __str__(self) -> str:
        return one_line(f"{self.source}: " + " | ".join(str(i) for i in self.issues))
