"""Forecasting: sMAPE / MASE and the baselines on hand-computed cases, Airline's reference baselines (seasonal-naive
sMAPE 0.145, MASE 1.97, naive 0.232 on the last 36 months), the windows and their splits (no leakage), the recursive
fixed-origin forecast, the FCST_* zoo, and one tiny end-to-end run (Airline → int8 TFLite verified in TFLM)."""
from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import yaml

from tinyverse.timeseries.data import load_registered
from tinyverse.timeseries.data.forecasting import ForecastSetup
from tinyverse.timeseries.data.splits import DatasetError, TimeSeriesData
from tinyverse.timeseries.evaluation.forecasting import (evaluate_forecasting, mase, naive_forecast, recursive_forecast,
                                              seasonal_naive_forecast, seasonal_naive_scale, smape)


def airline(**kwargs) -> TimeSeriesData:
    return load_registered("forecast_series", {"series": "Airline", **kwargs}, TimeSeriesData)


def airline_values() -> np.ndarray:
    import pandas as pd

    from tinyverse.timeseries.data.ucr import package_dir

    return pd.read_csv(package_dir("sktime") / "datasets/data/Airline/Airline.csv")["Passengers"].to_numpy(float)


# -- metrics on a 4-point example ------------------------------------------------------------------------------
def test_smape_and_mase_on_four_points():
    true = np.array([1.0, 2.0, 3.0, 4.0])
    pred = np.array([2.0, 2.0, 2.0, 2.0])
    # 2|y-f|/(|y|+|f|): 2/3, 0, 2/5, 4/6 → mean 26/60
    assert smape(true, pred) == pytest.approx((2 / 3 + 0 + 2 / 5 + 4 / 6) / 4)
    assert smape(np.zeros(2), np.zeros(2)) == 0.0
    # history 0, 1, 3, 6 with m = 1: |1-0|, |3-1|, |6-3| → scale 2; MAE (1+0+1+2)/4 = 1 → MASE 0.5
    scale = seasonal_naive_scale(np.array([0.0, 1.0, 3.0, 6.0]), 1)
    assert scale.tolist() == [2.0]
    assert mase(true, pred, scale) == pytest.approx(0.5)
    # m = 2: |3-0|, |6-1| → scale 4
    assert seasonal_naive_scale(np.array([0.0, 1.0, 3.0, 6.0]), 2).tolist() == [4.0]


def test_naive_and_seasonal_naive_definitions():
    x = np.arange(10.0)[None, :]  # 0..9
    assert naive_forecast(x, 6, 3).tolist() == [[5.0, 5.0, 5.0]]
    # m = 4, origin 6: last season is x[2..5] = 2,3,4,5, repeated
    assert seasonal_naive_forecast(x, 6, 6, 4).tolist() == [[2.0, 3.0, 4.0, 5.0, 2.0, 3.0]]


def test_airline_reference_baselines_last_36_months():
    y = airline_values()
    train, test = y[:108], y[108:]
    sn = seasonal_naive_forecast(y, 108, 36, 12)[0]
    assert smape(test, sn) == pytest.approx(0.145, abs=5e-4)
    assert mase(test, sn, seasonal_naive_scale(train, 12)) == pytest.approx(1.97, abs=0.01)
    assert smape(test, naive_forecast(y, 108, 36)[0]) == pytest.approx(0.232, abs=5e-4)


# -- data --------------------------------------------------------------------------------------------------
def test_airline_windows_splits_and_no_leakage():
    d = airline(window=24, horizon=12, test_size=36, val_size=24, log_transform=True)
    setup = ForecastSetup.of(d)
    assert d.input_shape == (1, 24) and d.target_shape == (1, 12) and not d.is_classification
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (49, 13, 3)
    assert setup.periods == {"train": [0, 84], "val": [84, 108], "test": [108, 144]}
    H = setup.horizon
    assert setup.origins["test"] == [108, 120, 132]  # three 12-month blocks covering the 36 test months once
    assert all(o + H <= 84 for o in setup.origins["train"])
    assert all(84 <= o and o + H <= 108 for o in setup.origins["val"])
    assert all(108 <= o and o + H <= 144 for o in setup.origins["test"])
    # normalisation statistics from the train part only
    logs = np.log(airline_values())
    assert setup.mean[0] == pytest.approx(logs[:84].mean()) and setup.std[0] == pytest.approx(logs[:84].std())
    # the targets are the true values: model outputs equal to them give a perfect forecast in units
    assert np.allclose(setup.to_units(d.y_test.reshape(3, -1), setup.origins["test"])[:, 0],
                       airline_values()[108:].reshape(3, 12), rtol=1e-5)


def test_test_values_never_reach_training(tmp_path):
    """Changing the test period of the file changes the test targets only: not the training windows, not the
    validation windows, not the scaler."""
    y = airline_values()
    for name, values in (("a", y), ("b", np.concatenate([y[:108], y[108:] * 3]))):
        (tmp_path / f"{name}.csv").write_text("month,passengers\n" + "\n".join(f"{i},{v}" for i, v in
                                                                                 enumerate(values)) + "\n")
    a, b = (load_registered("forecast_series", {"series": None, "path": str(tmp_path / f"{n}.csv"),
                                                 "log_transform": True, "seasonality": 12}, TimeSeriesData)
            for n in ("a", "b"))
    assert np.array_equal(a.X_train, b.X_train) and np.array_equal(a.y_train, b.y_train)
    assert np.array_equal(a.X_val, b.X_val) and np.array_equal(a.y_val, b.y_val)
    assert a.info["forecast"]["mean"] == b.info["forecast"]["mean"]
    assert not np.allclose(a.y_test, b.y_test)
    assert a.info["forecast"]["channel_names"] == ["passengers"]


def test_known_series_and_clear_errors():
    lynx = load_registered("forecast_series", {"series": "Lynx", "window": 20, "horizon": 10, "test_size": 20,
                                               "val_size": 10}, TimeSeriesData)
    assert ForecastSetup.of(lynx).seasonality == 10 and lynx.info["series_length"] == 114
    with pytest.raises(DatasetError, match="did you mean 'Airline'"):
        airline(series="Airlines")
    with pytest.raises(DatasetError, match="too short"):
        airline(window=80, horizon=12)
    with pytest.raises(DatasetError, match="test_size"):
        airline(horizon=48)
    try:
        import statsmodels  # noqa: F401
    except ImportError:
        with pytest.raises(DatasetError, match="statsmodels, which is not installed"):
            airline(series="sunspots")
    else:
        assert ForecastSetup.of(airline(series="sunspots", window=33, horizon=11, test_size=33,
                                        val_size=22)).seasonality == 11


# -- evaluation ------------------------------------------------------------------------------------------------
def test_evaluate_reports_baselines_on_the_same_windows_and_warns(caplog):
    d = airline(log_transform=True)
    setup = ForecastSetup.of(d)
    perfect = evaluate_forecasting({"test": d.y_test.reshape(3, -1)}, setup)
    assert perfect.headline == "smape" and perfect.higher_is_better is False
    assert perfect.metrics["smape"] == pytest.approx(0.0, abs=1e-5) and perfect.metrics["beats_seasonal_naive"]
    # rolling origins 108, 120, 132 with horizon 12: seasonal naive is x[t-12] for every test month
    y = airline_values()
    assert perfect.metrics["seasonal_naive_smape"] == pytest.approx(smape(y[108:], y[96:132]))
    assert perfect.metrics["seasonal_naive_smape_fixed_origin"] == pytest.approx(0.145, abs=5e-4)
    assert perfect.metrics["naive_smape_fixed_origin"] == pytest.approx(0.232, abs=5e-4)
    assert perfect.metrics["seasonal_naive_mase_fixed_origin"] == pytest.approx(1.97, abs=0.01)
    # outputs of 0 with level "last" repeat the last observed value: the naive forecast, which loses to seasonal naive
    with caplog.at_level(logging.WARNING, logger="tinyverse"):
        naive = evaluate_forecasting({"test": np.zeros((3, 12), np.float32)}, setup)
    assert naive.metrics["smape"] == pytest.approx(naive.metrics["naive_smape"], abs=1e-6)
    assert naive.metrics["beats_seasonal_naive"] is False
    assert "does NOT beat the seasonal-naive baseline" in caplog.text
    assert naive.metric_fn(np.zeros((3, 12))) == pytest.approx(naive.value)


def test_encode_decode_and_recursive_forecast():
    d = airline(log_transform=True)
    setup = ForecastSetup.of(d)
    x, level = setup.encode(setup.series[:, :108])
    assert np.allclose(x, d.X_test[0], atol=1e-6)  # the same arithmetic as the windows
    assert np.allclose(setup.decode(d.y_test[0].reshape(-1), level), setup.series[:, 108:120], rtol=1e-5)
    # a model that always outputs 0 (level "last") forecasts the last value, also recursively
    fc = recursive_forecast(lambda inp: np.zeros((len(inp), 12)), setup, 108, 36)
    assert fc.shape == (1, 36) and np.allclose(fc, naive_forecast(setup.series, 108, 36), rtol=1e-9)


# -- zoo -------------------------------------------------------------------------------------------------------
FCST = ["FCST_500_NPU", "FCST_1k_NPU", "FCST_2k_NPU", "FCST_4k_NPU", "FCST_MLP_1k", "FCST_MLP_2k"]


def test_zoo_fits_f28p55_and_the_lstm_exports_to_onnx(tmp_path):
    import torch

    from tinyverse.devices import check_spec
    from tinyverse.export import export_onnx, run_onnx
    from tinyverse.models import create_model, list_models

    assert set(FCST) | {"FCST_LSTM"} <= set(list_models(task="forecasting"))
    for name in FCST:
        model = create_model(name, input_shape=(1, 24), num_outputs=12)
        report = check_spec(model.spec, "F28P55")
        assert report.fits, (name, report.violations)
    lstm = create_model("FCST_LSTM", input_shape=(2, 24), num_outputs=24).eval()
    x = torch.randn(3, 2, 24, 1)
    assert lstm(x).shape == (3, 24)
    path = export_onnx(lstm, tmp_path / "lstm.onnx", (x[:2],))
    other = np.random.default_rng(1).normal(size=(5, 2, 24, 1)).astype(np.float32)  # not the trace input
    with torch.no_grad():
        ref = lstm(torch.from_numpy(other)).numpy()
    assert np.abs(run_onnx(path, other).reshape(ref.shape) - ref).max() < 1e-4


# -- end to end ------------------------------------------------------------------------------------------------
def test_tiny_pipeline_run_reports_baselines_and_verifies_int8_in_tflm(tmp_path):
    from modelmaker.cli import main

    cfg = {
        "common": {"task_type": "forecasting", "run_name": "fcst", "projects_path": str(tmp_path / "projects"),
                   "seed": 0, "verbose": False, "target_device": "F28P55"},
        "dataset": {"name": "forecast_series", "series": "Airline", "window": 24, "horizon": 12,
                    "log_transform": True},
        "training": {"model_name": "FCST_500_NPU", "epochs": 3, "batch_size": 32, "learning_rate": 0.01,
                     "accelerator": "cpu", "devices": 1},
        "compilation": {"enable": True, "calibration_samples": 32, "golden_vectors": 1},
    }
    path = tmp_path / "fcst.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path)]) == 0
    run_dir = tmp_path / "projects" / "fcst"
    summary = json.loads((run_dir / "summary.json").read_text())
    test = summary["test"]
    for key in ("smape", "mase", "naive_smape", "seasonal_naive_smape", "seasonal_naive_mase",
                "seasonal_naive_smape_fixed_origin", "beats_seasonal_naive"):
        assert key in test, key
    assert test["headline"] == "smape" and test["num_windows"] == 3
    assert summary["compilation"]["metric"] == "smape"
    rows = {r["artifact"]: r for r in summary["compilation"]["verification"]}
    tflm = rows["TFLite int8 (TFLM)"]
    assert tflm["error"] is None and math.isfinite(tflm["metric"]) and 0 < tflm["metric"] < 2
    assert rows["PyTorch float"]["metric"] == pytest.approx(test["smape"])
    # a 12-step forecast is a vector of values, not class scores: judged by rms difference and sMAPE, no argmax
    checks = {c["name"] for c in tflm["checks"]}
    assert "rms diff / rms ref" in checks and "argmax agreement" not in checks and tflm["argmax_agreement"] is None
    assert summary["onnx"]["parity"] is True
    assert (run_dir / "forecast.png").is_file()
    report = (run_dir / "report.md").read_text()
    assert "seasonal_naive_smape" in report and "| TFLite int8 (TFLM) |" in report
    # the series and the arithmetic are in dataset.json, enough to rebuild the forecast in units
    info = json.loads((run_dir / "dataset.json").read_text())["info"]
    assert ForecastSetup.from_dict(info["forecast"]).origins["test"] == [108, 120, 132]


def test_augmentations_that_break_the_target_are_refused():
    from tinyverse.models import create_model
    from tinyverse.training.tasks import build_task

    model = create_model("FCST_500_NPU")
    with pytest.raises(ValueError, match="time_shift.*noise"):
        build_task("forecasting", model, augmentation={"time_shift": 0.1})
    assert build_task("forecasting", model, augmentation={"noise": 0.01}, loss="huber").hparams.loss == "huber"
    with pytest.raises(ValueError, match="unknown loss"):
        build_task("forecasting", model, loss="hinge")
