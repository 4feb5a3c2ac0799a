"""Dataset checks: each problem is a one-line DatasetError naming the dataset and the fix, or a warning that
reaches dataset.json and the run report; the time-series runner runs them before any training."""
from __future__ import annotations

import numpy as np
import pytest

from modelmaker.config import config_from_dict
from modelmaker.report import render_report
from tinyverse.timeseries.data.checks import (check_class_balance, check_constant_channels, check_dataset, check_finite,
                                   check_length, check_splits)
from tinyverse.timeseries.data.splits import DatasetError, TimeSeriesData

rng = np.random.default_rng(3)


def make(n=(20, 6, 6), c=2, length=32, y=None, class_names=("a", "b"), info=None) -> TimeSeriesData:
    X = [rng.normal(size=(k, c, length)).astype(np.float32) for k in n]
    ys = y or [np.arange(k) % 2 for k in n]
    return TimeSeriesData(X[0], ys[0], X[1], ys[1], X[2], ys[2], list(class_names), "toy", dict(info or {}))


def one_line_error(fn, *args, **kwargs) -> str:
    with pytest.raises(DatasetError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_nan_and_inf_name_split_position_and_fix():
    data = make()
    data.X_train[3, 1, 7] = np.nan
    data.X_train[5, 0, 0] = np.inf
    msg = one_line_error(check_finite, data, "dataset.name: folder")
    assert msg.startswith("dataset 'toy' (dataset.name: folder): X_train holds 1 NaN and 1 inf values")
    assert "first at sample 3, channel 1, step 7" in msg and "interpolate" in msg
    clean = make()
    clean.X_test[0, 0, 0] = -np.inf
    msg = one_line_error(check_finite, clean, stage="feature_extraction (LogDB)")
    assert msg.startswith("feature_extraction (LogDB) turned dataset 'toy' into non-finite values: X_test holds")
    check_finite(make())  # finite data passes


def test_empty_splits():
    assert "the train split is empty" in one_line_error(check_splits, make(n=(0, 6, 6)))
    no_test = make(n=(20, 6, 0))
    assert "the test split is empty" in one_line_error(check_splits, no_test, need_test=True)
    assert check_splits(no_test, need_test=False) == []
    warned = check_splits(make(n=(20, 0, 6)))
    assert len(warned) == 1 and "validation split is empty" in warned[0] and "val_fraction" in warned[0]
    assert check_splits(make(n=(20, 0, 6)), need_val=False) == []  # nothing is chosen on validation


def test_too_short_series():
    msg = one_line_error(check_length, make(length=8), 16, "the receptive field of NAM_WaveNet_nano")
    assert "series are 8 samples long, shorter than 16 (the receptive field of NAM_WaveNet_nano)" in msg
    check_length(make(length=16), 16, "x")


def test_constant_channel_is_a_warning_naming_it():
    data = make(info={"channel_names": ["accel", "temp"]})
    data.X_train[:, 1, :] = 21.5
    warned = check_constant_channels(data)
    assert len(warned) == 1 and "channel 1 ('temp') is constant (21.5)" in warned[0]
    assert check_constant_channels(make()) == []


def test_class_imbalance_and_missing_class():
    y_train = np.array([0] * 50 + [1] * 4)
    data = make(n=(54, 6, 6), y=[y_train, np.arange(6) % 2, np.arange(6) % 2])
    warned = check_class_balance(data)
    assert len(warned) == 1 and "'a' has 50 series and 'b' 4 (12x)" in warned[0]
    assert check_class_balance(data, max_ratio=20) == []
    missing = make(n=(10, 6, 6), y=[np.zeros(10, int), np.arange(6) % 2, np.arange(6) % 2])
    assert "class(es) ['b'] have no training series" in one_line_error(check_class_balance, missing)


def test_value_targets_skip_the_class_checks():
    targets = [rng.normal(size=(k, 1)).astype(np.float32) for k in (20, 6, 6)]
    data = make(y=targets, class_names=())
    assert check_class_balance(data) == []
    assert check_dataset(data) == []
    data.y_val[2, 0] = np.nan  # float targets are checked for NaN too
    assert "y_val holds 1 NaN" in one_line_error(check_dataset, data)


def test_warnings_reach_the_report():
    data = make()
    data.info["warnings"] = ["dataset 'toy': channel 1 is constant (0) in every training series"]
    summary = {"dataset": data.summary(), "modality": "timeseries"}
    assert summary["dataset"]["warnings"] == data.info["warnings"]
    report = render_report(summary)
    assert "**Warnings**" in report and "- dataset 'toy': channel 1 is constant" in report


def write_folder(root) -> None:
    for label in ("a", "b"):
        folder = root / "classes" / label
        folder.mkdir(parents=True)
        for i in range(3):
            x = rng.normal(size=(128, 2)).astype(np.float32)
            x[:, 1] = 5.0  # a stuck sensor
            np.save(folder / f"r{i}.npy", x)


class NaNDataset:
    """A registered dataset whose loader lets a NaN through (the folder loader already rejects them)."""

    def load(self) -> TimeSeriesData:
        data = make()
        data.X_val[1, 0, 4] = np.nan
        return data


def test_runner_load_data_runs_the_checks(tmp_path):
    from modelmaker.ai_modules.timeseries.runner import TimeSeriesModule
    from tinyverse.registry import DATASETS

    write_folder(tmp_path / "const")
    cfg = config_from_dict({"dataset": {"name": "folder", "path": str(tmp_path / "const"), "frame_size": 32},
                            "training": {"model_name": "CLS_100_NPU"}})
    data = TimeSeriesModule().load_data(cfg)
    assert any("channel 1" in w and "is constant" in w for w in data.info["warnings"])
    assert data.summary()["warnings"] == data.info["warnings"]

    DATASETS.register("test_nan_dataset", NaNDataset)
    try:
        cfg = config_from_dict({"dataset": {"name": "test_nan_dataset"}, "training": {"model_name": "CLS_100_NPU"}})
        with pytest.raises(DatasetError, match=r"^dataset 'toy' \(dataset\.name: test_nan_dataset\): X_val holds "
                                               r"1 NaN and 0 inf values \(first at sample 1, channel 0, step 4\)"):
            TimeSeriesModule().load_data(cfg)
    finally:
        DATASETS.unregister("test_nan_dataset")
