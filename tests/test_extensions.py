"""Extensions: loading from files, folders and the environment; provenance; failures; the worked examples."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from modelmaker.ai_modules import AI_MODULES
from modelmaker.cli import main as cli
from tinyverse import extensions
from tinyverse.registry import DATASETS, DEVICES, MODEL_REGISTRY, RegistryError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "extensions"


@pytest.fixture(autouse=True)
def clean_extensions(monkeypatch, tmp_path, restore_registries):
    """No user folder or env paths leak in; whatever a test registers or records is removed afterwards."""
    monkeypatch.setattr(extensions, "DEFAULT_FOLDER", tmp_path / "no-default-folder")
    monkeypatch.delenv(extensions.ENV_PATHS, raising=False)
    monkeypatch.delenv(extensions.ENV_OFF, raising=False)


NET_AND_DATA = '''
import numpy as np
import torch
from torch import nn
from tinyverse.timeseries.data import TimeSeriesData
from tinyverse.registry import DATASETS, MODEL_REGISTRY


@MODEL_REGISTRY.register("TinyExtNet")
class TinyExtNet(nn.Module):
    """A plain nn.Module (no spec) taking (N, C, L, 1) like every time-series model."""

    def __init__(self, input_shape=(1, 16), num_classes=2, hidden=8):
        super().__init__()
        c, l = input_shape
        self.receptive_field = l
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(c * l, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.net(x)


@DATASETS.register("TinyExtData")
class TinyExtData:
    def __init__(self, n=96, length=16, shift=1.0):
        self.n, self.length, self.shift = n, length, shift

    def load(self):
        rng = np.random.default_rng(0)
        def part(n):
            y = rng.integers(0, 2, n)
            X = rng.normal(0, 1, (n, 1, self.length)) + np.where(y == 1, self.shift, -self.shift)[:, None, None]
            return X, y
        (Xtr, ytr), (Xv, yv), (Xte, yte) = part(self.n), part(self.n // 3), part(self.n // 3)
        return TimeSeriesData(Xtr, ytr, Xv, yv, Xte, yte, ["neg", "pos"], name="tiny_ext")
'''


def config(tmp_path: Path, body: str, extensions_line: str = "") -> Path:
    text = extensions_line + textwrap.dedent(body).replace("PROJECTS", str(tmp_path / "projects"))
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


TINY_RUN = """
common: {projects_path: PROJECTS, verbose: false}
dataset: {name: TinyExtData, n: 96, shift: 2.0}
training: {model_name: TinyExtNet, epochs: 3, batch_size: 32, learning_rate: 0.03, early_stopping_patience: null}
"""


def test_extension_from_config_trains_and_exports(tmp_path, capsys):
    ext = tmp_path / "my_ext.py"
    ext.write_text(NET_AND_DATA)
    cfg = config(tmp_path, TINY_RUN, "extensions: [my_ext.py]\n")
    assert cli(["run", str(cfg)]) == 0
    run_dir = next((tmp_path / "projects").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["onnx"]["parity"] and (run_dir / "model.onnx").is_file()
    assert summary["model"]["receptive_field"] == 16 and "macs" not in summary["model"]
    assert summary["test"]["accuracy"] > 0.8
    # Provenance: the entries name the file they came from, and `modelmaker extensions` shows it.
    source = f"extension:{ext.resolve()}"
    assert MODEL_REGISTRY.entry("TinyExtNet").source == source == DATASETS.entry("TinyExtData").source
    assert MODEL_REGISTRY.entry("TinyExtNet").location.startswith(f"{ext.resolve()}:")
    capsys.readouterr()
    assert cli(["extensions", "--only-extensions"]) == 0
    out = capsys.readouterr().out
    assert "TinyExtNet" in out and "TinyExtData" in out and source in out
    assert "timeseries" not in out  # built-ins are left out with --only-extensions


def test_env_paths_and_no_extensions_switch(tmp_path, monkeypatch):
    from modelmaker.runner import load_run_config

    folder = tmp_path / "exts"
    folder.mkdir()
    (folder / "tiny.py").write_text(NET_AND_DATA)
    monkeypatch.setenv(extensions.ENV_PATHS, f"{tmp_path / 'missing'}{__import__('os').pathsep}{folder}")
    monkeypatch.setenv(extensions.ENV_OFF, "1")
    assert extensions.default_paths() == []
    with pytest.raises(Exception, match="unknown model 'TinyExtNet'"):
        load_run_config(config(tmp_path, TINY_RUN))
    monkeypatch.delenv(extensions.ENV_OFF)
    cfg = load_run_config(config(tmp_path, TINY_RUN))  # names from the env folder validate
    assert cfg.training.model_name == "TinyExtNet"
    assert [f.path for f in extensions.failed_extensions()] == [str(tmp_path / "missing")]
    # Loading is idempotent by resolved path.
    n = len(extensions.loaded_extensions())
    extensions.load_path(folder / "tiny.py")
    assert len(extensions.loaded_extensions()) == n


def test_default_folder(tmp_path, monkeypatch):
    default = tmp_path / "home_exts"
    default.mkdir()
    (default / "tiny.py").write_text(NET_AND_DATA)
    monkeypatch.setattr(extensions, "DEFAULT_FOLDER", default)
    extensions.load_defaults(entry_points=False)
    assert "TinyExtNet" in MODEL_REGISTRY


BROKEN = '''
from tinyverse.registry import MODEL_REGISTRY

MODEL_REGISTRY.register("HalfRegistered", lambda: {})


def helper():
    return 1 / 0


helper()
'''


def test_broken_extension_reported_and_skipped(tmp_path, capsys):
    folder = tmp_path / "exts"
    folder.mkdir()
    (folder / "a_broken.py").write_text(BROKEN)
    (folder / "b_good.py").write_text(NET_AND_DATA)
    assert extensions.load_folder(folder) is False
    assert "TinyExtNet" in MODEL_REGISTRY  # the good one still loaded
    assert "HalfRegistered" not in MODEL_REGISTRY  # what the broken one registered before raising is gone
    (failure,) = extensions.failed_extensions()
    assert failure.path == str(folder / "a_broken.py")
    assert failure.error == "ZeroDivisionError: division by zero"
    assert failure.where == "a_broken.py:8: return 1 / 0"
    capsys.readouterr()
    assert cli(["extensions", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "FAILED" in out and "a_broken.py: ZeroDivisionError" in out

    # The run goes on without it; with --strict-extensions it stops with one line and exit code 2.
    cfg = config(tmp_path, TINY_RUN.replace("epochs: 3", "epochs: 1"), "extensions: [exts]\n")
    assert cli(["run", str(cfg), "--strict-extensions"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "a_broken.py" in err and "ZeroDivisionError" in err and "a_broken.py:8" in err


def test_duplicate_name_is_reported(tmp_path):
    ext = tmp_path / "dup.py"
    ext.write_text('from tinyverse.registry import MODEL_REGISTRY\n\n'
                   'MODEL_REGISTRY.register("CLS_1k_NPU", lambda: {})\n')
    with pytest.raises(extensions.ExtensionError, match=r"dup\.py: RegistryError: model 'CLS_1k_NPU' is already "
                                                        r"registered \(from builtin"):
        extensions.load_path(ext, strict=True)
    assert MODEL_REGISTRY.entry("CLS_1k_NPU").source == "builtin"
    with pytest.raises(RegistryError, match="already registered"):
        MODEL_REGISTRY.register("CLS_1k_NPU", lambda: {})


def test_dataset_returning_wrong_type_names_the_file(tmp_path, capsys):
    ext = tmp_path / "bad_data.py"
    ext.write_text(NET_AND_DATA.replace('"TinyExtData"', '"TinyExtData"').replace(
        "        return TimeSeriesData(", "        return (Xtr, ytr)\n        return TimeSeriesData("))
    cfg = config(tmp_path, TINY_RUN, "extensions: [bad_data.py]\n")
    assert cli(["run", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"modelmaker: error: {ext.resolve()}: dataset 'TinyExtData'.load() returned tuple; "
                   "the timeseries modality needs tinyverse.timeseries.data.TimeSeriesData")
    assert not (tmp_path / "projects").exists()  # failed before a run folder was made


def test_nam_style_config_constructors(tmp_path):
    from torch import nn

    from tinyverse.models import create_model
    from tinyverse.training import TaskModule

    seen = {}

    class Net(nn.Linear):
        @classmethod
        def init_from_config(cls, config):
            seen["config"] = config
            return cls(config["in_features"], config["out_features"])

    TaskModule.register_net_initializer("NamStyleNet", Net.init_from_config)
    net = create_model("NamStyleNet", in_features=3, out_features=2)
    assert seen["config"] == {"in_features": 3, "out_features": 2} and net.out_features == 2
    assert MODEL_REGISTRY.entry("NamStyleNet").location.startswith(__file__)
    TaskModule.register_dataset_initializer("NamStyleData", lambda config: config)
    assert DATASETS.get("NamStyleData")(a=1) == {"a": 1}


# -- the worked examples, run as ./run.sh runs them ------------------------------------------------------------
def run_example(tmp_path: Path, yaml_path: Path, overrides: dict) -> dict:
    from modelmaker.runner import run

    overrides = {"common.projects_path": str(tmp_path / "projects"), "common.verbose": False, **overrides}
    return run(yaml_path, overrides=overrides)


def test_example_knob_model_beats_bypass_and_exports(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_knob_data", EXAMPLES / "knob" / "make_knob_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    paths = module.make_knob_data(tmp_path / "data", seconds=3.0)
    summary = run_example(tmp_path, EXAMPLES / "knob" / "knob.yaml",
                          {**{f"dataset.{k}": v for k, v in paths.items()}, "training.epochs": 12})
    scores = summary["test"]
    assert scores["esr"] < 0.7 * scores["bypass_esr"], scores
    assert summary["onnx"]["parity"] and (Path(summary["run_dir"]) / "model.onnx").is_file()
    assert summary["model"]["receptive_field"] == 63
    assert AI_MODULES.entry("knob_audio").source == f"extension:{EXAMPLES / 'knob' / 'knob_audio.py'}"


def test_example_feature_extractor(tmp_path):
    summary = run_example(tmp_path, EXAMPLES / "feature" / "feature.yaml", {"training.epochs": 2})
    assert summary["model"]["args"]["input_shape"] == [2, 24]  # DiffFeatures doubled the channels
    assert summary["onnx"]["parity"]


def test_example_device_profile(tmp_path):
    from modelmaker.runner import load_run_config
    from tinyverse.devices import check_spec
    from tinyverse.models import get_model_spec

    cfg = load_run_config(EXAMPLES / "device" / "device.yaml")
    assert cfg.common.target_device == "tiny-board"
    entry = DEVICES.entry("tiny-board")
    assert entry.source == f"extension:{EXAMPLES / 'device' / 'devices' / 'tiny_board.yaml'}"
    report = check_spec(get_model_spec("CLS_500_NPU", input_shape=[1, 24], num_classes=2), "tiny-board")
    assert report.fits, report.violations


def test_example_minimal_modality(tmp_path):
    summary = run_example(tmp_path, EXAMPLES / "modality" / "majority.yaml", {})
    assert summary["modality"] == "majority_baseline" and 0.3 < summary["test"]["accuracy"] < 0.7
    assert (Path(summary["run_dir"]) / "baseline.json").is_file()
