"""The exporter contract: every artifact can be written *and* run, so the caller verifies what it ships.

An exporter class is registered in ``EXPORTERS`` under its ``name``; ``get_exporter(name)`` gives a fresh
instance. ``export`` writes the artifact and returns its path; ``run`` executes an artifact on ``X`` laid out
as the torch model takes it ((N, C, L, 1) for the time-series zoo) and returns float outputs in torch
layout. ``info`` holds what the last export/run measured (conversion seconds, twin diff, TFLM arena bytes).

What the compile stage (``tinyverse.compile.compile_model``; audio: ``tinyverse.audio.verify``) reads from an
exporter, so that a registered one runs exactly like a built-in:

- ``needs``: names of exporters whose artifacts it reads (they run first, in dependency order, and are verified
  too), and ``"calibration"`` when it needs calibration data from the training split;
- ``kind``: the pass rule of its rows (``tinyverse.verification``): ``"float"``, ``"int8"`` or ``"int16"``;
- ``modalities``: where it can run (``"timeseries"``; ``"audio"`` when it implements ``stream_processor``);
- ``verifications()`` (whole inputs) / ``stream_verifications()`` (a streaming artifact, rendered block by block;
  default: the same rows): its rows — a label, the runtime that runs the file, optionally the row whose outputs the
  same file must reproduce on another runtime (``same_as``) and a reference runtime that computes the same file as
  written (``reference``, not a row of its own), each checked to ``runtime_max_steps`` output steps;
- ``write(ctx)``: export within a compile (default: ``export`` with ``export_options(ctx)``). The model says what
  is exported (:func:`streams`): a streaming model (``model.stream_kind``) gets its streaming artifact
  (``stream_file_name``, at ``ctx.block_size``), any other model its whole-input one (``file_name``);
- ``run_on(verification, path, X)`` (whole inputs) or ``stream_processor(path, verification)`` (an object with
  ``process(block) -> block``, rendered block by block);
- ``checks(...)``: further checks of a whole-input row;
- ``record(ctx, path, rows)``: what it measured, into the compile report's ``info``.

The per-exporter loop both compile stages run is :func:`tinyverse.export.pipeline.export_each`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
from torch import nn

from tinyverse.models.spec import ModelSpec
from tinyverse.registry import EXPORTERS
from tinyverse.verification import Check, Tolerances

CALIBRATION = "calibration"  # a need that is data, not another exporter's artifact
MODALITIES = ("timeseries", "audio")


@dataclass(frozen=True)
class Verification:
    """One row of the verification table for an exporter's artifact.

    ``runtime`` selects how ``run_on`` / ``stream_processor`` run the file; ``kind`` overrides the exporter's
    pass rule for this row; ``same_as`` names another row (e.g. "TFLite int8 (LiteRT)") that ran the same file on
    a reference runtime: the outputs must agree to ``runtime_max_steps`` output steps (``same_as_check`` is the
    check's name, default "vs <same_as>"). ``reference`` is a runtime that computes the same file as written (e.g.
    onnxruntime without graph optimizations, against its fused int8 kernels): the file is run on it too, as no row
    of its own, and the row's outputs must agree with it to ``runtime_max_steps`` output steps
    (``reference_check``: the check's name, default "vs <reference>")."""

    label: str
    runtime: str = "default"
    kind: str | None = None
    same_as: str | None = None
    same_as_check: str | None = None
    reference: str | None = None
    reference_check: str | None = None


@dataclass
class RunResult:
    """What ``run_on`` may return instead of bare outputs: the outputs plus what the runtime measured."""

    outputs: np.ndarray
    arena_bytes: int | None = None


@dataclass
class ExportContext:
    """What one compile hands its exporters.

    ``calib``: calibration data (time series: torch-layout samples of the training split; audio: training audio);
    ``artifacts``: the files of the exporters that ran before, by exporter name; ``info``: the compile report's
    measurements (exporters add theirs); ``files``: extra files to list as artifacts (name → path); ``options``:
    caller options (``golden_vectors``, ``header_defines``, ``header_notes``, ``num_calib``...); ``shared``:
    scratch shared by the exporters of one compile (one TFLite conversion job for the float and int8 files)."""

    model: nn.Module
    spec: ModelSpec | None
    out_dir: Path
    calib: Any = None
    modality: str = "timeseries"
    block_size: int | None = None
    test_X: np.ndarray | None = None
    planned: tuple[str, ...] = ()
    artifacts: dict[str, Path] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)


class Exporter:
    name: ClassVar[str] = ""
    suffix: ClassVar[str] = ""
    file_name: ClassVar[str] = ""  # default artifact file name inside out_dir
    stream_file_name: ClassVar[str] = ""  # the streaming artifact's file name (default: file_name)
    label: ClassVar[str] = ""  # its verification row (default: the name)
    kind: ClassVar[str] = "float"  # pass rule of its rows: float, int8 or int16
    needs: ClassVar[tuple[str, ...]] = ()  # exporter names whose artifacts it reads, and/or "calibration"
    modalities: ClassVar[tuple[str, ...]] = ("timeseries",)

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}

    def export(self, model: nn.Module, spec: ModelSpec | None, out_dir: str | Path, calib: np.ndarray | None,
               **opts: Any) -> Path:
        raise NotImplementedError

    def run(self, path: str | Path, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # -- within a compile (tinyverse.compile / tinyverse.audio.verify) ---------------------------------------
    def export_options(self, ctx: ExportContext) -> dict[str, Any]:
        """Keyword options for ``export`` from the context (e.g. the path of a needed artifact)."""
        return {}

    def write(self, ctx: ExportContext) -> Path:
        """Write the artifact of this compile; ``info['seconds']``, if set, is its export time."""
        return self.export(ctx.model, ctx.spec, ctx.out_dir, ctx.calib, **self.export_options(ctx))

    def verifications(self) -> list[Verification]:
        """Its rows when the artifact runs on whole inputs."""
        return [Verification(self.label or self.name)]

    def stream_verifications(self) -> list[Verification]:
        """Its rows when the artifact is a stream, rendered block by block (default: :meth:`verifications`)."""
        return self.verifications()

    def artifact_name(self, model: nn.Module) -> str:
        """The file it writes for ``model``: ``stream_file_name`` for a streaming model, else ``file_name``."""
        return (self.stream_file_name or self.file_name) if streams(model) else self.file_name

    def run_on(self, verification: Verification, path: Path, X: np.ndarray) -> np.ndarray | RunResult:
        """Run the artifact on whole inputs as ``verification`` says (default: ``run``)."""
        return self.run(path, X)

    def stream_processor(self, path: Path, verification: Verification) -> Any:
        """Audio: an object with ``process(block) -> block`` that renders the file block by block."""
        raise NotImplementedError(f"exporter {self.name!r} has no stream_processor (it cannot run block by block)")

    def checks(self, verification: Verification, path: Path, X: np.ndarray, y: np.ndarray,
               tol: Tolerances) -> list[Check]:
        """Further checks of a whole-input row besides the pass rule of its kind."""
        return []

    def output_step(self, path: Path, ctx: ExportContext) -> float | None:
        """The output quantization step of the file, for ``same_as`` checks (None: 1/255 of the range)."""
        return None

    def record(self, ctx: ExportContext, path: Path, rows: Sequence[Any]) -> None:
        """After its rows ran: put what was measured into ``ctx.info`` / ``ctx.files``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def get_exporter(name: str) -> Exporter:
    """A fresh instance of the registered exporter ``name`` (its ``info`` is per instance)."""
    cls = EXPORTERS.get(name)
    return cls() if isinstance(cls, type) else cls


def exporter_order(names: Sequence[str]) -> list[str]:
    """``names`` plus the exporters they need, each after what it needs (otherwise in the given order).

    A need that is not registered is left out here (``cannot_run`` names it in the exporter's rows); a cycle raises
    ``ValueError`` naming the exporters."""
    order: list[str] = []
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise ValueError(f"exporters need each other in a cycle: {' -> '.join(visiting + [name])}")
        visiting.append(name)
        for need in getattr(EXPORTERS.get(name), "needs", ()):
            if need != CALIBRATION and need in EXPORTERS:
                visit(need)
        visiting.pop()
        order.append(name)

    for n in names:
        visit(n)
    return order


def cannot_run(exp: Exporter, ctx: ExportContext, failed: dict[str, str]) -> str | None:
    """Why ``exp`` cannot run in this compile (another modality, a need that failed or is missing), or None.

    ``failed``: exporter name → why it wrote nothing."""
    if ctx.modality not in exp.modalities:
        return (f"exporter {exp.name!r} does not support the {ctx.modality} modality (it declares "
                f"{', '.join(exp.modalities) or 'none'})")
    for need in exp.needs:
        if need == CALIBRATION:
            if ctx.calib is None or len(ctx.calib) == 0:
                return f"{exp.name} needs calibration data from the training split"
        elif need not in EXPORTERS:
            return f"{exp.name} needs {need!r}, which is not a registered exporter ({EXPORTERS.unknown_message(need)})"
        elif need in failed:
            return f"needs {need}, which failed: {failed[need]}"
        elif need not in ctx.artifacts:
            return f"needs {need}, which wrote no file"
    return None


def streams(model: nn.Module) -> bool:
    """How the model contract says ``model`` is exported and verified: block by block (a ``stream_kind`` of
    "context" or "state": streaming ONNX graph, ``streaming_twin`` TFLite) or, without one, on whole inputs."""
    return getattr(model, "stream_kind", None) is not None


def stream_block_size(ctx: ExportContext) -> int:
    """The block length a streaming artifact is exported at (``ctx.block_size``)."""
    if not ctx.block_size:
        raise ValueError(f"{type(ctx.model).__name__} is exported as a stream: ExportContext.block_size must be set")
    return int(ctx.block_size)


def spec_of(model: nn.Module, spec: ModelSpec | None) -> ModelSpec | None:
    return spec if spec is not None else getattr(model, "spec", None)
