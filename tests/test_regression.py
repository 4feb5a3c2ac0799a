"""Regression: metrics on hand-computed cases, the target scaler, the Tecator and bring-your-own-files loaders, the
REGR_* zoo against F28P55, and one tiny end-to-end run (Tecator → int8 TFLite verified in TFLM)."""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from tinyverse.timeseries.data import load_registered
from tinyverse.timeseries.data.splits import DatasetError, TimeSeriesData
from tinyverse.timeseries.data.targets import TargetScaler, target_scaler_of
from tinyverse.timeseries.evaluation.regression import evaluate_regression, mae, r2, rmse


# -- metrics ---------------------------------------------------------------------------------------------------
def test_metrics_on_a_hand_computed_case():
    true = np.array([2.0, 2.0, 2.0, 6.0])
    pred = np.array([1.0, 2.0, 3.0, 4.0])
    # errors -1, 0, 1, -2: MSE = 6/4; mean(true) = 3, SS_tot = 1+1+1+9 = 12, SS_res = 6
    assert rmse(pred, true) == pytest.approx(math.sqrt(1.5))
    assert mae(pred, true) == pytest.approx(1.0)
    assert r2(pred, true) == pytest.approx(0.5)
    assert r2(true, true) == 1.0
    assert r2(np.full(4, 3.0), true) == pytest.approx(0.0)  # predicting the test mean
    assert r2(np.array([1.0, 1.0]), np.array([2.0, 2.0])) == 0.0  # constant truth, imperfect fit


def test_r2_averages_over_target_values():
    true = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    pred = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 40.0]])  # column 0 perfect; column 1: SS_res 100, SS_tot 200
    assert r2(pred, true) == pytest.approx((1.0 + 0.5) / 2)


def test_evaluate_reports_units_and_the_mean_baseline():
    y_train = np.array([[10.0], [20.0], [30.0]])  # train mean 20
    y_test = np.array([[14.0], [26.0]])
    scaler = TargetScaler().fit(y_train)
    outputs = scaler.transform(np.array([[15.0], [25.0]])).reshape(2, 1)  # model outputs in training units
    ev = evaluate_regression(outputs, scaler.transform(y_test), scaler.transform(y_train), scaler)
    assert ev.headline == "rmse" and ev.higher_is_better is False
    assert ev.metrics["rmse"] == pytest.approx(1.0, abs=1e-5)  # |15-14|, |25-26| in units
    assert ev.metrics["mae"] == pytest.approx(1.0, abs=1e-5)
    assert ev.metrics["baseline_rmse"] == pytest.approx(6.0, abs=1e-5)  # |20-14|, |20-26|
    assert ev.metrics["rmse_vs_baseline"] == pytest.approx(1 / 6, abs=1e-5)
    assert ev.metrics["beats_mean_baseline"] is True
    # the verification table recomputes the headline from any artifact's outputs
    assert ev.metric_fn(outputs) == pytest.approx(ev.value)
    assert ev.metric_fn(scaler.transform(y_test)) == pytest.approx(0.0, abs=1e-5)


def test_a_model_worse_than_the_mean_is_flagged(caplog):
    y_train, y_test = np.array([[0.0], [2.0]]), np.array([[1.0], [1.0]])
    with caplog.at_level(logging.WARNING, logger="tinyverse"):
        ev = evaluate_regression(np.array([[5.0], [5.0]]), y_test, y_train, None)
    assert ev.metrics["beats_mean_baseline"] is False
    assert "does NOT beat the trivial baseline" in caplog.text


def test_target_scaler_round_trip_and_dict():
    y = np.array([[1.0, 100.0], [3.0, 300.0], [5.0, 200.0]])
    s = TargetScaler().fit(y)
    z = s.transform(y)
    assert z.dtype == np.float32 and np.allclose(z.mean(axis=0), 0, atol=1e-6)
    back = TargetScaler.from_dict(json.loads(json.dumps(s.to_dict())))
    assert np.allclose(back.inverse_transform(z), y, rtol=1e-6)
    assert np.allclose(back.inverse_transform(z.reshape(3, 2)), y, rtol=1e-6)


# -- Tecator ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tecator():
    return load_registered("ucr_regression", {"ucr_name": "Tecator"}, TimeSeriesData)


def _raw_tecator(split: str) -> np.ndarray:
    from sktime.datasets import load_from_tsfile

    from tinyverse.timeseries.data.ucr import offline_sets

    entry = offline_sets()["Tecator"]
    _, y = load_from_tsfile(str(getattr(entry, split)), return_data_type="numpy3d")
    return np.asarray(y, dtype=np.float64)


def test_tecator_shapes_official_split_and_units(tecator):
    d = tecator
    assert d.input_shape == (1, 100) and not d.is_classification and d.target_shape == (1,)
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (137, 35, 43)  # 172 official train = 137 + 35
    scaler = target_scaler_of(d)
    raw_test, raw_train = _raw_tecator("test"), _raw_tecator("train")
    assert np.allclose(scaler.inverse_transform(d.y_test).ravel(), raw_test, atol=1e-4)  # fat %, official test
    # the scaler is fitted on the train rows only (not val, not test)
    val_rows = d.info["val_rows_of_official_train"]
    train_rows = np.setdiff1d(np.arange(172), val_rows)
    assert scaler.mean[0] == pytest.approx(raw_train[train_rows].mean())
    assert scaler.std[0] == pytest.approx(raw_train[train_rows].std())
    assert d.info["normalization"]["fitted_on"] == "train"


def test_classification_names_are_refused_with_a_pointer():
    with pytest.raises(DatasetError, match="not a regression set.*dataset.name: ucr"):
        load_registered("ucr_regression", {"ucr_name": "GunPoint"}, TimeSeriesData).load()


# -- bring your own files -------------------------------------------------------------------------------------
def _write_files(root: Path, n_files: int = 4, rows: int = 60) -> None:
    (root / "files").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n_files):
        t = np.arange(rows) * 0.1
        a, b = rng.normal(size=rows), rng.normal(size=rows)
        speed = 2 * a + b + 100 * i  # each file its own offset: tells the files apart
        lines = ["time,acc_x,acc_y,speed"] + [f"{t[k]:.1f},{a[k]},{b[k]},{speed[k]}" for k in range(rows)]
        (root / "files" / f"rec{i}.csv").write_text("\n".join(lines) + "\n")


def test_files_windows_targets_and_file_split(tmp_path):
    _write_files(tmp_path)
    d = load_registered("regression_files", {"path": str(tmp_path), "target_column": "speed", "window": 10,
                                             "stride": 5, "normalize": False, "standardize_target": False},
                        TimeSeriesData)
    assert d.input_shape == (2, 10) and d.target_shape == (1,)  # inputs acc_x, acc_y (time column dropped)
    assert d.info["input_columns"] == ["acc_x", "acc_y"] and d.info["split_mode"] == "file"
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (22, 11, 11)  # 11 windows per file, files 2/1/1
    # a window's target is the target column at its last row
    X, y = d.X_test, d.y_test.ravel()
    offsets = np.round((y - 2 * X[:, 0, -1] - X[:, 1, -1]) / 100)
    assert np.allclose(y, 2 * X[:, 0, -1] + X[:, 1, -1] + 100 * offsets, atol=1e-3)
    files = d.info["files"]
    assert sorted(files["train"] + files["val"] + files["test"]) == [f"rec{i}.csv" for i in range(4)]
    assert len(set(offsets)) == 1  # all test windows from the one test file


def test_files_rows_as_samples_split_in_time_and_scaled_on_train(tmp_path):
    _write_files(tmp_path, n_files=1, rows=100)
    d = load_registered("regression_files", {"path": str(tmp_path), "target_column": "speed",
                                             "input_columns": ["acc_x", "acc_y"]}, TimeSeriesData)
    assert d.input_shape == (2, 1) and d.info["split_mode"] == "time"
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (60, 20, 20)
    scaler = target_scaler_of(d)
    raw = np.loadtxt(tmp_path / "files" / "rec0.csv", delimiter=",", skiprows=1)
    assert scaler.mean[0] == pytest.approx(raw[:60, 3].mean())  # the first 60 rows only
    assert np.allclose(scaler.inverse_transform(d.y_test).ravel(), raw[80:, 3], atol=1e-4)


def test_files_npy_by_column_index_and_clear_errors(tmp_path):
    (tmp_path / "files").mkdir()
    for i in range(3):
        np.save(tmp_path / "files" / f"r{i}.npy", np.random.default_rng(i).normal(size=(40, 3)))
    d = load_registered("regression_files", {"path": str(tmp_path), "target_column": 2, "window": 8},
                        TimeSeriesData)
    assert d.input_shape == (2, 8)
    with pytest.raises(DatasetError, match="column indices"):
        load_registered("regression_files", {"path": str(tmp_path), "target_column": "speed"}, TimeSeriesData)
    _write_files(tmp_path / "csv", n_files=1)
    with pytest.raises(DatasetError, match="has no column 'sped'; did you mean 'speed'"):
        load_registered("regression_files", {"path": str(tmp_path / "csv"), "target_column": "sped"},
                        TimeSeriesData)


# -- zoo -------------------------------------------------------------------------------------------------------
REGR = ["REGR_500_NPU", "REGR_1k_NPU", "REGR_2k_NPU", "REGR_4k_NPU", "REGR_8k_NPU", "REGR_MLP_2k", "REGR_MLP_4k",
        "REGR_MLP_8k"]


def test_zoo_lists_by_task_and_fits_f28p55():
    from tinyverse.devices import check_spec
    from tinyverse.models import create_model, list_models

    assert set(REGR) <= set(list_models(task="regression"))
    for name in REGR:
        for shape in ((1, 128), (1, 100)):
            model = create_model(name, input_shape=shape, num_outputs=1)
            report = check_spec(model.spec, "F28P55")
            assert report.fits, (name, shape, report.violations)


def test_cli_models_task_regression(capsys):
    from modelmaker.cli import main

    assert main(["models", "--task", "regression"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in REGR) and "CLS_4k_NPU" not in out


# -- end to end ------------------------------------------------------------------------------------------------
def test_tiny_pipeline_run_reports_units_and_verifies_int8_in_tflm(tmp_path):
    from modelmaker.cli import main

    cfg = {
        "common": {"task_type": "regression", "run_name": "regr", "projects_path": str(tmp_path / "projects"),
                   "seed": 0, "verbose": False, "target_device": "F28P55"},
        "dataset": {"name": "ucr_regression", "ucr_name": "Tecator"},
        "training": {"model_name": "REGR_500_NPU", "epochs": 3, "batch_size": 64, "learning_rate": 0.01,
                     "loss": "huber", "accelerator": "cpu", "devices": 1},
        # 3 epochs: outputs still near zero, so int8 moves them by a large share (the quality bound is measured on
        # the full schedule); the float and runtime checks stay as shipped
        "compilation": {"enable": True, "calibration_samples": 32, "golden_vectors": 1,
                        "tolerances": {"int8_max_rel_rms": 1.0}},
    }
    path = tmp_path / "regr.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path)]) == 0
    run_dir = tmp_path / "projects" / "regr"
    summary = json.loads((run_dir / "summary.json").read_text())
    test = summary["test"]
    for key in ("rmse", "mae", "r2", "baseline_rmse", "rmse_vs_baseline", "beats_mean_baseline"):
        assert key in test, key
    assert test["headline"] == "rmse" and test["baseline_rmse"] == pytest.approx(12.89, abs=0.01)  # % fat
    assert summary["dataset"]["target_shape"] == [1]
    rows = {r["artifact"]: r for r in summary["compilation"]["verification"]}
    assert summary["compilation"]["metric"] == "rmse"
    tflm = rows["TFLite int8 (TFLM)"]
    assert tflm["error"] is None and math.isfinite(tflm["metric"]) and tflm["metric"] > 0
    assert rows["PyTorch float"]["metric"] == pytest.approx(test["rmse"])
    assert summary["onnx"]["parity"] is True
    assert summary["quantization"]["int8_artifact"] == "TFLite int8 (TFLM)"
    assert (run_dir / "pred_vs_true.png").is_file() and (run_dir / "loss_curves.png").is_file()
    header = (run_dir / "metrics.csv").read_text().splitlines()[0]
    assert "val_rmse" in header and "train_loss" in header


def test_a_loss_the_task_would_ignore_is_a_config_error(tmp_path, capsys):
    from modelmaker.cli import main

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"common": {"task_type": "classification"},
                                    "training": {"model_name": "CLS_1k_NPU", "loss": "huber"}}))
    assert main(["run", str(path)]) == 2
    assert "training.loss: task 'classification' has its own loss" in capsys.readouterr().err
