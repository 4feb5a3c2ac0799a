"""Config schema and loader: defaults, round trip, and one-line errors that name the key and the fix.

The registries get tiny fake entries here (restored afterwards), so these tests do not depend on the
built-in datasets, models or tasks of tinyverse being importable.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from modelmaker.config import Config, ConfigError, config_from_dict, dump_resolved, load_config
from tinyverse.registry import DATASETS, DEVICES, EXPORTERS, MODEL_REGISTRY, TASKS, TRANSFORMS


class FakeUCR:
    def __init__(self, ucr_name: str, val_fraction: float = 0.2):
        self.ucr_name, self.val_fraction = ucr_name, val_fraction


def fake_model(num_classes: int = 2, width: int = 8, depth: int = 2) -> dict:
    return {"inputs": {"x": [1, 16]}, "num_classes": num_classes, "width": width, "depth": depth}


def fake_window(size: int, stride: int = 1) -> None:
    return None


FAKES = [
    (DATASETS, "ucr", FakeUCR),
    (TASKS, "classification", lambda **kw: None),
    (MODEL_REGISTRY, "CLS_1k_NPU", fake_model),
    (TRANSFORMS, "fake_window", fake_window),
    (DEVICES, "fake_mcu", {"name": "fake_mcu"}),
    (EXPORTERS, "fake_onnx", lambda **kw: None),
]


@pytest.fixture(autouse=True)
def fake_registries():
    saved = []
    for registry, name, obj in FAKES:
        try:  # builtins may not exist yet (or be half-written by a parallel change): do without them
            registry.load_builtins()
        except Exception:
            registry._builtins_loaded = True
        saved.append((registry, name, registry._entries.get(name)))
        registry.register(name, obj, overwrite=True)
    yield
    for registry, name, old in saved:
        registry.unregister(name)
        if old is not None:
            registry._entries[name] = old


MINIMAL = {"dataset": {"ucr_name": "GunPoint"}, "training": {"model_name": "CLS_1k_NPU"}}


def write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path: Path, **kw) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, **kw)
    msg = str(info.value)
    assert "\n" not in msg, msg
    assert msg.startswith(f"{path}: "), msg
    return msg


MINIMAL_YAML = textwrap.dedent("""\
    dataset:
      name: ucr
      ucr_name: GunPoint
    training:
      model_name: CLS_1k_NPU
""")


# -- defaults and round trip --------------------------------------------------------------------------------
def test_defaults_fill_in():
    cfg = config_from_dict(MINIMAL)
    assert cfg.common.task_type == "classification"
    assert cfg.common.modality == "timeseries"
    assert cfg.common.target_device is None
    assert cfg.common.run_name == "{date}-{time}_{model_name}"
    assert cfg.common.projects_path == "./projects" and cfg.common.seed == 42 and cfg.common.verbose is True
    assert cfg.dataset.enable is True and cfg.dataset.name == "ucr"
    assert cfg.dataset.params == {"ucr_name": "GunPoint"}
    assert cfg.feature_extraction.enable is False and cfg.feature_extraction.transforms == []
    t = cfg.training
    assert (t.epochs, t.batch_size, t.learning_rate, t.weight_decay) == (100, 32, 1e-3, 0.0)
    assert (t.optimizer, t.lr_scheduler, t.quantization, t.qat_epochs) == ("adam", "cosine", "none", 10)
    assert (t.early_stopping_patience, t.monitor, t.precision) == (30, None, "32-true")
    assert (t.accelerator, t.devices, t.num_nodes, t.strategy, t.num_workers) == ("auto", "auto", 1, "auto", 0)
    assert t.model_config_path is None and t.model_args == {}
    assert cfg.testing.enable is True and cfg.testing.batch_size == 256
    c = cfg.compilation
    assert (c.enable, c.strict, c.model_path, c.calibration_samples, c.exporters, c.golden_vectors) == (
        False, True, None, 256, None, 4)
    assert cfg.extensions == []


def test_empty_section_means_defaults(tmp_path):
    path = write(tmp_path, MINIMAL_YAML + "testing:\ncompilation:\n")
    cfg = load_config(path)
    assert cfg.testing.batch_size == 256 and cfg.compilation.enable is False


def test_exponent_float_is_a_number(tmp_path):
    # PyYAML alone reads `1e-3` as a string; the config loader must not.
    cfg = load_config(write(tmp_path, MINIMAL_YAML + "  learning_rate: 5e-4\n"))
    assert cfg.training.learning_rate == pytest.approx(5e-4)


def test_resolved_dump_round_trips(tmp_path):
    (tmp_path / "misc").mkdir()
    (tmp_path / "misc" / "wide.yaml").write_text("width: 32\ndepth: 3\n")
    training_extra = "  model_config: misc/wide.yaml\n  model_args: {depth: 4}\n  devices: [0, 1]\n  precision: 16\n"
    path = write(tmp_path, MINIMAL_YAML + training_extra + textwrap.dedent("""\
        feature_extraction:
          enable: true
          transforms:
            - {name: fake_window, size: 64}
        compilation:
          enable: true
          exporters: [fake_onnx]
        common:
          target_device: fake_mcu
    """))
    cfg = load_config(path)
    text = dump_resolved(cfg)
    dumped = yaml.safe_load(text)
    assert dumped["dataset"] == {"enable": True, "name": "ucr", "ucr_name": "GunPoint",  # flat again
                                 "input_channels": None, "input_length": None}
    assert dumped["feature_extraction"]["transforms"] == [{"name": "fake_window", "size": 64}]
    assert dumped["training"]["epochs"] == 100  # defaults are written out
    assert dumped["training"]["precision"] == "16-mixed"  # legacy spelling normalised
    again = config_from_dict(dumped, "resolved.yaml")
    assert again == cfg
    # and from a file in another folder: paths in the dump are absolute
    other = tmp_path / "run"
    other.mkdir()
    (other / "config.yaml").write_text(text)
    assert load_config(other / "config.yaml") == cfg


def test_overrides_merge_nested_and_dotted(tmp_path):
    path = write(tmp_path, MINIMAL_YAML)
    cfg = load_config(path, {"training": {"epochs": 2}, "testing.batch_size": 8})
    assert cfg.training.epochs == 2 and cfg.training.model_name == "CLS_1k_NPU" and cfg.testing.batch_size == 8
    msg = error_of(path, overrides={"training.epochs": "two"})
    assert "training.epochs: expected an integer, got 'two'" in msg


# -- key and type errors ------------------------------------------------------------------------------------
def test_typo_key_names_path_and_suggestion(tmp_path):
    path = write(tmp_path, MINIMAL_YAML + "  epocs: 10\n")
    msg = error_of(path)
    assert "training.epocs: unknown key; did you mean 'epochs'" in msg
    assert "valid:" in msg
    assert "(line 6)" in msg


def test_typo_section_name(tmp_path):
    msg = error_of(write(tmp_path, MINIMAL_YAML + "trainig:\n  epochs: 3\n"))
    assert "trainig: unknown key; did you mean 'training'" in msg


def test_wrong_type(tmp_path):
    msg = error_of(write(tmp_path, MINIMAL_YAML + "  epochs: ten\n"))
    assert "training.epochs: expected an integer, got 'ten'" in msg


def test_strict_types_do_not_coerce():
    for training in ({"epochs": "10"}, {"epochs": 2.5}, {"epochs": True}, {"learning_rate": "fast"}):
        with pytest.raises(ConfigError, match="training"):
            config_from_dict({**MINIMAL, "training": {"model_name": "CLS_1k_NPU", **training}})


def test_choice_suggestion():
    with pytest.raises(ConfigError) as info:
        config_from_dict({**MINIMAL, "training": {"model_name": "CLS_1k_NPU", "optimizer": "adamm"}})
    assert "training.optimizer: expected one of 'adam', 'adamw', 'sgd', got 'adamm'; did you mean 'adam'" in str(info.value)


def test_unknown_model_name_suggests_closest(tmp_path):
    msg = error_of(write(tmp_path, MINIMAL_YAML.replace("CLS_1k_NPU", "CLS_1K_NPU")))
    assert "training.model_name: unknown model 'CLS_1K_NPU'; did you mean 'CLS_1k_NPU'?" in msg


def test_model_name_required_when_training_enabled():
    with pytest.raises(ConfigError, match=r"training\.model_name: required when training\.enable is true"):
        config_from_dict({"dataset": {"ucr_name": "GunPoint"}})
    cfg = config_from_dict({"dataset": {"ucr_name": "GunPoint"}, "training": {"enable": False}})
    assert cfg.training.model_name is None


def test_registry_names_in_other_sections():
    with pytest.raises(ConfigError, match=r"common\.target_device: unknown device 'fake_mc'; did you mean 'fake_mcu'"):
        config_from_dict({**MINIMAL, "common": {"target_device": "fake_mc"}})
    with pytest.raises(ConfigError, match=r"compilation\.exporters\[0\]: unknown exporter 'fake_onx'"):
        config_from_dict({**MINIMAL, "compilation": {"exporters": ["fake_onx"]}})
    with pytest.raises(ConfigError, match=r"feature_extraction\.transforms\[0\]\.name: unknown transform"):
        config_from_dict({**MINIMAL, "feature_extraction": {"transforms": [{"name": "fake_windw", "size": 3}]}})


def test_run_name_placeholders():
    with pytest.raises(ConfigError, match=r"common\.run_name: unknown placeholder \{dat\}; did you mean 'date'"):
        config_from_dict({**MINIMAL, "common": {"run_name": "{dat}_{model_name}"}})
    with pytest.raises(ConfigError, match=r"common\.run_name: .* is not a folder name"):
        config_from_dict({**MINIMAL, "common": {"run_name": "a/b"}})


# -- keyword arguments of registered objects ----------------------------------------------------------------
def test_dataset_unknown_kwarg_lists_valid_ones(tmp_path):
    msg = error_of(write(tmp_path, MINIMAL_YAML.replace("ucr_name", "ucr_nme")))
    assert "dataset.ucr_nme: unknown argument of dataset 'ucr'; did you mean 'ucr_name'?" in msg
    assert "valid: ucr_name, val_fraction" in msg


def test_dataset_missing_required_arg_named():
    with pytest.raises(ConfigError) as info:
        config_from_dict({"dataset": {"val_fraction": 0.1}, "training": {"model_name": "CLS_1k_NPU"}})
    msg = str(info.value)
    assert msg.startswith("<dict>: dataset: ") and "'ucr_name'" in msg and "required" in msg
    # a disabled dataset may leave required arguments out, but not misspell them
    assert config_from_dict({"dataset": {"enable": False}, "training": {"model_name": "CLS_1k_NPU"}}).dataset.params == {}


def test_transform_kwargs_validated():
    with pytest.raises(ConfigError, match=r"transforms\[0\]: transform 'fake_window' needs 'size'"):
        config_from_dict({**MINIMAL, "feature_extraction": {"transforms": [{"name": "fake_window"}]}})
    with pytest.raises(ConfigError, match=r"transforms\[0\]\.sise: unknown argument .* did you mean 'size'"):
        config_from_dict({**MINIMAL, "feature_extraction": {"transforms": [{"name": "fake_window", "sise": 3}]}})


def test_model_config_file_merges_and_inline_wins(tmp_path):
    (tmp_path / "wide.yaml").write_text("width: 32\ndepth: 3\n")
    cfg = load_config(write(tmp_path, MINIMAL_YAML + "  model_config: wide.yaml\n  model_args: {depth: 5}\n"))
    assert cfg.training.model_args == {"width": 32, "depth": 5}
    assert cfg.training.model_config_path == str((tmp_path / "wide.yaml").resolve())


def test_model_config_relative_to_config_folder_not_cwd(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "m.yaml").write_text("width: 4\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(write(tmp_path / "configs", MINIMAL_YAML + "  model_config: m.yaml\n"))
    assert cfg.training.model_args == {"width": 4}


def test_model_config_invalid_arg(tmp_path):
    (tmp_path / "bad.yaml").write_text("widht: 32\n")
    msg = error_of(write(tmp_path, MINIMAL_YAML + "  model_config: bad.yaml\n"))
    assert "training.model_config:" in msg and "bad.yaml" in msg
    assert "widht" in msg and "did you mean 'width'" in msg and "num_classes, width, depth" in msg


def test_model_config_not_a_mapping(tmp_path):
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    msg = error_of(write(tmp_path, MINIMAL_YAML + "  model_config: list.yaml\n"))
    assert "training.model_config:" in msg and "must be a mapping" in msg


def test_model_args_inline_invalid():
    with pytest.raises(ConfigError, match=r"training\.model_args\.dept: unknown argument of model 'CLS_1k_NPU'"):
        config_from_dict({**MINIMAL, "training": {"model_name": "CLS_1k_NPU", "model_args": {"dept": 1}}})


def test_model_config_missing_file(tmp_path):
    msg = error_of(write(tmp_path, MINIMAL_YAML + "  model_config: nowhere.yaml\n"))
    assert "training.model_config: file not found: 'nowhere.yaml'" in msg


# -- YAML and file problems ---------------------------------------------------------------------------------
def test_missing_config_file(tmp_path):
    msg = error_of(tmp_path / "absent.yaml")
    assert msg == f"{tmp_path / 'absent.yaml'}: config file not found"


def test_yaml_syntax_error_one_line_with_line_number(tmp_path):
    msg = error_of(write(tmp_path, "training:\n  model_name: CLS_1k_NPU\n epochs: [1, 2\n"))
    assert "YAML syntax error" in msg and "line " in msg


def test_empty_file_and_non_mapping(tmp_path):
    assert "config file is empty" in error_of(write(tmp_path, "# nothing here\n"))
    assert "top level must be a mapping" in error_of(write(tmp_path, "- a\n- b\n", "list.yaml"))


def test_duplicate_key_is_an_error(tmp_path):
    msg = error_of(write(tmp_path, MINIMAL_YAML + "  epochs: 3\n  epochs: 4\n"))
    assert "duplicate key 'epochs'" in msg and "line 6" in msg


def test_compilation_without_training_needs_model_path():
    with pytest.raises(ConfigError, match=r"compilation\.model_path: required"):
        config_from_dict({**MINIMAL, "training": {"enable": False}, "compilation": {"enable": True}})


def test_extensions_resolved_and_loaded_first(tmp_path):
    (tmp_path / "ext.py").write_text("# registers an extra model\n")
    seen: list[list[str]] = []

    def loader(paths: list[str]) -> None:
        seen.append(paths)
        MODEL_REGISTRY.register("ExtModel", fake_model, overwrite=True)

    try:
        path = write(tmp_path, MINIMAL_YAML.replace("CLS_1k_NPU", "ExtModel") + "extensions: [ext.py]\n")
        cfg = load_config(path, extension_loader=loader)
    finally:
        MODEL_REGISTRY.unregister("ExtModel")
    assert seen == [[str((tmp_path / "ext.py").resolve())]] and cfg.extensions == seen[0]
    assert "extensions[0]: extension file or folder not found" in error_of(
        write(tmp_path, MINIMAL_YAML + "extensions: [gone.py]\n"))


def test_several_problems_stay_on_one_line():
    with pytest.raises(ConfigError) as info:
        config_from_dict({"dataset": {"ucr_name": 1}, "training": {"model_name": "CLS_1k_NPU", "epochs": 0,
                                                                   "batch_size": "x", "devices": 1.5}}, "c.yaml")
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("c.yaml: ") and " | " in msg
    assert "training.epochs: must be >= 1, got 0" in msg


def test_config_is_a_pydantic_model_with_all_sections():
    assert list(Config.model_fields) == ["common", "dataset", "feature_extraction", "training", "testing",
                                         "compilation", "extensions"]


def test_yaml_python_tag_is_refused_in_one_line_naming_the_file_and_line(tmp_path):
    """SafeLoader refuses !!python/... (nothing is constructed); the message says why, not "indentation"."""
    path = write(tmp_path, MINIMAL_YAML + "  model_args: !!python/object/apply:os.system ['echo pwned']\n")
    assert error_of(path) == (f"{path}: line 6: YAML tags such as !!python/object/apply:os.system are not allowed "
                              "(plain YAML only)")
    assert error_of(write(tmp_path, "dataset: !custom {name: ucr}\n", "local.yaml")).endswith(
        "line 1: YAML tags such as !custom are not allowed (plain YAML only)")
    cfg = load_config(write(tmp_path, MINIMAL_YAML + "  epochs: !!int 3\n", "std.yaml"))  # standard tags stay fine
    assert cfg.training.epochs == 3
