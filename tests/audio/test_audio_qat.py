"""QAT of audio models: ``training.quantization: qat`` in an audio run, and ``qat_finetune`` on NAM's WaveNet and
LSTM (weights per channel, activations and input per tensor; the fake-quant is gone afterwards)."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile as sf
import torch

from tinyverse.audio import esr
from tinyverse.audio.export import export_streaming_onnx, quantize_streaming_onnx
from tinyverse.audio.nam import load_nam, model_from_nam, render
from tinyverse.audio.stream import onnx_stream_render
from tinyverse.audio.training import AmpModellingTask
from tinyverse.quantization import qat_finetune, quantized_weights

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "nam"
NY = 2048
BATCH = 4


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYVERSE_CACHE", str(tmp_path / "cache"))


def _teacher_data(model):
    """Training windows of the guitar fixture and, as targets, the model's own float output: the model is exactly
    at the optimum of its float loss, so only the int8 fake-quant can move its weights. (Computed in batches of
    the fine-tuning's size: a conv's last bits may depend on the batch size, and the STFT term's log-magnitude L1
    has a full-size gradient for any difference.)"""
    x, _ = sf.read(FIXTURES / "input_guitar.wav", dtype="float32")
    ctx = model.receptive_field - 1
    X = np.stack([x[s - ctx:s + NY] for s in range(ctx, len(x) - NY, NY)])[:24]
    with torch.no_grad():
        Y = np.concatenate([model(torch.as_tensor(X[s:s + BATCH])).numpy() for s in range(0, len(X), BATCH)])
    return x, X, Y


@pytest.mark.filterwarnings("ignore:.*the `self.trainer` reference is not registered")
@pytest.mark.parametrize("name,weights", [
    ("wavenet", ("layer_arrays.0.layers.0.conv.weight", "layer_arrays.1.head_rechannel.weight")),
    ("lstm", ("core.weight_ih_l0", "core.weight_hh_l0", "head.weight")),
])
def test_qat_moves_an_exact_float_model_only_through_int8_noise_and_leaves_a_plain_float_model(name, weights):
    torch.manual_seed(0)
    teacher = model_from_nam(FIXTURES / f"{name}.nam")
    _, X, Y = _teacher_data(teacher)
    path = {mod: prefix for prefix, mod in teacher.named_modules()}
    rounded = {f"{path[mod]}.{n}" for mod, n in quantized_weights(teacher)}
    assert set(weights) <= rounded  # the LSTM's gate weights are on the int8 grid too, not only its head
    student = copy.deepcopy(teacher)
    task = AmpModellingTask(student)
    task.trainer = None
    # the float loss (the task's own training step) has a zero gradient here: float fine-tuning cannot move it
    task.training_step((torch.as_tensor(X[4:8]), torch.as_tensor(Y[4:8])), 0).backward()
    assert all(p.grad is None or not p.grad.any() for p in student.parameters())
    student.zero_grad(set_to_none=True)
    before = {k: v.clone() for k, v in student.state_dict().items()}

    qat_finetune(student, (X, Y), (X[:BATCH], Y[:BATCH]), epochs=1, lr=1e-4, batch_size=BATCH, task=task,
                 quantize_input=True, observer="minmax")
    after = student.state_dict()
    assert set(after) == set(before)  # no parametrizations, no observers left in the model
    for w in weights:  # conv / linear / LSTM weights (the LSTM's through its weight fake-quant)
        assert not torch.equal(after[w], before[w]), w
    assert student.qat_history[0]["val_loss"] > 1e-7  # measured under the fake-quant (the float model scores 0)
    # no hook left: the model computes what a fresh model with its weights computes
    fresh = model_from_nam(FIXTURES / f"{name}.nam")
    fresh.load_state_dict(after)
    with torch.no_grad():
        assert torch.equal(student(torch.as_tensor(X[:2])), fresh(torch.as_tensor(X[:2])))


def test_the_fake_quant_of_a_wavenet_models_its_onnx_int8_error(tmp_path):
    """The error QAT trains against is the deployed one: the fake-quant validation ESR of the fixture WaveNet (one
    short QAT epoch at a tiny learning rate) is within 2x of its onnxruntime int8 export's ESR on the same audio."""
    teacher = model_from_nam(FIXTURES / "wavenet.nam")
    x, X, Y = _teacher_data(teacher)
    target = render(teacher, x).numpy().astype(np.float32)
    onnx_path = export_streaming_onnx(teacher, tmp_path / "m.onnx", 512)
    int8_path = quantize_streaming_onnx(teacher, onnx_path, tmp_path / "m_int8.onnx", x, 512, 32)
    deployed = esr(target, onnx_stream_render(int8_path, teacher, x, 512))
    assert deployed > 1e-5  # int8 costs something measurable

    student = copy.deepcopy(teacher)
    padded = np.concatenate([np.zeros(teacher.receptive_field - 1, np.float32), x])[None]
    qat_finetune(student, (X, Y), (padded, target[None]), epochs=1, lr=1e-6, batch_size=BATCH,
                 task=AmpModellingTask(student), quantize_input=True, observer="minmax")
    simulated = student.qat_history[0]["val_loss"]
    assert 0.5 * deployed < simulated < 2 * deployed, (simulated, deployed)


def test_audio_run_with_qat(tmp_path):
    """training.quantization: qat in an audio run: QAT after the float model is tested, model_qat.pt, the float ESR
    before and after QAT and the int8 ESR in the summary and report; the exports are the plain float QAT model (the
    float ONNX matches PyTorch, the int8 ONNX is onnxruntime's PTQ of it); model.nam stays the float model."""
    from modelmaker.runner import run
    from tinyverse.models import create_model
    from tinyverse.training import load_task_weights

    cfg = tmp_path / "audio.yaml"
    cfg.write_text(f"""
common: {{task_type: amp_modelling, modality: audio, projects_path: {tmp_path / 'projects'}, run_name: q, verbose: false}}
dataset: {{name: nam_capture, generated_seconds: 6, ny: 4096}}
training: {{model_name: NAM_WaveNet_nano, epochs: 1, batch_size: 8, learning_rate: 0.004, lr_scheduler: exponential,
           accelerator: cpu, quantization: qat, qat_epochs: 2}}
compilation: {{enable: true, exporters: [onnx, onnx_int8], calibration_samples: 16}}
""")
    summary = run(cfg)
    run_dir = Path(summary["run_dir"])
    q = summary["quantization"]
    rows = {r["artifact"]: r for r in summary["compilation"]["rows"]}
    assert q["mode"] == "qat" and q["metric"] == "esr" and q["qat_epochs"] == 2
    assert q["float_metric"] == pytest.approx(summary["validation"]["esr"])  # before QAT
    assert len(q["qat_fake_quant_esr"]) == 2 and all(np.isfinite(q["qat_fake_quant_esr"]))
    assert q["qat_float_metric"] != pytest.approx(q["float_metric"], rel=1e-6)  # QAT changed the model
    assert rows["PyTorch float"]["esr_vs_target"] == pytest.approx(q["qat_float_metric"], rel=1e-5)
    assert q["int8_artifact"] == "ONNX int8" and q["int8_metric"] == rows["ONNX int8"]["esr_vs_target"]
    assert q["qat_float_delta"] == pytest.approx(q["int8_metric"] - q["qat_float_metric"])
    assert q["delta"] == pytest.approx(q["int8_metric"] - q["float_metric"])

    # model_qat.pt: the fine-tuned float weights, a plain state dict of the model, not the trained checkpoint's
    qat_weights = torch.load(run_dir / "model_qat.pt", weights_only=True)
    model = create_model("NAM_WaveNet_nano")
    assert set(qat_weights) == set(model.state_dict())
    trained = create_model("NAM_WaveNet_nano")
    load_task_weights(trained, run_dir / "checkpoints" / "best.ckpt")
    assert any(not torch.equal(v, trained.state_dict()[k]) for k, v in qat_weights.items())
    model.load_state_dict(qat_weights)
    # the exports are that model without any fake-quant: the float ONNX has no quantize ops and matches PyTorch
    assert rows["ONNX float"]["esr_vs_torch"] < 1e-8 and rows["ONNX float"]["verdict"]["status"] == "PASS"
    ops = {n.op_type for n in onnx.load(str(run_dir / "model_stream.onnx")).graph.node}
    assert not ops & {"QuantizeLinear", "DequantizeLinear", "FakeQuantize"}
    assert "QuantizeLinear" in {n.op_type for n in onnx.load(str(run_dir / "model_stream_int8.onnx")).graph.node}
    x = np.random.default_rng(0).standard_normal(6000).astype(np.float32) * 0.3
    y = onnx_stream_render(run_dir / "model_stream.onnx", model, x, 512)
    assert np.abs(y - render(model, x).numpy()).max() < 1e-5
    # model.nam is the float model the validation ESR was measured on
    assert torch.equal(render(model_from_nam(load_nam(run_dir / "model.nam")), x), render(trained, x))

    report = (run_dir / "report.md").read_text()
    section = report.split("## Quantization", 1)[1].split("\n## ", 1)[0]
    assert "| qat_float_metric |" in section and "| int8_metric |" in section and "| qat_fake_quant_esr |" in section
    assert "int8 esr (ONNX int8)" in report
