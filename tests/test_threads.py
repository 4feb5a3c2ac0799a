"""``training.threads``: an explicit, logged CPU thread count, with a per-modality ``auto`` default."""
from __future__ import annotations

import json

import pytest
import torch

from modelmaker.ai_modules.audio.runner import AudioModule
from modelmaker.ai_modules.timeseries.runner import TimeSeriesModule
from modelmaker.cli import main
from modelmaker.config import ConfigError, load_config
from tests.test_run_overrides import tiny_config


@pytest.fixture(autouse=True)
def _keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_an_explicit_count_is_applied_logged_and_recorded(tmp_path, caplog):
    caplog.set_level("INFO", logger="modelmaker")
    assert main(["run", str(tiny_config(tmp_path, threads=1)), "--set", "training.epochs=1"]) == 0
    summary = json.loads(next((tmp_path / "projects").rglob("summary.json")).read_text())
    assert summary["threads"]["threads"] == 1 and summary["threads"]["why"] == "training.threads"
    assert "torch CPU threads: 1 (training.threads" in caplog.text


def test_auto_defaults_per_modality():
    audio = AudioModule()
    assert audio.auto_threads(2) == 1  # memory-bound small convs: one thread on a 2-core machine
    assert audio.auto_threads(16) == 4 and audio.auto_threads(4) == 2
    assert TimeSeriesModule().auto_threads(16) is None  # torch's own default


@pytest.mark.parametrize("value", [0, "many", 1.5])
def test_a_bad_count_is_a_config_error_naming_the_key(tmp_path, value):
    with pytest.raises(ConfigError) as e:
        load_config(tiny_config(tmp_path, threads=value))
    assert "training.threads" in str(e.value) and "\n" not in str(e.value)
