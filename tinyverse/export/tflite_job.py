"""One TFLite conversion job: a twin plan and its data in a temporary folder, the worker
(:mod:`tinyverse.export.tflite_worker`) run on it in a subprocess, its result read back.

Both modalities convert through here: a spec model's twin (:func:`tinyverse.export.tflite.convert_tflite`) and a
streaming model's twin (``model.streaming_twin(block)``, :func:`tinyverse.audio.tflite.export_streaming_tflite`).
The subprocess keeps TensorFlow out of the caller's process (``import tinyverse`` never loads it) and a converter
crash from killing a run. One job writes every mode asked for (float, int8, int16) from one twin build.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tinyverse.export import tflite_worker
from tinyverse.export.onnx_float import ExportError

__all__ = ["MODES", "TWIN_TOLERANCE", "CONVERT_TIMEOUT_S", "TwinJob", "run_tflite_job"]

MODES = tflite_worker.MODES  # "float", "int8", "int16" (int16 activations, int8 weights)
WORKER = Path(tflite_worker.__file__)
TWIN_TOLERANCE = 1e-4  # relative to max(1, max |torch output|): float32 twins agree to ~1e-6
CONVERT_TIMEOUT_S = 900


@dataclass
class TwinJob:
    """What the worker needs: the plan (``{"inputs", "ops", "outputs"}``, JSON), its weights (``<op>/<key>``, Keras
    layout), representative inputs for the quantized modes, and torch's outputs ``ref_out`` on ``ref_in`` — all in
    the twin's layout, with the batch axis first. A plan with several inputs (a knob model's audio and ``params``)
    gives ``calib`` and ``ref_in`` as a sequence, one array per input in the plan's order. ``signature``: give the
    files a "serving_default" signature. ``metadata``: TFLite metadata entries (name → text) every file carries."""

    plan: dict[str, Any]
    weights: dict[str, np.ndarray]
    calib: np.ndarray | Sequence[np.ndarray]
    ref_in: np.ndarray | Sequence[np.ndarray]
    ref_out: np.ndarray
    signature: bool = False
    metadata: dict[str, str] | None = None


def _per_input(a: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(x, np.float32) for x in ([a] if isinstance(a, np.ndarray) else a)]


def run_tflite_job(job: TwinJob, paths: Mapping[str, str | Path | None], *, tolerance: float = TWIN_TOLERANCE,
                   timeout_s: int = CONVERT_TIMEOUT_S) -> dict[str, Any]:
    """Convert ``job`` to the files in ``paths`` (mode → path or None; modes of :data:`MODES`).

    Returns what the worker measured (``build_s``, ``twin_max_abs_diff``, ``convert_<mode>_s``, ``subprocess_s``)
    and ``errors``: mode → why that file was not written (a mode that fails does not stop the others). Raises
    :class:`ExportError` when the twin disagrees with torch, the worker fails before converting anything, or the job
    runs past ``timeout_s``."""
    unknown = set(paths) - set(MODES)
    if unknown:
        raise ValueError(f"unknown TFLite modes {sorted(unknown)}; use {', '.join(MODES)}")
    wanted = {mode: str(Path(p).resolve()) for mode, p in paths.items() if p}
    if not wanted:
        raise ValueError("run_tflite_job: no output file asked for")
    with tempfile.TemporaryDirectory(prefix="tinyverse_tflite_") as tmp:
        folder = Path(tmp)
        (folder / "plan.json").write_text(json.dumps(job.plan))
        np.savez(folder / "weights.npz", **{k: np.asarray(v, np.float32) for k, v in job.weights.items()})
        np.savez(folder / "calib.npz", *_per_input(job.calib))
        np.savez(folder / "ref_in.npz", *_per_input(job.ref_in))
        np.save(folder / "ref_out.npy", np.asarray(job.ref_out, np.float32))
        (folder / "job.json").write_text(json.dumps({**{m: wanted.get(m) for m in MODES}, "tolerance": tolerance,
                                                       "signature": job.signature,
                                                       "metadata": dict(job.metadata or {})}))
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1", "CUDA_VISIBLE_DEVICES": ""}
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, str(WORKER), str(folder)], capture_output=True, text=True, env=env,
                                  timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise ExportError(f"TFLite conversion timed out after {timeout_s} s") from None
        result_file = folder / "result.json"
        result = json.loads(result_file.read_text()) if result_file.exists() else {}
    if "error" in result:
        raise ExportError(result["error"])
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        if "errors" not in result:  # nothing converted: the build or the twin check crashed
            raise ExportError(f"TFLite conversion failed (worker exit {proc.returncode}): {tail}")
        for mode in wanted:  # the converter died mid-way (a segfault): the modes it did not write are errors
            if f"convert_{mode}_s" not in result:
                result["errors"].setdefault(mode, f"converter crashed (exit {proc.returncode}): {tail}")
    result["subprocess_s"] = time.perf_counter() - t0
    return result
