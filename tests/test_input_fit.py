"""Fitting series to the model's input: zero channels for the NPU (a 6-channel IMU on an NPU model), variable, short
and long series resampled to a length the model supports, recorded in the run (dataset.input_channels /
input_length)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from modelmaker.cli import main as cli
from modelmaker.config import ConfigError, load_config
from tinyverse.devices import check_model
from tinyverse.models import create_model
from tinyverse.timeseries.data import TimeSeriesData
from tinyverse.timeseries.data import input_fit
from tinyverse.timeseries.data.input_fit import apply_input_fit, choose_input_fit, resample_series


def _data(channels: int, lengths: list[int], n_classes: int = 2, seed: int = 0) -> TimeSeriesData:
    """Series of the given lengths, edge-padded to the longest as the UCR loader does, with original_lengths."""
    rng = np.random.default_rng(seed)
    longest = max(lengths)
    X = np.empty((len(lengths), channels, longest), np.float32)
    for i, n in enumerate(lengths):
        X[i, :, :n] = rng.normal(size=(channels, n))
        X[i, :, n:] = X[i, :, n - 1:n]
    y = np.arange(len(lengths)) % n_classes
    info = {"equal_length": len(set(lengths)) == 1,
            "original_lengths": {"train": lengths, "val": lengths, "test": lengths}}
    return TimeSeriesData(X, y, X.copy(), y, X.copy(), y, [str(k) for k in range(n_classes)], "synthetic", info)


def _acceptor(model: str, device: str | None, classes: int = 2):
    def accepts(c: int, length: int) -> list[str]:
        try:
            m = create_model(model, input_shape=[c, length], num_classes=classes)
        except Exception as err:  # noqa: BLE001
            return [str(err)]
        return check_model(m, device).violations if device else []
    return accepts


def test_resampling_arithmetic():
    x = np.arange(12, dtype=float)[None]
    assert resample_series(x, 4).tolist() == [[1.0, 4.0, 7.0, 10.0]]  # block means of 3
    assert resample_series(x, 12) is not None and np.array_equal(resample_series(x, 12), x)
    # fractional blocks are weighted: the mean of the series is kept exactly
    long = np.random.default_rng(0).normal(size=(2, 1460))
    assert np.allclose(resample_series(long, 512).mean(axis=1), long.mean(axis=1))
    # lengthening is linear interpolation that keeps both ends
    ramp = np.array([[0.0, 3.0, 6.0]])
    assert np.allclose(resample_series(ramp, 7), [[0, 1, 2, 3, 4, 5, 6]])


def test_six_channels_get_the_zero_channels_the_npu_needs():
    data = _data(6, [100] * 8)
    fit = choose_input_fit(data, "auto", None, _acceptor("CLS_4k_NPU", "F28P55"))
    assert (fit.channels, fit.zero_channels, fit.length) == (8, [6, 7], 100)
    assert "GCONV in_channels 6 is not a multiple of 4" in fit.why[0]
    fitted = apply_input_fit(data, fit)
    assert fitted.X_train.shape == (8, 8, 100) and not fitted.X_train[:, 6:].any()
    assert np.array_equal(fitted.X_train[:, :6], data.X_train)
    assert fitted.info["input_fit"]["zero_channels"] == [6, 7]
    # a device without channel rules (Cortex-M4, TFLM kernels) keeps the six; so does input_channels: null
    assert choose_input_fit(data, "auto", None, _acceptor("CLS_4k_NPU", "cortex-m4")).channels == 6
    assert choose_input_fit(data, None, None, _acceptor("CLS_4k_NPU", "F28P55")).channels == 6
    assert choose_input_fit(data, 12, None).zero_channels == [6, 7, 8, 9, 10, 11]


def test_variable_lengths_pad_or_stretch():
    lengths = [7, 15, 29]
    data = _data(2, lengths)
    pad = choose_input_fit(data, None, "auto")  # policy: 29 steps -> AUTO_MIN_LENGTH
    assert pad.length == input_fit.AUTO_MIN_LENGTH and not pad.per_series and "edge-padded" in pad.describe()
    padded = apply_input_fit(data, pad).X_train
    # one time scale: the 7-step series ends (its edge padding) at 7/29 of the input
    assert np.allclose(padded[0, :, -1], data.X_train[0, :, 6])
    stretch = choose_input_fit(data, None, 40, variable="stretch")
    stretched = apply_input_fit(data, stretch).X_train
    assert stretch.per_series and stretched.shape == (3, 2, 40)
    for i, n in enumerate(lengths):  # every series fills the input from its own first to its own last sample
        assert np.allclose(stretched[i], resample_series(data.X_train[i, :, :n], 40))
        assert np.allclose(stretched[i, :, 0], data.X_train[i, :, 0])


def test_short_and_long_series_get_a_length_the_model_supports(monkeypatch):
    accepts = _acceptor("CLS_4k_NPU", "F28P55")
    short = _data(1, [24] * 4)  # ItalyPowerDemand's length: 4 stride-2 convs leave 2 steps for the global pool
    assert accepts(1, 24) and "AVGPOOL" in accepts(1, 24)[0]
    assert choose_input_fit(short, "auto", "auto", accepts).length == input_fit.AUTO_MIN_LENGTH
    monkeypatch.setattr(input_fit, "AUTO_MIN_LENGTH", 1)  # no policy floor: the model's own minimum is searched
    fit = choose_input_fit(short, "auto", "auto", accepts)
    assert fit.length == 33 and not accepts(1, 33) and accepts(1, 32)
    assert "the model at length 24" in fit.describe()
    long = _data(1, [1460] * 4)
    fit = choose_input_fit(long, "auto", "auto", accepts)
    assert fit.length == input_fit.AUTO_MAX_LENGTH and fit.resampled == "shrunk (block mean)"
    assert np.allclose(apply_input_fit(long, fit).X_test.mean(axis=2), long.X_test.mean(axis=2), atol=1e-5)


RUN = """common:
  task_type: classification
  run_name: {name}
  projects_path: {projects}
  target_device: F28P55
  verbose: false
dataset:
  name: ucr
  ucr_name: BasicMotions
{dataset}training:
  model_name: CLS_1k_NPU
  epochs: 1
  batch_size: 16
compilation:
  enable: true
  exporters: [onnx, onnx_int8]
  tolerances: {{int8_min_agreement: 0.0, int8_max_drop: 1.0}}
"""


def test_basicmotions_runs_on_an_npu_model_and_compiles_from_its_checkpoint(tmp_path, capsys):
    projects = tmp_path / "p"
    path = tmp_path / "bm.yaml"
    fit = "  input_channels: auto\n  input_length: auto\n"  # opt-in (the default config names them)
    path.write_text(RUN.format(name="bm", projects=projects, dataset=fit))
    assert cli(["run", str(path)]) == 0
    run = projects / "bm"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["input"]["zero_channels"] == [6, 7] and summary["input"]["channels"] == 8
    assert summary["device"]["fits"] and summary["dataset"]["input_shape"] == [8, 100]
    assert json.loads((run / "dataset.json").read_text())["info"]["input_fit"]["data_channels"] == 6
    # the data checks read the user's six channels: the zero channels are not "constant channels" to warn about
    assert not [w for w in summary["dataset"].get("warnings", []) if "constant" in w]
    assert "## Input" in (run / "report.md").read_text()
    assert yaml.safe_load((run / "model_spec.yaml").read_text())["inputs"] == {"x": [8, 100, 1]}

    # compile-only: the data is fitted to the model file's input, as its training run did
    only = tmp_path / "only.yaml"
    only.write_text(RUN.format(name="only", projects=projects, dataset=fit).replace(
        "training:\n  model_name: CLS_1k_NPU\n  epochs: 1\n  batch_size: 16\n", "training:\n  enable: false\n")
        .replace("compilation:\n  enable: true\n",
                 f"compilation:\n  enable: true\n  model_path: {run / 'checkpoints' / 'best.ckpt'}\n"))
    assert cli(["run", str(only)]) == 0
    compiled = json.loads((projects / "only" / "summary.json").read_text())
    assert compiled["input"]["zero_channels"] == [6, 7]
    assert compiled["quantization"]["float_metric"] == pytest.approx(summary["test"]["accuracy"])

    # without the fit the NPU refuses the model before a run folder exists
    capsys.readouterr()
    raw = tmp_path / "raw.yaml"
    raw.write_text(RUN.format(name="raw", projects=projects, dataset="  input_channels: null\n"))
    assert cli(["run", str(raw)]) == 2
    assert "conv1: GCONV in_channels 6 is not a multiple of 4" in capsys.readouterr().err
    assert not (projects / "raw").exists()


@pytest.mark.parametrize("text,key,message", [
    ("common: {modality: audio, task_type: amp_modelling}\ndataset: {name: nam_capture, generated_seconds: 6, "
     "input_length: 64}\ntraining: {model_name: NAM_WaveNet_nano, epochs: 1}\n", "dataset.input_length",
     "not used by the audio modality"),
    ("common: {task_type: forecasting}\ndataset: {name: ucr, ucr_name: GunPoint, input_channels: 4}\n"
     "training: {model_name: FCST_1k_NPU, epochs: 1}\n", "dataset.input_channels",
     "task 'forecasting' keeps its inputs as the data has them"),
    ("dataset: {name: ucr, ucr_name: GunPoint, input_length: 0}\ntraining: {model_name: CLS_4k_NPU}\n",
     "dataset.input_length", "expected 'auto', a positive count or null, got 0"),
])
def test_input_keys_where_they_do_nothing_are_errors(tmp_path, text, key, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert e.value.key == key and message in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_fewer_channels_than_the_data_is_refused():
    with pytest.raises(Exception, match="dataset.input_channels: 4 is fewer than the data's 6 channels"):
        choose_input_fit(_data(6, [50] * 2), 4, None)
