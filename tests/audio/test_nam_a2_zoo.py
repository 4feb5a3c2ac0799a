"""NAM A2 in the zoo (issue #12 item 2): the NAM_A2_lite / NAM_A2_full presets are exactly the submodels of NAM
0.13's A2.nam, NAM_A2 is the container holding both; their cost and device fit in `modelmaker models`; `modelmaker
check` picks the largest submodel a device runs; the container trains as NAM's packed training does (each
submodel's loss summed, each one's validation ESR); a trained A2 run writes a 0.7.0 container that loads back and
renders identically (A1 still 0.5.4), with the TFLite exports it cannot have listed as not available."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modelmaker.cli import main as cli

A2_FILE = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "nam_a2" / "A2.nam"
SECONDS = 6.0
# The rows of the streaming TFLite exports (float, int8, int16x8 on their runtimes).
TFLITE_ROWS = ("TFLite float", "TFLite float (XNNPACK)", "TFLite int8 (LiteRT)", "TFLite int8 (XNNPACK)",
               "TFLite int8 (TFLM)", "TFLite int16x8 (LiteRT)", "TFLite int16x8 (TFLM)")


def _a2_submodels() -> list[dict]:
    return json.loads(A2_FILE.read_text())["config"]["submodels"]


def test_a2_presets_are_the_submodels_of_nam_a2_file():
    from tinyverse.audio.nam import nam_object
    from tinyverse.models import create_model

    subs = _a2_submodels()
    lite, full, a2 = create_model("NAM_A2_lite"), create_model("NAM_A2_full"), create_model("NAM_A2")
    for model, sub in zip((lite, full), subs):
        assert model.num_weights == len(sub["model"]["weights"])  # 1,871 and 12,146
        written = nam_object(model, sample_rate=48_000)
        assert written["version"] == sub["model"]["version"] == "0.7.0"
        assert written["config"] == sub["model"]["config"]  # the same architecture, key for key
    assert (lite.num_weights, full.num_weights) == (1871, 12146)
    assert a2.max_values == [s["max_value"] for s in subs] == [0.5, 1.0]
    assert a2.names == ["lite", "full"]
    for model, sub in zip(a2.submodels, subs):
        assert model.nam_config(sample_rate=48_000) == sub["model"]["config"]
    # the model contract's cost: MACs per output sample and receptive field of each size
    assert (lite.cost().macs_per_sample, lite.cost().receptive_field) == (1732, 6347)
    assert (full.cost().macs_per_sample, full.cost().receptive_field) == (11777, 6347)
    # a container runs its full submodel until the size knob says otherwise, and holds both
    c = a2.cost()
    assert (c.macs_per_sample, c.receptive_field, c.params, c.weights) == (11777, 6347, 1870 + 12145, 1871 + 12146)


def test_models_lists_the_a2_presets_with_cost_and_pocket_master_fit(capsys):
    capsys.readouterr()
    assert cli(["models", "--device", "pocket-master", "--include", "NAM_A2*"]) == 0
    lines = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("NAM_")}
    assert set(lines) == {"NAM_A2", "NAM_A2_lite", "NAM_A2_full"}
    # params, MACs/sample, est. flash, est. RAM, (est. ms), fit, receptive field
    assert lines["NAM_A2_lite"][2:6] + lines["NAM_A2_lite"][7:9] == ["1,870", "1,732/sample", "7,484", "76,152",
                                                                      "fits", "rf"]
    assert float(lines["NAM_A2_lite"][6]) > 0  # the profile's latency estimate (tinyverse.devices.latency)
    assert lines["NAM_A2_full"][2:4] == ["12,145", "11,777/sample"] and lines["NAM_A2_full"][7] == "fits"
    # the container: both submodels' parameters and weights (the pedal loads both), the full one's MACs and state
    assert lines["NAM_A2"][2:6] + lines["NAM_A2"][7:10] == ["14,015", "11,777/sample", f"{(1871 + 12146) * 4:,}",
                                                             "203,072", "fits", "(full)", "rf"]
    assert lines["NAM_A2"][10] == "6,347"


def test_pocket_master_runs_every_activation_nam_core_runs():
    """A NAM-Core pedal runs any model Core loads: every Core activation is native, and no A1-only layout rule
    (kernel size, gating) stands between it and A2; its limit is the compute budget."""
    from tinyverse.audio.nam.activations import CORE_ACTIVATION_TYPES
    from tinyverse.devices import check_model, get_device

    for name in ("pocket-master", "nam-pedal-heavy"):
        profile = get_device(name)
        assert {t.upper() for t in CORE_ACTIVATION_TYPES} <= set(profile.native_ops), name
        assert "WAVENET" not in profile.rules, name
    from tinyverse.models import create_model

    full = check_model(create_model("NAM_A2_full"), "pocket-master", sample_rate=48_000)
    assert full.fits and [lc.placement for lc in full.layers] == ["DSP", "DSP"]  # WAVENET, LEAKYRELU


def _budget_profile(tmp_path: Path, macs: int) -> Path:
    """A NAM-Core pedal like pocket-master with another compute budget."""
    import yaml

    data = yaml.safe_load((Path(__file__).resolve().parents[2] / "tinyverse" / "devices" / "profiles" /
                           "pocket-master.yaml").read_text())
    data.update(name=f"core-pedal-{macs}", max_macs_per_sample=macs)
    path = tmp_path / f"core-pedal-{macs}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_check_picks_the_largest_submodel_the_device_runs(tmp_path, capsys):
    from tinyverse.devices import check_model
    from tinyverse.models import create_model

    capsys.readouterr()
    assert cli(["check", "NAM_A2", "--device", "pocket-master"]) == 0
    out = capsys.readouterr().out
    assert "fits pocket-master: runs submodel full" in out and "full (picked)" in out
    assert "runs submodel full (2 of 2): size knob (slim) 0.5–1" in out

    # a NAM-Core pedal with 5,000 MAC/sample runs the lite submodel only: the check passes, on the lite
    small = _budget_profile(tmp_path, 5000)
    assert cli(["check", "NAM_A2", "--device", str(small)]) == 0
    out = capsys.readouterr().out
    assert "fits core-pedal-5000: runs submodel lite" in out and "lite (picked)" in out
    assert "no: MACs/sample: 11,777 over the 5,000 budget" in out  # the full submodel's row
    report = check_model(create_model("NAM_A2"), small, sample_rate=48_000)
    assert report.fits and report.picked == "lite" and report.totals["macs_per_sample"] == 1732
    assert [c["fits"] for c in report.choices] == [True, False]
    assert [c["slim"] for c in report.choices] == [[0.0, 0.5], [0.5, 1.0]]

    # a device that runs none: fails, with the smallest one's violations
    assert cli(["check", "NAM_A2", "--device", str(_budget_profile(tmp_path, 1000))]) == 1
    out = capsys.readouterr().out
    assert "no submodel fits core-pedal-1000" in out and "MACs/sample: 1,732 over the 1,000 budget" in out

    # an A2 .nam file (NAM 0.13's own): the same choice, at the file's sample rate; JSON says which was picked
    assert cli(["check", str(A2_FILE), "--device", "pocket-master"]) == 0
    assert "runs submodel 1" in capsys.readouterr().out
    assert cli(["check", str(A2_FILE), "--device", str(small), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["picked"] == "0" and data["fits"] and data["totals"]["macs_per_sample"] == 1732
    assert [c["macs_per_sample"] for c in data["choices"]] == [1732, 11777]


def test_check_of_a_broken_nam_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.nam"
    bad.write_text("{not json")
    capsys.readouterr()
    assert cli(["check", str(bad), "--device", "pocket-master"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"modelmaker: error: {bad}: not valid JSON") and err.count("\n") == 1


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")  # one step called by hand, no Trainer
def test_container_training_step_scores_both_submodels(tmp_path):
    """NAM's packed training: the loss is the sum of each submodel's (MSE + weighted multi-resolution STFT), both
    get gradients, and validation logs each submodel's ESR; val_esr (the checkpoint's) is the full one's."""
    from tinyverse.training import TrainConfig, fit  # noqa: I001 (first: it registers the tasks in order)
    from tinyverse.audio.training import AmpModellingTask, esr_loss, multi_resolution_stft_loss, pre_emphasis
    from tinyverse.models import create_model

    torch.manual_seed(0)
    model = create_model("NAM_A2")
    task = AmpModellingTask(model, epochs=1)
    ny, rf = 2048, model.receptive_field
    x = torch.randn(4, ny + rf - 1) * 0.3
    y = torch.tanh(2 * x[:, rf - 1:])
    expected = 0.0
    for sub in model.submodels:
        pred = sub(x[:2])
        expected = expected + F.mse_loss(pred, y[:2]) + 5e-4 * multi_resolution_stft_loss(
            pre_emphasis(pred, 0.85), pre_emphasis(y[:2], 0.85))
    loss = task.training_step((x[:2], y[:2]), 0)
    assert torch.allclose(loss, expected)
    loss.backward()
    for sub in model.submodels:  # both learn: the first and the head convs of each get a gradient
        la = sub.layer_arrays[0]
        assert la.rechannel.weight.grad.abs().sum() > 0 and la.head_rechannel.weight.grad.abs().sum() > 0

    result = fit(task, (x.numpy(), y.numpy()), (x.numpy(), y.numpy()), tmp_path,
                 TrainConfig(epochs=1, batch_size=2, accelerator="cpu", monitor="val_esr", monitor_mode="min",
                             early_stopping_patience=None, progress_bar=False))
    import csv

    row = [r for r in csv.DictReader(result.metrics_csv.open()) if r.get("val_esr")][-1]
    with torch.no_grad():
        full, lite = (esr_loss(m(x), y).item() for m in (model.submodels[1], model.submodels[0]))
    # the logged figures are the trained submodels' own ESRs (last epoch = the weights now in the model)
    assert float(row["val_esr_full"]) == pytest.approx(full, rel=1e-4)
    assert float(row["val_esr_lite"]) == pytest.approx(lite, rel=1e-4)
    assert float(row["val_esr"]) == float(row["val_esr_full"]) != float(row["val_esr_lite"])


@pytest.mark.parametrize("model_name,version", [("NAM_A2", "0.7.0"), ("NAM_WaveNet_nano", "0.5.4")])
def test_trained_run_writes_the_nam_version_its_model_needs(tmp_path, model_name, version):
    """A trained A2 run: model.nam is a 0.7.0 SlimmableContainer of 0.7.0 lite / full WaveNets that loads back and
    renders like the trained model at both sizes; the summary has each submodel's validation ESR; the TFLite rows
    it cannot have are listed as not available with the reason, and verification passes. A1 stays 0.5.4."""
    from modelmaker.runner import run
    from tinyverse.audio.nam import load_nam, model_from_nam, render
    from tinyverse.models import create_model
    from tinyverse.training import load_task_weights

    cfg = tmp_path / "audio.yaml"
    cfg.write_text(f"""
common: {{task_type: amp_modelling, modality: audio, projects_path: {tmp_path / 'projects'}, run_name: r,
         verbose: false}}
dataset: {{name: nam_capture, generated_seconds: {SECONDS}, ny: 2048}}
training: {{model_name: {model_name}, epochs: 1, batch_size: 8, learning_rate: 0.004, lr_scheduler: exponential,
           accelerator: cpu}}
compilation: {{enable: {str(model_name == 'NAM_A2').lower()}, calibration_samples: 4,
              tolerances: {{audio_int8_max_esr: 1.0}}}}
""")
    summary = run(cfg)
    run_dir = Path(summary["run_dir"])
    nf = load_nam(run_dir / "model.nam")
    assert nf.version == version
    trained = create_model(model_name)
    load_task_weights(trained, run_dir / "checkpoints" / "best.ckpt")
    loaded = model_from_nam(nf)
    x = np.random.default_rng(1).standard_normal(8000).astype(np.float32) * 0.3
    if model_name != "NAM_A2":
        assert nf.architecture == "WaveNet" and torch.equal(render(loaded, x), render(trained, x))
        return

    raw = json.loads((run_dir / "model.nam").read_text())
    assert raw["architecture"] == "SlimmableContainer" and raw["weights"] == []
    assert [s["max_value"] for s in raw["config"]["submodels"]] == [0.5, 1.0]
    assert [(s["model"]["version"], len(s["model"]["weights"])) for s in raw["config"]["submodels"]] == \
        [("0.7.0", 1871), ("0.7.0", 12146)]
    for slim in (0.0, 1.0):  # the plugin's size knob: lite, full
        loaded.set_slim(slim)
        trained.set_slim(slim)
        assert torch.equal(render(loaded, x), render(trained, x)), slim
    assert not torch.equal(render(trained, x), render(trained.submodels[0], x))  # the two sizes differ

    val = summary["validation"]
    assert set(val["submodels"]) == {"lite", "full"} and val["submodels"]["full"] == pytest.approx(val["esr"])
    assert np.isfinite(val["submodels"]["lite"])
    comp = summary["compilation"]
    assert sorted(comp["not_available"]) == sorted(TFLITE_ROWS)
    assert all("no streaming TFLite twin" in why and "LeakyReLU" in why for why in comp["not_available"].values())
    assert [r["artifact"] for r in comp["rows"]] == ["PyTorch float", "ONNX float", "ONNX int8"]
    assert all("error" not in r for r in comp["rows"])
    assert summary["verification"]["status"] == "PASS"
    assert not (run_dir / "model_stream_float.tflite").exists()
    report = (run_dir / "report.md").read_text()
    assert "| TFLite int8 (TFLM) | TFLite Micro interpreter | not available |" in report
    assert "| ESR of submodel lite |" in report and "| ESR of submodel full |" in report


def test_asking_for_an_export_the_model_cannot_have_fails_before_the_run_folder(tmp_path, capsys):
    cfg = tmp_path / "audio.yaml"
    cfg.write_text(f"""
common: {{task_type: amp_modelling, modality: audio, projects_path: {tmp_path / 'projects'}, run_name: r,
         verbose: false}}
dataset: {{name: nam_capture, generated_seconds: {SECONDS}, ny: 2048}}
training: {{model_name: NAM_A2, epochs: 1, accelerator: cpu}}
compilation: {{enable: true, exporters: [onnx, tflite]}}
""")
    capsys.readouterr()
    assert cli(["run", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("modelmaker: error: compilation.exporters: tflite is not available for NAM_A2: no streaming "
                          "TFLite twin") and err.count("\n") == 1
    assert not (tmp_path / "projects" / "r").exists()
