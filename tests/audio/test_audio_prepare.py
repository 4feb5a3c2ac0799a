"""Audio ``prepare``: the model and its device check before the run folder (one device check for every model, strict
in every modality, one ``device`` key in summary.json), and compile-only from a trained checkpoint or a .nam file
(``training.enable: false`` + ``compilation.model_path``) reproducing the trained model's validation ESR."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelmaker.cli import main as cli
from modelmaker.runner import run

SECONDS = 6.0
TINY = "{model_name: NAM_WaveNet, model_args: {channels: [3, 2], dilations: [[1, 2, 4], [8, 1]]}, epochs: 1, " \
       "batch_size: 8, accelerator: cpu, lr_scheduler: exponential, learning_rate: 0.004}"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYVERSE_CACHE", str(tmp_path / "cache"))


def _config(tmp_path: Path, name: str, run_name: str, *, common: str = "", training: str = TINY,
            compilation: str = "{enable: false}") -> Path:
    path = tmp_path / name
    path.write_text(f"""
common: {{task_type: amp_modelling, modality: audio, projects_path: {tmp_path / 'projects'}, run_name: {run_name},
         verbose: false{', ' + common if common else ''}}}
dataset: {{name: nam_capture, generated_seconds: {SECONDS}, ny: 4096}}
training: {training}
compilation: {compilation}
""")
    return path


def _folders(tmp_path: Path) -> list[str]:
    projects = tmp_path / "projects"
    return sorted(p.name for p in projects.iterdir()) if projects.is_dir() else []


def test_strict_audio_device_check_fails_before_the_run_folder(tmp_path, capsys):
    """The issue's case: NAM_WaveNet_standard on nam-pedal-lite with compilation.strict: exit 2, no run folder, the
    budget named; `modelmaker check` says the same."""
    cfg = _config(tmp_path, "strict.yaml", "over", common="target_device: nam-pedal-lite",
                  training="{model_name: NAM_WaveNet_standard, epochs: 1, accelerator: cpu}",
                  compilation="{enable: true, strict: true, exporters: [onnx]}")
    capsys.readouterr()
    assert cli(["run", str(cfg)]) == 2
    err = capsys.readouterr().err
    # the MAC budget, and (tinyverse.devices.latency) a block that misses its real-time deadline
    assert err.startswith("modelmaker: error: NAM_WaveNet_standard does not fit nam-pedal-lite (2 violations; ")
    assert "  - MACs/sample: 13,321 over the 1,000 budget of nam-pedal-lite" in err
    assert _folders(tmp_path) == []

    assert cli(["check", "NAM_WaveNet_standard", "--device", "nam-pedal-lite"]) == 1
    out = capsys.readouterr().out
    assert "does not fit nam-pedal-lite" in out and "MACs/sample: 13,321 over the 1,000 budget" in out
    assert cli(["check", "NAM_WaveNet_nano", "--device", "nam-pedal-lite"]) == 0


def test_non_strict_keeps_the_run_and_records_the_device_under_one_key(tmp_path):
    """strict: false trains anyway; the pre-training check is summary['device'] (what the report, the run command
    and the strict check after the report read), device_check.md/.json are in the folder."""
    cfg = _config(tmp_path, "loose.yaml", "loose", common="target_device: nam-pedal-lite",
                  training=TINY.replace("channels: [3, 2]", "channels: [12, 6]"),  # 2,227 MACs/sample
                  compilation="{enable: false, strict: false}")
    summary = run(cfg)
    run_dir = Path(summary["run_dir"])
    assert "device_check" not in summary
    dev = summary["device"]
    assert dev["device"] == "nam-pedal-lite" and dev["fits"] is False
    assert (dev["totals"]["macs_per_sample"], dev["budgets"]["macs_per_sample"]) == (2_227, 1_000)
    assert dev["violations"][0] == ("MACs/sample: 2,227 over the 1,000 budget of nam-pedal-lite → pick a model under "
                                    "1,000 MACs/sample (a smaller preset)")
    assert len(dev["violations"]) == 2 and dev["violations"][1].startswith("real time: no — a block of 64 samples")
    assert json.loads((run_dir / "summary.json").read_text())["device"]["fits"] is False
    assert "DOES NOT FIT" in (run_dir / "device_check.md").read_text()
    assert json.loads((run_dir / "device_check.json").read_text())["violations"] == dev["violations"]
    assert "**NAM_WaveNet on nam-pedal-lite: DOES NOT FIT**" in (run_dir / "report.md").read_text()


def test_compile_only_from_the_trained_checkpoint_and_the_nam_file(tmp_path, capsys):
    """A 1-epoch run, then compile-only from its best.ckpt (the model found in the run's config.yaml) and from its
    model.nam: nothing is trained and the validation ESR is the trained run's."""
    trained = run(_config(tmp_path, "train.yaml", "trained", common="target_device: pocket-master"))
    run_dir = Path(trained["run_dir"])
    esr = trained["validation"]["esr"]
    assert trained["device"]["fits"] is True and trained["device"]["device"] == "pocket-master"
    ckpt = run_dir / "checkpoints" / "best.ckpt"

    from_ckpt = run(_config(tmp_path, "ckpt.yaml", "from_ckpt", training="{enable: false}",
                            compilation=f"{{enable: true, exporters: [onnx], model_path: {ckpt}}}"))
    out_dir = Path(from_ckpt["run_dir"])
    assert from_ckpt["validation"]["esr"] == pytest.approx(esr, rel=1e-6)
    assert "training" not in from_ckpt and not (out_dir / "checkpoints").exists()
    assert from_ckpt["model"]["source"] == str(ckpt) and from_ckpt["model"]["name"] == "NAM_WaveNet"
    assert from_ckpt["model"]["args"] == {"channels": [3, 2], "dilations": [[1, 2, 4], [8, 1]]}
    assert from_ckpt["compilation"]["onnx"]["esr_vs_target"] == pytest.approx(esr, rel=1e-3)
    assert json.loads((out_dir / "status.json").read_text())["state"] == "complete"

    from_nam = run(_config(tmp_path, "nam.yaml", "from_nam", training="{enable: false}",
                           compilation=f"{{model_path: {run_dir / 'model.nam'}}}"))
    assert from_nam["validation"]["esr"] == pytest.approx(esr, rel=1e-6)
    assert from_nam["model"]["source"] == str(run_dir / "model.nam")

    # weights of another model: one line naming the checkpoint and the model, before a run folder
    before = _folders(tmp_path)
    bad = _config(tmp_path, "bad.yaml", "bad", training="{enable: false, model_name: NAM_WaveNet_nano}",
                  compilation=f"{{model_path: {ckpt}}}")
    capsys.readouterr()
    assert cli(["run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("modelmaker: error: compilation.model_path: the weights of best.ckpt do not fit "
                          "NAM_WaveNet_nano built from training.model_name NAM_WaveNet_nano: ")
    assert err.count("\n") == 1 and _folders(tmp_path) == before


@pytest.mark.parametrize("training,compilation,needle", [
    (TINY, "{model_path: MODEL}", "compilation.model_path compiles a model you already have: set training.enable: "
                                  "false"),
    ("{enable: false, model_name: NAM_WaveNet_nano}", "{enable: false}",
     "training.enable is false and compilation.model_path is not set: the run would evaluate and export an "
     "untrained network"),
    ("{enable: false}", "{model_path: MODEL}", "compilation.model_path: model.nam is a 44100 Hz model, the capture "
                                               "is 48000 Hz"),
    ("{enable: false}", "{model_path: NOWHERE}", "compilation.model_path: NOWHERE not found"),
])
def test_compile_only_errors_before_the_run_folder(tmp_path, capsys, training, compilation, needle):
    from tinyverse.audio.nam import save_nam
    from tinyverse.models import create_model

    model_file = tmp_path / "model.nam"
    save_nam(create_model("NAM_WaveNet_nano"), model_file, sample_rate=44_100)
    missing = tmp_path / "gone" / "best.ckpt"
    compilation = compilation.replace("MODEL", str(model_file)).replace("NOWHERE", str(missing))
    cfg = _config(tmp_path, "c.yaml", "c", training=training, compilation=compilation)
    capsys.readouterr()
    assert cli(["run", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("modelmaker: error: " + needle.replace("NOWHERE", str(missing))), err
    assert err.count("\n") == 1 and _folders(tmp_path) == []


def test_models_lists_every_nam_preset_with_its_cost_and_fit(capsys):
    """`modelmaker models --device pocket-master`: every audio model with params, MACs/sample, flash/RAM estimate
    and fit, the figures of the device check a run does."""
    from tinyverse.audio.models import AUDIO_MODELS
    from tinyverse.devices import check_model
    from tinyverse.models import create_model
    from tinyverse.registry import MODEL_REGISTRY

    capsys.readouterr()
    assert cli(["models", "--device", "pocket-master", "--include", "NAM_*"]) == 0
    lines = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("NAM_")}
    listed = {n for n in MODEL_REGISTRY.names() if n.startswith("NAM_")}  # presets and knob models
    assert set(lines) == listed and set(AUDIO_MODELS) < listed
    for name in sorted(listed):
        report = check_model(create_model(name), "pocket-master", model_name=name)
        t = report.totals
        assert lines[name][2:6] + lines[name][7:8] == [
            f"{t['params']:,}", f"{t['macs_per_sample']:,}/sample", f"{t['flash_bytes']:,}", f"{t['ram_bytes']:,}",
            "fits" if report.fits else "no:"], name
        assert t["macs_per_sample"] > 0 and t["flash_bytes"] > 0 and t["ram_bytes"] > 0
    assert lines["NAM_WaveNet_standard"][3] == "13,321/sample" and lines["NAM_WaveNet_standard"][7] == "fits"
    assert cli(["models", "--device", "nam-pedal-lite", "--include", "NAM_WaveNet_*", "--fits-only"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith("NAM_")] == \
        ["NAM_WaveNet_nano"]
