"""The compilation stage as one library call: quantize, export, run every artifact, check the device.

``compile_model`` runs the exporters named (``EXPORTERS``; by default onnx, onnx_int8, tflite, tflite_int8 and
c_header: model_float.onnx, model_int8.onnx, model_float.tflite, model_int8.tflite, model_int8.h/.c and
golden_vectors.h) in the order of their needs, runs each artifact on the test split as the exporter declares and
fills a verification table (PyTorch float, ONNX float, ONNX int8, TFLite float and int8 on LiteRT's reference
kernels, TFLite int8 in TFLM, the C array parsed back and run in TFLM, and the rows of any registered exporter).
No exporter name appears in this module: a registered exporter runs exactly like a built-in. An exporter that
fails is recorded in its rows and the others go on. The per-exporter loop is the one both modalities share
(:func:`tinyverse.export.pipeline.export_each`); the whole-input rows are run and judged here. ``check_model`` and
``fitting_models`` answer the CLI's device questions from specs only.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from torch import nn

from tinyverse.devices import DeviceProfile, DeviceReport, check_spec, check_tflite_ops, get_device
from tinyverse.export import torch_outputs
from tinyverse.export.base import ExportContext, RunResult
from tinyverse.export.onnx_exporters import onnx_int8_runtime_check  # noqa: F401 - part of this module's API
from tinyverse.export.pipeline import cross_checks, export_each, first_line
from tinyverse.models.spec import ModelSpec
from tinyverse.verification import FAIL, Check, Tolerances, Verdict, judge_outputs

log = logging.getLogger(__name__)

DEFAULT_EXPORTERS = ("onnx", "onnx_int8", "tflite", "tflite_int8", "c_header")


@dataclass
class VerificationRow:
    artifact: str  # "PyTorch float", "ONNX int8", "TFLite int8 (TFLM)", ...
    path: str | None
    metric: float | None = None
    max_abs_diff: float | None = None  # vs PyTorch float on the test split
    argmax_agreement: float | None = None  # share of samples whose argmax equals PyTorch's
    arena_bytes: int | None = None
    seconds: float | None = None  # export/convert time of the artifact
    error: str | None = None
    kind: str = "float"  # "reference", "float" or "int8": which pass rule applies (tinyverse.verification)
    verdict: Verdict | None = None

    @property
    def status(self) -> str:
        return self.verdict.status if self.verdict is not None else (FAIL if self.error else "PASS")

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "verdict"}
        verdict = self.verdict or Verdict(error=self.error)
        return {**out, **verdict.to_dict()}


@dataclass
class CompileReport:
    out_dir: str
    metric: str
    rows: list[VerificationRow]
    artifacts: dict[str, str]
    device: DeviceReport | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def row(self, artifact: str) -> VerificationRow:
        return next(r for r in self.rows if r.artifact == artifact)

    @property
    def verified(self) -> bool:
        """Every row PASSes its rule (a row that failed to export or run is a FAIL)."""
        return all(r.status != FAIL for r in self.rows)

    @property
    def failures(self) -> list[str]:
        """``artifact: what broke`` for every FAIL row."""
        return [f"{r.artifact}: {'; '.join((r.verdict or Verdict(error=r.error)).failures)}"
                for r in self.rows if r.status == FAIL]

    @property
    def ok(self) -> bool:
        return self.verified and (self.device is None or self.device.fits)

    def to_dict(self) -> dict[str, Any]:
        return {"out_dir": self.out_dir, "metric": self.metric, "ok": self.ok, "verified": self.verified,
                "failures": self.failures, "verification": [r.to_dict() for r in self.rows],
                "artifacts": dict(self.artifacts), "device": self.device.to_dict() if self.device else None,
                "info": _jsonable(self.info)}

    def to_markdown(self) -> str:
        fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        out = ["## Compilation", "", f"| artifact | verdict | {self.metric} | max abs diff vs PyTorch | "
               f"argmax agreement | TFLM arena (bytes) | time (s) | file | rule |",
               "|---|---|---:|---:|---:|---:|---:|---|---|"]
        for r in self.rows:
            verdict = r.verdict or Verdict(error=r.error)
            if r.error:
                out.append(f"| {r.artifact} | **FAIL** | failed: {r.error} | | | | | | |")
                continue
            status = "PASS" if verdict.status != FAIL else "**FAIL**: " + "; ".join(verdict.failures)
            out.append(f"| {r.artifact} | {status} | {fmt(r.metric, '.4f')} | {fmt(r.max_abs_diff, '.3g')} | "
                       f"{fmt(r.argmax_agreement, '.3f')} | {fmt(r.arena_bytes, ',')} | {fmt(r.seconds, '.1f')} | "
                       f"{Path(r.path).name if r.path else '-'} | {verdict.rule} |")
        if self.info.get("tflite_int8_ops"):
            out += ["", f"TFLite int8 ops: {', '.join(self.info['tflite_int8_ops'])}"]
        if self.device is not None:
            out += ["", self.device.to_markdown()]
        return "\n".join(out)


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, Path):
        return str(v)
    return v


def _metric(y: np.ndarray, test_y: np.ndarray | None, metric: str) -> float | None:
    if test_y is None:
        return None
    if metric == "accuracy":
        return float(np.mean(y.reshape(len(y), -1).argmax(1) == np.asarray(test_y).reshape(-1)))
    err = y.reshape(test_y.shape) - test_y
    if metric == "mse":
        return float(np.mean(err ** 2))
    if metric == "mae":
        return float(np.mean(np.abs(err)))
    raise ValueError(f"unknown metric {metric!r}; use accuracy, mse or mae")


Scorer = Callable[[np.ndarray], "float | None"]


def scorer(test_y: np.ndarray | None, metric: str, metric_fn: Callable[[np.ndarray], float] | None = None) -> Scorer:
    """outputs → the verification metric: ``metric_fn`` when the task gives one, else ``metric`` vs ``test_y``."""
    if metric_fn is not None:
        return lambda y: float(metric_fn(y))
    return lambda y: _metric(y, test_y, metric)


def looks_like_scores(ref: np.ndarray) -> bool:
    """(N, classes) outputs: class scores, unless the caller knows better (a multi-step forecast is (N, steps))."""
    return ref.ndim == 2 and ref.shape[1] > 1


def compare_outputs(row: VerificationRow, y: np.ndarray, ref: np.ndarray, score: Scorer,
                    tolerances: Tolerances | None = None, ref_metric: float | None = None,
                    higher_is_better: bool = True, extra: Sequence[Check] = (),
                    metric_name: str = "metric", classifier: bool | None = None) -> np.ndarray:
    """Fill ``row`` from the artifact's outputs ``y`` vs the reference ``ref`` and judge it by its kind's rule.

    ``extra``: further checks of the row (e.g. a runtime against the file's reference arithmetic).
    ``classifier``: the outputs are class scores (argmax agreement applies), from the task; None guesses from the
    shape (N, classes), which a multi-step forecast also has — callers that know should say. Returns ``y`` in
    ``ref``'s shape."""
    y = np.asarray(y, dtype=np.float32).reshape(ref.shape)
    row.max_abs_diff = float(np.max(np.abs(y - ref)))
    row.metric = score(y)
    classifier = looks_like_scores(ref) if classifier is None else classifier
    if classifier:
        row.argmax_agreement = float(np.mean(y.argmax(1) == ref.argmax(1)))
    row.verdict = judge_outputs(row.kind, y, ref, tolerances or Tolerances(), metric=metric_name, value=row.metric,
                                ref_value=ref_metric,
                                higher_is_better=higher_is_better, classifier=classifier)
    row.verdict.checks.extend(extra)
    return y


def compile_model(model: nn.Module, spec: ModelSpec | None, out_dir: str | Path, calib_X: np.ndarray,
                  test_X: np.ndarray, test_y: np.ndarray | None = None, metric: str = "accuracy",
                  device: str | Path | DeviceProfile | None = None,
                  exporters: Sequence[str] = DEFAULT_EXPORTERS, golden_vectors: int = 4,
                  reference_outputs: np.ndarray | None = None,
                  float_onnx: str | Path | None = None,
                  metric_fn: Callable[[np.ndarray], float] | None = None,
                  header_defines: dict[str, Any] | None = None,
                  header_notes: Sequence[str] = (),
                  tolerances: Tolerances | None = None,
                  higher_is_better: bool = True,
                  prebuilt: Mapping[str, str | Path] | None = None,
                  options: Mapping[str, Any] | None = None,
                  classifier: bool | None = None) -> CompileReport:
    """Export ``model`` with each of ``exporters`` (``EXPORTERS`` names), verify every artifact on ``test_X``,
    check ``device``.

    Exporters run in the order of their ``needs`` (an exporter another one needs runs first, and is verified too,
    even if not named); each declares its rows (``Exporter.verifications``), the runtime of each and the pass rule
    (``Exporter.kind``). An exporter that fails is recorded in its rows and the others go on; one whose need failed
    says so. ``calib_X`` comes from the training split (int8 calibration; never the test split).
    ``reference_outputs`` are PyTorch's outputs on ``test_X`` if the caller already has them; ``prebuilt`` (exporter
    name → file) are artifacts of this very model the caller already wrote: copied instead of exported again (and
    still verified); ``float_onnx`` is ``prebuilt["onnx"]``.
    ``metric_fn(outputs) -> float`` computes ``metric`` for tasks whose metric is not a plain function of the
    outputs and ``test_y`` (e.g. an anomaly AUC from reconstructions); it replaces ``test_y`` then.
    ``header_defines`` (name -> number) and ``header_notes`` (comment lines) go into model_int8.h: what the deployed
    model needs besides its weights, e.g. ``TV_ANOMALY_THRESHOLD`` and how the score it is compared with is computed.
    ``options`` are passed to every exporter (``ExportContext.options``).
    Every row is judged by the pass rule of its kind with ``tolerances`` (``tinyverse.verification``);
    ``higher_is_better`` is the direction of ``metric`` (accuracy, AUC: True; RMSE, sMAPE: False).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = spec if spec is not None else getattr(model, "spec", None)
    model.eval()
    test_X = np.asarray(test_X, dtype=np.float32)
    calib_X = np.asarray(calib_X, dtype=np.float32)
    ref = np.asarray(reference_outputs if reference_outputs is not None else torch_outputs(model, test_X),
                     dtype=np.float32)
    score = scorer(test_y, metric, metric_fn)
    tol = tolerances or Tolerances()
    classifier = looks_like_scores(ref) if classifier is None else classifier
    rows = [VerificationRow("PyTorch float", None, metric=score(ref), max_abs_diff=0.0,
                            argmax_agreement=1.0 if classifier else None, kind="reference", verdict=Verdict())]
    prebuilt = {**({"onnx": float_onnx} if float_onnx is not None else {}), **(prebuilt or {})}
    ctx = ExportContext(model, spec, out_dir, calib_X, "timeseries", test_X=test_X,
                        options={"golden_vectors": golden_vectors, "header_defines": header_defines,
                                 "header_notes": tuple(header_notes), **(options or {})})
    outputs: dict[str, np.ndarray] = {}  # row label -> its outputs, for the runtime-vs-runtime checks

    def run(exp, v, path) -> tuple[np.ndarray, int | None]:
        result = exp.run_on(v, path, test_X)
        return (result.outputs, result.arena_bytes) if isinstance(result, RunResult) else (result, None)

    for step in export_each(ctx, exporters, prebuilt):
        exp = step.exporter
        step.rows = [VerificationRow(v.label, None, kind=v.kind or exp.kind) for v in step.verifications]
        rows.extend(step.rows)
        for v, row in zip(step.verifications, step.rows):
            if step.error is not None:
                row.error = step.error
                continue
            row.path, row.seconds = str(step.path), step.seconds
            try:
                y, row.arena_bytes = run(exp, v, step.path)
                extra = list(exp.checks(v, step.path, test_X, y, tol))
                extra += cross_checks(step, v, y, outputs, ctx, tol, lambda ref: run(exp, ref, step.path)[0])
                outputs[row.artifact] = compare_outputs(row, y, ref, score, tol, rows[0].metric, higher_is_better,
                                                        extra, metric, classifier)
            except Exception as err:  # noqa: BLE001 - a row that cannot run is a FAIL row
                row.error = first_line(err)
                log.warning("%s failed: %s", row.artifact, row.error)

    artifacts = {**ctx.files, **{k: str(p) for k, p in ctx.artifacts.items() if p.exists()}}
    report_dev = None
    if device is not None:
        profile = get_device(device)
        report_dev = _device_report(spec, profile, ctx.info, ctx.artifacts)
    return CompileReport(str(out_dir), metric, rows, artifacts, report_dev, ctx.info)


def _device_report(spec: ModelSpec | None, profile: DeviceProfile, info: dict[str, Any],
                   paths: dict[str, Path]) -> DeviceReport:
    """The spec-level check plus what the converted files measured (size, arena, TFLite ops, vela)."""
    if spec is not None:
        rep = check_spec(spec, profile)
    else:
        rep = DeviceReport(profile.name, profile.kind, "model", [], {}, {
            "flash_bytes": profile.flash_bytes, "ram_bytes": profile.ram_bytes,
            "macs": profile.max_macs_per_inference}, [], ["no spec: layer rules were not checked"])
    size, arena = info.get("tflite_int8_bytes"), info.get("tflm_arena_bytes")
    if size is not None:
        rep.measured["tflite_int8_bytes"] = size
        if profile.flash_bytes is not None and size + profile.flash_overhead_bytes > profile.flash_bytes:
            rep.add_violation(f"flash: the int8 .tflite is {size:,} bytes (+{profile.flash_overhead_bytes:,} "
                              f"runtime), over the {profile.flash_bytes:,} byte budget")
    if arena is not None:
        rep.measured["tflm_arena_bytes"] = arena
        if profile.ram_bytes is not None and arena + profile.ram_overhead_bytes > profile.ram_bytes:
            rep.add_violation(f"RAM: TFLM used a {arena:,} byte arena, over the {profile.ram_bytes:,} byte budget")
    if info.get("tflite_int8_ops"):
        for v in check_tflite_ops(info["tflite_int8_ops"], profile):
            rep.add_violation(v)
    if (profile.compiler or {}).get("tool") == "vela" and paths.get("tflite_int8") and paths["tflite_int8"].exists():
        from tinyverse.devices.vela import run_vela

        vela = run_vela(paths["tflite_int8"], profile)
        rep.measured["vela"] = vela
        if not vela.get("available"):
            rep.notes.append(vela["message"])
        elif vela.get("ok") and vela.get("cpu_operators"):
            rep.notes.append(f"vela placed {vela['cpu_operators']} operator(s) on the CPU: "
                             + "; ".join(vela.get("cpu_fallback", [])[:5]))
        if vela.get("ok") and vela.get("inference_time") is not None:
            # vela's own estimate replaces the cost model's for the NPU part once the .tflite exists
            vela_ms = 1e3 * float(vela["inference_time"])
            rep.measured["vela_latency_ms"] = round(vela_ms, 6)
            budget = rep.budgets.get("latency_ms")
            if budget is not None and vela_ms > budget:
                rep.add_violation(f"latency: vela estimates {vela_ms:.3g} ms per inference on {profile.name}, over "
                                  f"the {budget:g} ms budget → pick a smaller model or a shorter input")
    return rep


def check_model(model_name: str, device: str | Path | DeviceProfile, input_shape: Sequence[int] = (1, 512),
                **model_args: Any) -> DeviceReport:
    """Check a zoo model's spec against a device before any training (``modelmaker check``)."""
    from tinyverse.models import get_model_spec

    return check_spec(get_model_spec(model_name, input_shape=tuple(input_shape), **model_args), device)


def fitting_models(device: str | Path | DeviceProfile, input_shape: Sequence[int] = (1, 512),
                   task: str | None = None, **model_args: Any) -> list[dict[str, Any]]:
    """One row per zoo model: params, MACs (per inference; ``macs_per_sample`` for a streaming model), estimated
    flash/RAM and whether it fits ``device``."""
    from tinyverse.devices import check_model as check_any_model  # this module's check_model takes a zoo name
    from tinyverse.devices import model_cost
    from tinyverse.layers.base import SpecError
    from tinyverse.models import create_model, get_model_spec, list_models, model_arguments

    profile = get_device(device)
    rows = []
    for name in list_models(task=task):
        try:
            spec = get_model_spec(name, input_shape=tuple(input_shape), **model_args)
        except (SpecError, TypeError, ValueError) as err:  # plain nn.Module entries, other input kinds
            model = create_model(name) if "input_shape" not in model_arguments(name) else None
            if model is not None and model_cost(model) is not None:  # a streaming model (NAM): costed per sample
                rep = check_any_model(model, profile, model_name=name)
                t = rep.totals
                rows.append({"name": name, "params": t["params"], "macs": t.get("macs"),
                             "macs_per_sample": t.get("macs_per_sample"), "flash_bytes": t["flash_bytes"],
                             "ram_bytes": t["ram_bytes"], "fits": rep.fits, "violations": list(rep.violations)})
                continue
            rows.append({"name": name, "params": None, "macs": None, "flash_bytes": None, "ram_bytes": None,
                         "fits": False, "violations": [str(err)]})
            continue
        rep = check_spec(spec, profile)
        rows.append({"name": name, "params": spec.params, "macs": spec.macs,
                     "flash_bytes": rep.totals["flash_bytes"], "ram_bytes": rep.totals["ram_bytes"],
                     "fits": rep.fits, "violations": list(rep.violations)})
    return rows
