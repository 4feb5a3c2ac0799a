"""Errors every modality raises for bad input (the CLI prints them as one line, exit code 2)."""
from __future__ import annotations


class DatasetError(ValueError):
    """A dataset that cannot be loaded as configured. ``str()`` is one line naming the config key and the fix."""


__all__ = ["DatasetError"]
