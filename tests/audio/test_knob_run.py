"""A knob run end to end (issue #13 item 6): a generated 3 x 3 knob capture (6 s per setting) → a tiny
knob-conditioned WaveNet, 1 epoch → ESR at seen / unseen / outside settings, the knob model file, frozen .nam
snapshots at the corners of the knob ranges, the ESR heat map, listening files and the report; and bad knob input,
which fails in one line before any run folder is made."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile as sf
import yaml

SECONDS = 6.0
# A tiny CatWaveNet (receptive field 24): two layer arrays, as NAM's A1 layout but a few channels.
LAYERS = [
    {"input_size": 1, "condition_size": 1, "head_size": 2, "channels": 3, "kernel_size": 3, "dilations": [1, 2, 4],
     "activation": "Tanh", "gated": False, "head_bias": False},
    {"input_size": 3, "condition_size": 1, "head_size": 1, "channels": 2, "kernel_size": 2, "dilations": [8, 1],
     "activation": "Tanh", "gated": False, "head_bias": True},
]


def config(folder: Path, dataset: dict, run_name: str = "r", compile_exports: bool = False, **training) -> Path:
    cfg = {"common": {"task_type": "knob_modelling", "modality": "audio", "projects_path": str(folder / "projects"),
                      "run_name": run_name, "verbose": False},
           "dataset": {"name": "knob_capture", **dataset},
           "training": {"model_name": "NAM_CatWaveNet_nano", "model_args": {"layers": LAYERS, "head_scale": 0.3},
                        "epochs": 1, "batch_size": 16, "learning_rate": 0.01, "accelerator": "cpu", **training},
           "compilation": {"enable": False}}
    if compile_exports:  # the streaming ONNX and int8 TFLite (and its C array) with a params input
        cfg["compilation"] = {"enable": True, "exporters": ["onnx", "tflite_int8"]}
    path = folder / "knob.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def cli(capsys, *args) -> tuple[int, str, str]:
    from modelmaker.cli import main

    capsys.readouterr()
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def knob_run(tmp_path_factory):
    from modelmaker.runner import run

    folder = tmp_path_factory.mktemp("knob_run")
    mp = pytest.MonkeyPatch()
    mp.setenv("TINYVERSE_CACHE", str(folder / "cache"))
    try:
        summary = run(config(folder, {"generated_seconds": SECONDS, "ny": 4096}, compile_exports=True))
    finally:
        mp.undo()
    return summary, Path(summary["run_dir"])


def test_every_export_is_verified_at_three_or_more_held_out_and_seen_settings(knob_run):
    summary, run_dir = knob_run
    comp = summary["compilation"]
    settings = comp["settings"]
    assert len(settings) >= 3 and {"gain": 5.0, "tone": 5.0} in settings  # the unseen centre is among them
    rows = {r["artifact"]: r for r in comp["rows"]}
    assert {"ONNX float", "TFLite int8 (LiteRT)", "TFLite int8 (TFLM)", "C array (TFLM)"} <= set(rows), sorted(rows)
    for name, row in rows.items():
        assert "error" not in row, (name, row.get("error"))
        assert [s["setting"] for s in row["settings"]] == settings
        assert row["verdict"]["status"] == "PASS", (name, row["verdict"])
    assert rows["ONNX float"]["esr_vs_torch"] < 1e-8  # float ONNX streams what the knob model computes
    graph = onnx.load(str(next(run_dir.rglob("*.onnx")))).graph
    assert {i.name for i in graph.input} >= {"x", "params"}  # the audio block and the knob vector
    report = (run_dir / "compile_report.md").read_text()
    assert "params input" in report and "gain=5, tone=5" in report
    assert "Knob model exports" in report and "## Verification" in (run_dir / "report.md").read_text()


def test_summary_lists_the_knobs_and_the_esr_at_seen_unseen_and_outside_settings(knob_run):
    summary, run_dir = knob_run
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk["state"] == "complete" and on_disk["task_type"] == "knob_modelling"
    assert on_disk["knobs"] == {"gain": {"min": 0.0, "max": 10.0, "default": 5.0, "type": "continuous"},
                                "tone": {"min": 0.0, "max": 10.0, "default": 5.0, "type": "continuous"}}
    per = on_disk["validation"]["per_setting"]
    roles = {r["role"]: [s["setting"] for s in per if s["role"] == r["role"]] for r in per}
    assert roles["unseen"] == [{"gain": 5.0, "tone": 5.0}]  # the centre: interpolation
    assert len(roles["seen"]) == 5 and all(s["gain"] == 10.0 for s in roles["outside"]) and len(roles["outside"]) == 3
    mean = lambda role: float(np.mean([s["esr"] for s in per if s["role"] == role]))  # noqa: E731
    assert on_disk["esr_seen"] == pytest.approx(mean("seen")) and on_disk["esr_unseen"] == pytest.approx(mean("unseen"))
    assert on_disk["esr_outside"] == pytest.approx(mean("outside"))
    assert on_disk["validation"]["esr"] == on_disk["esr_seen"]  # the headline: the settings it was trained on
    # The checkpoint was picked on the seen settings; training lowered their ESR (1.0 is a silent model).
    assert 0 < on_disk["esr_seen"] < 1.0 and np.isfinite(on_disk["esr_unseen"])
    assert on_disk["dataset"]["trained_settings"] == 5 and on_disk["model"]["conditioning_macs"] > 0
    assert "knobs" not in on_disk["model"]["args"]  # the declaration comes from dataset.knobs, listed once
    report = (run_dir / "report.md").read_text()
    assert "## Knob settings" in report and "| gain=5, tone=5 | unseen |" in report
    assert "model.nam" not in summary["artifacts"] and not (run_dir / "model.nam").exists()  # a knob model has none


def test_the_knob_model_file_and_checkpoint_hold_the_trained_model(knob_run):
    import torch

    from tinyverse.audio.knob_file import load_knob_model
    from tinyverse.audio.stream import load_audio_model

    summary, run_dir = knob_run
    model, info = load_knob_model(run_dir / "knob_model.pt")
    best, _ = load_audio_model(run_dir / "checkpoints" / "best.ckpt")
    assert info["sample_rate"] == 48_000 and model.knobs.declaration() == best.knobs.declaration()
    assert info["metadata"]["esr_unseen"] == pytest.approx(summary["esr_unseen"])
    x = torch.as_tensor(np.random.default_rng(0).standard_normal(2000) * 0.3)
    p = model.knobs.vector({"gain": 7, "tone": 2}, "t")
    assert torch.equal(model.render(x, p), best.render(x, p))


def test_snapshots_at_the_corners_load_and_match_the_knob_model_there(knob_run):
    import torch

    from tinyverse.audio.knob_file import load_knob_model
    from tinyverse.audio.nam import load_nam, model_from_nam
    from tinyverse.audio.stream import StreamProcessor, process_file

    summary, run_dir = knob_run
    model, _ = load_knob_model(run_dir / "knob_model.pt")
    corners = [{"gain": g, "tone": t} for g in (0.0, 10.0) for t in (0.0, 10.0)]
    assert [s["setting"] for s in summary["snapshots"]] == corners
    x = (np.random.default_rng(1).standard_normal(4000) * 0.3).astype(np.float64)
    for row in summary["snapshots"]:
        nf = load_nam(run_dir / row["path"])  # our .nam reader
        assert nf.architecture == "WaveNet" and nf.version == "0.5.4"
        assert nf.metadata["frozen"]["setting"] == row["setting"]
        assert row["max_abs_diff_vs_knob_model"] < 1e-6 and "esr_vs_target" in row  # every corner was captured
        vec = model.knobs.vector(row["setting"], "t")
        want, _ = process_file(StreamProcessor(model, torch.float64, params=vec), x, 256)
        got, _ = process_file(StreamProcessor(model_from_nam(nf), torch.float64), x, 256)
        assert float(np.max(np.abs(want - got))) <= 1e-5, row["setting"]
    # the snapshots differ: the knobs are folded into them
    a, b = (load_nam(run_dir / summary["snapshots"][i]["path"]).weights for i in (0, 3))
    assert not np.allclose(a, b)


def test_heat_map_listening_files_and_plots_are_written(knob_run):
    summary, run_dir = knob_run
    heat = run_dir / "knob_esr.png"
    assert heat.is_file() and heat.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and heat.stat().st_size > 10_000
    listen = {p.name for p in (run_dir / "listening").glob("*.wav")}
    assert "input.wav" in listen  # one input: every generated setting heard the same one
    for s in summary["validation"]["per_setting"]:
        slug = f"gain{s['setting']['gain']:g}_tone{s['setting']['tone']:g}"
        assert {f"{slug}_target.wav", f"{slug}_prediction.wav"} <= listen
    y, sr = sf.read(run_dir / "listening" / "gain5_tone5_target.wav")
    pred, _ = sf.read(run_dir / "listening" / "gain5_tone5_prediction.wav")
    assert sr == 48_000 and len(y) == len(pred) and abs(len(y) - summary["dataset"]["validation_seconds"] * sr) < 100
    assert np.std(y - pred) > 0  # the model's output, not a copy of the target
    for f in ("waveforms.png", "spectra.png", "loss_curves.png", "dataset.json"):
        assert (run_dir / f).is_file(), f


# -- bad input: one line naming the file or key, exit 2, no run folder made, nothing earlier touched ----------------
@pytest.fixture
def recordings(tmp_path):
    """An input and one output recording; the settings tables of the cases name them."""
    x = (np.random.default_rng(0).standard_normal(48_000) * 0.2).astype(np.float32)
    sf.write(tmp_path / "input.wav", x, 48_000, subtype="FLOAT")
    sf.write(tmp_path / "gain0.wav", np.tanh(3 * x) * 0.5, 48_000, subtype="FLOAT")
    return tmp_path


@pytest.mark.parametrize("table, needle", [
    ("file,gain,tone,level\ngain0.wav,0,5,1\n", "settings.csv row 1: unknown knob 'level'; the knobs are gain, tone"),
    ("file,gain,tone\ngain0.wav,11,5\n", "settings.csv row 1: knob 'gain' = 11 is outside [0, 10]"),
    ("file,gain\ngain0.wav,0\n", "settings.csv row 1: knob 'tone' is missing"),
    ("file,gain,tone\nmissing.wav,0,5\n", "settings.csv row 1: output file"),
])
def test_bad_settings_tables_fail_in_one_line_before_any_run_folder(recordings, capsys, table, needle):
    (recordings / "settings.csv").write_text(table)
    earlier = recordings / "projects" / "r"
    earlier.mkdir(parents=True)
    (earlier / "summary.json").write_text("earlier run")
    knobs = {"gain": {"min": 0, "max": 10, "default": 5}, "tone": {"min": 0, "max": 10}}
    cfg = config(recordings, {"knobs": knobs, "input_path": str(recordings / "input.wav"),
                              "settings": str(recordings / "settings.csv"), "latency": 0})
    rc, out, err = cli(capsys, "run", cfg)
    assert rc == 2 and needle in err and err.count("\n") == 1, err
    if "missing" in table:
        assert "missing.wav does not exist" in err
    assert sorted(p.name for p in (recordings / "projects").iterdir()) == ["r"]
    assert [p.name for p in earlier.iterdir()] == ["summary.json"]
    assert (earlier / "summary.json").read_text() == "earlier run"


@pytest.mark.parametrize("dataset, training, needle", [
    ({"point": 3}, {}, "dataset.point: unknown argument of dataset 'knob_capture'; did you mean 'points'?"),
    ({"knobs": {"gain": {"minimum": 0}}}, {}, "dataset.knobs.gain.minimum"),
    ({"knobs": {"gain": {"min": 5, "max": 1}}}, {}, "dataset.knobs.gain: max (1) must be greater than min (5)"),
    ({"holdout": {"unseen": "auto", "outsde": "auto"}}, {}, "dataset.holdout.outsde: unknown key"),
    ({}, {"model_name": "NAM_WaveNet_nano", "model_args": {}}, "training.model_name: NAM_WaveNet_nano is a model "
                                                               "without knob inputs"),
    ({}, {"model_args": {"knobs": {"a": {}}}}, "training.model_args.knobs: a knob model takes its knobs from the "
                                               "dataset"),
    ({}, {"quantization": "qat"}, "training.quantization: QAT is not available for knob models"),
    ({}, {"output_level_dbfs": -18}, "training.output_level_dbfs: knob models train at the capture's own level"),
    ({}, {"label_smoothing": 0.1}, "training.label_smoothing: task 'knob_modelling' does not use it"),
])
def test_bad_knob_configs_fail_in_one_line_before_any_run_folder(tmp_path, capsys, dataset, training, needle):
    cfg = config(tmp_path, dataset, **training)
    rc, out, err = cli(capsys, "run", cfg)
    assert rc == 2 and needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "projects").exists()


def test_a_knob_model_on_a_plain_capture_is_a_config_error(tmp_path, capsys):
    path = config(tmp_path, {})
    cfg = yaml.safe_load(path.read_text())
    cfg["common"]["task_type"] = "amp_modelling"
    cfg["dataset"] = {"name": "nam_capture"}
    path.write_text(yaml.safe_dump(cfg))
    rc, out, err = cli(capsys, "run", path)
    assert rc == 2 and "training.model_name: NAM_CatWaveNet_nano is a knob-conditioned model" in err, err


@pytest.mark.parametrize("settings", [
    [{"gain": g} for g in (0.0, 5.0, 10.0)],  # one knob: ESR against its value
    [{"gain": g, "tone": t} for g, t in ((0.0, 1.0), (3.0, 7.5), (9.0, 2.0))],  # two, off a grid: points
    [{"bright": b, "gain": g, "tone": 5.0} for b in (0.0, 1.0) for g in (0.0, 10.0)],  # more: a bar per setting
])
def test_the_esr_plot_takes_any_number_of_knobs_and_any_layout(tmp_path, settings):
    from tinyverse.audio.plots import plot_knob_esr

    roles = ["seen", "unseen", "outside", "seen"]
    rows = [{"setting": s, "role": roles[i % 4], "esr": 0.01 * (i + 1)} for i, s in enumerate(settings)]
    path = plot_knob_esr(rows, tmp_path / "esr.png", "t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000


def test_render_and_freeze_work_on_the_run_folder_and_its_exports(knob_run, tmp_path, capsys):
    from tinyverse.audio.nam import load_nam

    _, run_dir = knob_run
    wav = run_dir / "listening" / "input.wav"
    setting = ["--param", "gain=7", "--param", "tone=3"]
    rc, out, err = cli(capsys, "freeze", run_dir, *setting, "-o", tmp_path / "gain7_tone3.nam")
    assert rc == 0, err
    assert load_nam(tmp_path / "gain7_tone3.nam").architecture == "WaveNet"  # a plain model any NAM player loads
    renders = {}
    for name, model, args in [("knob", run_dir, setting), ("snapshot", tmp_path / "gain7_tone3.nam", []),
                              ("onnx", run_dir / "model_stream.onnx", setting)]:
        rc, out, err = cli(capsys, "render", model, wav, tmp_path / f"{name}.wav", *args)
        assert rc == 0, (name, err)
        renders[name], _ = sf.read(tmp_path / f"{name}.wav", dtype="float64")
    assert np.abs(renders["knob"]).max() > 1e-3
    np.testing.assert_allclose(renders["snapshot"], renders["knob"], atol=1e-5)
    np.testing.assert_allclose(renders["onnx"], renders["knob"], atol=1e-4)
    rc, _, err = cli(capsys, "freeze", run_dir, "--param", "gain=11", "-o", tmp_path / "bad.nam")
    assert rc == 2 and "gain" in err and "[0, 10]" in err and err.count("\n") == 1, err
