"""Bad audio inputs are errors naming the file and the fix: a reamp output cut short or shifted, a truncated
WAV, a missing file, ``modelmaker render`` writing over its input; and the ONNX exporter's chatter goes to the
run log, not the console. Short generated captures (6 s) and a tiny Linear model keep it fast."""
from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tinyverse.audio.audiofile import AudioFileError, read_audio
from tinyverse.audio.capture import generated_capture
from tinyverse.audio.dataset import NamCaptureDataset, alignment_lag
from tinyverse.timeseries.data import DatasetError

SECONDS = 6.0
SR = 48_000


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYVERSE_CACHE", str(tmp_path / "cache"))


def _capture(device: dict | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    cap = generated_capture(seconds=SECONDS, device=device)
    x, _ = sf.read(cap["input_path"], dtype="float32")
    y, _ = sf.read(cap["output_path"], dtype="float32")
    return x, y, cap["layout"]


def _user_pair(folder: Path, x: np.ndarray, y: np.ndarray, layout: dict | None = None) -> tuple[str, str]:
    """The pair as a user's files; with ``layout`` the sidecar next to the input (blips, validation blocks)."""
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / "in.wav", x, SR, subtype="FLOAT")
    sf.write(folder / "out.wav", y, SR, subtype="FLOAT")
    if layout is not None:
        (folder / "in.layout.json").write_text(json.dumps(layout))
    return str(folder / "in.wav"), str(folder / "out.wav")


def _error(ip: str, op: str, **kw) -> str:
    with pytest.raises(DatasetError) as e:
        NamCaptureDataset(ip, op, **kw).load()
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


# -- the reamp pair --------------------------------------------------------------------------------------


def test_output_cut_at_the_start_is_an_error_naming_both_files_and_durations(tmp_path):
    x, y, layout = _capture()
    ip, op = _user_pair(tmp_path / "user", x, y[SR:], layout)  # the first second of the recording is lost
    msg = _error(ip, op)
    assert msg.startswith("lengths differ:")
    assert f"output {op} is {(len(y) - SR) / SR:.2f} s" in msg and f"input {ip} is {len(x) / SR:.2f} s" in msg
    assert "1.00 s shorter" in msg and "export the recording of the whole input again" in msg


def test_output_cut_at_the_start_and_padded_to_length_is_misaligned(tmp_path):
    """Same length, so only the alignment can tell: with the blips (calibration fooled by the shifted
    output) and without them (latency 0 assumed), cross-correlation finds the output a second early."""
    x, y, layout = _capture()
    shifted = np.concatenate([y[SR:], np.zeros(SR, np.float32)])
    for folder, side, kw in (("blips", layout, {}), ("tail", None, {"validation_seconds": 1.0})):
        ip, op = _user_pair(tmp_path / folder, x, shifted, side)
        msg = _error(ip, op, **kw)
        assert f"output {op} is misaligned with input {ip}" in msg, msg
        assert "ahead of the input" in msg and "set dataset.latency:" in msg


def test_a_small_residual_lag_is_a_warning_with_the_latency_to_set(tmp_path):
    x, y, layout = _capture(device={"latency": 200})
    ip, op = _user_pair(tmp_path / "user", x, y, layout)
    auto = NamCaptureDataset(ip, op).load()  # the blips find the 200 samples: nothing to say
    assert auto.latency.delay in (199, 200) and abs(auto.info["alignment_lag"]) <= 2
    assert not any("misaligned" in w for w in auto.warnings)
    manual = NamCaptureDataset(ip, op, latency=0).load()  # a wrong manual latency, 4 ms off
    assert manual.info["alignment_lag"] == pytest.approx(201, abs=2)
    assert any("misaligned" in w and "set dataset.latency: 20" in w for w in manual.warnings)


def test_output_slightly_short_or_long_is_accepted_and_too_long_names_the_tolerance(tmp_path):
    x, y, layout = _capture()
    ip, op = _user_pair(tmp_path / "short", x, y[:-2000], layout)  # an export that stops with the input
    data = NamCaptureDataset(ip, op).load()
    assert any("lengths differ by 2000 samples" in w for w in data.warnings)
    assert data.info["layout"].startswith("sidecar")  # the layout still matches the input file
    ip, op = _user_pair(tmp_path / "long", x, np.concatenate([y, np.zeros(SR // 2, np.float32)]), layout)
    msg = _error(ip, op, length_tolerance=SR // 4)
    assert msg.startswith("lengths differ:") and "0.50 s longer" in msg and "dataset.length_tolerance=12000" in msg


def test_alignment_lag_finds_a_known_shift():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(4 * SR).astype(np.float32)
    y = np.tanh(2 * np.concatenate([np.zeros(300, np.float32), x[:-300]]))
    lag, peak = alignment_lag(x, y, SR)
    assert lag == 300 and peak > 0.5
    assert alignment_lag(x, rng.standard_normal(4 * SR), SR)[1] < 0.1  # an unrelated file: no peak


# -- files -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("subtype", ["FLOAT", "PCM_16"])
def test_truncated_wav_is_an_error_naming_the_file(tmp_path, subtype):
    x, y, layout = _capture()
    ip, op = _user_pair(tmp_path / "user", x, y, layout)
    sf.write(op, y, SR, subtype=subtype)
    assert len(read_audio(op, "out")[0]) == len(y)  # complete: read as written
    _truncate(Path(op))
    assert len(sf.read(op)[0]) < len(y)  # libsndfile reads the rest without a word
    msg = _error(ip, op)
    assert msg.startswith(f"dataset.output_path: {op} is truncated: its header declares {len(y)} samples")
    assert "copy or export it again" in msg


def test_truncated_flac_is_an_error_too(tmp_path):
    path = tmp_path / "x.flac"
    sf.write(path, np.random.default_rng(0).uniform(-0.5, 0.5, SR).astype(np.float32), SR, subtype="PCM_16")
    _truncate(path, 0.6)
    with pytest.raises(AudioFileError, match=f"^input: (cannot read {path}|{path} is truncated)"):
        read_audio(path, "input")


def test_missing_unreadable_and_empty_files(tmp_path):
    x, y, layout = _capture()
    ip, op = _user_pair(tmp_path / "user", x, y, layout)
    assert _error(str(tmp_path / "nope.wav"), op) == f"dataset.input_path: no such file: {tmp_path / 'nope.wav'}"
    assert _error(ip, str(tmp_path)) == f"dataset.output_path: not a file: {tmp_path}"
    (tmp_path / "text.wav").write_text("not audio")
    assert _error(ip, str(tmp_path / "text.wav")).startswith(f"dataset.output_path: cannot read {tmp_path / 'text.wav'}")
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), SR)
    assert "holds no audio" in _error(ip, str(tmp_path / "empty.wav"))


# -- modelmaker render -----------------------------------------------------------------------------------


@pytest.fixture
def tiny_nam(tmp_path) -> Path:
    from tinyverse.audio.nam import save_nam
    from tinyverse.models import create_model

    path = tmp_path / "model.nam"
    save_nam(create_model("NAM_Linear", receptive_field=8), path)
    return path


def _render(capsys, *args: str) -> tuple[int, str, str]:
    from modelmaker.cli import main as cli

    capsys.readouterr()
    rc = cli(["render", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_render_refuses_to_write_over_its_input(tmp_path, tiny_nam, capsys):
    x = np.random.default_rng(0).uniform(-0.5, 0.5, 2000).astype(np.float32)
    sf.write(tmp_path / "in.wav", x, SR, subtype="FLOAT")
    before = (tmp_path / "in.wav").read_bytes()
    for same in (tmp_path / "in.wav", tmp_path / "sub" / ".." / "in.wav"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        rc, _, err = _render(capsys, tiny_nam, tmp_path / "in.wav", same)
        assert rc == 2 and err.strip() == (f"modelmaker: error: output {same} is the input file: rendering would "
                                           "overwrite it; write to another file")
    assert (tmp_path / "in.wav").read_bytes() == before
    rc, _, err = _render(capsys, tiny_nam, tmp_path / "in.wav", tiny_nam)
    assert rc == 2 and "is the model file" in err


def test_render_creates_a_missing_output_folder_and_names_missing_or_truncated_inputs(tmp_path, tiny_nam, capsys):
    x = np.random.default_rng(0).uniform(-0.5, 0.5, 2000).astype(np.float32)
    sf.write(tmp_path / "in.wav", x, SR, subtype="FLOAT")
    out = tmp_path / "renders" / "take1" / "out.wav"
    rc, stdout, _ = _render(capsys, tiny_nam, tmp_path / "in.wav", out)
    assert rc == 0 and f"wrote {out} (created the folder {tmp_path / 'renders'})" in stdout
    y, _ = sf.read(out, dtype="float32")
    assert np.allclose(y, x, atol=1e-6)  # NAM_Linear starts as a pass-through
    assert not list(out.parent.glob(".*.tmp"))

    rc, _, err = _render(capsys, tiny_nam, tmp_path / "missing.wav", tmp_path / "o.wav")
    assert rc == 2 and err.strip() == f"modelmaker: error: input: no such file: {tmp_path / 'missing.wav'}"
    rc, _, err = _render(capsys, tmp_path / "missing.nam", tmp_path / "in.wav", tmp_path / "o.wav")
    assert rc == 2 and err.strip() == f"modelmaker: error: model: no such file: {tmp_path / 'missing.nam'}"
    _truncate(tmp_path / "in.wav")
    rc, _, err = _render(capsys, tiny_nam, tmp_path / "in.wav", tmp_path / "o.wav")
    assert rc == 2 and f"modelmaker: error: input: {tmp_path / 'in.wav'} is truncated" in err
    assert not (tmp_path / "o.wav").exists()
    rc, _, err = _render(capsys, tiny_nam, out, tmp_path / "renders")
    assert rc == 2 and f"output {tmp_path / 'renders'} is a folder" in err


# -- quiet console ---------------------------------------------------------------------------------------


@pytest.fixture
def console_and_run_log(tmp_path):
    """A console handler on the root logger (as the CLI's basicConfig) and a run.log handler on the
    ``tinyverse`` logger (as a run attaches it)."""
    console = io.StringIO()
    console_handler = logging.StreamHandler(console)
    file_handler = logging.FileHandler(tmp_path / "run.log")
    file_handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root, tv = logging.getLogger(), logging.getLogger("tinyverse")
    old_level = root.level
    root.addHandler(console_handler)
    root.setLevel(logging.INFO)
    tv.addHandler(file_handler)
    try:
        yield console, lambda: (file_handler.flush(), (tmp_path / "run.log").read_text())[1]
    finally:
        root.removeHandler(console_handler)
        root.setLevel(old_level)
        tv.removeHandler(file_handler)
        file_handler.close()


def test_exporter_chatter_goes_to_the_run_log_not_the_console(tmp_path, console_and_run_log, capsys):
    from tinyverse.audio.export import export_streaming_onnx
    from tinyverse.export import export_onnx
    from tinyverse.export.onnx_float import quiet_onnx_export
    from tinyverse.models import create_model

    console, run_log = console_and_run_log
    model = torch.nn.Sequential(torch.nn.Conv1d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(24, 2))
    export_onnx(model, tmp_path / "m.onnx", (torch.randn(2, 1, 8),))
    export_streaming_onnx(create_model("NAM_LSTM_nano"), tmp_path / "lstm.onnx", block_size=64)
    with quiet_onnx_export():
        logging.getLogger("onnxscript.optimizer").info("optimiser chatter")
        print("printed chatter")
        logging.getLogger("torch.onnx").error("a real export error")
    text = run_log()
    assert "onnx_ir.passes" in text and ("unused nodes" in text or "PassManager" in text)  # the real optimiser
    assert "optimiser chatter" in text and "printed chatter" in text and "a real export error" in text
    assert "UserWarning" in text  # the LSTM exporter's batch-size warning, kept in the log
    shown = console.getvalue() + "".join(capsys.readouterr())
    assert "a real export error" in shown  # errors stay visible
    for chatter in ("unused nodes", "PassManager", "optimiser chatter", "printed chatter", "UserWarning"):
        assert chatter not in shown
    assert logging.getLogger("onnx_ir").handlers == [] and logging.getLogger("onnx_ir").propagate  # restored
