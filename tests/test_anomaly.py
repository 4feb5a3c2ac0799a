"""Anomaly detection: metrics with known answers, threshold selection, the windowing / labelling rule, the
normal-only training split, the AD_* autoencoders and DepthToTimeLayer, the threshold in the C header, and a tiny
end-to-end pipeline run on the MIT-BIH excerpt (AUC in the summary, a finite TFLM row)."""
from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from tinyverse.timeseries.data import DatasetError, load_registered
from tinyverse.timeseries.data.anomaly import label_events, overlap_ratio, window_labels
from tinyverse.timeseries.evaluation.anomaly import (evaluate_anomaly, max_f1_threshold, precision_recall_f1,
                                          reconstruction_scores, roc_auc, select_threshold)
from tinyverse.layers import SpecError

ROOT = Path(__file__).resolve().parents[1]


# -- metrics ---------------------------------------------------------------------------------------------------
def test_auc_known_answers():
    labels = np.array([0, 0, 0, 1, 1])
    assert roc_auc(np.array([0.1, 0.2, 0.3, 0.8, 0.9]), labels) == 1.0
    assert roc_auc(np.array([0.9, 0.8, 0.7, 0.2, 0.1]), labels) == 0.0
    assert roc_auc(np.ones(5), labels) == 0.5  # all scores tied
    # one anomalous window ranked below one of three normal ones: 5 of 6 pairs in order
    assert roc_auc(np.array([0.1, 0.2, 0.6, 0.5, 0.9]), labels) == pytest.approx(5 / 6)
    assert np.isnan(roc_auc(np.array([0.1, 0.2]), np.array([0, 0])))


def test_f1_at_a_threshold_hand_computed():
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.05, 0.6])
    labels = np.array([0, 0, 1, 1, 0, 1])
    # score > 0.3 flags windows 1, 2, 3, 5: tp = 3 (2, 3, 5), fp = 1 (1), fn = 0, tn = 2
    at = precision_recall_f1(scores, labels, 0.3)
    assert (at["tp"], at["fp"], at["fn"], at["tn"]) == (3, 1, 0, 2)
    assert at["precision"] == pytest.approx(0.75) and at["recall"] == 1.0
    assert at["f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 0))
    # strictly greater: a score equal to the threshold is normal
    assert precision_recall_f1(scores, labels, 0.35)["tp"] == 2
    assert precision_recall_f1(scores, labels, 1.0)["f1"] == 0.0


def test_reconstruction_scores_are_per_window_mse():
    x = np.zeros((2, 1, 4, 1), dtype=np.float32)
    y = np.array([[0, 0, 0, 0], [1, -1, 2, 0]], dtype=np.float32).reshape(2, 1, 4, 1)
    np.testing.assert_allclose(reconstruction_scores(y, x), [0.0, (1 + 1 + 4) / 4])


def test_threshold_selection():
    normal = np.arange(1, 101, dtype=np.float64)
    thr, how = select_threshold(normal, np.zeros(100), "auto", 99.0)
    assert thr == pytest.approx(np.percentile(normal, 99)) and "percentile" in how
    assert select_threshold(normal, np.zeros(100), "percentile", 50.0)[0] == pytest.approx(50.5)
    scores, labels = np.array([0.1, 0.2, 0.3, 0.9, 0.95]), np.array([0, 0, 0, 1, 1])
    thr, how = select_threshold(scores, labels, "auto")
    assert thr == pytest.approx(0.6) and "max F1" in how  # midway between the last normal and first anomalous
    assert precision_recall_f1(scores, labels, thr)["f1"] == 1.0
    # percentile ignores the anomalous validation windows
    assert select_threshold(scores, labels, "percentile", 100.0)[0] == pytest.approx(0.3)
    # overlapping classes: the best cut keeps the two high anomalies and drops the low one
    assert max_f1_threshold(np.array([0.1, 0.2, 0.5, 0.15, 0.8, 0.9]), np.array([0, 0, 0, 1, 1, 1])) == \
        pytest.approx(0.65)
    with pytest.raises(ValueError, match="max_f1 needs normal and anomalous"):
        select_threshold(normal, np.zeros(100), "max_f1")


def _fake_data(n_normal=20, n_anomalous=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_normal + n_anomalous, 1, 16)).astype(np.float32)
    y = np.r_[np.zeros(n_normal), np.ones(n_anomalous)].astype(np.int64)
    return SimpleNamespace(X_val=X[:n_normal], y_val=y[:n_normal], X_test=X, y_test=y,
                           class_names=["normal", "anomaly"], name="fake", info={})


def test_evaluate_anomaly_threshold_from_val_and_auc_on_test():
    data = _fake_data()
    rng = np.random.default_rng(1)
    # reconstructions: small error on normal windows, large on anomalous ones
    noise = np.where(data.y_test[:, None, None] > 0, 1.0, 0.1) * rng.standard_normal(data.X_test.shape)
    outputs = {"val": data.X_val[..., None] + 0.1 * rng.standard_normal(data.X_val.shape)[..., None],
               "test": (data.X_test + noise)[..., None]}
    ev = evaluate_anomaly(outputs, data)
    assert ev.headline == "auc_roc" and ev.higher_is_better
    assert ev.value == 1.0 and ev.metrics["f1"] > 0.8
    val_scores = reconstruction_scores(outputs["val"], data.X_val)
    assert ev.state["anomaly_threshold"] == pytest.approx(np.percentile(val_scores, 99))
    assert ev.metrics["threshold"] == ev.state["anomaly_threshold"]
    # the verification table's metric recomputes AUC from any artifact's reconstructions of the test windows
    assert ev.metric_fn(outputs["test"]) == 1.0
    assert ev.metric_fn(data.X_test[..., None]) == 0.5  # a perfect copy: every score 0, all tied
    assert json.loads(json.dumps(ev.to_dict()))["state"]["anomaly_threshold"] == ev.state["anomaly_threshold"]


def test_evaluate_refuses_normal_not_label_zero():
    data = _fake_data()
    data.class_names = ["anomaly", "normal"]
    with pytest.raises(ValueError, match="label 0 as normal"):
        evaluate_anomaly({"val": data.X_val, "test": data.X_test}, data)


# -- dataset: windowing, labelling rule, normal-only training ---------------------------------------------------
def test_labelling_rule():
    labels = np.zeros(100, dtype=np.int64)
    labels[40:60] = 1  # one event of 20 samples
    labels[90:92] = 1  # a short one
    assert label_events(labels) == [(40, 60), (90, 92)]
    events = label_events(labels)
    # windows of 10: [35, 45) covers 5 of its 10 samples -> ratio 0.5; [32, 42) covers 2 -> 0.2
    assert overlap_ratio(35, 10, events) == 0.5 and overlap_ratio(32, 10, events) == pytest.approx(0.2)
    # a window of 50 around the short event covers all of it: ratio relative to the event's length
    assert overlap_ratio(50, 50, events) == 1.0
    starts = np.array([0, 32, 35, 45, 61, 88])
    np.testing.assert_array_equal(window_labels(starts, 10, events, 0.5), [0, 0, 1, 1, 0, 1])
    np.testing.assert_array_equal(window_labels(starts, 10, events, 0.0), [0, 1, 1, 1, 0, 1])  # any overlap


def _write_series(path: Path, n=400, events=((300, 320),), channels=1, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    cols = {f"v{c}": np.sin(2 * np.pi * t / 25 + c) + 0.05 * rng.standard_normal(n) for c in range(channels)}
    label = np.zeros(n, dtype=int)
    for a, b in events:
        label[a:b] = 1
    import pandas as pd

    pd.DataFrame({"time": t, **cols, "label": label}).to_csv(path, index=False)
    return path


def test_series_windows_split_and_labels(tmp_path):
    csv = _write_series(tmp_path / "s.csv", channels=2)
    data = load_registered("anomaly_series", {"path": str(csv), "window": 40, "stride": 10, "train_fraction": 0.5,
                                              "val_fraction": 0.2})
    assert data.class_names == ["normal", "anomaly"] and data.input_shape == (2, 40)
    assert data.info["channel_names"] == ["v0", "v1"]  # the time column is not a channel
    assert data.info["split_samples"] == {"train": [0, 200], "val": [200, 280], "test": [280, 400]}
    starts = data.info["window_starts"]
    assert starts["train"] == list(range(0, 161, 10)) and starts["test"] == list(range(280, 361, 10))
    assert (data.y_train == 0).all() and (data.y_val == 0).all()
    # test windows [s, s+40) against the event [300, 320) (20 samples): anomalous if they cover >= 10 of it
    expected = [int(min(s + 40, 320) - max(s, 300) >= 10) for s in starts["test"]]
    np.testing.assert_array_equal(data.y_test, expected)
    assert data.info["events"] == [[300, 320]]
    # normalised with the training windows' statistics
    assert abs(float(data.X_train.mean())) < 1e-5


def test_anomalies_in_the_training_part_are_dropped_or_an_error(tmp_path):
    csv = _write_series(tmp_path / "s.csv", events=((50, 60), (300, 320)))
    params = {"path": str(csv), "window": 40, "stride": 10, "train_fraction": 0.5, "val_fraction": 0.2}
    data = load_registered("anomaly_series", params)
    kept = np.array(data.info["window_starts"]["train"])
    assert len(kept) == 17 - 4  # the windows starting at 20, 30, 40, 50 touch [50, 60)
    assert not ((kept < 60) & (kept + 40 > 50)).any()
    assert any("dropped" in w for w in data.info["warnings"])
    with pytest.raises(DatasetError, match="training windows overlap labelled anomalies"):
        load_registered("anomaly_series", {**params, "train_anomalies": "error"})


def test_a_test_part_without_anomalies_is_an_error(tmp_path):
    csv = _write_series(tmp_path / "s.csv", events=((150, 160),))
    with pytest.raises(DatasetError, match="test part .* holds no anomalous window"):
        load_registered("anomaly_series", {"path": str(csv), "window": 40, "stride": 10, "train_fraction": 0.5,
                                           "val_fraction": 0.2, "train_anomalies": "drop"})


def test_mitdb_ships_offline_with_its_labelled_region():
    data = load_registered("anomaly_series", {"series": "mitdb", "downsample": 2, "window": 256, "stride": 4,
                                              "train_fraction": 0.6, "val_fraction": 0.15})
    assert data.info["samples"] == 7500 and data.info["events"] == [[6936, 7288]]
    assert data.info["provenance"]["package"] == "sktime"
    assert (data.y_train == 0).all() and data.y_test.sum() > 0 and (data.y_test == 0).sum() > 0


# -- models and the DepthToTime layer ---------------------------------------------------------------------------
def test_depth_to_time_semantics():
    from tinyverse.layers.depth_to_time import _DepthToTime

    C, r, L = 2, 4, 3
    x = torch.arange(C * r * L, dtype=torch.float32).reshape(1, C * r, L, 1)
    y = _DepthToTime(r)(x)
    assert y.shape == (1, C, L * r, 1)
    for c in range(C):
        for t in range(L):
            for j in range(r):
                assert y[0, c, t * r + j, 0] == x[0, j * C + c, t, 0]


@pytest.mark.parametrize("name", ["AD_3k_NPU", "AD_7k_NPU", "AD_14k_NPU"])
def test_autoencoders_reconstruct_the_input_shape_and_fit_the_npu(name):
    from tinyverse.compile import check_model
    from tinyverse.models import create_model, list_models

    assert name in list_models(task="anomaly_detection")
    model = create_model(name, input_shape=(1, 128))
    assert model(torch.randn(3, 1, 128, 1)).shape == (3, 1, 128, 1)
    rep = check_model(name, "F28P55", input_shape=(1, 256))
    assert rep.fits, rep.violations
    placement = {lc.layer: lc.placement for lc in rep.layers}
    assert all(p == "NPU" for n, p in placement.items() if n.startswith(("enc", "dec", "code", "expand", "out")))
    assert all(p == "CPU" for n, p in placement.items() if n.startswith("up"))  # said, not hidden


def test_autoencoder_length_must_divide():
    from tinyverse.models import create_model

    with pytest.raises(SpecError, match="multiple of 16"):
        create_model("AD_7k_NPU", input_shape=(1, 100))


@pytest.fixture(scope="module")
def two_channel_tflite(tmp_path_factory):
    """AD_7k_NPU on a 2-channel input, converted to float and int8 TFLite through the Keras twin."""
    from tinyverse.compile import compile_model
    from tinyverse.models import create_model

    torch.manual_seed(0)
    model = create_model("AD_7k_NPU", input_shape=(2, 32)).eval()
    X = np.random.default_rng(0).standard_normal((8, 2, 32, 1)).astype(np.float32)
    out = tmp_path_factory.mktemp("twin")
    return out, compile_model(model, model.spec, out, X, X, metric="mse", exporters=["tflite", "tflite_int8"])


def test_multichannel_autoencoder_tflite_twin_matches_torch(two_channel_tflite):
    _, rep = two_channel_tflite
    row = rep.row("TFLite float (LiteRT)")
    assert row.error is None and row.max_abs_diff < 1e-4
    assert "TRANSPOSE" not in rep.info["tflite_int8_ops"]  # DepthToTime and the unflatten are plain RESHAPEs


def test_validation_loss_reads_normal_windows_only():
    from tinyverse.models import create_model
    from tinyverse.training.tasks import build_task

    torch.manual_seed(0)
    task = build_task("anomaly_detection", create_model("AD_3k_NPU", input_shape=(1, 64)).eval(), epochs=1,
                      num_classes=2)
    logged = []
    task.log = lambda name, value, **kw: logged.append((name, float(value), kw["batch_size"]))
    x, y = torch.randn(4, 1, 64, 1), torch.tensor([0, 1, 0, 1])
    with torch.no_grad():
        errors = task._errors(x)
        task.validation_step((x, y), 0)
        assert task.validation_step((x[1::2], y[1::2]), 1) is None  # anomalous windows only: nothing logged
    assert logged == [("val_loss", pytest.approx(float(errors[[0, 2]].mean())), 2)]


# -- the threshold in the C header -------------------------------------------------------------------------------
def test_header_defines_round_trip(two_channel_tflite, tmp_path):
    from modelmaker.ai_modules.timeseries.compilation import header_state
    from tinyverse.evaluation import Evaluation
    from tinyverse.export.c_header import write_c_model

    ev = Evaluation({"auc_roc": 1.0}, "auc_roc", state={"anomaly_threshold": 0.123456789, "threshold_method": "m",
                                                         "anomaly_score": "mean((x - y)^2)"})
    defines, notes = header_state(ev)
    assert defines == {"TV_ANOMALY_THRESHOLD": 0.123456789}
    assert notes == ["threshold_method: m", "anomaly_score: mean((x - y)^2)"]
    tflite_dir, _ = two_channel_tflite
    h, _ = write_c_model(tflite_dir / "model_int8.tflite", tmp_path, defines=defines, notes=notes)
    text = h.read_text()
    value = re.search(r"#define TV_ANOMALY_THRESHOLD (\S+)f\n", text)
    assert value is not None and float(value.group(1)) == 0.123456789
    assert "/* anomaly_score: mean((x - y)^2) */" in text
    assert "TV_ANOMALY_THRESHOLD" not in write_c_model(tflite_dir / "model_int8.tflite", tmp_path)[0].read_text()


# -- end to end -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ad_run(tmp_path_factory):
    from modelmaker.cli import main

    tmp = tmp_path_factory.mktemp("anomaly")
    cfg = yaml.safe_load((ROOT / "configs" / "timeseries_anomaly_detection.yaml").read_text())
    cfg["common"].update(projects_path=str(tmp / "projects"), run_name="ad", verbose=False)
    cfg["dataset"].update(downsample=4, window=64, stride=8)  # 1,875 samples, 64-sample windows: seconds to train
    cfg["training"].update(model_name="AD_3k_NPU", epochs=3, accelerator="cpu", devices=1)
    cfg["compilation"].update(calibration_samples=64, golden_vectors=2)
    path = tmp / "ad.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["run", str(path)]) == 0
    run_dir = tmp / "projects" / "ad"
    return run_dir, json.loads((run_dir / "summary.json").read_text())


def test_pipeline_reports_auc_and_verifies_int8_in_tflm(ad_run):
    run_dir, summary = ad_run
    test = summary["test"]
    assert summary["task_type"] == "anomaly_detection" and test["headline"] == "auc_roc"
    assert 0.0 <= test["auc_roc"] <= 1.0 and 0.0 <= test["f1"] <= 1.0
    assert test["num_anomalous"] > 0
    assert summary["dataset"]["per_class"]["train"]["anomaly"] == 0  # trained on normal windows only
    rows = {r["artifact"]: r for r in summary["compilation"]["verification"]}
    assert summary["compilation"]["metric"] == "auc_roc"
    assert rows["PyTorch float"]["metric"] == pytest.approx(test["auc_roc"])
    for name in ("ONNX int8", "TFLite int8 (TFLM)", "C array (TFLM)"):
        assert rows[name]["error"] is None, rows[name]["error"]
        assert np.isfinite(rows[name]["metric"]) and 0.0 <= rows[name]["metric"] <= 1.0
    assert summary["quantization"]["int8_artifact"] == "TFLite int8 (TFLM)"
    for name in ("anomaly_scores.png", "anomaly_roc.png", "loss_curves.png", "model_int8.tflite"):
        assert (run_dir / name).is_file(), name


def test_pipeline_saves_the_threshold_with_the_model(ad_run):
    run_dir, summary = ad_run
    threshold = summary["test"]["state"]["anomaly_threshold"]
    assert threshold == summary["test"]["threshold"] > 0
    assert json.loads((run_dir / "anomaly_threshold.json").read_text())["anomaly_threshold"] == threshold
    header = (run_dir / "model_int8.h").read_text()
    value = re.search(r"#define TV_ANOMALY_THRESHOLD (\S+)f\n", header)
    assert value is not None and float(value.group(1)) == pytest.approx(threshold, rel=1e-12)
    assert "mean squared reconstruction error" in header
