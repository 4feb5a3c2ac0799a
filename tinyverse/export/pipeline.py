"""The per-exporter loop of a compile, shared by both modalities' compile stages.

:func:`export_each` runs the exporters named (and what they need, first), each writing its artifact — or saying why it
cannot: another modality, a need that failed, an exception — and hands every one to the caller as an
:class:`ExportStep` with the rows it declared for this model (whole-input or streaming). The caller runs the rows
its own way (time series, :func:`tinyverse.compile.compile_model`: the test split through ``run_on``; audio,
:func:`tinyverse.audio.verify.export_and_verify`: the validation audio rendered block by block through
``stream_processor``) and judges them by their kind; :func:`cross_checks` adds the checks a row declares against other
runs of the same file (``same_as``, ``reference``). After the caller has run a step's rows, the exporter records what
it measured (``record``) and the next exporter runs. No exporter name appears here.
"""
from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from tinyverse.export.base import ExportContext, Exporter, Verification, cannot_run, exporter_order, get_exporter, \
    streams
from tinyverse.export.onnx_float import ExportError
from tinyverse.verification import Check, Tolerances, runtime_check

__all__ = ["ExportStep", "cross_checks", "export_each", "first_line"]

log = logging.getLogger(__name__)


def first_line(err: BaseException) -> str:
    """An error as one row note: the message's first line, with the type where the message alone is unclear."""
    text = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
    if isinstance(err, (ExportError, RuntimeError, ValueError, OSError)) and text:
        return text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


@dataclass
class ExportStep:
    """One exporter of a compile: its rows, and its artifact (``path``) or why it wrote none (``error``).

    ``seconds``: its export time (None for a file the caller wrote earlier). The caller puts the rows it filled
    in ``rows``: the exporter's ``record`` reads them."""

    name: str
    exporter: Exporter
    verifications: list[Verification]
    path: Path | None = None
    error: str | None = None
    seconds: float | None = None
    rows: list[Any] = field(default_factory=list)


def export_each(ctx: ExportContext, names: Sequence[str], prebuilt: Mapping[str, str | Path] | None = None,
                describe: Callable[[BaseException], str] = first_line) -> Iterator[ExportStep]:
    """Each exporter of ``names`` and what it needs, in need order (``ctx.planned``), with its artifact written.

    ``prebuilt`` (exporter name → file): artifacts of this very model the caller already wrote, copied instead of
    exported again. An exporter that cannot run or fails yields its step with ``error`` (``describe(exception)``)
    and the others go on; one that needs it says so. Artifacts are recorded in ``ctx.artifacts``."""
    prebuilt = dict(prebuilt or {})
    ctx.planned = tuple(exporter_order(list(names)))
    streaming = streams(ctx.model)
    failed: dict[str, str] = {}  # exporter name -> why it wrote nothing
    for name in ctx.planned:
        exp = get_exporter(name)
        step = ExportStep(name, exp, exp.stream_verifications() if streaming else exp.verifications())
        t0 = time.perf_counter()
        try:
            why = cannot_run(exp, ctx, failed)
            if why is not None:
                raise ExportError(why)
            if name in prebuilt:
                path = ctx.out_dir / exp.artifact_name(ctx.model)
                shutil.copyfile(prebuilt[name], path)
                exp.info = {"seconds": None}  # written earlier, by the caller
            else:
                path = Path(exp.write(ctx))
        except Exception as err:  # noqa: BLE001 - recorded in its rows; the other exporters go on
            step.error = failed[name] = describe(err)
            log.warning("%s failed: %s", name, step.error)
            yield step
            continue
        step.path, step.seconds = path, exp.info.get("seconds", time.perf_counter() - t0)
        ctx.artifacts[name] = path
        yield step
        try:
            exp.record(ctx, path, step.rows)
        except Exception as err:  # noqa: BLE001 - a measurement that failed is not a verification failure
            log.warning("%s: could not record its measurements: %s", name, describe(err))


def cross_checks(step: ExportStep, verification: Verification, y: np.ndarray, outputs: Mapping[str, np.ndarray],
                 ctx: ExportContext, tol: Tolerances, rerun: Callable[[Verification], np.ndarray]) -> list[Check]:
    """The checks of a row against other computations of the same file, in output quantization steps: the row's
    ``reference`` runtime (``rerun(verification on that runtime)`` gives its outputs) and the ``same_as`` row (its
    outputs in ``outputs``, by label; skipped when that row did not run)."""
    out: list[Check] = []
    v, exp = verification, step.exporter
    kind = v.kind or exp.kind
    if v.reference is not None:
        y_ref = rerun(replace(v, runtime=v.reference))
        out.append(runtime_check(v.reference_check or f"vs {v.reference}", y, y_ref,
                                 exp.output_step(step.path, ctx), tol, kind))
    if v.same_as is not None and outputs.get(v.same_as) is not None:
        out.append(runtime_check(v.same_as_check or f"vs {v.same_as}", y, outputs[v.same_as],
                                 exp.output_step(step.path, ctx), tol, kind))
    return out
