"""Capture splits that do not leak: NAM's layout found by content, custom train / validation ranges, and no
training window on audio whose input repeats the validation input. Small synthetic captures keep it fast."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tinyverse.audio.capture import standard_input
from tinyverse.audio.dataset import NamCaptureDataset
from tinyverse.audio.split import detect_layout, find_repeats, parse_range
from tinyverse.errors import DatasetError

SR = 48_000


def _device(x: np.ndarray) -> np.ndarray:
    """A deterministic, memoryless 'amp': what makes a leaked validation block score perfectly."""
    return (0.5 * np.tanh(3.0 * x)).astype(np.float32)


def _pair(folder: Path, x: np.ndarray, y: np.ndarray) -> tuple[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / "in.wav", x, SR, subtype="FLOAT")
    sf.write(folder / "out.wav", y, SR, subtype="FLOAT")
    return str(folder / "in.wav"), str(folder / "out.wav")


def _nam_like(seed: int, block_s: float = 2.0, lead_s: float = 0.25) -> tuple[np.ndarray, dict]:
    """An input built like NAM's v3 (not our generator): leading silence, a validation block, silence with two
    blips 1 s apart, material, the validation block again at the end."""
    rng = np.random.default_rng(seed)
    block = (0.3 * rng.standard_normal(int(block_s * SR))).astype(np.float32)
    silence = np.zeros(int(0.5 * SR), np.float32)
    blips = np.zeros(2 * SR, np.float32)
    blips[SR // 2] = blips[SR // 2 + SR] = 0.5
    material = (0.2 * rng.standard_normal(5 * SR)).astype(np.float32)
    lead = np.zeros(int(lead_s * SR), np.float32)
    x = np.concatenate([lead, block, silence, blips, material, silence, block])
    v1 = [len(lead), len(lead) + len(block)]
    v2 = [len(x) - len(block), len(x)]
    b0 = v1[1] + len(silence)
    return x, {"validation": [v1, v2], "blips": [b0 + SR // 2, b0 + SR // 2 + SR]}


@pytest.mark.parametrize("seed,lead", [(1, 0.25), (7, 0.0)])
def test_nam_layout_is_found_by_content(seed, lead):
    x, truth = _nam_like(seed, lead_s=lead)
    layout = detect_layout(x, SR)
    assert layout is not None
    assert layout.validation == truth["validation"]
    assert layout.blips == truth["blips"]
    assert layout.train == [truth["validation"][0][1], truth["validation"][1][0]]
    # and our own generator's layout, recomputed from the samples alone
    g, glayout = standard_input(SR, 3, 12.0)
    found = detect_layout(g, SR)
    assert found.validation == glayout.validation and found.blips == glayout.blips


def test_no_layout_without_a_repeated_block():
    x = (0.2 * np.random.default_rng(0).standard_normal(8 * SR)).astype(np.float32)
    assert detect_layout(x, SR) is None


def test_a_users_nam_style_capture_trains_between_the_blocks_and_says_so(tmp_path):
    x, truth = _nam_like(2)
    ip, op = _pair(tmp_path / "cap", x, _device(x))
    data = NamCaptureDataset(ip, op, latency=0).load()
    assert data.info["layout"].startswith("detected by content")
    split = data.info["split"]
    assert split["validation"] == truth["validation"][1]
    # the first copy of the validation block repeats the scored input: recorded, and never trained on
    assert truth["validation"][0] in split["validation_input_repeats"]
    X, _ = data.windows(receptive_field=64, ny=4096, stride=1024)
    v1 = truth["validation"][0]
    block = x[v1[0]:v1[1]]
    for w in X:  # no window input contains any part of the repeated block
        assert not any(np.array_equal(w[i:i + 256], block[1000:1256]) for i in range(0, len(w) - 256, 997))


def test_a_repeat_of_the_validation_input_inside_training_is_left_out(tmp_path):
    """The leak the old tail fallback had: the scored block's input also plays in the middle of the file."""
    rng = np.random.default_rng(5)
    x = (0.2 * rng.standard_normal(14 * SR)).astype(np.float32)
    x[4 * SR:7 * SR] = x[-3 * SR:]  # the last 3 s (validated) also play at 4..7 s
    ip, op = _pair(tmp_path / "cap", x, _device(x))
    data = NamCaptureDataset(ip, op, latency=0, validation_range=[-3.0, None]).load()
    split = data.info["split"]
    assert split["validation"] == [11 * SR, 14 * SR]
    assert split["validation_input_repeats"] == [[4 * SR, 7 * SR]]
    assert split["excluded_from_training_seconds"] == pytest.approx(3.0)
    assert any("left out of training" in w for w in data.warnings)
    assert data.summary()["train_seconds"] == pytest.approx(8.0)
    rf, ny = 100, 2048
    X, Y = data.windows(receptive_field=rf, ny=ny, stride=512)
    # where each window's input starts in x (the first sample whose next 64 agree)
    starts = [next(int(s) for s in np.flatnonzero(x == w[0]) if np.array_equal(x[s:s + 64], w[:64])) for w in X]
    assert len(starts) == len(X) > 0
    for s in starts:  # [s, s + ny + rf - 1) is the window's input, context included
        assert s + ny + rf - 1 <= 4 * SR or s >= 7 * SR


def test_custom_ranges_in_seconds_and_samples(tmp_path):
    x = (0.2 * np.random.default_rng(3).standard_normal(10 * SR)).astype(np.float32)
    ip, op = _pair(tmp_path / "cap", x, _device(x))
    data = NamCaptureDataset(ip, op, latency=0, train_range=["0 samples", "6s"], validation_range=[7.5, 9]).load()
    assert data.layout.train == [0, 6 * SR]
    assert data.layout.validation[-1] == [int(7.5 * SR), 9 * SR]
    xv, yv = data.validation(receptive_field=1)
    assert yv.shape[1] == int(1.5 * SR)
    assert data.info["split"]["validation_input_repeats"] == []


@pytest.mark.parametrize("kw,key", [
    ({"train_range": [0, 8], "validation_range": [7, 9]}, "dataset.train_range"),  # overlaps the scored block
    ({"validation_range": [9, 3]}, "dataset.validation_range"),  # empty
    ({"validation_range": ["9 bars", None]}, "dataset.validation_range"),  # unit
    ({"train_range": 5}, "dataset.train_range"),  # not a pair
])
def test_bad_ranges_are_one_line_errors_naming_the_key(tmp_path, kw, key):
    x = (0.2 * np.random.default_rng(4).standard_normal(10 * SR)).astype(np.float32)
    ip, op = _pair(tmp_path / "cap", x, _device(x))
    with pytest.raises(DatasetError) as e:
        NamCaptureDataset(ip, op, latency=0, **kw).load()
    assert str(e.value).startswith(key) and "\n" not in str(e.value)


def test_a_quiet_output_is_warned_about(tmp_path):
    x = (0.2 * np.random.default_rng(6).standard_normal(10 * SR)).astype(np.float32)
    ip, op = _pair(tmp_path / "cap", x, 0.01 * _device(x))
    data = NamCaptureDataset(ip, op, latency=0, validation_range=[-2, None]).load()
    assert any("far below NAM's usual range" in w for w in data.warnings)


def test_parse_range_counts_negative_from_the_end():
    assert parse_range([None, -9], SR, 20 * SR, "k") == [0, 11 * SR]
    assert parse_range(["-480 samples", None], SR, 20 * SR, "k") == [20 * SR - 480, 20 * SR]


def test_find_repeats_ignores_silence():
    x = np.zeros(6 * SR, np.float32)
    x[:SR] = 0.1 * np.random.default_rng(0).standard_normal(SR)
    assert find_repeats(x, [4 * SR, 6 * SR], [0, 4 * SR], SR) == []


def test_ranges_count_on_the_input_file_not_the_aligned_signal(tmp_path):
    """A range ending at the file's last sample stays valid when the latency shortens the aligned pair."""
    x = (0.2 * np.random.default_rng(8).standard_normal(10 * SR)).astype(np.float32)
    y = np.concatenate([np.zeros(30, np.float32), _device(x)[:-30]])
    ip, op = _pair(tmp_path / "cap", x, y)
    data = NamCaptureDataset(ip, op, latency=30, validation_range=["432000 samples", "480000 samples"]).load()
    assert data.layout.validation[-1] == [432000, 480000 - 30]
    xv, yv = data.validation(receptive_field=1)
    np.testing.assert_allclose(yv[0], _device(xv[0]), atol=1e-6)
