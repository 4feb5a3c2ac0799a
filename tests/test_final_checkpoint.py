"""Training on the whole official train split (FCN's protocol): dataset.val_fraction: 0 trains on every training
series, training.final_checkpoint: last keeps the last epoch of a fixed schedule, no validation split is made or
used for selection, and bad values fail as one line."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import tinyverse.training as training
from modelmaker.cli import main
from modelmaker.config import ConfigError, load_config
from tinyverse.timeseries.data import UCRDataset
from tinyverse.timeseries.data.ucr import offline_sets
from tinyverse.training.tasks import SupervisedTask

SET = "ItalyPowerDemand"  # 67 training series of 24 steps: the smallest shipped set
EPOCHS = 3


def official_train_count(name: str) -> int:
    """Series in the set's _TRAIN.ts file, counted from the file itself (one line per series after @data)."""
    lines = offline_sets()[name].train.read_text(errors="replace").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().lower().startswith("@data"))
    return sum(1 for line in lines[start + 1:] if line.strip() and not line.startswith("#"))


def write_config(tmp_path: Path, dataset: dict | None = None, **training_keys) -> Path:
    cfg = {
        "common": {"task_type": "classification", "run_name": "run", "projects_path": str(tmp_path / "projects"),
                   "seed": 0, "verbose": False},
        "dataset": {"name": "ucr", "ucr_name": SET, **(dataset or {})},
        "training": {"model_name": "CLS_500_NPU", "epochs": EPOCHS, "batch_size": 16, "learning_rate": 0.01,
                     "accelerator": "cpu", "devices": 1, "early_stopping_patience": None, **training_keys},
        "testing": {"enable": True},
        "compilation": {"enable": False},
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("modelmaker: error: ") and len(err.splitlines()) == 1, err
    return err


def test_val_fraction_0_keeps_every_official_training_series():
    n = official_train_count(SET)
    assert n == 67  # the UCR archive's figure for ItalyPowerDemand
    whole = UCRDataset(SET, val_fraction=0.0).load()
    assert len(whole.y_train) == n and len(whole.y_val) == 0
    assert whole.info["val_rows_of_official_train"] == [] and "no val" in whole.info["provenance"]["split"]
    held = UCRDataset(SET, val_fraction=0.2).load()  # the default holds some out
    assert len(held.y_train) + len(held.y_val) == n and len(held.y_val) > 0
    assert len(whole.y_test) == len(held.y_test)  # the test split is the official one either way


@pytest.fixture
def watched(monkeypatch):
    """Counts the series each training / validation step sees, and records the checkpoint the runner loads."""
    seen = {"train": 0, "val": 0, "loaded": []}
    train_step, val_step, load = SupervisedTask.training_step, SupervisedTask.validation_step, \
        training.load_task_weights

    def training_step(self, batch, batch_idx):
        seen["train"] += int(batch[0].shape[0])
        return train_step(self, batch, batch_idx)

    def validation_step(self, batch, batch_idx):
        seen["val"] += int(batch[0].shape[0])
        return val_step(self, batch, batch_idx)

    def load_task_weights(task, path):
        seen["loaded"].append(Path(path))
        return load(task, path)

    monkeypatch.setattr(SupervisedTask, "training_step", training_step)
    monkeypatch.setattr(SupervisedTask, "validation_step", validation_step)
    monkeypatch.setattr(training, "load_task_weights", load_task_weights)
    return seen


def test_last_epoch_of_every_training_series(tmp_path, watched):
    """val_fraction 0 + final_checkpoint last: every epoch sees all 67 series, no validation step ever runs, the
    weights tested are the last epoch's."""
    assert main(["run", str(write_config(tmp_path, {"val_fraction": 0}, final_checkpoint="last"))]) == 0
    run = tmp_path / "projects" / "run"
    n = official_train_count(SET)
    assert watched["train"] == EPOCHS * n and watched["val"] == 0
    assert [p.name for p in watched["loaded"]] == ["last.ckpt"]
    counts = json.loads((run / "dataset.json").read_text())["summary"]["counts"]
    assert counts["train"] == n and counts["val"] == 0
    summary = json.loads((run / "summary.json").read_text())
    t = summary["training"]
    assert t["final_checkpoint"] == "last" and Path(t["kept_checkpoint"]).name == "last.ckpt"
    assert "best_train_acc" in t and not any(k.startswith("best_val") for k in t)  # no validation metric exists
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "train_loss" in header and not any(c.startswith("val_") for c in header)
    assert t["epochs_run"] == EPOCHS and "accuracy" in summary["test"]


def test_default_still_holds_out_validation_and_keeps_the_best(tmp_path, watched):
    assert main(["run", str(write_config(tmp_path))]) == 0
    run = tmp_path / "projects" / "run"
    counts = json.loads((run / "dataset.json").read_text())["summary"]["counts"]
    assert counts["val"] > 0 and counts["train"] + counts["val"] == official_train_count(SET)
    assert watched["train"] == EPOCHS * counts["train"] and watched["val"] >= EPOCHS * counts["val"]
    assert [p.name for p in watched["loaded"]] == ["best.ckpt"]
    t = json.loads((run / "summary.json").read_text())["training"]
    assert t["final_checkpoint"] == "best" and "best_val_acc" in t


@pytest.mark.parametrize("dataset,training_keys,expected", [
    ({}, {"final_checkpoint": "latest"},
     "training.final_checkpoint: expected one of 'best', 'last', got 'latest'; did you mean 'last'?"),
    ({}, {"final_checkpoint": "last", "enable": False},
     "training.final_checkpoint: used only when training runs, but training.enable is false"),
    ({"val_fraction": 1.0}, {}, "dataset.val_fraction: must be in [0, 1), got 1.0"),
    ({"val_fraction": -0.1}, {}, "dataset.val_fraction: must be in [0, 1), got -0.1"),
])
def test_bad_values_fail_in_one_line_before_the_run_folder(tmp_path, capsys, dataset, training_keys, expected):
    assert main(["run", str(write_config(tmp_path, dataset, **training_keys))]) == 2
    assert expected in one_error_line(capsys)
    assert not (tmp_path / "projects").exists()


def test_the_audio_modality_refuses_the_key(tmp_path):
    path = tmp_path / "audio.yaml"
    path.write_text("common: {modality: audio, task_type: amp_modelling}\n"
                    "dataset: {name: nam_capture, generated_seconds: 6}\n"
                    "training: {model_name: NAM_WaveNet_nano, epochs: 1, final_checkpoint: last}\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert e.value.key == "training.final_checkpoint" and "\n" not in str(e.value)
    assert "not used by the audio modality" in str(e.value)


def test_an_empty_validation_split_warns_only_where_a_checkpoint_is_chosen_on_it(tmp_path):
    """val_fraction 0 with the default final_checkpoint best: the best epoch is chosen on training metrics, which
    the run says (dataset.json); with final_checkpoint last nothing is chosen and nothing is said."""
    def warnings(**training_keys) -> list[str]:
        path = write_config(tmp_path, {"val_fraction": 0}, epochs=1, **training_keys)
        assert main(["run", str(path), "--set", "common.run_name=" + "-".join(training_keys.values())]) == 0
        return json.loads((tmp_path / "projects" / "-".join(training_keys.values()) / "dataset.json").read_text()
                          )["summary"].get("warnings", [])

    assert any("validation split is empty" in w for w in warnings(final_checkpoint="best"))
    assert not any("validation split is empty" in w for w in warnings(final_checkpoint="last"))
