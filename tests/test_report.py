"""One report per run for every modality: report.md and a self-contained report.html with the headline metric and
its verdict, the verification status and table, the device fit, the run state, every artifact, the plots embedded
and the listening files as players."""
from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import soundfile as sf
import yaml

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from modelmaker.report import render_report, write_report  # noqa: E402
from modelmaker.report_html import render_html  # noqa: E402


class Page(HTMLParser):
    """Every start tag with its attributes, and the text, of an HTML page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def attrs(self, tag: str, name: str) -> list[str]:
        return [a[name] for t, a in self.tags if t == tag and a.get(name) is not None]

    def urls(self) -> list[str]:
        return [v for _, a in self.tags for k, v in a.items() if k in ("src", "href") and v]


def png(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(path, np.random.default_rng(seed).random((4, 6)))
    return path


def wav(path: Path, seconds: float = 0.05, sr: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr, subtype="FLOAT")
    return path


def decoded(uri: str, mime: str) -> bytes:
    prefix = f"data:{mime};base64,"
    assert uri.startswith(prefix), uri[:40]
    return base64.b64decode(uri[len(prefix):])


def section(md: str, name: str) -> str:
    return md.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]


def timeseries_summary(run_dir: Path) -> dict:
    return {
        "run_dir": str(run_dir), "config": "cls.yaml", "modality": "timeseries", "task_type": "classification",
        "dataset": {"name": "ItalyPowerDemand", "input_shape": [1, 24], "num_classes": 2},
        "model": {"name": "CLS_500_NPU", "params": 412},
        "test": {"accuracy": 0.9123, "f1_macro": 0.9, "headline": "accuracy"},
        "quantization": {"metric": "accuracy", "float_metric": 0.9123, "int8_metric": 0.9051,
                         "int8_artifact": "TFLite int8 (TFLM)"},
        "compilation": {"metric": "accuracy", "verification": [
            {"artifact": "PyTorch float", "status": "PASS", "metric": 0.9123},
            {"artifact": "TFLite int8 (TFLM)", "status": "PASS", "metric": 0.9051, "arena_bytes": 2048}]},
        "verification": {"status": "PASS", "failures": []},
        "device": {"model": "CLS_500_NPU", "device": "F28P55", "fits": True, "violations": [], "notes": [],
                   "totals": {"flash_bytes": 1500}, "budgets": {"flash_bytes": 65536}},
        "wall_time_s": 12.5, "state": "running", "report": "report.md",
    }


def audio_summary(run_dir: Path) -> dict:
    """What modelmaker/ai_modules/audio/runner.py writes, device result under its earlier key device_check."""
    verdict_ok = {"status": "PASS", "rule": "ESR vs PyTorch ≤ 1e-06", "checks": [], "failures": []}
    verdict_bad = {"status": "FAIL", "rule": "ESR vs PyTorch ≤ 0.1", "checks": [],
                   "failures": ["ESR vs PyTorch 0.5 ≤ 0.1"]}
    return {
        "run_dir": str(run_dir), "config": "amp.yaml", "modality": "audio", "task_type": "amp_modelling",
        "dataset": {"name": "nam_capture", "sample_rate": 48000, "seconds": 6.0, "validation_seconds": 1.0},
        "model": {"name": "NAM_WaveNet", "params": 900, "macs_per_sample": 850, "receptive_field": 64},
        "training": {"epochs_run": 1},
        "validation": {"esr": 0.0234, "verdict": "Not bad!", "seconds": 1.0},
        "nam": {"path": "model.nam", "weights": 901, "stream_esr_vs_target": 0.0235, "render_rtf": 0.0123},
        "artifacts": ["model.nam", "listening/input.wav", "listening/target.wav", "listening/prediction.wav",
                      "waveforms.png", "spectra.png"],
        "compilation": {"block_size": 512, "rows": [
            {"artifact": "ONNX float", "file": "model_stream.onnx", "runtime": "onnxruntime", "kind": "float",
             "esr_vs_torch": 1e-12, "esr_vs_target": 0.0234, "max_abs_diff": 1e-7, "rtf": 0.02, "verdict": verdict_ok},
            {"artifact": "ONNX int8", "file": "model_stream_int8.onnx", "runtime": "onnxruntime", "kind": "int8",
             "esr_vs_torch": 0.5, "esr_vs_target": 0.6, "max_abs_diff": 0.3, "rtf": 0.03, "verdict": verdict_bad},
            {"artifact": "TFLite int8 (TFLM)", "file": "model_stream_int8.tflite", "runtime": "tflm", "kind": "int8",
             "error": "export failed: RuntimeError: no converter",
             "verdict": {"status": "FAIL", "rule": "-", "checks": [],
                         "failures": ["failed to export or run: export failed: RuntimeError: no converter"]}}]},
        "verification": {"status": "FAIL", "failures": ["ONNX int8: ESR vs PyTorch 0.5 ≤ 0.1",
                                                        "TFLite int8 (TFLM): failed to export or run"]},
        "device_check": {"model": "NAM_WaveNet", "device": "daisy_seed", "fits": False,
                         "violations": ["MACs per second 40.8M over the budget 30M"], "notes": []},
        "wall_time_s": 30.0, "state": "complete",
    }


def audio_folder(run_dir: Path) -> Path:
    for name in ("input", "target", "prediction"):
        wav(run_dir / "listening" / f"{name}.wav")
    png(run_dir / "waveforms.png", 1)
    png(run_dir / "spectra.png", 2)
    png(run_dir / "loss_curves.png", 3)
    (run_dir / "model.nam").write_text('{"version": "0.5.4"}')
    (run_dir / "model_stream.onnx").write_bytes(b"\0" * 10)
    return run_dir


def test_timeseries_report_head_sections_and_artifacts(tmp_path):
    run_dir = tmp_path / "cls_run"
    png(run_dir / "loss_curves.png")
    png(run_dir / "confusion_matrix.png", 1)
    (run_dir / "model.onnx").write_bytes(b"onnx")
    (run_dir / "logs" / "version_0").mkdir(parents=True)
    (run_dir / "logs" / "version_0" / "metrics.csv").write_text("epoch\n0\n")
    path = write_report(run_dir, timeseries_summary(run_dir))
    md = path.read_text()
    head = md.split("\n## ", 1)[0]
    assert "| test accuracy | 0.9123 |" in head
    assert "| int8 accuracy (TFLite int8 (TFLM)) | 0.9051 |" in head
    assert "| verification | PASS |" in head and "| device | fits F28P55 |" in head
    assert "| state | all stages ran (status.json holds the final state) |" in head
    assert "**CLS_500_NPU on F28P55: fits**" in section(md, "Device")
    assert "| flash_bytes | 1,500 | 65,536 |" in section(md, "Device")
    assert "| TFLite int8 (TFLM) | PASS | 0.9051 |" in section(md, "Verification")
    files = section(md, "Artifacts")
    for f in ("loss_curves.png", "confusion_matrix.png", "model.onnx"):
        assert f"| {f} |" in files
    assert "metrics.csv" not in files and "report.md" not in files  # Lightning logs; the report itself
    assert "![loss_curves.png](<loss_curves.png>)" in section(md, "Plots")

    page_text = (run_dir / "report.html").read_text()
    page = Page(page_text)
    assert "<img src=\"data:image/png;base64," in page_text
    images = {a.get("alt"): a["src"] for t, a in page.tags if t == "img"}
    for f in ("loss_curves.png", "confusion_matrix.png"):
        assert decoded(images[f], "image/png") == (run_dir / f).read_bytes()
    text = " ".join(page.text)
    assert "test accuracy" in text and "0.9123" in text and "fits F28P55" in text
    assert any(t == "table" for t, _ in page.tags) and "<td>PASS</td>" in page_text
    assert not any(u.startswith(("http://", "https://", "//")) for u in page.urls())


def test_audio_report_from_the_summary_alone(tmp_path):
    """No blocks from the modality: ESR and verdict, the .nam file, the streaming table with its FAIL rows, the
    device check (under audio's earlier key) and the listening files all come from the summary."""
    run_dir = audio_folder(tmp_path / "amp_run")
    summary = audio_summary(run_dir)
    md = write_report(run_dir, summary).read_text()
    head = md.split("\n## ", 1)[0]
    assert "| validation ESR | 0.0234 |" in head and "| verdict | Not bad! |" in head
    assert "| verification | FAIL |" in head and "**VERIFICATION FAILED**" in head
    assert "- ONNX int8: ESR vs PyTorch 0.5 ≤ 0.1" in head
    assert "| device | DOES NOT FIT daisy_seed (1 violation(s)) |" in head
    assert "- MACs per second 40.8M over the budget 30M" in head and "| state | complete |" in head
    assert "| ESR | 0.0234 |" in section(md, "Validation") and "| verdict | Not bad! |" in section(md, "Validation")
    nam = section(md, "NAM file")
    assert "[model.nam](<model.nam>)" in nam and "| weights | 901 |" in nam and "| 0.0235 |" in nam
    assert "| render real-time factor (s per s of audio) | 0.0123 |" in nam
    table = section(md, "Verification")
    assert "blocks of 512 samples" in table
    assert "| ONNX float | onnxruntime | PASS | 1.00e-12 | 0.0234 |" in table
    assert "| ONNX int8 | onnxruntime | **FAIL**: ESR vs PyTorch 0.5 ≤ 0.1 |" in table
    assert "| TFLite int8 (TFLM) | tflm | **FAIL**: failed to export or run: export failed" in table
    assert "**NAM_WaveNet on daisy_seed: DOES NOT FIT**" in section(md, "Device")
    listening = section(md, "Listening files")
    for name in ("input", "target", "prediction"):
        assert f"(<listening/{name}.wav>)" in listening
    assert "![waveforms.png](<waveforms.png>)" in listening and "![spectra.png](<spectra.png>)" in listening
    plots = section(md, "Plots")  # the other PNGs, not the two already under the listening files
    assert "loss_curves.png" in plots and "waveforms.png" not in plots
    files = section(md, "Artifacts")
    for f in summary["artifacts"] + ["loss_curves.png", "model_stream.onnx"]:
        assert f"| {f} |" in files, f

    page_text = (run_dir / "report.html").read_text()
    page = Page(page_text)
    assert page_text.count("<audio controls") == 3 and "data:audio/wav;base64," in page_text
    players = page.attrs("audio", "src")
    assert [decoded(s, "audio/wav") for s in players] == \
        [(run_dir / "listening" / f"{n}.wav").read_bytes() for n in ("input", "target", "prediction")]
    assert "listening/prediction.wav: what the model plays for the same input" in " ".join(page.text)
    images = {a.get("alt"): a["src"] for t, a in page.tags if t == "img"}
    assert set(images) == {"waveforms.png", "spectra.png", "loss_curves.png"}
    for name, src in images.items():
        assert decoded(src, "image/png") == (run_dir / name).read_bytes()
    assert page.attrs("a", "href") == ["model.nam"]  # the .nam file stays a link beside the report
    assert not any(u.startswith(("http://", "https://", "//")) for u in page.urls())
    assert "validation ESR" in " ".join(page.text) and "Not bad!" in " ".join(page.text)


def test_device_wins_over_device_check(tmp_path):
    summary = audio_summary(tmp_path)
    summary["device"] = {"model": "NAM_WaveNet", "device": "hoth", "fits": True, "violations": [], "notes": []}
    md = render_report(summary)
    assert "| device | fits hoth |" in md and "daisy_seed" not in md


def test_audio_over_the_embed_limit_stays_a_link(tmp_path):
    run_dir = audio_folder(tmp_path / "run")
    size = (run_dir / "listening" / "input.wav").stat().st_size
    md = render_report(audio_summary(run_dir), run_dir)
    page_text = render_html(md, run_dir, audio_limit=2 * size)
    page = Page(page_text)
    assert len(page.attrs("audio", "src")) == 2  # input and target fit; prediction does not
    assert "listening/prediction.wav" in page.attrs("a", "href")
    assert "not embedded: the report holds at most 10 MB of audio" in page_text


def test_markup_in_names_and_errors_is_text(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    summary = timeseries_summary(run_dir)
    summary["run_dir"] = str(tmp_path / "<script>alert(1)&")  # a folder name holds no "/": no closing tag
    summary["state"], summary["error"] = "failed", "ValueError: x < 0 & y > 1 <img src=x onerror=alert(2)>"
    summary["verification"] = {"status": "FAIL", "failures": ["ONNX int8: <b>bad</b>"]}
    write_report(run_dir, summary)
    page_text = (run_dir / "report.html").read_text()
    page = Page(page_text)
    assert "script" not in {t for t, _ in page.tags} and "b" not in {t for t, _ in page.tags}
    assert [a.get("src") for t, a in page.tags if t == "img"] == []  # no tag from the error message
    assert "<title>Run report: &lt;script&gt;alert(1)&amp;</title>" in page_text
    assert "<h1>Run report: &lt;script&gt;alert(1)&amp;</h1>" in page_text
    text = "".join(page.text)
    assert "x < 0 & y > 1 <img src=x onerror=alert(2)>" in text and "ONNX int8: <b>bad</b>" in text
    assert "| state | failed |" in (run_dir / "report.md").read_text()


def test_resumed_report_has_its_own_html(tmp_path):
    """A resumed run's report_resumed.md gets report_resumed.html; the first attempt's pair is left as it was and
    listed among the artifacts."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    summary = timeseries_summary(run_dir)
    write_report(run_dir, summary)
    first = (run_dir / "report.html").read_bytes()
    summary["test"]["accuracy"] = 0.95
    path = write_report(run_dir, {**summary, "report": "report_resumed.md"}, name="report_resumed.md")
    assert path == run_dir / "report_resumed.md" and (run_dir / "report_resumed.html").is_file()
    assert (run_dir / "report.html").read_bytes() == first
    md = path.read_text()
    assert "| test accuracy | 0.9500 |" in md
    files = section(md, "Artifacts")
    assert "| report.md |" in files and "| report.html |" in files and "report_resumed" not in files
    assert "0.9500" in (run_dir / "report_resumed.html").read_text()


def test_a_tiny_run_writes_report_html(tmp_path):
    """End to end: a one-epoch time-series run writes report.md and report.html with the test headline and its
    loss-curve and confusion-matrix plots inline."""
    from modelmaker.runner import run

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({
        "common": {"task_type": "classification", "modality": "timeseries", "run_name": "tiny",
                   "projects_path": str(tmp_path / "projects"), "seed": 0, "verbose": False},
        "dataset": {"name": "ucr", "ucr_name": "ItalyPowerDemand", "val_fraction": 0.2},
        "training": {"model_name": "CLS_500_NPU", "epochs": 1, "batch_size": 32, "accelerator": "cpu", "devices": 1},
        "compilation": {"enable": False},
    }, sort_keys=False))
    summary = run(cfg)
    run_dir = Path(summary["run_dir"])
    md = (run_dir / "report.md").read_text()
    headline = summary["test"]["headline"]
    value = re.search(rf"\| test {headline} \| ([0-9.]+) \|", md)
    assert value is not None and float(value.group(1)) == round(summary["test"][headline], 4)
    page_text = (run_dir / "report.html").read_text()
    page = Page(page_text)
    images = {a.get("alt"): a["src"] for t, a in page.tags if t == "img"}
    pngs = sorted(p.name for p in run_dir.glob("*.png"))
    assert "loss_curves.png" in pngs and sorted(images) == pngs
    for name, src in images.items():
        assert decoded(src, "image/png") == (run_dir / name).read_bytes()
    assert f"test {headline}" in " ".join(page.text)
    assert not any(u.startswith(("http://", "https://", "//")) for u in page.urls())


def test_a_tiny_audio_run_writes_report_html(tmp_path):
    """End to end on the audio runner's own summary: ESR and verdict at the head, the .nam file, and the three
    listening WAVs as players holding the files' bytes."""
    from modelmaker.runner import run

    cfg = tmp_path / "amp.yaml"
    cfg.write_text(yaml.safe_dump({
        "common": {"task_type": "amp_modelling", "modality": "audio", "run_name": "amp",
                   "projects_path": str(tmp_path / "projects"), "verbose": False},
        "dataset": {"name": "nam_capture", "generated_seconds": 6.0, "ny": 4096},
        "training": {"model_name": "NAM_WaveNet", "model_args": {"channels": [3, 2], "dilations": [[1, 2, 4], [8, 1]]},
                     "epochs": 1, "batch_size": 8, "accelerator": "cpu"},
        "compilation": {"enable": False},
    }, sort_keys=False))
    summary = run(cfg)
    run_dir = Path(summary["run_dir"])
    md = (run_dir / "report.md").read_text()
    head = md.split("\n## ", 1)[0]
    esr = re.search(r"\| validation ESR \| ([0-9.e+-]+) \|", head)
    assert esr is not None and float(esr.group(1)) == pytest.approx(summary["validation"]["esr"], rel=1e-3)
    assert f"| verdict | {summary['validation']['verdict']} |" in head
    assert "[model.nam](<model.nam>)" in section(md, "NAM file")
    page = Page((run_dir / "report.html").read_text())
    wavs = sorted(f for f in summary["artifacts"] if f.endswith(".wav"))
    assert len(wavs) == 3
    assert sorted(decoded(s, "audio/wav") for s in page.attrs("audio", "src")) == \
        sorted((run_dir / f).read_bytes() for f in wavs)
    images = {a.get("alt") for t, a in page.tags if t == "img"}
    assert images == {p.name for p in run_dir.glob("*.png")} >= {"waveforms.png", "spectra.png"}
