"""compile_model and the audio compile stage run the exporters named in compilation.exporters from the EXPORTERS
registry: a registered exporter (examples/extensions/exporter/ort_format.py, loaded from a config's extensions:)
runs after what it needs, writes its file, gets its rows and is judged by the rule of its kind, in a time-series run
and in an audio run."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from modelmaker.cli import main
from tinyverse import extensions
from tinyverse.compile import compile_model
from tinyverse.export import Exporter, exporter_order, run_onnx
from tinyverse.models import GenericModelWithSpec
from tinyverse.registry import EXPORTERS

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "extensions" / "exporter" / "ort_format.py"
ORT_ROWS = ("ONNX float (ORT format)", "ONNX int8 (ORT format)")


@pytest.fixture(autouse=True)
def clean_registries(monkeypatch, tmp_path, tmp_path_factory, restore_registries):
    """No user folder or env paths leak in; whatever a test registers or loads is removed afterwards."""
    monkeypatch.setattr(extensions, "DEFAULT_FOLDER", tmp_path / "no-default-folder")
    monkeypatch.delenv(extensions.ENV_PATHS, raising=False)
    monkeypatch.setenv("TINYVERSE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def is_ort_format(path: Path) -> bool:
    return Path(path).read_bytes()[4:8] == b"ORTM"  # the ORT flatbuffer's file identifier, not an ONNX protobuf


def test_exporters_run_after_what_they_need():
    assert exporter_order(["c_header", "onnx_int8"]) == ["tflite_int8", "c_header", "onnx", "onnx_int8"]
    assert exporter_order(["onnx", "onnx_int8", "tflite", "tflite_int8", "c_header"]) == [
        "onnx", "onnx_int8", "tflite", "tflite_int8", "c_header"]
    extensions.load_extensions([EXAMPLE], strict=True)
    assert exporter_order(["onnx_int8_ort", "onnx_ort"]) == ["onnx", "onnx_int8", "onnx_int8_ort", "onnx_ort"]
    assert EXPORTERS.entry("onnx_ort").source == f"extension:{EXAMPLE.resolve()}"


def _tiny():
    torch.manual_seed(0)
    spec = {"inputs": {"x": [1, 16, 1]}, "layers": {
        "conv": {"type": "ConvBNReLULayer", "out_channels": 4, "kernel_size": 3},
        "gap": {"type": "GlobalAvgPoolLayer"}, "flat": {"type": "ReshapeLayer"},
        "fc": {"type": "LinearLayer", "out_features": 3}}}
    return GenericModelWithSpec(spec).eval()


def test_a_registered_exporter_is_judged_by_its_kind_and_failures_stay_in_their_rows(tmp_path):
    """An exporter whose outputs are off fails the float rule; one that raises fails its rows, and so does the one
    that needs it; one of another modality says so; the built-in row they need still passes."""

    class _CopyOfOnnx(Exporter):
        needs = ("onnx",)

        def write(self, ctx):
            path = ctx.out_dir / self.file_name
            shutil.copyfile(ctx.artifacts["onnx"], path)
            return path

    @EXPORTERS.register("noisy_onnx")
    class Noisy(_CopyOfOnnx):
        name, file_name, label, kind = "noisy_onnx", "noisy.onnx", "noisy ONNX", "float"

        def run(self, path, X):
            return run_onnx(path, X) + 0.01  # 1e3 x the float bound

    @EXPORTERS.register("broken")
    class Broken(_CopyOfOnnx):
        name, file_name = "broken", "broken.bin"

        def write(self, ctx):
            raise OSError("disk full")

    @EXPORTERS.register("after_broken")
    class AfterBroken(_CopyOfOnnx):
        name, file_name, needs = "after_broken", "after.onnx", ("broken",)

    @EXPORTERS.register("audio_only")
    class AudioOnly(_CopyOfOnnx):
        name, file_name, modalities = "audio_only", "audio.onnx", ("audio",)

    X = np.random.RandomState(0).randn(40, 1, 16, 1).astype(np.float32)
    rep = compile_model(_tiny(), None, tmp_path, X, X, exporters=["noisy_onnx", "after_broken", "audio_only"])
    rows = {r.artifact: r for r in rep.rows}
    assert list(rows) == ["PyTorch float", "ONNX float", "noisy ONNX", "broken", "after_broken", "audio_only"]
    assert rows["ONNX float"].status == "PASS"
    noisy = rows["noisy ONNX"]
    assert noisy.error is None and noisy.kind == "float" and noisy.status == "FAIL"
    assert noisy.max_abs_diff == pytest.approx(0.01, abs=1e-4)
    assert noisy.verdict.failures[0].startswith("max |diff| / max(1, |ref|)")
    assert rows["broken"].error == "disk full"
    assert rows["after_broken"].error == "needs broken, which failed: disk full"
    assert "does not support the timeseries modality" in rows["audio_only"].error
    assert not rep.verified and len(rep.failures) == 4
    assert rep.artifacts["noisy_onnx"] == str(tmp_path / "noisy.onnx") and "broken" not in rep.artifacts


def test_custom_exporter_in_a_timeseries_run(tmp_path):
    cfg = {
        "extensions": [str(EXAMPLE)],
        "common": {"task_type": "classification", "modality": "timeseries", "run_name": "ts",
                   "projects_path": str(tmp_path / "projects"), "seed": 0, "verbose": False},
        "dataset": {"name": "ucr", "ucr_name": "ItalyPowerDemand", "val_fraction": 0.2},
        "training": {"model_name": "CLS_1k_NPU", "epochs": 2, "batch_size": 16, "learning_rate": 0.01,
                     "accelerator": "cpu", "devices": 1},
        "compilation": {"enable": True, "calibration_samples": 64, "exporters": ["onnx_int8_ort", "onnx_ort"]},
    }
    path = tmp_path / "ts.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["run", str(path)]) == 0
    run_dir = tmp_path / "projects" / "ts"
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = {r["artifact"]: r for r in summary["compilation"]["verification"]}
    # the exporters they need ran first and were verified too
    assert list(rows) == ["PyTorch float", "ONNX float", "ONNX int8", "ONNX int8 (ORT format)",
                          "ONNX float (ORT format)"]
    assert summary["verification"]["status"] == "PASS"
    f, q = rows["ONNX float (ORT format)"], rows["ONNX int8 (ORT format)"]
    assert f["status"] == q["status"] == "PASS" and f["error"] is None and q["error"] is None
    assert (f["kind"], q["kind"]) == ("float", "int8")
    assert f["path"] == str(run_dir / "model_float.ort") and is_ort_format(f["path"])
    assert q["path"] == str(run_dir / "model_int8.ort") and is_ort_format(q["path"])
    assert f["max_abs_diff"] < 1e-4 and f["metric"] == pytest.approx(rows["ONNX float"]["metric"])
    assert [c["name"] for c in f["checks"]] == ["max |diff| / max(1, |ref|)"]
    names = [c["name"] for c in q["checks"]]
    assert "argmax agreement" in names and "vs ONNX int8 (output steps)" in names
    assert summary["compilation"]["artifacts"]["onnx_ort"] == f["path"]
    report = (run_dir / "report.md").read_text()
    assert "| ONNX float (ORT format) | PASS |" in report and "| ONNX int8 (ORT format) | PASS |" in report


def test_custom_exporter_in_an_audio_run(tmp_path):
    from modelmaker.runner import run

    cfg = tmp_path / "audio.yaml"
    cfg.write_text(f"""
extensions: [{EXAMPLE}]
common: {{task_type: amp_modelling, modality: audio, projects_path: {tmp_path / 'projects'}, run_name: a, verbose: false}}
dataset: {{name: nam_capture, generated_seconds: 6.0, ny: 4096}}
training: {{model_name: NAM_WaveNet_nano, epochs: 1, batch_size: 8, learning_rate: 0.004, accelerator: cpu}}
compilation: {{enable: true, calibration_samples: 16, exporters: [onnx_ort, onnx_int8_ort]}}
""")
    summary = run(cfg)
    run_dir = Path(summary["run_dir"])
    rows = {r["artifact"]: r for r in summary["compilation"]["rows"]}
    # as in time series: each exporter after the one it needs, which is verified too
    assert list(rows) == ["PyTorch float", "ONNX float", ORT_ROWS[0], "ONNX int8", ORT_ROWS[1]]
    f, q = rows["ONNX float (ORT format)"], rows["ONNX int8 (ORT format)"]
    for row in (f, q):
        assert "error" not in row, row.get("error")
        assert row["verdict"]["status"] == "PASS", row["verdict"]["failures"]
        assert row["runtime"] == "onnxruntime" and row["rtf"] > 0 and row["bytes"] > 0
    assert (f["kind"], q["kind"]) == ("float", "int8")
    assert f["file"] == "model_stream.ort" and is_ort_format(run_dir / f["file"])
    assert q["file"] == "model_stream_int8.ort" and is_ort_format(run_dir / q["file"])
    # rendered block by block: the float file reproduces the PyTorch render, the int8 one the int8 ONNX render
    assert f["esr_vs_torch"] < 1e-8
    assert f["esr_vs_target"] == pytest.approx(rows["ONNX float"]["esr_vs_target"], rel=1e-4)
    assert [c["name"] for c in f["verdict"]["checks"]] == ["ESR vs PyTorch"]
    assert [c["name"] for c in q["verdict"]["checks"]] == ["ESR vs PyTorch", "vs ONNX int8 (output steps)"]
    assert summary["compilation"]["exports"]["onnx_ort"]["seconds"] >= 0
    assert "| ONNX int8 (ORT format) | onnxruntime CPU | PASS |" in (run_dir / "compile_report.md").read_text()
