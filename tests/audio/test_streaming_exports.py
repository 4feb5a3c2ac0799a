"""Streaming exports of the audio models, each run block by block and compared with PyTorch.

Tiny models (receptive field 33, LSTM 2 x 6) and a fraction of a second of audio keep this fast; the
TFLite conversions run in a subprocess (one per model, float and int8 together).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tinyverse.audio import esr
from tinyverse.audio.nam import NAMLSTM
from tinyverse.audio.stream import OnnxStreamProcessor, StreamProcessor, process_file
from tinyverse.models import create_model

SR = 48_000


def _audio(n: int, seed: int = 0) -> np.ndarray:
    """Guitar-like test signal: decaying partials plus a little noise, peaks around 0.5."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    env = np.exp(-3 * (t % 0.25))
    x = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) / (k + 1) for k, f in enumerate((110, 220, 331, 445, 887)))
    return (0.25 * env * x + 0.01 * rng.standard_normal(n)).astype(np.float32)


def _tiny_wavenet(gated: bool = False) -> torch.nn.Module:
    torch.manual_seed(0)
    m = create_model("NAM_WaveNet", channels=[3, 2], dilations=[[1, 2, 4], [8, 1]], gated=gated)
    with torch.no_grad():  # a trained model's head is not tiny: make the output a signal, not ~1e-3 noise
        m.head_scale.fill_(0.5)
    return m.eval()


def _tiny_lstm() -> NAMLSTM:
    torch.manual_seed(0)
    m = NAMLSTM(hidden_size=6, num_layers=2)
    with torch.no_grad():
        m.initial_hidden.normal_(0, 0.1)
        m.initial_cell.normal_(0, 0.1)
    m.settle_initial_state(4_800)
    return m.eval()


@torch.no_grad()
def _torch_stream(model, x: np.ndarray) -> np.ndarray:
    """The reference: the whole signal at once from a zero history / the initial state."""
    return model(torch.as_tensor(x)[None], pad_start=True)[0].numpy()


# -- ONNX --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("block", [256, 100])
def test_lstm_streaming_onnx_matches_torch_block_by_block(tmp_path, block):
    from tinyverse.audio.export import export_streaming_onnx

    model = _tiny_lstm()
    path = export_streaming_onnx(model, tmp_path / "lstm.onnx", block_size=64)
    x = _audio(3_000)
    ref = _torch_stream(model, x)
    proc = OnnxStreamProcessor(path)  # kind, receptive field and initial state come from the file
    assert proc.stateful and proc.rf == 1
    y, _ = process_file(proc, x, block)
    assert esr(ref, y) < 1e-10 and np.abs(ref - y).max() < 1e-5
    # state carried across blocks, not reset: a fresh start at the second block gives something else
    fresh = OnnxStreamProcessor(path)
    y2, _ = process_file(fresh, x[block:], block)
    assert np.abs(y2[:50] - ref[block:block + 50]).max() > 1e-4
    # dynamic batch: three streams at once, a batch size other than the trace's
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    h = np.repeat(model.initial_hidden.detach().numpy()[None], 3, 0)
    c = np.repeat(model.initial_cell.detach().numpy()[None], 3, 0)
    yb, hb, cb = sess.run(None, {"x": np.stack([x[:500]] * 3), "h": h, "c": c})
    assert yb.shape == (3, 500) and hb.shape == (3, 2, 6) and np.abs(yb[2] - ref[:500]).max() < 1e-5


@pytest.mark.parametrize("kind", ["wavenet", "gated", "linear"])
def test_context_streaming_onnx_float_and_int8(tmp_path, kind):
    from tinyverse.audio.export import export_streaming_onnx, quantize_streaming_onnx

    if kind == "linear":
        torch.manual_seed(0)
        model = create_model("NAM_Linear", receptive_field=24, bias=True)
        with torch.no_grad():
            model.conv.weight.normal_(0, 0.3)
    else:
        model = _tiny_wavenet(gated=kind == "gated")
    x = _audio(4_000)
    ref = _torch_stream(model, x)
    path = export_streaming_onnx(model, tmp_path / "m.onnx", block_size=64)
    meta = json.loads(__import__("onnx").load(str(path)).metadata_props[0].value)
    assert meta["kind"] == "context" and meta["receptive_field"] == model.receptive_field
    y, _ = process_file(OnnxStreamProcessor(path), x, 128)
    assert esr(ref, y) < 1e-10
    q = quantize_streaming_onnx(model, path, tmp_path / "m_int8.onnx", _audio(20_000, seed=1), block_size=64,
                                num_calib=16)
    yq, _ = process_file(OnnxStreamProcessor(q), x, 128)
    e = esr(ref, yq)
    assert np.isfinite(e) and 0 < e < 0.05, e  # int8 is not exact, but close to the float model


# -- TFLite --------------------------------------------------------------------------------------------------

def test_wavenet_streaming_tflite_float_and_int8(tmp_path):
    from tinyverse.audio.tflite import TFLiteStreamProcessor, export_streaming_tflite

    model = _tiny_wavenet(gated=True)
    info = export_streaming_tflite(model, _audio(20_000, seed=1), block_size=128, float_path=tmp_path / "f.tflite",
                                   int8_path=tmp_path / "q.tflite", num_calib=16)
    assert not info["errors"] and info["twin_max_abs_diff"] < 1e-5
    x = _audio(2_000)
    ref = _torch_stream(model, x)
    f = TFLiteStreamProcessor(tmp_path / "f.tflite")
    assert (f.block, f.rf) == (128, model.receptive_field)
    assert "CONV_2D" in f.ops and "TRANSPOSE" not in f.ops
    y, _ = process_file(f, x, 128)
    assert esr(ref, y) < 1e-10
    y_odd, _ = process_file(TFLiteStreamProcessor(tmp_path / "f.tflite"), x, 100)  # host blocks != model blocks
    assert esr(ref, y_odd) < 1e-10
    for runtime in ("litert", "xnnpack", "tflm"):
        proc = TFLiteStreamProcessor(tmp_path / "q.tflite", runtime)
        assert proc.in_q[0] == np.int8
        yq, _ = process_file(proc, x, 128)
        e = esr(ref, yq)
        assert np.isfinite(e) and 0 < e < 0.05, (runtime, e)
        if runtime == "tflm":
            assert proc.arena() > 0


def test_lstm_streaming_tflite_carries_state(tmp_path):
    from tinyverse.audio.tflite import TFLiteStreamProcessor, export_streaming_tflite

    model = _tiny_lstm()
    info = export_streaming_tflite(model, _audio(20_000, seed=1), block_size=64, float_path=tmp_path / "f.tflite",
                                   int8_path=tmp_path / "q.tflite", num_calib=16)
    assert not info["errors"]
    x = _audio(1_000)
    ref, _ = process_file(StreamProcessor(model), x, 64)
    f = TFLiteStreamProcessor(tmp_path / "f.tflite", prewarm=4_800)  # zero state settled on silence
    assert f.stateful and f.ops.count("UNIDIRECTIONAL_SEQUENCE_LSTM") == 2
    y, _ = process_file(f, x, 64)
    assert esr(ref, y) < 1e-8
    q = TFLiteStreamProcessor(tmp_path / "q.tflite", "tflm", prewarm=4_800)
    yq, _ = process_file(q, x, 64)
    assert np.isfinite(esr(ref, yq)) and esr(ref, yq) < 0.05


def test_verification_rows_record_errors_and_go_on(tmp_path, monkeypatch):
    import tinyverse.export.tflite_stream as tfl
    from tinyverse.audio.verify import export_and_verify, format_table
    from tinyverse.export import ExportError

    def broken(*a, **k):
        raise ExportError("converter exploded")

    monkeypatch.setattr(tfl, "export_streaming_tflite", broken)
    model = _tiny_wavenet()
    x = _audio(3_000)
    target = np.tanh(3 * x[model.receptive_field - 1:])
    res = export_and_verify(model, tmp_path, x, target, _audio(10_000, seed=1), SR, 128,
                            ["onnx", "tflite_int8", "tflite"], num_calib=8)
    rows = {r["artifact"]: r for r in res["rows"]}
    assert list(rows) == ["PyTorch float", "ONNX float", "TFLite int8 (LiteRT)", "TFLite int8 (XNNPACK)",
                          "TFLite int8 (TFLM)", "TFLite float", "TFLite float (XNNPACK)"]  # exporters as named
    assert rows["PyTorch float"]["esr_vs_torch"] < 1e-10 and rows["ONNX float"]["esr_vs_torch"] < 1e-10
    assert rows["ONNX float"]["esr_vs_target"] == pytest.approx(rows["PyTorch float"]["esr_vs_target"], rel=1e-4)
    assert rows["ONNX float"]["rtf"] > 0
    assert rows["TFLite float"]["error"] == "export failed: ExportError: converter exploded"
    assert "converter exploded" in rows["TFLite int8 (TFLM)"]["error"]
    assert res["exports"]["tflite"] == res["exports"]["tflite_int8"] == {"error": "ExportError: converter exploded"}
    table = format_table(res)
    assert "converter exploded" in table and "| ONNX float | onnxruntime CPU |" in table


def test_streaming_rows_carry_pass_rules(tmp_path):
    """Each streaming row is judged by its kind's rule; the ONNX int8 render is checked against the same file without
    fused kernels (CPU-independent), and a bound no int8 render can meet turns its rows into FAILs."""
    from tinyverse.audio.verify import export_and_verify, format_table
    from tinyverse.verification import Tolerances, failed_rows

    model = _tiny_wavenet(gated=True)
    x = _audio(3_000)
    target = np.tanh(3 * x[model.receptive_field - 1:])
    wanted = ["PyTorch float", "ONNX float", "ONNX int8"]
    res = export_and_verify(model, tmp_path, x, target, _audio(10_000, seed=1), SR, 128, ["onnx_int8"], num_calib=8)
    rows = {r["artifact"]: r for r in res["rows"]}
    assert list(rows) == wanted  # the float ONNX file it quantizes runs first, and is verified too
    assert [rows[a]["kind"] for a in wanted] == ["reference", "float", "int8"]
    assert all(rows[a]["verdict"]["status"] == "PASS" for a in wanted), failed_rows(res["rows"])
    fused = [c for c in rows["ONNX int8"]["verdict"]["checks"] if c["name"].startswith("fused kernels")]
    assert fused and fused[0]["value"] <= 1.0
    strict = export_and_verify(model, tmp_path / "b", x, target, _audio(10_000, seed=1), SR, 128, ["onnx_int8"],
                               num_calib=8, tolerances=Tolerances(audio_int8_max_esr=1e-12))
    failures = failed_rows(strict["rows"])
    assert len(failures) == 1 and failures[0].startswith("ONNX int8: ESR vs PyTorch")
    assert "**FAIL**" in format_table(strict)
