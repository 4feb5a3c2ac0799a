"""The compilation stage through the YAML pipeline and the CLI: a tiny end-to-end run on ItalyPowerDemand (1x24),
device checks before training (strict and not), `modelmaker check`, and compile-only from a checkpoint / ONNX."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml

from modelmaker.cli import main

# A board far too small for any model: flash and RAM of a few hundred bytes.
TINY_BOARD = {"name": "tiny-test-board", "description": "test profile", "kind": "mcu",
              "native_ops": ["FCONV", "GCONV", "DWCONV", "PWCONV", "FC", "MAXPOOL", "AVGPOOL", "RELU", "ADD"],
              "flash_bytes": 256, "ram_bytes": 128, "max_macs_per_inference": 1000}


def write_config(path: Path, projects: Path, *, device="F28P55", training=None, compilation=None,
                 dataset=None, run_name="tiny") -> Path:
    cfg = {
        "common": {"task_type": "classification", "modality": "timeseries", "run_name": run_name,
                   "projects_path": str(projects), "seed": 0, "verbose": False, "target_device": device},
        "dataset": {"name": "ucr", "ucr_name": "ItalyPowerDemand", "val_fraction": 0.2, **(dataset or {})},
        "training": {"model_name": "CLS_1k_NPU", "epochs": 3, "batch_size": 16, "learning_rate": 0.01,
                     "accelerator": "cpu", "devices": 1, **(training or {})},
        "testing": {"enable": True},
        "compilation": {"enable": True, "calibration_samples": 64, "golden_vectors": 2, **(compilation or {})},
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def rows(summary: dict) -> dict[str, dict]:
    return {r["artifact"]: r for r in summary["compilation"]["verification"]}


@pytest.fixture(scope="module")
def compiled_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipeline")
    cfg = write_config(tmp / "tiny.yaml", tmp / "projects")
    assert main(["run", str(cfg)]) == 0
    run_dir = tmp / "projects" / "tiny"
    return run_dir, json.loads((run_dir / "summary.json").read_text())


def test_run_writes_every_artifact(compiled_run):
    run_dir, _ = compiled_run
    for name in ("model_float.onnx", "model_int8.onnx", "model_float.tflite", "model_int8.tflite", "model_int8.h",
                 "model_int8.c", "golden_vectors.h", "compile_report.json", "device_check.md", "device_check.json",
                 "report.md", "summary.json", "model_spec.yaml", "checkpoints/best.ckpt"):
        assert (run_dir / name).is_file(), name


def test_summary_has_the_verification_table(compiled_run):
    _, summary = compiled_run
    table = rows(summary)
    for name in ("PyTorch float", "ONNX float", "ONNX int8", "TFLite float (LiteRT)", "TFLite int8 (LiteRT)",
                 "TFLite int8 (TFLM)", "C array (TFLM)"):
        assert name in table, name
        assert table[name]["error"] is None, (name, table[name]["error"])
        assert 0.0 <= table[name]["metric"] <= 1.0
    assert summary["compilation"]["metric"] == "accuracy"
    assert table["TFLite int8 (TFLM)"]["arena_bytes"] > 0
    # the C array parsed back and run in TFLM gives what the .tflite gave
    assert table["C array (TFLM)"]["metric"] == table["TFLite int8 (TFLM)"]["metric"]
    assert table["ONNX float"]["max_abs_diff"] < 1e-4
    n_train = summary["dataset"]["counts"]["train"]
    assert summary["compilation"]["calibration"] == {"split": "train", "samples": min(64, n_train), "requested": 64}
    q = summary["quantization"]
    assert q["mode"] == "ptq" and q["int8_artifact"] == "TFLite int8 (TFLM)"
    assert q["float_metric"] == pytest.approx(summary["test"]["accuracy"])
    assert q["drop_points"] == pytest.approx(100 * (q["float_metric"] - q["int8_metric"]), abs=1e-3)
    dev = summary["device"]
    assert dev["device"] == "F28P55" and dev["fits"] is True
    assert dev["measured"]["tflm_arena_bytes"] == table["TFLite int8 (TFLM)"]["arena_bytes"]
    assert {layer["layer"] for layer in dev["layers"]} >= {"conv1", "fc"}


def test_report_md_has_the_tables(compiled_run):
    run_dir, _ = compiled_run
    md = (run_dir / "report.md").read_text()
    for heading in ("## Dataset", "## Model", "## Test", "## ONNX parity", "## Quantization", "## Verification",
                    "## Device", "## Artifacts"):
        assert heading in md, heading
    assert "ItalyPowerDemand" in md
    assert "| TFLite int8 (TFLM) |" in md and "| C array (TFLM) |" in md
    assert "### Device check: CLS_1k_NPU on F28P55 — fits" in md
    assert "| conv1 |" in md and "model_int8.tflite" in md


def test_too_big_model_fails_before_the_run_folder(tmp_path, capsys):
    board = tmp_path / "tiny_board.yaml"
    board.write_text(yaml.safe_dump(TINY_BOARD))
    cfg = write_config(tmp_path / "big.yaml", tmp_path / "projects", device=str(board))
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "CLS_1k_NPU does not fit tiny-test-board (3 violations" in err
    lines = [ln for ln in err.splitlines() if ln.startswith("  - ")]
    assert [ln.split(":")[0] for ln in lines] == ["  - flash", "  - RAM", "  - MACs"]
    assert "Traceback" not in err
    assert not (tmp_path / "projects" / "tiny").exists()


def test_measured_size_over_budget_fails_after_the_run(compiled_run, tmp_path, capsys):
    """The spec's flash estimate fits, the converted .tflite does not: strict → exit 2, folder complete."""
    _, summary = compiled_run
    estimate = summary["device"]["totals"]["flash_bytes"]
    measured = summary["device"]["measured"]["tflite_int8_bytes"]
    assert estimate < measured  # the .tflite carries a graph, not only int8 weights
    board = tmp_path / "board.yaml"
    board.write_text(yaml.safe_dump({**TINY_BOARD, "flash_bytes": (estimate + measured) // 2,
                                     "ram_bytes": 10**6, "max_macs_per_inference": None}))
    cfg = write_config(tmp_path / "over.yaml", tmp_path / "projects", device=str(board), training={"epochs": 1},
                       compilation={"exporters": ["tflite_int8"]})
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "compiled model does not fit tiny-test-board" in err[0]
    assert err[1].startswith("  - flash: the int8 .tflite is")
    run_dir = tmp_path / "projects" / "tiny"
    assert json.loads((run_dir / "summary.json").read_text())["device"]["fits"] is False
    assert "flash: the int8 .tflite" in (run_dir / "report.md").read_text()
    # strict: false keeps the same outcome a successful run with the violation in its report
    cfg = write_config(tmp_path / "over2.yaml", tmp_path / "projects", device=str(board), training={"epochs": 1},
                       compilation={"exporters": ["tflite_int8"], "strict": False}, run_name="lenient")
    assert main(["run", str(cfg)]) == 0


def test_strict_false_warns_and_trains(tmp_path, caplog):
    board = tmp_path / "tiny_board.yaml"
    board.write_text(yaml.safe_dump(TINY_BOARD))
    cfg = write_config(tmp_path / "warn.yaml", tmp_path / "projects", device=str(board),
                       training={"epochs": 1}, compilation={"enable": False, "strict": False})
    with caplog.at_level(logging.WARNING, logger="modelmaker"):
        assert main(["run", str(cfg)]) == 0
    assert "does not fit tiny-test-board" in caplog.text
    run_dir = tmp_path / "projects" / "tiny"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["device"]["fits"] is False and len(summary["device"]["violations"]) == 3
    assert "DOES NOT FIT" in (run_dir / "device_check.md").read_text()
    assert "compilation" not in summary


def test_check_command_exit_codes(tmp_path, capsys):
    assert main(["check", "CLS_1k_NPU", "--device", "F28P55", "--input-shape", "1,512", "--num-classes", "4"]) == 0
    out = capsys.readouterr().out
    assert "conv1" in out and "flash_bytes" in out and out.rstrip().endswith("fits F28P55")
    board = tmp_path / "tiny_board.yaml"
    board.write_text(yaml.safe_dump(TINY_BOARD))
    assert main(["check", "CLS_1k_NPU", "--device", str(board), "--input-shape", "1,512"]) == 1
    out = capsys.readouterr().out
    assert "does not fit tiny-test-board: 3 violation(s)" in out
    assert len([ln for ln in out.splitlines() if ln.startswith("  - ")]) == 3
    assert main(["check", "CLS_1k_NPX", "--device", "F28P55"]) == 2
    assert "CLS_1k_NPU" in capsys.readouterr().err  # did-you-mean


def test_devices_and_models_commands(capsys):
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "F28P55" in out and "cortex-m4" in out and "npu_mcu" in out
    assert main(["models", "--device", "F28P55", "--input-shape", "1,512", "--include", "CLS_*"]) == 0
    out = capsys.readouterr().out
    assert "est. flash (B)" in out and "est. RAM (B)" in out and "fits" in out


def test_compile_only_from_checkpoint(compiled_run, tmp_path):
    run_dir, first = compiled_run
    cfg = write_config(tmp_path / "conly.yaml", tmp_path / "projects", training={"enable": False},
                       compilation={"model_path": str(run_dir / "checkpoints" / "best.ckpt")})
    assert main(["run", str(cfg)]) == 0
    summary = json.loads((tmp_path / "projects" / "tiny" / "summary.json").read_text())
    assert "training" not in summary and summary["model"]["source"].endswith("best.ckpt")
    a, b = rows(first), rows(summary)
    # same weights, same calibration samples: the same numbers as the training run
    for name in ("PyTorch float", "TFLite int8 (TFLM)"):
        assert b[name]["metric"] == pytest.approx(a[name]["metric"]), name
    assert summary["device"]["fits"] is True


def test_compile_only_from_onnx(compiled_run, tmp_path):
    run_dir, first = compiled_run
    cfg = write_config(tmp_path / "onnx.yaml", tmp_path / "projects", training={"enable": False},
                       compilation={"model_path": str(run_dir / "model_float.onnx")})
    assert main(["run", str(cfg)]) == 0
    out = tmp_path / "projects" / "tiny"
    summary = json.loads((out / "summary.json").read_text())
    table = rows(summary)
    assert set(table) == {"ONNX float", "ONNX int8"}
    assert table["ONNX float"]["metric"] == pytest.approx(rows(first)["ONNX float"]["metric"])
    assert table["ONNX int8"]["error"] is None and (out / "model_int8.onnx").is_file()
    assert set(summary["compilation"]["info"]["skipped"]) == {"tflite", "tflite_int8", "c_header"}
    assert any("per-layer rules" in n for n in summary["device"]["notes"])
    assert "## Skipped" in (out / "report.md").read_text()


def test_compile_only_without_data_is_a_clear_error(compiled_run, tmp_path, capsys):
    run_dir, _ = compiled_run
    cfg = write_config(tmp_path / "nodata.yaml", tmp_path / "projects", training={"enable": False},
                       dataset={"enable": False},
                       compilation={"model_path": str(run_dir / "checkpoints" / "best.ckpt")})
    assert main(["run", str(cfg)]) == 2
    assert "dataset.enable: true" in capsys.readouterr().err
    assert not (tmp_path / "projects").exists()


def test_qat_reports_float_and_int8(tmp_path):
    cfg = write_config(tmp_path / "qat.yaml", tmp_path / "projects", device=None,
                       training={"model_name": "CLS_100_NPU", "epochs": 2, "quantization": "qat", "qat_epochs": 1},
                       compilation={"exporters": ["onnx", "onnx_int8"]})
    assert main(["run", str(cfg)]) == 0
    run_dir = tmp_path / "projects" / "tiny"
    summary = json.loads((run_dir / "summary.json").read_text())
    q = summary["quantization"]
    assert q["mode"] == "qat" and q["int8_artifact"] == "ONNX int8"
    assert q["float_metric"] == pytest.approx(summary["test"]["accuracy"])
    assert q["qat_float_metric"] is not None and q["int8_metric"] is not None
    assert (run_dir / "model_qat.pt").is_file()
    assert "device" not in summary


def test_shipped_compile_only_config(compiled_run, tmp_path):
    """configs/compile_only.yaml as shipped, pointed at the checkpoint of the first test (and its dataset)."""
    from modelmaker.runner import run

    run_dir, first = compiled_run
    config = Path(__file__).resolve().parents[1] / "configs" / "compile_only.yaml"
    summary = run(config, overrides={
        "common": {"projects_path": str(tmp_path / "projects"), "verbose": False},
        "dataset": {"ucr_name": "ItalyPowerDemand"},
        "compilation": {"model_path": str(run_dir / "checkpoints" / "best.ckpt"), "calibration_samples": 64,
                        "exporters": ["onnx", "onnx_int8"]}})
    assert rows(summary)["PyTorch float"]["metric"] == pytest.approx(rows(first)["PyTorch float"]["metric"])
    assert rows(summary)["ONNX int8"]["error"] is None
    assert summary["device"]["fits"] is True
    assert (Path(summary["run_dir"]) / "report.md").is_file()


# -- verification pass rules (tinyverse.verification) ----------------------------------------------------------

def test_every_row_has_a_verdict_and_int8_onnx_is_cpu_independent(compiled_run):
    """Each row states its rule and PASSes; the int8 ONNX agrees with its own QDQ reference arithmetic.

    On an x86 CPU without VNNI, onnxruntime's fused u8·s8 kernels saturate full-range int8 weights in int16 pair
    sums: the fused run then disagrees with ``ORT_DISABLE_ALL`` (this check fails there, not only on the developer's
    CPU); the weight bound ≤ 64 is what prevents it on every CPU, and is checked on the file itself.
    """
    import numpy as np

    from tinyverse.export import run_onnx
    from tinyverse.quantization import MAX_WEIGHT_Q, int8_weight_bound, onnx_output_step

    run_dir, summary = compiled_run
    assert summary["verification"]["status"] == "PASS" and summary["verification"]["failures"] == []
    table = rows(summary)
    for name, row in table.items():
        assert row["status"] == "PASS", (name, row["failures"])
        assert row["kind"] in ("reference", "float", "int8")
        if row["kind"] != "reference":
            assert row["checks"] and all(c["pass"] for c in row["checks"]), name
    assert table["ONNX float"]["kind"] == "float" and table["ONNX int8"]["kind"] == "int8"
    assert any(c["name"].startswith("fused kernels vs QDQ reference") for c in table["ONNX int8"]["checks"])
    assert any(c["name"].startswith("vs LiteRT") for c in table["TFLite int8 (TFLM)"]["checks"])
    q = run_dir / "model_int8.onnx"
    assert 0 < int8_weight_bound(q) <= MAX_WEIGHT_Q
    X = np.random.default_rng(0).standard_normal((64, 1, 24, 1)).astype(np.float32) * 2
    fused, reference = run_onnx(q, X), run_onnx(q, X, optimized=False)
    assert np.abs(fused - reference).max() <= onnx_output_step(q) * 1.001
    assert (fused.argmax(1) == reference.argmax(1)).all()
    report = (run_dir / "report.md").read_text()
    assert "| verification | PASS |" in report


def test_a_row_beyond_its_tolerance_fails_the_run_after_the_report(compiled_run, tmp_path, capsys):
    """A tolerance no export can meet: exit 2 naming the row; folder, summary and report still written."""
    run_dir, _ = compiled_run
    cfg = write_config(tmp_path / "c.yaml", tmp_path / "projects", training={"enable": False},
                       compilation={"model_path": str(run_dir / "checkpoints" / "best.ckpt"),
                                    "tolerances": {"float_rel_diff": 1e-12}})
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "failed verification" in err and "ONNX float: max |diff| / max(1, |ref|)" in err
    out = tmp_path / "projects" / "tiny"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verification"]["status"] == "FAIL"
    assert any(f.startswith("ONNX float:") for f in summary["verification"]["failures"])
    assert rows(summary)["ONNX float"]["status"] == "FAIL" and rows(summary)["ONNX int8"]["status"] == "PASS"
    report = (out / "report.md").read_text()
    assert "VERIFICATION FAILED" in report and "**FAIL**" in report
    compile_report = json.loads((out / "compile_report.json").read_text())
    assert compile_report["verified"] is False

    # strict: false keeps the run a success, loudly
    cfg = write_config(tmp_path / "d.yaml", tmp_path / "projects2", training={"enable": False},
                       compilation={"model_path": str(run_dir / "checkpoints" / "best.ckpt"), "strict": False,
                                    "tolerances": {"float_rel_diff": 1e-12}})
    assert main(["run", str(cfg)]) == 0
    assert json.loads((tmp_path / "projects2" / "tiny" / "summary.json").read_text())["verification"]["status"] \
        == "FAIL"


def test_a_corrupted_int8_artifact_is_a_fail_row(compiled_run, tmp_path, monkeypatch):
    """An int8 ONNX whose outputs are wrong (here: its weights scrambled) breaks the int8 rule; the others pass."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    import tinyverse.export.onnx_exporters as ox
    from tinyverse.compile import compile_model
    from tinyverse.models import GenericModelWithSpec
    from tinyverse.models.spec import ModelSpec

    run_dir, _ = compiled_run
    real_export = ox.OnnxInt8Exporter.export

    def corrupt(self, *args, **kwargs):
        path = real_export(self, *args, **kwargs)
        model = onnx.load(str(path))
        for init in model.graph.initializer:
            w = numpy_helper.to_array(init)
            if w.dtype == np.int8 and w.size > 8:
                init.CopyFrom(numpy_helper.from_array(np.random.default_rng(0).permutation(w.ravel())
                                                      .reshape(w.shape), init.name))
        onnx.save(model, str(path))
        return path

    monkeypatch.setattr(ox.OnnxInt8Exporter, "export", corrupt)
    import torch

    model = GenericModelWithSpec(ModelSpec.from_yaml(run_dir / "model_spec.yaml"))
    state = torch.load(run_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")})
    X = np.random.default_rng(1).standard_normal((200, 1, 24, 1)).astype(np.float32)
    y = np.zeros(200, dtype=int)
    rep = compile_model(model, None, tmp_path, X[:64], X, y, exporters=("onnx", "onnx_int8"))
    row = rep.row("ONNX int8")
    assert row.status == "FAIL" and not rep.verified
    assert any("argmax agreement" in f or "accuracy drop" in f for f in row.verdict.failures)
    assert rep.row("ONNX float").status == "PASS"
    assert rep.failures and rep.failures[0].startswith("ONNX int8:")


def test_input_range_percentile_sets_the_int8_inputs_range(tmp_path):
    """compilation.input_range_percentile: 99 clips the calibration samples to their 1st..99th percentile, and the
    int8 TFLite file's input takes exactly that range: its step is (high - low) / 255, narrower than the data's."""
    from ai_edge_litert.interpreter import Interpreter

    from tinyverse.timeseries.data import UCRDataset

    cfg = write_config(tmp_path / "p99.yaml", tmp_path / "projects", device=None,
                       training={"model_name": "CLS_100_NPU", "epochs": 1},
                       compilation={"exporters": ["tflite_int8"], "input_range_percentile": 99})
    assert main(["run", str(cfg)]) == 0
    run_dir = tmp_path / "projects" / "tiny"
    rng = json.loads((run_dir / "summary.json").read_text())["quantization"]["input_range"]
    X = UCRDataset("ItalyPowerDemand", val_fraction=0.2, seed=0).load().X_train
    assert rng["percentile"] == 99 and X.min() < rng["low"] < 0 < rng["high"] < X.max()
    scale, _ = Interpreter(model_path=str(run_dir / "model_int8.tflite")).get_input_details()[0]["quantization"]
    assert scale == pytest.approx((rng["high"] - rng["low"]) / 255, rel=0.01)
    assert scale < 0.97 * (X.max() - X.min()) / 255


@pytest.mark.parametrize("value", [50, 100.5])
def test_input_range_percentile_out_of_range_is_one_line(tmp_path, capsys, value):
    cfg = write_config(tmp_path / "bad.yaml", tmp_path / "projects", compilation={"input_range_percentile": value})
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "compilation.input_range_percentile" in err
    assert not (tmp_path / "projects").exists()


def test_compile_only_from_onnx_takes_and_records_the_input_range(compiled_run, tmp_path):
    """The .onnx compile path clips its calibration samples too, and says so in summary.json as the trained path does
    (the default run, at 100, records no range)."""
    run_dir, first = compiled_run
    assert "input_range" not in first["quantization"]
    cfg = write_config(tmp_path / "onnx.yaml", tmp_path / "projects", training={"enable": False},
                       compilation={"model_path": str(run_dir / "model_float.onnx"), "input_range_percentile": 99})
    assert main(["run", str(cfg)]) == 0
    rng = json.loads((tmp_path / "projects" / "tiny" / "summary.json").read_text())["quantization"]["input_range"]
    assert rng["percentile"] == 99 and rng["low"] < 0 < rng["high"]
