"""Pipeline side of the compilation stage, common to every modality.

- ``precheck_device``: the model against ``common.target_device`` before training (strict → ``DeviceCheckError``,
  raised before the run folder exists, naming the zoo entries that do fit when the caller can list them; otherwise
  warnings); ``target_device`` is that profile with ``common.latency_budget_ms`` applied;
- ``write_device_check``: ``device_check.md`` / ``.json`` in the run folder;
- ``load_model_file``: compile-only mode, a model someone already has (``compilation.model_path``): a Lightning
  checkpoint or state dict of ours (rebuilt from the ``model_spec.yaml`` next to it, or from
  ``training.model_name`` + ``model_args``), or an ``.onnx`` file;
- ``compile_onnx_file``: what can be done with a bare ONNX file (int8 QDQ, run both on the test split, the device
  checks that need no spec), reporting what is skipped and why.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelmaker.run_folder import write_json

log = logging.getLogger("modelmaker")

CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pth")


class DeviceCheckError(RuntimeError):
    """The model does not fit ``common.target_device`` and ``compilation.strict`` is true.

    ``str()`` is a headline plus one line per violation (the CLI prints it as a user error, exit code 2).
    """


class VerificationError(RuntimeError):
    """An exported artifact broke its pass rule (``compilation.tolerances``) and ``compilation.strict`` is true.

    Raised after the run folder and its report are complete; ``str()`` is a headline plus one line per FAIL row.
    """


class ModelFileError(RuntimeError):
    """``compilation.model_path`` cannot be loaded or does not match the data. ``str()`` is one line."""


@dataclass
class Prepared:
    """What a modality builds before the run folder exists (so input errors cost seconds, not a folder)."""

    model: Any = None  # torch nn.Module, or None for an ONNX file
    model_args: dict[str, Any] = field(default_factory=dict)
    model_name: str | None = None
    source: str = "zoo"  # "zoo", "checkpoint" or "onnx"
    model_path: str | None = None
    device_report: Any = None  # tinyverse.devices.DeviceReport of the spec, before training
    notes: list[str] = field(default_factory=list)

    @property
    def spec(self):
        return getattr(self.model, "spec", None)


def target_device(cfg):
    """``common.target_device`` as the checks use it: the name (or YAML path) as given, or — when
    ``common.latency_budget_ms`` is set — that profile with the budget (``tinyverse.devices.latency.with_budget``).
    None without a device."""
    device = cfg.common.target_device
    budget = getattr(cfg.common, "latency_budget_ms", None)
    if device is None or budget is None:
        return device
    from tinyverse.devices import get_device
    from tinyverse.devices.latency import with_budget

    return with_budget(get_device(device), budget)


def precheck_device(model, device, strict: bool, model_name: str = "model",
                    sample_rate: int | None = None, alternatives=None):
    """``tinyverse.devices.check_model`` before training, the one device check of every modality: a spec (or a
    model with one) layer by layer, a streaming model (NAM) by its own cost per sample at ``sample_rate``. A model
    that does not fit fails here when ``strict`` (``DeviceCheckError``, before the run folder exists).

    ``alternatives(profile) -> list[str]``: the zoo entries that would fit instead (e.g. ``CLS_1k_NPU (0.6 ms)``),
    named in the error when the model does not fit.

    Returns the DeviceReport (None without a device, a model, or a model no device rule can read).
    """
    if device is None or model is None:
        return None
    from tinyverse.devices import UncheckableModel, check_model

    try:
        report = check_model(model, device, sample_rate=sample_rate, model_name=model_name)
    except UncheckableModel as err:
        log.info("device check skipped: %s", err)
        return None
    if report.fits:
        totals = report.totals
        macs = f"{totals['macs']:,} MACs" if totals.get("macs") is not None else \
            f"{totals.get('macs_per_sample', 0):,} MACs/sample"
        latency = f", ~{totals['latency_ms']:.3g} ms" if totals.get("latency_ms") is not None else ""
        log.info("device check: %s fits %s (flash ~%s B, RAM ~%s B, %s%s)", model_name, report.device,
                 f"{totals.get('flash_bytes') or 0:,}", f"{totals.get('ram_bytes') or 0:,}", macs, latency)
        return report
    head = (f"{model_name} does not fit {report.device} ({len(report.violations)} violation"
            f"{'s' if len(report.violations) != 1 else ''}; set compilation.strict: false to train anyway):")
    if strict:
        lines = [head] + [f"  - {v}" for v in report.violations]
        if alternatives is not None:
            from tinyverse.devices import get_device

            fitting = alternatives(get_device(device))
            lines.append(f"  zoo entries that fit {report.device} with this input: {', '.join(fitting)}" if fitting
                         else f"  no zoo entry of this task fits {report.device} with this input")
        raise DeviceCheckError("\n".join(lines))
    log.warning("device check: %s does not fit %s (compilation.strict: false, going on):", model_name, report.device)
    for v in report.violations:
        log.warning("  - %s", v)
    return report


def verification_summary(verified: bool, failures: list[str], tolerances) -> dict[str, Any]:
    """``summary["verification"]``, the same key in every modality: PASS/FAIL, what failed, the bounds used."""
    return {"status": "PASS" if verified else "FAIL", "failures": list(failures),
            "tolerances": tolerances.model_dump() if hasattr(tolerances, "model_dump") else dict(tolerances or {})}


def fail_if_unverified(cfg, summary: dict[str, Any], run_dir: Path) -> None:
    """A FAIL row fails a strict run (``VerificationError``, exit 2) once the folder and report are written;
    ``compilation.strict: false`` keeps the run a success with a loud warning."""
    ver = summary.get("verification") or {}
    if ver.get("status") != "FAIL":
        return
    lines = [f"  - {f}" for f in ver.get("failures", [])]
    if not cfg.compilation.strict:
        log.warning("VERIFICATION FAILED (compilation.strict: false, the run counts as done): %d artifact(s) "
                    "disagree with their reference:\n%s", len(lines), "\n".join(lines))
        return
    raise VerificationError("\n".join(
        [f"{len(lines)} exported artifact(s) failed verification (bounds: compilation.tolerances; set "
         f"compilation.strict: false to keep such a run; the run folder is complete: "
         f"{run_dir / summary.get('report', 'report.md')}):"]
        + lines))


def write_device_check(run_dir: Path, report, name: str = "device_check") -> None:
    if report is None:
        return
    (run_dir / f"{name}.md").write_text(report.to_markdown() + "\n")
    write_json(run_dir / f"{name}.json", report.to_dict())


# -- compile-only: a model file someone already has ---------------------------------------------------------
def _find_spec_file(path: Path) -> Path | None:
    """``model_spec.yaml`` of the run a checkpoint belongs to (next to it, or one folder up)."""
    for folder in (path.parent, path.parent.parent):
        candidate = folder / "model_spec.yaml"
        if candidate.is_file():
            return candidate
    return None


def read_state_dict(path: Path) -> dict[str, Any]:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickled modules, corrupt files: weights_only refuses them
        raise ModelFileError(f"compilation.model_path: cannot read {path} as weights "
                             f"(torch.load weights_only=True): {str(err).splitlines()[0][:200]}") from None
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise ModelFileError(f"compilation.model_path: {path} holds no state dict (expected a Lightning checkpoint "
                             f"or torch.save(model.state_dict()))")
    if any(k.startswith("model.") for k in state):  # a Lightning task's keys
        state = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    return state


def load_weights(model, state: dict[str, Any], path: Path, what: str) -> None:
    """``model.load_state_dict(state)``; weights that do not fit are one ``ModelFileError`` line naming the file and
    ``what`` the model was built from."""
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        lines = str(err).splitlines()
        raise ModelFileError(f"compilation.model_path: the weights of {path.name} do not fit {what}: "
                             f"{' '.join(lines[1:3]).strip()[:300] or lines[0]}") from None


def load_model_file(cfg, build_from_config) -> Prepared:
    """The model of ``compilation.model_path``.

    ``build_from_config()`` builds ``training.model_name`` + ``model_args`` (used when no ``model_spec.yaml``
    sits next to a checkpoint).
    """
    path = Path(cfg.compilation.model_path)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return Prepared(model=None, model_name=path.stem, source="onnx", model_path=str(path),
                        notes=["ONNX file: no spec, so the per-layer device rules and the TFLite/C exports "
                               "(built from the spec) are skipped; onnx and onnx_int8 are verified"])
    if suffix not in CHECKPOINT_SUFFIXES:
        raise ModelFileError(f"compilation.model_path: {path.name}: expected a .ckpt/.pt/.pth checkpoint or an "
                             f".onnx file")
    state = read_state_dict(path)
    spec_file = _find_spec_file(path)
    if spec_file is not None:
        from tinyverse.models import GenericModelWithSpec
        from tinyverse.models.spec import ModelSpec

        model = GenericModelWithSpec(ModelSpec.from_yaml(spec_file))
        name, args, how = model.spec.name or path.stem, {}, f"spec {spec_file}"
    elif cfg.training.model_name:
        model, args = build_from_config()
        name, how = cfg.training.model_name, f"training.model_name {cfg.training.model_name}"
    else:
        raise ModelFileError(f"compilation.model_path: no model_spec.yaml next to {path} (or one folder up); set "
                             f"training.model_name (and model_args) to say which model the weights belong to")
    load_weights(model, state, path, f"the model built from {how}")
    model.eval()
    log.info("compile-only: %s rebuilt from %s, weights from %s", name, how, path)
    return Prepared(model=model, model_args=args, model_name=name, source="checkpoint", model_path=str(path),
                    notes=[f"model rebuilt from {how}; weights from {path}"])


def onnx_outputs(onnx_path: str | Path, X: np.ndarray) -> np.ndarray:
    """The ONNX file's outputs on ``X``; a file that does not run on the data is a ``ModelFileError``."""
    from tinyverse.export import run_onnx

    try:
        return np.asarray(run_onnx(onnx_path, X), dtype=np.float32)
    except Exception as err:
        raise ModelFileError(f"compilation.model_path: {Path(onnx_path).name} does not run on the data "
                             f"(input {'x'.join(map(str, X.shape[1:]))}): {str(err).splitlines()[0][:200]}") \
            from None


def compile_onnx_file(onnx_path: str | Path, out_dir: Path, calib_X: np.ndarray, test_X: np.ndarray,
                      test_y: np.ndarray | None, metric: str, device: str | None, exporters: list[str] | None,
                      metric_fn=None, tolerances=None, higher_is_better: bool = True,
                      classifier: bool | None = None):
    """Compile-only for a bare ONNX file: copy, int8 QDQ, both run on the test split, device budgets.

    Returns a ``tinyverse.compile.CompileReport``. What needs a spec (TFLite twin, C header, layer rules) is skipped
    and said so in the report.
    """
    import shutil

    from tinyverse.compile import (CompileReport, VerificationRow, compare_outputs, looks_like_scores,
                                   onnx_int8_runtime_check, scorer)
    from tinyverse.devices import DeviceReport, get_device
    from tinyverse.export import run_onnx
    from tinyverse.quantization import quantize_onnx_static
    from tinyverse.verification import Tolerances, Verdict

    out_dir.mkdir(parents=True, exist_ok=True)
    float_path = out_dir / "model_float.onnx"
    shutil.copyfile(onnx_path, float_path)
    ref = onnx_outputs(float_path, test_X)
    score = scorer(test_y, metric, metric_fn)
    tol = tolerances or Tolerances()
    classifier = looks_like_scores(ref) if classifier is None else classifier
    rows = [VerificationRow("ONNX float", str(float_path), metric=score(ref), max_abs_diff=0.0,
                            argmax_agreement=1.0 if classifier else None,
                            kind="reference", verdict=Verdict())]
    artifacts = {"onnx": str(float_path)}
    skipped = [e for e in (exporters or []) if e not in ("onnx", "onnx_int8")]
    info: dict[str, Any] = {"source": str(onnx_path), "reference": "ONNX float (no PyTorch model)",
                            "skipped": {e: "needs the model spec (TFLite is built from the spec's Keras twin)"
                                        for e in (skipped or ["tflite", "tflite_int8", "c_header"])}}
    if exporters is None or "onnx_int8" in exporters:
        row = VerificationRow("ONNX int8", None, kind="int8")
        rows.append(row)
        t0 = time.perf_counter()
        try:
            q = quantize_onnx_static(float_path, out_dir / "model_int8.onnx", calib_X)
            row.path, row.seconds = str(q), time.perf_counter() - t0
            y = run_onnx(q, test_X)
            compare_outputs(row, y, ref, score, tol, rows[0].metric, higher_is_better,
                            [onnx_int8_runtime_check(q, test_X, tol, y)], metric, classifier)
            artifacts["onnx_int8"] = str(q)
        except Exception as err:  # noqa: BLE001 - recorded in the row, like compile_model does
            row.error = str(err).splitlines()[0][:300]
    dev = None
    if device is not None:
        profile = get_device(device)
        dev = DeviceReport(profile.name, profile.kind, Path(onnx_path).stem, [], {}, {
            "flash_bytes": profile.flash_bytes, "ram_bytes": profile.ram_bytes,
            "macs": profile.max_macs_per_inference}, [], [
            "ONNX file without a spec: per-layer rules, MACs and the RAM estimate were not checked",
            "no int8 .tflite (it is built from the spec), so the TFLM arena and op list were not measured"])
        q = out_dir / "model_int8.onnx"
        if q.exists():
            size = q.stat().st_size
            dev.measured["onnx_int8_bytes"] = size
            dev.notes.append(f"the int8 ONNX file is {size:,} bytes (graph + int8 weights; an upper bound, not "
                             f"checked against the {profile.flash_bytes or 0:,} byte flash budget)")
    return CompileReport(str(out_dir), metric, rows, artifacts, dev, info)
