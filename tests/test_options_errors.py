"""Documented options that used to crash: each works, or fails as one line (exit 2) before a run folder exists.

- QAT on anomaly detection (the QAT loop used cross-entropy on the window labels instead of the task's loss);
- QAT's drop is reported against the QAT float model too, not only against the float model before QAT;
- a spec model with two named inputs, run from a config of the (single-input) time-series runner;
- a model_config / model_args value of the wrong type for the zoo function, and arguments it cannot build from.
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from modelmaker.cli import main
from modelmaker.config import ConfigError, load_config
from tinyverse.models import create_model
from tinyverse.quantization import qat_finetune
from tinyverse.registry import MODEL_REGISTRY
from tinyverse.timeseries.tasks.anomaly import AnomalyDetectionTask
from tinyverse.training.tasks import ClassificationTask

ROOT = Path(__file__).resolve().parents[1]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("modelmaker: error: ") and len(err.splitlines()) == 1, err
    return err


def classification_config(tmp_path: Path, **training) -> Path:
    cfg = {
        "common": {"task_type": "classification", "run_name": "run", "projects_path": str(tmp_path / "projects"),
                   "seed": 0, "verbose": False},
        "dataset": {"name": "ucr", "ucr_name": "ItalyPowerDemand", "val_fraction": 0.2},
        "training": {"model_name": "CLS_500_NPU", "epochs": 1, "batch_size": 16, "accelerator": "cpu", "devices": 1,
                     **training},
        "compilation": {"enable": False},
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


# -- QAT uses the task's own training step ------------------------------------------------------------------------
def test_qat_of_an_autoencoder_trains_on_reconstruction():
    torch.manual_seed(0)
    model = create_model("AD_3k_NPU", input_shape=(1, 64))
    task = AnomalyDetectionTask(model)
    rs = np.random.RandomState(0)
    t = np.linspace(0, 8 * np.pi, 64)
    X = (np.sin(t + rs.uniform(0, 6.3, (256, 1)))[:, None, :, None] + 0.05 * rs.randn(256, 1, 64, 1)).astype(np.float32)
    y = np.zeros(256, dtype=np.int64)  # window labels: 0 = normal; never a target for an autoencoder
    y[-16:] = 1
    X[-16:] *= 1000  # anomalous validation windows: the task's val loss leaves them out

    def normal_val_mse() -> float:
        model.eval()
        with torch.no_grad():
            x = torch.as_tensor(X[128:-16])
            return float((model(x) - x).pow(2).mean())

    before = normal_val_mse()
    out = qat_finetune(model, (X[:128], y[:128]), (X[128:], y[128:]), epochs=6, lr=1e-2, batch_size=16, task=task)
    assert out is model and not any("parametrizations" in n for n, _ in model.named_parameters())
    hist = model.qat_history
    assert len(hist) == 6 and all(h["val_accuracy"] is None for h in hist)  # labels are not classes here
    assert all(0 < h["val_loss"] < 1 for h in hist)  # normal windows only (an anomalous one scores ~1e6)
    assert hist[-1]["val_loss"] < 0.5 * hist[0]["val_loss"]
    assert normal_val_mse() < 0.5 * before  # it learned to reconstruct its input
    with pytest.raises(RuntimeError, match="not attached to a `Trainer`"):
        task.trainer  # noqa: B018 - detached during QAT, restored (to none) afterwards


def test_qat_with_a_classification_task_uses_its_loss_and_still_classifies():
    torch.manual_seed(0)
    model = create_model("CLS_100_NPU", input_shape=(1, 64), num_classes=2)
    task = ClassificationTask(model, label_smoothing=0.1)
    rs = np.random.RandomState(0)
    y = rs.randint(0, 2, 96)
    X = (rs.randn(96, 1, 64, 1) * 0.3 + (y * 2 - 1)[:, None, None, None]).astype(np.float32)
    qat_finetune(model, (X[:64], y[:64]), (X[64:], y[64:]), epochs=3, lr=1e-2, batch_size=16, task=task)
    assert model.qat_history[-1]["val_accuracy"] >= 0.9
    assert int(task.val_acc.update_count) == 0  # the task's metric state is left clean


def test_qat_rejects_a_task_that_does_not_hold_the_model():
    model = create_model("CLS_100_NPU", input_shape=(1, 64), num_classes=2)
    other = ClassificationTask(create_model("CLS_100_NPU", input_shape=(1, 64), num_classes=2))
    X, y = np.zeros((8, 1, 64, 1), np.float32), np.zeros(8, np.int64)
    with pytest.raises(ValueError, match="holds the model"):
        qat_finetune(model, (X, y), epochs=1, task=other)


def test_qat_on_anomaly_detection_end_to_end(tmp_path, capsys):
    cfg = yaml.safe_load((ROOT / "configs" / "timeseries_anomaly_detection.yaml").read_text())
    cfg["common"].update(projects_path=str(tmp_path / "projects"), run_name="ad", verbose=False, target_device=None)
    cfg["dataset"].update(downsample=4, window=64, stride=8)
    cfg["training"].update(model_name="AD_3k_NPU", epochs=2, accelerator="cpu", devices=1, quantization="qat",
                           qat_epochs=1)
    cfg["compilation"].update(calibration_samples=64, golden_vectors=2, exporters=["onnx", "onnx_int8"])
    path = tmp_path / "ad.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["run", str(path)]) == 0
    run_dir = tmp_path / "projects" / "ad"
    summary = json.loads((run_dir / "summary.json").read_text())
    q = summary["quantization"]
    assert q["mode"] == "qat" and q["metric"] == "auc_roc" and q["int8_artifact"] == "ONNX int8"
    assert q["float_metric"] == pytest.approx(summary["test"]["auc_roc"])  # before QAT
    for key in ("float_metric", "qat_float_metric", "int8_metric"):
        assert 0.0 <= q[key] <= 1.0, (key, q)
    # drops against both float models
    assert q["delta"] == pytest.approx(q["int8_metric"] - q["float_metric"])
    assert q["qat_float_delta"] == pytest.approx(q["int8_metric"] - q["qat_float_metric"])
    rows = {r["artifact"]: r for r in summary["compilation"]["verification"]}
    assert rows["PyTorch float"]["metric"] == pytest.approx(q["qat_float_metric"])  # the QAT model, in float
    weights = torch.load(run_dir / "model_qat.pt", weights_only=True)
    trained = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    assert any(not torch.equal(v, trained[f"model.{k}"]) for k, v in weights.items() if v.is_floating_point())
    report = (run_dir / "report.md").read_text()
    section = report.split("## Quantization", 1)[1].split("##", 1)[0]
    assert "| float_metric |" in section and "| qat_float_metric |" in section
    assert "| delta |" in section and "| qat_float_delta |" in section


def test_quantization_summary_reports_drops_against_both_floats():
    from modelmaker.ai_modules.timeseries.compilation import quantization_summary

    rep = SimpleNamespace(rows=[SimpleNamespace(artifact="ONNX int8", error=None, metric=0.80)])
    q = quantization_summary("qat", "accuracy", 0.90, rep, qat_float=0.84)
    assert q["float_metric"] == 0.90 and q["qat_float_metric"] == 0.84 and q["int8_metric"] == 0.80
    assert q["drop_points"] == pytest.approx(10.0) and q["qat_float_drop_points"] == pytest.approx(4.0)
    assert q["delta"] == pytest.approx(-0.10) and q["qat_float_delta"] == pytest.approx(-0.04)
    ptq = quantization_summary("ptq", "accuracy", 0.90, rep)
    assert "qat_float_metric" not in ptq and "qat_float_drop_points" not in ptq


# -- a spec model with two inputs ---------------------------------------------------------------------------------
@pytest.fixture
def two_input_model():
    def TWO_INPUT_TEST(input_shape=(1, 24), num_classes: int = 2) -> dict:
        c, length = input_shape
        return {"inputs": {"x": [c, length, 1], "aux": [c, length, 1]},
                "layers": {"cat": {"type": "Concat", "inputs": ["x", "aux"]},
                           "conv": {"type": "ConvBNReLULayer", "out_channels": 8, "kernel_size": 3},
                           "gap": {"type": "GlobalAvgPoolLayer"}, "flat": {"type": "ReshapeLayer", "shape": [-1]},
                           "fc": {"type": "LinearLayer", "out_features": num_classes}}}

    MODEL_REGISTRY.register("TWO_INPUT_TEST", TWO_INPUT_TEST)
    yield "TWO_INPUT_TEST"
    MODEL_REGISTRY.unregister("TWO_INPUT_TEST")


def test_two_input_spec_model_fails_before_the_run_folder(two_input_model, tmp_path, capsys):
    assert main(["run", str(classification_config(tmp_path, model_name=two_input_model))]) == 2
    err = one_error_line(capsys)
    assert ("training.model_name: TWO_INPUT_TEST takes 2 inputs (x 1x24x1, aux 1x24x1), but dataset "
            "'ItalyPowerDemand' provides one input per sample (1x24x1)") in err
    assert not (tmp_path / "projects").exists()


# -- model arguments of the wrong type ----------------------------------------------------------------------------
def test_model_config_file_value_of_the_wrong_type(tmp_path, capsys):
    (tmp_path / "wide.yaml").write_text("kernel_sizes: [5, 3, 3]\nchannels: wide\n")
    assert main(["run", str(classification_config(tmp_path, model_config="wide.yaml"))]) == 2
    err = one_error_line(capsys)
    assert (f"cfg.yaml: training.model_config: {tmp_path / 'wide.yaml'} line 2: channels: expected Sequence[int], "
            f"got 'wide'; e.g. channels: [8, 8, 8] (the default)") in err
    assert not (tmp_path / "projects").exists()


@pytest.mark.parametrize("args, expected", [
    ({"channels": "wide"}, "training.model_args.channels: expected Sequence[int], got 'wide'; e.g. channels: "
                           "[8, 8, 8] (the default)"),
    ({"channels": [8, "x", 8]}, "training.model_args.channels: expected Sequence[int], got [8, 'x', 8] "
                                "(channels[1]: input should be a valid integer)"),
    ({"dropout": "0.1"}, "training.model_args.dropout: expected float, got '0.1'"),
    ({"head": 3}, "training.model_args.head: expected str, got 3"),
])
def test_model_args_value_of_the_wrong_type(args, expected, tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(classification_config(tmp_path, model_args=args))
    assert expected in str(info.value) and "(line " in str(info.value)


def test_model_args_of_the_right_type_still_load(tmp_path):
    cfg = load_config(classification_config(tmp_path, model_args={"channels": [4, 8, 8], "dropout": 0}))
    assert cfg.training.model_args == {"channels": [4, 8, 8], "dropout": 0}


def test_arguments_the_zoo_function_cannot_build_from(tmp_path, capsys):
    # right types, but three kernel sizes for two channels: the zoo function's own ValueError, as one line
    assert main(["run", str(classification_config(tmp_path, model_args={"channels": [8, 16]}))]) == 2
    err = one_error_line(capsys)
    assert ("training.model_args: CLS_500_NPU cannot be built from channels=[8, 16] with input_shape=[1, 24], "
            "num_classes=2 from the dataset: channels, kernel_sizes and strides must have the same length") in err
    assert not (tmp_path / "projects").exists()


def test_check_command_with_an_input_shape_the_model_cannot_take(capsys):
    assert main(["check", "CLS_4k_NPU", "--device", "F28P55", "--input-shape", "1"]) == 2
    assert "CLS_4k_NPU(input_shape=[1]) cannot be built" in one_error_line(capsys)
