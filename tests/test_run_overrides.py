"""``modelmaker run CONFIG --set KEY=VALUE``: values read as YAML, validated like the file, named ``--set <key>`` in
errors, recorded in the run folder's resolved config.yaml and in summary.json."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from modelmaker.cli import main
from modelmaker.config import ConfigError, load_config, parse_overrides

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(tmp_path: Path, **training) -> Path:
    """A 2-epoch classification run on ItalyPowerDemand without compilation (seconds on a CPU)."""
    cfg = {
        "common": {"task_type": "classification", "run_name": "run", "projects_path": str(tmp_path / "projects"),
                   "seed": 0, "verbose": False},
        "dataset": {"name": "ucr", "ucr_name": "ItalyPowerDemand", "val_fraction": 0.2},
        "training": {"model_name": "CLS_500_NPU", "epochs": 2, "batch_size": 16, "learning_rate": 0.01,
                     "accelerator": "cpu", "devices": 1, **training},
        "testing": {"enable": True},
        "compilation": {"enable": False},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_values_are_read_as_yaml():
    got = parse_overrides(["training.epochs=3", "dataset.ucr_name=OSULeaf", "compilation.exporters=[onnx,tflite]",
                           "training.model_args={width: 8, blocks: 1}", "training.monitor=", "training.epochs=4",
                           "common.run_name=a=b"])
    assert got == {"training.epochs": 4, "dataset.ucr_name": "OSULeaf", "compilation.exporters": ["onnx", "tflite"],
                   "training.model_args": {"width": 8, "blocks": 1}, "training.monitor": None,
                   "common.run_name": "a=b"}  # a later KEY wins; only the first '=' splits
    assert parse_overrides(None) == {} and parse_overrides([]) == {}


@pytest.mark.parametrize("item, expected", [
    ("trainingepochs", "--set: expected KEY=VALUE with a dotted KEY, got 'trainingepochs'"),
    ("training..epochs=3", "--set: expected KEY=VALUE with a dotted KEY"),
    ("=3", "--set: expected KEY=VALUE"),
    ("training.model_args={width: 8", "--set training.model_args: line 1, column 10: YAML syntax error"),
    ("training.model_args={a: 1, a: 2}", "duplicate key 'a'"),
    ("common.seed=!!python/object/apply:os.system [ls]", "YAML tags such as"),
])
def test_malformed_set_is_one_line(item, expected):
    with pytest.raises(ConfigError) as info:
        parse_overrides([item])
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_set_overrides_are_validated_recorded_and_run(tmp_path, capsys):
    cfg = tiny_config(tmp_path)
    before = cfg.read_text()
    assert main(["run", str(cfg), "--set", "training.epochs=1", "--set", "training.model_args={dropout: 0.25}",
                 "--set", "common.seed=7"]) == 0
    assert cfg.read_text() == before  # the file itself is never rewritten
    run_dir = tmp_path / "projects" / "run"
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert resolved["training"]["epochs"] == 1 and resolved["common"]["seed"] == 7
    assert resolved["training"]["model_args"] == {"dropout": 0.25}
    assert resolved["training"]["batch_size"] == 16  # the file's values stay where nothing overrides them
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["overrides"] == {"training.epochs": 1, "training.model_args": {"dropout": 0.25}, "common.seed": 7}
    assert summary["training"]["epochs_run"] == 1
    assert summary["model"]["args"]["dropout"] == 0.25
    assert load_config(run_dir / "config.yaml").training.epochs == 1  # the resolved file reproduces the run


def test_without_set_no_overrides_are_recorded(tmp_path):
    assert main(["run", str(tiny_config(tmp_path, epochs=1))]) == 0
    assert "overrides" not in json.loads((tmp_path / "projects" / "run" / "summary.json").read_text())


@pytest.mark.parametrize("items, expected", [
    (["training.epocs=3"], "tiny.yaml: --set training.epocs: unknown key; did you mean 'epochs'?"),
    (["trainig.epochs=3"], "tiny.yaml: --set trainig: unknown key; did you mean 'training'?"),
    (["training.epochs=three"], "tiny.yaml: --set training.epochs: expected an integer, got 'three'"),
    (["training.model_name=CLS_1K_NPU"], "--set training.model_name: unknown model 'CLS_1K_NPU'; did you mean "
                                         "'CLS_1k_NPU'?"),
    (["compilation.exporters=[onnx, tflitee]"], "--set compilation.exporters[1]: unknown exporter 'tflitee'"),
    (["training.model_args={chanels: [8, 8, 8]}"], "--set training.model_args.chanels: unknown argument of model "
                                                   "'CLS_500_NPU'; did you mean 'channels'?"),
    (["training.model_args={channels: wide}"], "--set training.model_args.channels: expected Sequence[int], got "
                                               "'wide'"),
    (["training.epochs"], "--set: expected KEY=VALUE"),
])
def test_bad_set_is_one_line_exit_2_and_no_run_folder(items, expected, tmp_path, capsys):
    cfg = tiny_config(tmp_path)
    argv = ["run", str(cfg)]
    for item in items:
        argv += ["--set", item]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("modelmaker: error: ") and len(err.splitlines()) == 1, err
    assert expected in err, err
    assert not (tmp_path / "projects").exists()


def test_a_file_error_is_not_blamed_on_set(tmp_path):
    cfg = tiny_config(tmp_path, epocs=3)
    with pytest.raises(ConfigError) as info:
        load_config(cfg, parse_overrides(["training.batch_size=8"]))
    msg = str(info.value)
    assert "training.epocs: unknown key" in msg and "--set" not in msg and "(line " in msg
