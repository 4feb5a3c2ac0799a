"""Composition (#14), item 5: one streaming ONNX graph and one streaming TFLite graph (float, int8, int16x8) for a whole
Sequential or DAG, each stage with its own state, rendered block by block against the torch chain; the int8 C array;
``modelmaker combine --export``; a rig with a knob stage streams in ONNX with a params input.

Tiny stages (a 3/2-channel WaveNet of receptive field 33 whose answer to silence is not zero, 40- and 24-tap FIRs, a
2 x 4 LSTM) and a fraction of a second of audio keep this fast; one TFLite conversion job per model.
"""
from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import soundfile as sf
import torch

from tinyverse.audio import esr
from tinyverse.audio.nam import NAMDAG, NAMLSTM, DagNode, KnobStage, NAMLinear, NAMSequential, save_nam
from tinyverse.audio.stream import OnnxStreamProcessor, StreamProcessor, process_file
from tinyverse.models import create_model

SR = 48_000


def _audio(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    x = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) / (k + 1) for k, f in enumerate((110, 220, 331, 887)))
    return (0.25 * np.exp(-3 * (t % 0.25)) * x + 0.01 * rng.standard_normal(n)).astype(np.float32)


def _amp() -> torch.nn.Module:
    torch.manual_seed(0)
    m = create_model("NAM_WaveNet", channels=[3, 2], dilations=[[1, 2, 4], [8, 1]])
    with torch.no_grad():
        m.head_scale.fill_(0.5)
        m.layer_arrays[-1].head_rechannel.bias.fill_(0.05)  # silence in, a DC offset out: a chain-wide pre-warm differs
    return m.eval()


def _fir(taps: int, seed: int) -> NAMLinear:
    m = NAMLinear(taps)
    with torch.no_grad():
        m.conv.weight.copy_(torch.randn(m.conv.weight.shape, generator=torch.Generator().manual_seed(seed)) * 0.3)
    return m.eval()


def _chain() -> NAMSequential:
    return NAMSequential([_amp(), _fir(40, 1)]).eval()


def _dag() -> NAMDAG:
    amp = _amp()
    return NAMDAG({"amp": DagNode(model=amp), "cab_a": DagNode(model=_fir(40, 2), input="amp"),
                   "cab_b": DagNode(model=_fir(24, 3), input="amp"),
                   "mix": DagNode(mix="weighted", inputs=("cab_a", "cab_b", "input"), weights=(0.7, 0.3, 0.1))},
                  "mix").eval()


@torch.no_grad()
def _core(model, x: np.ndarray) -> np.ndarray:
    """What NAM Core renders from a reset: every stage from its own silence."""
    return model(torch.as_tensor(x)[None], pad_start=True)[0].numpy()


def test_a_composed_model_streams_each_stage_with_its_own_state() -> None:
    chain = NAMSequential([_amp(), _fir(40, 1), NAMLSTM(4, 1)]).eval()
    missing = chain.unavailable_exports()  # the ONNX graph has the LSTM stage, the TFLite twin not yet
    assert chain.stream_kind == "state" and set(missing) == {"tflite", "tflite_int8", "tflite_int16"}
    assert "fused LSTM op" in missing["tflite"]
    state = chain.initial_stream_state()
    assert {k: tuple(v.shape) for k, v in state.items()} == {"s0_history": (32,), "s1_history": (39,),
                                                            "s2_h": (1, 4), "s2_c": (1, 4)}
    step = chain.streaming_module()
    x = torch.as_tensor(_audio(1500))[None]
    states, out = [t[None] for t in state.values()], []
    for a in range(0, 1500, 128):
        y, *states = step(x[:, a:a + 128], *states)
        out.append(y)
    np.testing.assert_allclose(torch.cat(out, 1)[0].detach().numpy(), _core(chain, x[0].numpy()), atol=1e-6)


@pytest.mark.parametrize("build", [_chain, _dag], ids=["sequential", "dag"])
def test_streaming_onnx_of_a_composed_model_matches_core_block_by_block(tmp_path, build) -> None:
    from tinyverse.audio.export import export_streaming_onnx, quantize_streaming_onnx

    model = build()
    path = export_streaming_onnx(model, tmp_path / "rig.onnx", block_size=128)
    meta = json.loads(__import__("onnx").load(str(path)).metadata_props[0].value)
    assert meta["kind"] == "state" and set(meta["initial_state"]) == set(model.initial_stream_state())
    x = _audio(3000)
    ref = _core(model, x)
    for block in (128, 100):  # the block length is dynamic
        y, _ = process_file(OnnxStreamProcessor(path), x, block)
        assert esr(ref, y) < 1e-10 and np.abs(ref - y).max() < 1e-5, block
    # a stage's state dropped (its history zeroed every block) is far from Core: the check above would fail
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()][1:]
    assert all(v == {"zeros": [model.initial_stream_state()[n].numel()]} for n, v in meta["initial_state"].items())
    states = {n: t.numpy()[None] for n, t in model.initial_stream_state().items()}
    out = []
    for a in range(0, len(x), 128):
        y, *new = sess.run(None, {"x": x[None, a:a + 128], **states})
        out.append(y[0])
        states = dict(zip(names, new))
        states[names[-1]] = np.zeros_like(states[names[-1]])  # the last stage forgets its history
    assert esr(ref, np.concatenate(out)) > 1e-5  # (1e-3 for the chain's cab, 1e-4 for the DAG's 0.3-weighted one)
    q = quantize_streaming_onnx(model, path, tmp_path / "rig_int8.onnx", _audio(20_000, seed=1), block_size=128,
                                num_calib=16)
    yq, _ = process_file(OnnxStreamProcessor(q), x, 128)
    # int8 of random-tap FIRs behind a WaveNet (each alone: ESR 0.04 and 0.02 here); the histories are calibrated on
    # what a stream carries — calibrated on their initial zeros, every history would be quantized to zero
    assert 0 < esr(ref, yq) < 0.15


@pytest.mark.parametrize("build", [_chain, _dag], ids=["sequential", "dag"])
def test_streaming_tflite_of_a_composed_model_keeps_each_history_inside(tmp_path, build) -> None:
    from tinyverse.audio.tflite import TFLiteStreamProcessor, export_streaming_tflite

    model = build()
    paths = {m: tmp_path / f"rig_{m}.tflite" for m in ("float", "int8", "int16")}
    info = export_streaming_tflite(model, _audio(20_000, seed=1), block_size=128, num_calib=16,
                                   **{f"{m}_path": p for m, p in paths.items()})
    assert not info["errors"] and info["twin_max_abs_diff"] < 1e-5
    x = _audio(2000)
    ref = _core(model, x)
    f = TFLiteStreamProcessor(paths["float"])
    assert (f.block, f.rf) == (128, 1) and f.stateful and f.prewarm == 0  # one input: the block; the state inside
    assert {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE"} <= set(f.ops)
    y, _ = process_file(f, x, 128)
    assert esr(ref, y) < 1e-10 and np.abs(ref - y).max() < 1e-5
    f.reset()  # a new stream starts from every stage's silence again
    y_again, _ = process_file(f, x, 128)
    np.testing.assert_array_equal(y, y_again)
    # int8: as the int8 ONNX of the same rig (no variables there), ESR ~0.07; int16x8 (int8 weights): ~2e-3, within a
    # run's int16 pass rule (audio_int16_max_esr 0.01)
    bounds = {"int8": 0.15, "int16": 0.01}
    for mode, bound in bounds.items():
        outs = {}
        for runtime in ("litert", "tflm"):
            proc = TFLiteStreamProcessor(paths[mode], runtime)
            outs[runtime], _ = process_file(proc, x, 128)
            assert 0 < esr(ref, outs[runtime]) < bound, (mode, runtime, esr(ref, outs[runtime]))
        step = float(proc.out_q[1])
        assert np.abs(outs["litert"] - outs["tflm"]).max() <= 4 * step + 1e-7, mode


def test_combine_export_writes_verified_rig_artifacts_and_a_c_header(tmp_path, capsys) -> None:
    from modelmaker.cli import main as cli

    save_nam(_amp(), tmp_path / "amp.nam", {"name": "amp"}, SR)
    k = np.arange(48)
    ir = (0.6 * np.exp(-k / 8) * np.cos(0.7 * k)).astype(np.float32)  # a short cabinet-like response
    sf.write(tmp_path / "cab.wav", ir, SR, subtype="FLOAT")
    out = tmp_path / "export"
    assert cli(["combine", str(tmp_path / "amp.nam"), str(tmp_path / "cab.wav"), "-o", str(tmp_path / "rig.nam"),
                "--export", str(out)]) == 0
    printed = capsys.readouterr().out
    files = {p.name for p in out.iterdir()}
    assert {"model_stream.onnx", "model_stream_int8.onnx", "model_stream_float.tflite", "model_stream_int8.tflite",
            "model_stream_int16.tflite", "model_int8.h", "model_int8.c", "compile_report.md",
            "compile_report.json"} <= files
    report = json.loads((out / "compile_report.json").read_text())
    rows = {r["artifact"]: r for r in report["rows"]}
    assert all(r["verdict"]["status"] == "PASS" for r in rows.values()), printed
    assert rows["ONNX float"]["esr_vs_torch"] < 1e-10 and rows["TFLite float"]["esr_vs_torch"] < 1e-10
    assert rows["C array (TFLM)"]["verdict"]["checks"]  # the bytes of the .c, in TFLM, against LiteRT's kernels
    header = (out / "model_int8.h").read_text()
    assert "#define TV_STREAM_BLOCK 512" in header and "#define TV_STREAM_CONTEXT 0" in header
    assert "VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE and CALL_ONCE" in header
    # the exported rig plays what the .nam plays
    x = _audio(4000)
    from tinyverse.audio.stream import open_stream_processor

    ref, _ = process_file(open_stream_processor(tmp_path / "rig.nam")[0], x, 512)
    y, _ = process_file(open_stream_processor(out / "model_stream_float.tflite")[0], x, 512)
    assert np.abs(ref - y).max() < 1e-5
    # exports never overwrite: a folder that is not empty is refused, before anything is written
    assert cli(["combine", str(tmp_path / "amp.nam"), "-o", str(tmp_path / "again.nam"), "--export", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--export" in err and "not empty" in err and err.count("\n") == 1
    assert not (tmp_path / "again.nam").exists()


def test_a_rig_with_a_knob_stage_streams_with_a_params_input(tmp_path) -> None:
    """A drive pedal with knobs (CatWaveNet) between two IRs: the streaming ONNX and TFLite graphs take the rig's knob
    vector as ``params``; every file is rendered block by block at every knob's min, default and max against the
    torch rig; a knob stage with a recurrent state says why it cannot stream inside a rig yet."""
    from tinyverse.audio.knob_file import load_knob_model
    from tinyverse.audio.model_export import export_model

    knob, _ = load_knob_model(__import__("pathlib").Path(__file__).parent / "data" / "knob_core" / "catwavenet.pt")
    rig = NAMSequential([_fir(24, 4), KnobStage(knob), _fir(40, 5)]).eval()
    assert rig.unavailable_exports() == {}
    meta = rig.stream_metadata()
    assert meta["params_size"] == 2 and set(meta["knobs"]) == {"bright", "gain"}
    # it plays, block by block, at the knob values given
    x = _audio(2000)
    p = rig.knobs.vector({"gain": 7.0, "bright": 1}, "test")
    y, _ = process_file(StreamProcessor(rig, params=p), x, 128)
    with torch.no_grad():
        whole = rig(torch.as_tensor(x)[None], pad_start=True, params=torch.as_tensor(p))[0].numpy()
    assert np.abs(y - whole).max() < 1e-5 and np.abs(whole).max() > 1e-3

    result = export_model(rig, SR, tmp_path / "export", seconds=4.0, block_size=256)
    rows = {r["artifact"]: r for r in result["rows"]}
    assert {"ONNX float", "ONNX int8", "TFLite float", "TFLite int8 (TFLM)", "TFLite int16x8 (TFLM)",
            "C array (TFLM)"} <= set(rows), sorted(rows)
    assert not result["not_available"]
    assert len(result["settings"]) == 3
    for label, row in rows.items():
        assert row["verdict"]["status"] == "PASS", (label, row.get("error"), row["verdict"])
        assert len(row["settings"]) == 3
    for label in ("ONNX float", "TFLite float"):
        assert rows[label]["esr_vs_torch"] < 1e-6
    for label in ("ONNX int8", "TFLite int8 (TFLM)", "C array (TFLM)"):
        assert 0 < rows[label]["esr_vs_torch"] < 0.1
    # the file runs on its own: the knob vector by name, each setting its own render
    path = tmp_path / "export" / "model_stream.onnx"
    assert [i.name for i in ort.InferenceSession(str(path)).get_inputs()][:2] == ["x", "params"]
    renders = []
    for setting in ({"gain": 0.0, "bright": 0}, {"gain": 10.0, "bright": 1}):
        vec = rig.knobs.vector(setting, "test")
        got, _ = process_file(OnnxStreamProcessor(path, params=vec), x, 128)
        with torch.no_grad():
            ref = rig(torch.as_tensor(x)[None], pad_start=True, params=torch.as_tensor(vec))[0].numpy()
        assert np.abs(got - ref).max() < 1e-4
        renders.append(got)
    assert np.abs(renders[0] - renders[1]).max() > 1e-3  # the knobs reach the stage inside the graph


def test_a_recurrent_knob_stage_says_why_a_rig_with_it_does_not_stream_yet() -> None:
    from tinyverse.audio.knob_file import load_knob_model

    knob, _ = load_knob_model(__import__("pathlib").Path(__file__).parent / "data" / "knob_core" / "catlstm.pt")
    rig = NAMSequential([KnobStage(knob), _fir(24, 4)])
    missing = rig.unavailable_exports()
    assert set(missing) == {"onnx", "onnx_int8", "tflite", "tflite_int8", "tflite_int16"}
    assert all("knob model with a recurrent state" in why for why in missing.values())
