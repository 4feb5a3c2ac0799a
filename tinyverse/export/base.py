"""The exporter contract: every artifact can be written *and* run, so the caller verifies what it ships.

An exporter class is registered in ``EXPORTERS`` under its ``name``; ``get_exporter(name)`` gives a fresh
instance. ``export`` writes the artifact and returns its path; ``run`` executes an artifact on ``X`` laid out
as the torch model takes it ((N, C, L, 1) for the time-series zoo) and returns float outputs in torch
layout. ``info`` holds what the last export/run measured (conversion seconds, twin diff, TFLM arena bytes).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from torch import nn

from tinyverse.models.spec import ModelSpec
from tinyverse.registry import EXPORTERS


class Exporter:
    name: ClassVar[str] = ""
    suffix: ClassVar[str] = ""
    file_name: ClassVar[str] = ""  # default artifact file name inside out_dir

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}

    def export(self, model: nn.Module, spec: ModelSpec | None, out_dir: str | Path, calib: np.ndarray | None,
               **opts: Any) -> Path:
        raise NotImplementedError

    def run(self, path: str | Path, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def get_exporter(name: str) -> Exporter:
    """A fresh instance of the registered exporter ``name`` (its ``info`` is per instance)."""
    cls = EXPORTERS.get(name)
    return cls() if isinstance(cls, type) else cls


def spec_of(model: nn.Module, spec: ModelSpec | None) -> ModelSpec | None:
    return spec if spec is not None else getattr(model, "spec", None)
