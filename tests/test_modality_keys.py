"""A key the modality or the task does not use is a config error naming the file, the key (and its line) and the
fix, before any data is read — never silently ignored."""
from __future__ import annotations

from pathlib import Path

import pytest

from modelmaker.cli import main as cli
from modelmaker.config import ConfigError, dump_resolved, load_config

ROOT = Path(__file__).resolve().parents[1]
AUDIO = """common:
  modality: audio
  task_type: amp_modelling
dataset:
  name: nam_capture
  generated_seconds: 6
training:
  model_name: NAM_WaveNet_nano
  epochs: 1
"""
TIMESERIES = """common:
  task_type: {task}
dataset:
  name: ucr
  ucr_name: GunPoint
training:
  model_name: {model}
  epochs: 1
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


AUDIO_CASES = [
    # (text replaced, replacement, key, start of the message after the key)
    ("  task_type: amp_modelling\n", "  task_type: classification\n", "common.task_type",
     "'classification' is not a task of the audio modality; set common.task_type: amp_modelling or knob_modelling "
     "(or set "
     "common.modality: timeseries) (line 3)"),
    ("  task_type: amp_modelling\n", "", "common.task_type",
     "'classification' (the default) is not a task of the audio modality; set common.task_type: amp_modelling or "
     "knob_modelling"),
    ("training:\n", "feature_extraction:\n  enable: true\n  preset: Generic_256Input_FFTBIN_16Feature_8Frame\n"
                    "training:\n", "feature_extraction.enable",
     "not used by the audio modality: its models read the raw capture sample by sample"),
    ("training:\n", "feature_extraction:\n  transforms: [{name: FFT}]\ntraining:\n", "feature_extraction.transforms",
     "not used by the audio modality"),
    ("  epochs: 1\n", "  epochs: 1\n  augmentation: {noise: 0.05}\n", "training.augmentation",
     "task 'amp_modelling' does not use it (its training step takes no augmentation); remove it (line 10)"),
    ("  epochs: 1\n", "  epochs: 1\n  label_smoothing: 0.1\n", "training.label_smoothing",
     "task 'amp_modelling' does not use it (its training step takes no label_smoothing); remove it (line 10)"),
    ("  epochs: 1\n", "  epochs: 1\n  loss: mse\n", "training.loss", "task 'amp_modelling' has its own loss"),
    # audio has QAT: its quantization keys follow the same rules as time series'
    ("  epochs: 1\n", "  epochs: 1\n  quantization: qat\n", "training.quantization",
     "qat shapes the int8 exports of the compilation stage, which is off; set compilation.enable: true"),
    ("  epochs: 1\n", "  epochs: 1\n  qat_epochs: 3\n", "training.qat_epochs",
     "used only with training.quantization: qat; set training.quantization: qat, or remove it (line 10)"),
    ("training:\n", "testing:\n  batch_size: 8\ntraining:\n", "testing.batch_size",
     "not used by the audio modality: a capture has no test split"),
    ("training:\n", "testing:\n  enable: false\ntraining:\n", "testing.enable", "not used by the audio modality"),
    ("training:\n", "compilation:\n  golden_vectors: 2\ntraining:\n", "compilation.golden_vectors",
     "not used by the audio modality: it writes no C golden vectors"),
    ("  generated_seconds: 6\n", "  generated_seconds: 6\n  enable: false\n", "dataset.enable",
     "the audio modality needs its capture"),
    ("training:\n", "compilation:\n  input_range_percentile: 99.9\ntraining:\n", "compilation.input_range_percentile",
     "not used by the audio modality: its int8 exports are calibrated on the capture's own level"),
]


def test_audio_refuses_an_exporter_that_does_not_declare_audio(tmp_path):
    from tinyverse.export.base import Exporter
    from tinyverse.registry import EXPORTERS

    class CsvDump(Exporter):  # declares no modality: time series only
        name = "csv_dump"

    EXPORTERS.register("csv_dump", CsvDump)
    try:
        text = AUDIO.replace("training:\n", "compilation:\n  exporters: [onnx, csv_dump]\ntraining:\n", 1)
        with pytest.raises(ConfigError) as e:
            load_config(_write(tmp_path, text))
        assert "compilation.exporters" in str(e.value) and "'csv_dump' is not an export of the audio modality; " \
            "choose from c_header, onnx, onnx_int8, tflite, tflite_int16, tflite_int8" in str(e.value)
    finally:
        EXPORTERS.unregister("csv_dump")


@pytest.mark.parametrize("old,new,key,message", AUDIO_CASES, ids=[c[2] + ("" if c[1] else "-default")
                                                                  for c in AUDIO_CASES])
def test_audio_keys_it_does_not_use(tmp_path, old, new, key, message):
    assert old in AUDIO
    path = _write(tmp_path, AUDIO.replace(old, new, 1))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert e.value.key == key
    assert str(e.value).startswith(f"{path}: {key}: {message}"), str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("task,model,extra,key,message", [
    ("amp_modelling", "CLS_4k_NPU", "", "common.task_type",
     "'amp_modelling' is not a task of the timeseries modality; set common.task_type: classification or regression "
     "or forecasting or anomaly_detection (or set common.modality: audio)"),
    ("regression", "REGR_1k_NPU", "  label_smoothing: 0.1\n", "training.label_smoothing",
     "task 'regression' does not use it (its training step takes no label_smoothing)"),
    ("anomaly_detection", "AD_3k_NPU", "  label_smoothing: 0.1\n", "training.label_smoothing",
     "task 'anomaly_detection' does not use it"),
    ("forecasting", "FCST_1k_NPU", "  augmentation: {time_shift: 0.1}\n", "training.augmentation.time_shift",
     "task 'forecasting' cannot use it: it would change the inputs but not the targets; use only noise"),
    ("classification", "CLS_4k_NPU", "  quantization: qat\n", "training.quantization",
     "qat shapes the int8 exports of the compilation stage, which is off; set compilation.enable: true, or remove "
     "it (line 9)"),
    ("classification", "CLS_4k_NPU", "  qat_epochs: 3\n", "training.qat_epochs",
     "used only with training.quantization: qat; set training.quantization: qat, or remove it (line 9)"),
])
def test_timeseries_keys_its_task_or_stages_do_not_use(tmp_path, task, model, extra, key, message):
    path = _write(tmp_path, TIMESERIES.format(task=task, model=model) + extra)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert e.value.key == key and str(e.value).startswith(f"{path}: {key}: {message}"), str(e.value)


def test_what_a_modality_uses_still_loads(tmp_path):
    """Shipped configs, a key at its default value, and a run's resolved config.yaml (every default written out)
    are not flagged."""
    for name in ("audio_amp_capture.yaml", "audio_amp_capture_feather.yaml", "timeseries_classification.yaml",
                 "timeseries_regression.yaml", "timeseries_forecasting.yaml", "timeseries_anomaly_detection.yaml"):
        load_config(ROOT / "configs" / name)
    cfg = load_config(_write(tmp_path, AUDIO + "testing:\n  enable: true\nfeature_extraction:\n  enable: false\n"))
    resolved = tmp_path / "resolved.yaml"
    resolved.write_text(dump_resolved(cfg))
    assert load_config(resolved) == cfg


def test_run_stops_on_an_unused_key_before_any_work(tmp_path, capsys):
    projects = tmp_path / "projects"
    path = _write(tmp_path, AUDIO.replace("common:\n", f"common:\n  projects_path: {projects}\n")
                  + "feature_extraction:\n  enable: true\n  preset: Generic_256Input_FFTBIN_16Feature_8Frame\n")
    capsys.readouterr()
    assert cli(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"modelmaker: error: {path}: feature_extraction.enable: not used by the audio modality")
    assert err.count("\n") == 1 and not projects.exists()
