"""Subcommands of ``modelmaker``: one module each, found by name, each defining ``register(subparsers)``.

A module's ``register`` adds its parser and sets ``func`` (called with the parsed args; returns an exit code).
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil


def add_all(subparsers: argparse._SubParsersAction) -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}").register(subparsers)


def parse_shape(text: str) -> tuple[int, ...]:
    """``1,512`` or ``1x512`` → (1, 512), for --input-shape options."""
    try:
        dims = tuple(int(d) for d in text.replace("x", ",").split(",") if d.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints like 1,512, got {text!r}") from None
    if not dims or any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"expected positive ints like 1,512, got {text!r}")
    return dims


def print_table(header: list[str], rows: list[list[object]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
