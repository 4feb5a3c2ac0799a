"""The search's user error (kept apart so the CLI can name it without importing Optuna)."""
from __future__ import annotations


class SearchError(RuntimeError):
    """A search that cannot run, or found nothing that fits (one line; the CLI prints it as a user error, exit 2)."""


__all__ = ["SearchError"]
