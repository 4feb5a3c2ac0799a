"""Audio modality: generated capture, capture dataset checks, latency, models, device check, a 1-epoch run
that writes a .nam, streaming render and the render command. Kept short (a few seconds of audio)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tinyverse.audio import esr
from tinyverse.audio.capture import DeviceSettings, generated_capture, standard_input
from tinyverse.audio.dataset import NamCaptureDataset, calibrate_latency
from tinyverse.timeseries.data import DatasetError

SECONDS = 6.0
FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "nam"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYVERSE_CACHE", str(tmp_path / "cache"))


def test_capture_is_deterministic_and_cached(tmp_path):
    a = generated_capture(seconds=SECONDS, seed=3)
    assert not a["cached"]
    b = generated_capture(seconds=SECONDS, seed=3)
    assert b["cached"] and b["folder"] == a["folder"]
    c = generated_capture(seconds=SECONDS, seed=3, cache_dir=tmp_path / "other")
    for name in ("input_path", "output_path"):
        assert np.array_equal(sf.read(a[name])[0], sf.read(c[name])[0])
    d = generated_capture(seconds=SECONDS, seed=4)
    assert d["folder"] != a["folder"]
    meta = json.loads((Path(a["folder"]) / "capture.json").read_text())
    assert meta["device"]["drive_db"] == DeviceSettings().drive_db
    x, layout = standard_input(seed=3, seconds=SECONDS)
    (v0, v1), (w0, w1) = layout.validation
    assert np.array_equal(x[v0:v1], x[w0:w1]) and layout.train == [v1, w0]


def test_latency_detected_on_known_delay():
    x, layout = standard_input(seconds=SECONDS)
    from tinyverse.audio.capture import render_device

    y = render_device(x, 48_000, DeviceSettings(latency=37))
    lat = calibrate_latency(y, layout)
    assert lat.delays == [37, 37] and lat.delay == 36 and not lat.warnings


@pytest.mark.parametrize("seconds", [30.0, 60.0])
def test_latency_found_when_the_gear_rings_into_the_silence(seconds):
    # At these lengths the silence before the blips starts right where the loud validation block ends, and the
    # device's release rings into its first 0.1 s (calibrating from the whole window found no blip at all).
    from tinyverse.audio.capture import render_device

    x, layout = standard_input(seconds=seconds)
    y = render_device(x, 48_000, DeviceSettings(latency=12))
    b0, _ = layout.background
    assert np.abs(y[b0:b0 + 4800]).max() > 0.05  # the ring-out is there
    lat = calibrate_latency(y, layout)
    assert lat.delays == [12, 12] and not lat.warnings


def test_dataset_generated_defaults():
    data = NamCaptureDataset(generated_seconds=SECONDS, latency="auto").load()
    assert data.latency.delay == DeviceSettings().latency - 1
    assert data.repeatability_esr is not None and data.repeatability_esr < 1e-3
    X, Y = data.windows(4093, ny=4096)
    assert X.shape[1] == 4096 + 4092 and Y.shape[1] == 4096
    xv, yv = data.validation(4093)
    assert xv.shape[1] == yv.shape[1] + 4092
    manual = NamCaptureDataset(generated_seconds=SECONDS, latency=5).load()
    assert manual.latency.manual and manual.latency.delay == 5


def _pair(tmp_path, x, y, sr_x=48_000, sr_y=48_000):
    sf.write(tmp_path / "in.wav", x, sr_x, subtype="FLOAT")
    sf.write(tmp_path / "out.wav", y, sr_y, subtype="FLOAT")
    return str(tmp_path / "in.wav"), str(tmp_path / "out.wav")


@pytest.mark.parametrize("case,needle", [
    ("rates", "sample rates differ"),
    ("lengths", "lengths differ"),
    ("clipping", "clips"),
    ("silence", "silent"),
])
def test_dataset_errors(tmp_path, case, needle):
    rng = np.random.default_rng(0)
    x = (0.3 * rng.standard_normal(48_000 * 2)).astype(np.float32)
    y = np.tanh(3 * x) * 0.5
    kw = {}
    if case == "rates":
        kw = {"sr_y": 44_100}
    elif case == "lengths":
        y = np.concatenate([y, np.zeros(60_000, np.float32)])
    elif case == "clipping":
        y = np.clip(y * 4, -1, 1)
    elif case == "silence":
        y = np.zeros_like(y)
    ip, op = _pair(tmp_path, x, y, **kw)
    with pytest.raises(DatasetError, match=needle) as e:
        NamCaptureDataset(ip, op, latency=0, validation_seconds=0.2).load()
    assert "\n" not in str(e.value)


def test_dataset_stereo_says_which_channel_and_one_path_is_an_error(tmp_path):
    rng = np.random.default_rng(0)
    x = (0.3 * rng.standard_normal(48_000 * 2)).astype(np.float32)
    y = np.stack([np.tanh(3 * x) * 0.5, np.zeros_like(x)], axis=1)
    ip, op = _pair(tmp_path, x, y)
    data = NamCaptureDataset(ip, op, latency=0, validation_seconds=0.2).load()
    assert any("using channel 0" in w for w in data.warnings)
    with pytest.raises(DatasetError, match="output_path"):
        NamCaptureDataset(ip, None)


def test_repeatability_warning_when_validation_blocks_differ(tmp_path):
    cap = generated_capture(seconds=SECONDS)
    x, _ = sf.read(cap["input_path"], dtype="float32")
    y, _ = sf.read(cap["output_path"], dtype="float32")
    layout = cap["layout"]
    w0, w1 = layout["validation"][1]
    y[w0:w1] *= 0.7  # "a knob moved"
    folder = tmp_path / "user"
    folder.mkdir()
    ip, op = _pair(folder, x, y)
    (folder / "in.layout.json").write_text(json.dumps(layout))
    data = NamCaptureDataset(ip, op).load()
    assert data.info["layout"].startswith("sidecar")
    assert data.repeatability_esr > 0.01 and any("knob moved" in w for w in data.warnings)


def test_models_registered_with_receptive_field_and_cost(tmp_path):
    from tinyverse.audio.models import macs_per_sample
    from tinyverse.models import create_model, list_models

    names = list_models("NAM_*")
    for n in ("NAM_WaveNet_nano", "NAM_WaveNet_feather", "NAM_WaveNet_lite", "NAM_WaveNet_standard",
              "NAM_LSTM_nano", "NAM_Linear"):
        assert n in names
    assert create_model("NAM_WaveNet_standard").receptive_field == 4093
    assert macs_per_sample(create_model("NAM_WaveNet_nano")) == 733
    ir = np.array([0.5, 0.25, -0.125, 0.0625], np.float32)  # asymmetric: order matters
    sf.write(tmp_path / "ir.wav", ir, 48_000, subtype="FLOAT")
    lin = create_model("NAM_Linear", receptive_field=0, ir_path=str(tmp_path / "ir.wav"))
    impulse = torch.zeros(1, 8)
    impulse[0, 0] = 1
    assert torch.allclose(lin(impulse, pad_start=True)[0, :4], torch.as_tensor(ir))


def test_device_check_pedal():
    from tinyverse.audio.devices import check_audio_model
    from tinyverse.models import create_model

    assert check_audio_model(create_model("NAM_WaveNet_feather"), "pocket-master").fits
    r = check_audio_model(create_model("NAM_WaveNet_feather"), "nam-pedal-lite")
    assert not r.fits and r.violations[0].startswith("MACs/sample: 2,809 over the 1,000 budget of nam-pedal-lite")
    gated = create_model("NAM_WaveNet", gated=True)
    assert check_audio_model(gated, "pocket-master").fits  # NAM Core runs gated WaveNets: the limit is compute
    assert any("gated" in v for v in check_audio_model(gated, "nam-pedal-lite").violations)  # an A1-only engine
    assert not check_audio_model(create_model("NAM_WaveNet_nano"), "pocket-master", sample_rate=22_050).fits


def test_stream_processor_matches_core_fixture():
    from tinyverse.audio.nam import model_from_nam
    from tinyverse.audio.stream import StreamProcessor, process_file

    x, _ = sf.read(FIXTURES / "input_guitar.wav", dtype="float32")
    for name in ("wavenet", "lstm"):
        ref, _ = sf.read(FIXTURES / f"{name}__input_guitar.wav", dtype="float32")
        y, _ = process_file(StreamProcessor(model_from_nam(FIXTURES / f"{name}.nam")), x, block_size=100)
        assert np.abs(y - ref).max() < 1e-5


def test_one_epoch_run_writes_a_nam_that_renders_like_torch(tmp_path, capsys):
    from modelmaker.cli import main as cli
    from modelmaker.runner import run
    from tinyverse.audio.nam import load_nam, model_from_nam, render
    from tinyverse.training import load_task_weights
    from tinyverse.models import create_model

    cfg = tmp_path / "audio.yaml"
    cfg.write_text(f"""
common: {{task_type: amp_modelling, modality: audio, projects_path: {tmp_path / 'projects'}, run_name: r, verbose: false}}
dataset: {{name: nam_capture, generated_seconds: {SECONDS}, ny: 4096, metadata: {{gear_type: pedal, modeled_by: test}}}}
training: {{model_name: NAM_WaveNet_nano, epochs: 1, batch_size: 8, learning_rate: 0.004, lr_scheduler: exponential,
           accelerator: cpu}}
compilation: {{enable: true, exporters: [onnx]}}
""")
    summary = run(cfg)
    run_dir = Path(summary["run_dir"])
    assert np.isfinite(summary["validation"]["esr"]) and summary["validation"]["verdict"]
    nf = load_nam(run_dir / "model.nam")
    assert nf.version == "0.5.4" and nf.metadata["gear_type"] == "pedal"
    assert nf.metadata["training"]["validation_esr"] == pytest.approx(summary["validation"]["esr"])
    assert nf.metadata["training"]["data"]["latency"]["calibration"]["recommended"] == summary["dataset"]["latency"]
    torch_model = create_model("NAM_WaveNet_nano")
    load_task_weights(torch_model, run_dir / "checkpoints" / "best.ckpt")
    x = np.random.default_rng(1).standard_normal(6000).astype(np.float32) * 0.3
    assert torch.equal(render(model_from_nam(nf), x), render(torch_model, x))
    for f in ("listening/target.wav", "listening/prediction.wav", "waveforms.png", "spectra.png", "summary.json"):
        assert (run_dir / f).is_file()
    assert summary["compilation"]["onnx"]["esr_vs_torch"] < 1e-6

    sf.write(tmp_path / "in.wav", x, 48_000, subtype="FLOAT")
    capsys.readouterr()
    assert cli(["render", str(run_dir / "model.nam"), str(tmp_path / "in.wav"), str(tmp_path / "out.wav"),
                "--block-size", "256"]) == 0
    out = capsys.readouterr().out
    assert "real-time factor" in out
    y, _ = sf.read(tmp_path / "out.wav", dtype="float32")
    assert np.abs(y - render(torch_model, x).numpy()).max() < 1e-5
    assert cli(["render", str(run_dir / "model_stream.onnx"), str(tmp_path / "in.wav"), str(tmp_path / "o2.wav")]) == 0
    assert "real-time factor" in capsys.readouterr().out


def test_tiny_run_reports_the_streaming_verification_table(tmp_path):
    """Every streaming artifact is exported and verified block by block on the validation audio; the table is
    in the summary, compile_report.md and report.md."""
    from modelmaker.runner import run

    cfg = tmp_path / "audio.yaml"
    cfg.write_text(f"""
common: {{task_type: amp_modelling, modality: audio, projects_path: {tmp_path / 'projects'}, run_name: t, verbose: false}}
dataset: {{name: nam_capture, generated_seconds: {SECONDS}, ny: 4096}}
training: {{model_name: NAM_WaveNet, model_args: {{channels: [3, 2], dilations: [[1, 2, 4], [8, 1]]}}, epochs: 1,
           batch_size: 8, accelerator: cpu, lr_scheduler: exponential, learning_rate: 0.004}}
compilation: {{enable: true, calibration_samples: 16}}
""")
    summary = run(cfg)
    run_dir = Path(summary["run_dir"])
    comp = summary["compilation"]
    rows = {r["artifact"]: r for r in comp["rows"]}
    # the default exporters' rows (EXPORTERS: onnx, onnx_int8, tflite, tflite_int8, tflite_int16), label and runtime
    assert [(a, r["runtime"]) for a, r in rows.items()] == [
        ("PyTorch float", "torch"), ("ONNX float", "onnxruntime"), ("ONNX int8", "onnxruntime"),
        ("TFLite float", "litert"), ("TFLite float (XNNPACK)", "xnnpack"), ("TFLite int8 (LiteRT)", "litert"),
        ("TFLite int8 (XNNPACK)", "xnnpack"), ("TFLite int8 (TFLM)", "tflm"), ("TFLite int16x8 (LiteRT)", "litert"),
        ("TFLite int16x8 (TFLM)", "tflm")]
    assert [r["kind"] for r in rows.values()] == ["reference", "float", "int8", "float", "float", "int8", "int8",
                                                  "int8", "int16", "int16"]
    checks = {a: [c["name"] for c in r["verdict"]["checks"]] for a, r in rows.items()}
    assert checks["ONNX int8"] == ["ESR vs PyTorch", "fused kernels vs QDQ reference (output steps)"]
    assert checks["TFLite int8 (TFLM)"] == checks["TFLite int16x8 (TFLM)"] == [
        "ESR vs PyTorch", "vs LiteRT reference kernels (output steps)"]
    assert checks["TFLite int8 (XNNPACK)"] == checks["TFLite float"] == ["ESR vs PyTorch"]
    assert not checks["PyTorch float"]
    assert set(comp["exports"]) == {"onnx", "onnx_int8", "tflite", "tflite_int8", "tflite_int16"}
    for name, r in rows.items():
        assert "error" not in r, (name, r.get("error"))
        assert np.isfinite(r["esr_vs_torch"]) and np.isfinite(r["esr_vs_target"]) and r["rtf"] > 0
    for name in ("PyTorch float", "ONNX float", "TFLite float"):
        assert rows[name]["esr_vs_torch"] < 1e-8, name
        assert rows[name]["esr_vs_target"] == pytest.approx(summary["validation"]["esr"], rel=1e-3)
    for name in ("ONNX int8", "TFLite int8 (LiteRT)", "TFLite int8 (TFLM)", "TFLite int16x8 (TFLM)"):
        assert 0 < rows[name]["esr_vs_torch"] < 0.5, name
    assert rows["TFLite int8 (TFLM)"]["tflm_arena_bytes"] > 0
    for f in ("model_stream.onnx", "model_stream_int8.onnx", "model_stream_float.tflite", "model_stream_int8.tflite",
              "model_stream_int16.tflite", "compile_report.md", "compile_report.json"):
        assert (run_dir / f).is_file(), f
    report = (run_dir / "report.md").read_text()
    assert "## Verification" in report and "| TFLite int8 (TFLM) | TFLite Micro interpreter |" in report
    assert "ESR vs target" in (run_dir / "compile_report.md").read_text()

    # the render command plays the streaming exports too (block length and context read from the file)
    from modelmaker.cli import main as cli
    from tinyverse.audio.nam import model_from_nam, render

    x = np.random.default_rng(1).standard_normal(3000).astype(np.float32) * 0.3
    sf.write(tmp_path / "in.wav", x, 48_000, subtype="FLOAT")
    ref = render(model_from_nam(run_dir / "model.nam"), x).numpy()
    for f, tol in (("model_stream_float.tflite", 1e-5), ("model_stream_int8.tflite", 0.2)):
        assert cli(["render", str(run_dir / f), str(tmp_path / "in.wav"), str(tmp_path / "out.wav")]) == 0
        y, _ = sf.read(tmp_path / "out.wav", dtype="float32")
        assert np.abs(y - ref).max() < tol * max(1.0, np.abs(ref).max()), f
