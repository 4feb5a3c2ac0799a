"""Knob parameters as typed data and knob captures (per-setting files, slices of one recording, generated), with
held-out settings. Short generated captures keep it fast."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from tinyverse.audio.capture import generated_capture
from tinyverse.audio.knob_capture import KnobCaptureDataset
from tinyverse.audio.knobs import KnobSet
from tinyverse.errors import DatasetError

SR = 48_000
KNOBS = {"gain": {"min": 0, "max": 10, "default": 5}, "bright": {"type": "bool"}}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYVERSE_CACHE", str(tmp_path / "cache"))


def _one_line(fn, *args, **kw) -> str:
    with pytest.raises(DatasetError) as e:
        fn(*args, **kw)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_knobs_are_ordered_by_name_and_normalised():
    ks = KnobSet(KNOBS)
    assert ks.names == ["bright", "gain"]  # NAM's order: by name
    assert ks.vector({"gain": 7.5, "bright": "on"}, "t").tolist() == [1.0, 0.75]
    assert ks.vector({}, "t", fill_defaults=True).tolist() == [0.0, 0.5]
    assert ks.declaration() == {"bright": {"type": "bool", "default": 0.0},
                                "gain": {"type": "continuous", "min": 0.0, "max": 10.0, "default": 5.0}}
    assert KnobSet.from_declaration(ks.declaration()).declaration() == ks.declaration()  # metadata round trip
    assert len(ks.grid(3)) == 6 and all(0 <= s["gain"] <= 10 for s in ks.latin_hypercube(7, seed=1))


@pytest.mark.parametrize("setting, expected", [
    ({"gain": 5, "bright": 0, "level": 1}, "t: unknown knob 'level'; the knobs are bright, gain"),
    ({"gain": 11, "bright": 0}, "t: knob 'gain' = 11 is outside [0, 10]"),
    ({"gain": 5}, "t: knob 'bright' is missing"),
    ({"gain": 5, "bright": 0.5}, "t: knob 'bright' is a switch (0 or 1)"),
    ({"gain": "loud", "bright": 0}, "t: knob 'gain' = 'loud' is not a number"),
])
def test_bad_settings_are_one_line_errors(setting, expected):
    assert expected in _one_line(KnobSet(KNOBS).check, setting, "t")


@pytest.mark.parametrize("knobs, expected", [
    ({"gain": {"min": 5, "max": 1}}, "dataset.knobs.gain: max (1) must be greater than min (5)"),
    ({"gain": {"min": 0, "max": 1, "default": 3}}, "dataset.knobs.gain: default 3 is outside [0, 1]"),
    ({"gain": {"minimum": 0}}, "dataset.knobs.gain.minimum"),
    ({"my knob": {}}, "knob names are identifiers"),
])
def test_bad_declarations_name_the_key(knobs, expected):
    assert expected in _one_line(KnobSet, knobs)


def test_generated_grid_holds_out_an_unseen_and_an_outside_setting():
    data = KnobCaptureDataset(generated_seconds=6.0, points=3, ny=2048).load()
    assert len(data.settings) == 9
    outside = data.role("outside")
    assert {s.setting["gain"] for s in outside} == {10.0} and len(outside) == 3  # the largest gain: extrapolation
    unseen = data.role("unseen")
    assert [s.setting for s in unseen] == [{"gain": 5.0, "tone": 5.0}]  # the centre: interpolation
    X, P, Y = data.windows(receptive_field=64)
    assert X.shape[1] == 2048 + 63 and Y.shape[1] == 2048 and P.shape == (len(X), 2)
    assert not np.any(P[:, 0] == 1.0)  # no training window at the held-out gain
    # the knobs change the sound: the same input, different recordings
    ys = {tuple(s.setting.values()): s.capture.y for s in data.settings}
    assert np.mean((ys[(0.0, 0.0)] - ys[(10.0, 10.0)]) ** 2) > 1e-3
    # one interface, one latency for every setting (blips cross the trigger at slightly different times)
    assert len({s.capture.latency.delay for s in data.settings}) == 1
    assert data.info["latency"]["samples"] == data.settings[0].capture.latency.delay
    assert data.summary()["knobs"]["gain"]["max"] == 10.0


def _three_recordings(folder: Path) -> tuple[Path, list[dict]]:
    """A shared input and its recordings at three gains (the generated device's drive follows the knob)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for g in (0.0, 5.0, 10.0):
        cap = generated_capture(seconds=6.0, device={"drive_db": 6 + 2.4 * g})
        y, _ = sf.read(cap["output_path"], dtype="float32")
        sf.write(folder / f"gain{g:g}.wav", y, SR, subtype="FLOAT")
        rows.append({"file": f"gain{g:g}.wav", "gain": g})
    x, _ = sf.read(cap["input_path"], dtype="float32")
    sf.write(folder / "input.wav", x, SR, subtype="FLOAT")
    return folder / "input.wav", rows


@pytest.mark.parametrize("fmt", ["csv", "yaml"])
def test_one_recording_per_setting_from_a_table(tmp_path, fmt):
    inp, rows = _three_recordings(tmp_path / "rec")
    table = tmp_path / "rec" / f"settings.{fmt}"
    if fmt == "csv":
        table.write_text("file,gain\n" + "".join(f"{r['file']},{r['gain']}\n" for r in rows))
    else:
        table.write_text(yaml.safe_dump({"settings": rows}))
    knobs = {"gain": {"min": 0, "max": 10}}
    data = KnobCaptureDataset(knobs, input_path=str(inp), settings=str(table), ny=2048).load()
    assert [s.setting["gain"] for s in data.settings] == [0.0, 5.0, 10.0]
    assert [s.role for s in data.settings] == ["train", "train", "outside"]  # 3 settings: too few for unseen
    assert data.settings[1].capture.info["layout"] != "tail"  # each pair found the standard layout
    # a table naming a file that does not exist, and a value outside the knob's range
    table.write_text("file,gain\nmissing.wav,5\n") if fmt == "csv" else table.write_text(
        yaml.safe_dump([{"file": "missing.wav", "gain": 5}]))
    msg = _one_line(KnobCaptureDataset(knobs, input_path=str(inp), settings=str(table)).load)
    assert f"{table} row 1: output file" in msg and "missing.wav does not exist" in msg
    table.write_text(yaml.safe_dump([{"file": rows[0]["file"], "gain": 12}]))
    if fmt == "yaml":
        msg = _one_line(KnobCaptureDataset(knobs, input_path=str(inp), settings=str(table)).load)
        assert "row 1: knob 'gain' = 12 is outside [0, 10]" in msg


def test_slices_of_one_long_recording(tmp_path):
    rng = np.random.default_rng(0)
    x = (0.3 * rng.standard_normal(30 * SR)).astype(np.float32)
    gains = [1.0, 3.0, 5.0]
    y = np.concatenate([np.tanh(g * x[i * 10 * SR:(i + 1) * 10 * SR]) * 0.5 for i, g in enumerate(gains)])
    sf.write(tmp_path / "in.wav", x, SR, subtype="FLOAT")
    sf.write(tmp_path / "out.wav", y.astype(np.float32), SR, subtype="FLOAT")
    table = tmp_path / "slices.csv"
    table.write_text("start,stop,drive\n0,10,1\n10,20,3\n20,30,5\n")
    ds = KnobCaptureDataset({"drive": {"min": 1, "max": 5}}, input_path=str(tmp_path / "in.wav"),
                            output_path=str(tmp_path / "out.wav"), settings=str(table), latency=0, ny=4096)
    data = ds.load()
    assert [s.role for s in data.settings] == ["train", "train", "outside"]
    X, P, Y = data.windows(receptive_field=1)
    assert set(np.round(P[:, 0], 3)) == {0.0, 0.5}
    # every training target is the device at that window's setting
    for xw, pw, yw in zip(X[:5], P[:5], Y[:5]):
        g = 1.0 + 4.0 * pw[0]
        np.testing.assert_allclose(yw, 0.5 * np.tanh(g * xw), atol=1e-5)
    table.write_text("start,stop,drive\n0,40,1\n")
    assert "row 1: slice [0, 40] s is outside the 30.00 s recording" in _one_line(ds.load)


def test_generated_knobs_must_drive_a_device_setting():
    msg = _one_line(KnobCaptureDataset, {"gain": {"min": 0, "max": 1}})
    assert msg.startswith("dataset.knobs.gain: a generated knob capture needs controls and device_range")
    msg = _one_line(KnobCaptureDataset, {"gain": {"min": 0, "max": 1, "controls": "volume", "device_range": [0, 1]}})
    assert "'volume' is not a device setting" in msg
