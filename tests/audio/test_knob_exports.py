"""Knob models exported with a params input (issue #13 item 4): streaming ONNX and TFLite (float, int8, int16x8) of
every built-in family with two inputs (the audio block and the normalised knob vector), verified block by block at
three settings in onnxruntime / LiteRT / TFLM (``tinyverse.audio.verify.knob_stream_rows``), the C header with golden
vectors at two settings, ``modelmaker render --param`` on the exported files and a run folder, and the device check's
conditioning cost.

The zoo's nano entries shrunk to a receptive field of 16-24 samples (LSTM 2 x 5) with random weights large enough
that every knob matters, 0.05 s of audio; one export job per family (module fixture).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tinyverse.audio import esr
from tinyverse.audio.knobs import KnobSet
from tinyverse.audio.stream import StreamProcessor, process_file
from tinyverse.audio.verify import default_knob_settings, format_table, knob_stream_rows
from tinyverse.export.onnx_stream import OnnxStreamProcessor
from tinyverse.export.tflite_stream import TFLiteStreamProcessor
from tinyverse.models import create_model

SR = 48_000
BLOCK = 128
KNOBS = {"gain": {"min": 0, "max": 10, "default": 5}, "bright": {"type": "bool"}}  # ordered: bright, gain
LAYERS = [
    {"input_size": 1, "condition_size": 1, "head_size": 2, "channels": 3, "kernel_size": 3, "dilations": [1, 2, 4],
     "activation": "Tanh", "gated": False, "head_bias": False},
    {"input_size": 3, "condition_size": 1, "head_size": 1, "channels": 2, "kernel_size": 2, "dilations": [8, 1],
     "activation": "Tanh", "gated": True, "head_bias": True},
]
# The zoo's nano entries, shrunk: what is exported is the family's graph, not its size.
TINY = {
    "CatLSTM": ("NAM_CatLSTM_nano", {"hidden_size": 5, "num_layers": 2}),
    "CatWaveNet": ("NAM_CatWaveNet_nano", {"layers": LAYERS, "head_scale": 0.3}),
    "FiLMWaveNet": ("NAM_FiLMWaveNet_nano", {"layers": LAYERS, "head_scale": 0.3, "embedding_size": 3, "hidden_size": 4,
                                             "films": ["conv_pre_film", "conv_post_film", "input_mixin_pre_film",
                                                       "input_mixin_post_film", "activation_pre_film",
                                                       "activation_post_film"]}),
    "HyperConvNet": ("NAM_HyperConvNet_nano", {"channels": 3, "dilations": [1, 2, 4, 8], "hyper_units": 4}),
}


# Measured: the converter has no 16x8 LSTM.
NO_INT16 = {"CatLSTM": "UNIDIRECTIONAL_SEQUENCE_LSTM"}


def tiny(family: str) -> torch.nn.Module:
    name, overrides = TINY[family]
    torch.manual_seed(0)
    m = create_model(name, knobs=KNOBS, **overrides)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * 0.4)
    m.prepare_for_inference()  # a CatLSTM settles at each setting before a stream (exports do the same) ...
    if family == "CatLSTM":
        m.settle_samples.fill_(4_800)  # ... here on 0.1 s of silence, not 1 s: the files store how long
    return m.eval().requires_grad_(False)


def guitar(n: int = 2_400, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    x = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) / (k + 1) for k, f in enumerate((110, 220, 331, 887)))
    return (0.3 * np.exp(-4 * (t % 0.05)) * x + 0.01 * rng.standard_normal(n)).astype(np.float32)


def torch_at(model, x: np.ndarray, setting: dict) -> np.ndarray:
    vec = model.knobs.vector(setting, "test", fill_defaults=True)
    import copy

    y, _ = process_file(StreamProcessor(copy.deepcopy(model).double(), torch.float64, params=vec), x.astype(np.float64),
                        len(x))
    return y


@pytest.fixture(scope="module", params=list(TINY))
def exported(request, tmp_path_factory):
    """Every default export of one family, verified at min / default / max (one TFLite job, one TF start)."""
    family = request.param
    model = tiny(family)
    out = tmp_path_factory.mktemp(family)
    x = guitar()
    result = knob_stream_rows(model, None, None, x, out, calib_audio=guitar(12_000, seed=1), block_size=BLOCK,
                              num_calib=12)
    return family, model, out, x, result


def rows_by_artifact(result) -> dict:
    return {r["artifact"]: r for r in result["rows"]}


def test_every_family_exports_and_verifies_at_three_settings(exported):
    family, model, out, x, result = exported
    settings = result["settings"]
    assert settings == default_knob_settings(KnobSet(KNOBS)) == [{"bright": 0.0, "gain": 0.0},
                                                                   {"bright": 0.0, "gain": 5.0},
                                                                   {"bright": 1.0, "gain": 10.0}]
    # the default set leaves out what the family cannot have, with rows that say why
    int16 = {"TFLite int16x8 (LiteRT)", "TFLite int16x8 (TFLM)"}
    missing = {na["artifact"]: na for na in result["not_available"]}
    if family in NO_INT16:
        assert set(missing) == int16 and all(NO_INT16[family] in na["why"] for na in missing.values())
        assert "| TFLite int16x8 (TFLM) | TFLite Micro interpreter | not available |" in format_table(result)
    else:
        assert missing == {}
    rows = rows_by_artifact(result)
    expected = {"PyTorch float", "ONNX float", "ONNX int8", "TFLite float", "TFLite float (XNNPACK)",
                "TFLite int8 (LiteRT)", "TFLite int8 (XNNPACK)", "TFLite int8 (TFLM)", "C array (TFLM)"}
    expected |= set() if family in NO_INT16 else int16
    assert set(rows) == expected, (set(rows) ^ expected, [r.get("error") for r in result["rows"]])
    for label, row in rows.items():
        assert "error" not in row, (family, label, row.get("error"))
        assert row["verdict"]["status"] == "PASS", (family, label, row["verdict"]["failures"])
        assert [d["setting"] for d in row["settings"]] == settings
        if label != "PyTorch float":  # one check per setting (and per cross-check), named after the setting
            names = [c["name"] for c in row["verdict"]["checks"] if c["name"].startswith("ESR vs PyTorch")]
            assert names == [f"ESR vs PyTorch @ bright={s['bright']:g}, gain={s['gain']:g}" for s in settings]
    for label in ("ONNX float", "TFLite float"):  # float files: the torch model's samples at every setting
        assert rows[label]["esr_vs_torch"] <= 1e-6 and all(d["esr_vs_torch"] <= 1e-6 for d in rows[label]["settings"])
    for label in ("ONNX int8", "TFLite int8 (LiteRT)", "TFLite int8 (TFLM)", "C array (TFLM)"):
        assert 0 < rows[label]["esr_vs_torch"] <= 0.1
    if family not in NO_INT16:
        assert rows["TFLite int16x8 (LiteRT)"]["esr_vs_torch"] <= 0.01
    table = format_table(result)
    assert "ESR per setting: (bright=0, gain=0) " in table and ", (bright=1, gain=10) " in table
    assert "every setting: ESR vs PyTorch ≤ 1e-06" in table


def test_the_exports_follow_their_params_input(exported):
    """Each setting's output matches its own setting and not another's: a file that ignored params would fail."""
    family, model, out, x, result = exported
    low, _, high = result["settings"]
    ref_low, ref_high = torch_at(model, x, low), torch_at(model, x, high)
    assert esr(ref_low, ref_high) > 1e-3  # the knobs change the sound (1,000 times the float bound)
    ks = KnobSet(KNOBS)
    for proc in (OnnxStreamProcessor(out / "model_stream.onnx", params=ks.vector(high, "t")),
                 TFLiteStreamProcessor(out / "model_stream_float.tflite", params=ks.vector(high, "t"))):
        y, _ = process_file(proc, x, BLOCK)
        assert esr(ref_high, y) <= 1e-6 and esr(ref_low, y) > 1e-3
        # moving the knobs mid-stream: the file answers from the next block on
        proc.set_params(ks.vector(low, "t"))
        proc.reset()
        y2, _ = process_file(proc, x, BLOCK)
        assert esr(ref_low, y2) <= 1e-6


def test_every_artifact_carries_the_knob_declaration(exported):
    from tinyverse.export.onnx_stream import STREAM_META_KEY
    from tinyverse.export.tflite import tflite_metadata

    family, model, out, x, result = exported
    want = KnobSet(KNOBS).declaration()
    import onnx

    for name in ("model_stream.onnx", "model_stream_int8.onnx"):
        meta = {p.key: p.value for p in onnx.load(str(out / name)).metadata_props}
        assert json.loads(meta[STREAM_META_KEY])["knobs"] == want
        assert [i.name for i in onnx.load(str(out / name)).graph.input][:2] == ["x", "params"]
    int16 = [] if family in NO_INT16 else ["model_stream_int16.tflite"]
    for name in ["model_stream_float.tflite", "model_stream_int8.tflite", *int16]:
        meta = json.loads(tflite_metadata(out / name)[STREAM_META_KEY])
        assert meta["knobs"] == want and meta["params_size"] == 2 and meta["architecture"] == family
        proc = TFLiteStreamProcessor(out / name)
        assert proc.knobbed and proc.params.tolist() == [0.0, 0.5]  # the declared defaults, normalised


def test_the_c_header_holds_golden_vectors_at_two_settings(exported):
    from tinyverse.export.c_header import parse_c_array

    family, model, out, x, result = exported
    header = (out / "model_int8.h").read_text()
    assert "#define MODEL_INT8_PARAMS_INPUT_SIZE 2" in header and "#define MODEL_INT8_KNOB_GAIN_MAX 10.0f" in header
    assert '#define MODEL_INT8_KNOB_0_NAME "bright"' in header
    assert "#define MODEL_INT8_KNOB_BRIGHT_IS_SWITCH 1" in header
    golden = (out / "golden_vectors.h").read_text()
    assert "setting 0: bright=0, gain=0" in golden and "setting 1: bright=1, gain=10" in golden

    def array(name: str) -> np.ndarray:
        body = re.search(rf"golden_vectors_{name}\[2\]\[\d+\] = \{{(.*?)\}};", golden, re.S).group(1)
        return np.array([[float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", row)]
                         for row in re.findall(r"\{([^{}]*)\}", body)])

    values, params, inputs, outputs = (array(n) for n in ("knob_values", "params", "inputs", "outputs"))
    assert values.tolist() == [[0.0, 0.0], [1.0, 10.0]]
    assert not np.array_equal(params[0], params[1]) and not np.array_equal(outputs[0], outputs[1])
    # the bytes that get compiled into firmware reproduce the golden outputs in TFLM, bit for bit
    data = parse_c_array(out / "model_int8.c")
    ks = KnobSet(KNOBS)
    for i, setting in enumerate(({"bright": 0, "gain": 0}, {"bright": 1, "gain": 10})):
        proc = TFLiteStreamProcessor(data, "tflm", prewarm=0, params=ks.vector(setting, "t"))
        frame = proc.audio_quant.dequantize(inputs[i].astype(np.int8))
        got = proc.golden(frame)
        assert got["params"].tolist() == params[i].tolist() and got["output"].tolist() == outputs[i].tolist()


def test_bad_settings_and_the_plain_verifier_refuse_before_any_export(tmp_path):
    from tinyverse.audio.verify import export_and_verify
    from tinyverse.errors import DatasetError

    model, x = tiny("CatWaveNet"), guitar()
    with pytest.raises(DatasetError, match=r"settings\[1\]: knob 'gain' = 11 is outside \[0, 10\]"):
        knob_stream_rows(model, None, [{"gain": 1}, {"gain": 11}], x, tmp_path / "a")
    with pytest.raises(DatasetError, match=r"settings\[0\]: unknown knob 'tone'; the knobs are bright, gain"):
        knob_stream_rows(model, None, [{"tone": 1}], x, tmp_path / "b")
    with pytest.raises(ValueError, match="2 targets for 1 settings"):
        knob_stream_rows(model, None, [{"gain": 1}], x, tmp_path / "c", targets=[x, x])
    with pytest.raises(ValueError, match="has a params input: verify it at several knob settings with knob_stream"):
        export_and_verify(model, tmp_path / "d", x, x, x, SR)
    assert not any((tmp_path / d).exists() for d in "abcd")


# -- render --param on every artifact kind ------------------------------------------------------------------------

def cli(capsys, *args):
    from modelmaker.cli import main

    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def wavenet(tmp_path_factory):
    """CatWaveNet's ONNX float and TFLite files (no int8: what render needs), its .pt and a run folder."""
    from tinyverse.audio.knob_file import save_knob_model

    model = tiny("CatWaveNet")
    out = tmp_path_factory.mktemp("render")
    result = knob_stream_rows(model, None, [{"gain": 7, "bright": 1}], guitar(), out, exporters=["onnx", "tflite"],
                              calib_audio=guitar(24_000, seed=1), block_size=BLOCK, num_calib=8)
    assert all(r["verdict"]["status"] == "PASS" for r in result["rows"])
    save_knob_model(model, out / "model.pt", sample_rate=SR)
    run = out / "run"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = {"knob_model": {**model.record(), "sample_rate": SR},  # what the knob task writes into its checkpoints
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}
    torch.save(ckpt, run / "checkpoints" / "best.ckpt")
    wav = out / "in.wav"
    sf.write(str(wav), guitar(), SR)
    return model, out, wav


@pytest.mark.parametrize("artifact", ["model_stream.onnx", "model_stream_float.tflite", "model.pt", "run"])
def test_render_param_on_every_artifact_kind(artifact, wavenet, tmp_path, capsys):
    model, out, wav = wavenet
    rc, stdout, err = cli(capsys, "render", out / artifact, wav, tmp_path / "y.wav", "--param", "gain=7",
                          "--param", "bright=1")
    assert rc == 0, err
    assert "bright=1, gain=7" in stdout and "not given" not in err
    y, _ = sf.read(str(tmp_path / "y.wav"), dtype="float32")
    x, _ = sf.read(str(wav), dtype="float32")
    want, other = torch_at(model, x, {"gain": 7, "bright": 1}), torch_at(model, x, {"gain": 0, "bright": 0})
    assert esr(want, y) <= 1e-6 and esr(other, y) > 1e-3
    # a knob not given takes its declared default, and the command says so
    rc, stdout, err = cli(capsys, "render", out / artifact, wav, tmp_path / "d.wav", "--param", "bright=1")
    assert rc == 0 and "knob 'gain' not given: using its default 5" in err and "bright=1, gain=5" in stdout
    y, _ = sf.read(str(tmp_path / "d.wav"), dtype="float32")
    assert esr(torch_at(model, x, {"gain": 5, "bright": 1}), y) <= 1e-6


@pytest.mark.parametrize("args, message", [
    (["--param", "level=3"], "--param: unknown knob 'level'; the knobs are bright, gain"),
    (["--param", "gain=11"], "--param: knob 'gain' = 11 is outside [0, 10]"),
    (["--param", "gain=-1"], "--param: knob 'gain' = -1 is outside [0, 10]"),
    (["--param", "bright=0.5"], "--param: knob 'bright' is a switch (0 or 1)"),
    (["--param", "gain"], "--param 'gain': expected NAME=VALUE"),
])
@pytest.mark.parametrize("artifact", ["model_stream.onnx", "model_stream_float.tflite"])
def test_bad_params_on_exports_are_one_line_errors(artifact, args, message, wavenet, tmp_path, capsys):
    model, out, wav = wavenet
    rc, _, err = cli(capsys, "render", out / artifact, wav, tmp_path / "y.wav", *args)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith(f"modelmaker: error: {message}"), err
    assert not (tmp_path / "y.wav").exists()


def test_param_on_an_export_without_knobs_and_a_folder_without_a_model(wavenet, tmp_path, capsys):
    from tinyverse.audio.nam import NAMWaveNet
    from tinyverse.export.onnx_stream import export_streaming_onnx

    model, out, wav = wavenet
    export_streaming_onnx(NAMWaveNet([{**LAYERS[0], "head_size": 1}], 0.3), tmp_path / "plain.onnx", BLOCK)
    rc, _, err = cli(capsys, "render", tmp_path / "plain.onnx", wav, tmp_path / "y.wav", "--param", "gain=1")
    assert rc == 2 and "--param: plain.onnx has no knob inputs" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "empty").mkdir()
    rc, _, err = cli(capsys, "render", tmp_path / "empty", wav, tmp_path / "y.wav")
    assert rc == 2 and "without model.nam or checkpoints/best.ckpt" in err
    assert not (tmp_path / "y.wav").exists()


# -- device check -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, per", [("NAM_CatLSTM_nano", "sample"), ("NAM_CatWaveNet_nano", "sample"),
                                       ("NAM_FiLMWaveNet_nano", "block"), ("NAM_HyperConvNet_nano", "block")])
def test_the_device_check_counts_the_conditioning(name, per):
    from tinyverse.devices import check_model
    from tinyverse.devices.check import CONDITIONING_BLOCK

    model = create_model(name, knobs=KNOBS)
    cost = model.cost()
    assert cost.conditioning_per == per and model.device_ops()[0]["conditioning_per"] == per
    assert model.device_ops()[0]["conditioning_macs"] == cost.conditioning_macs > 0
    report = check_model(model, "nam-pedal-heavy", sample_rate=SR, model_name=name)
    row = next(lc for lc in report.layers if lc.layer == "conditioning")
    extra = cost.conditioning_macs if per == "sample" else -(-cost.conditioning_macs // CONDITIONING_BLOCK)
    assert row.macs == extra and row.type == f"knobs, per {per}"
    assert report.totals["macs_per_sample"] == cost.macs_per_sample + extra
    assert any(n.startswith("knob conditioning:") and f"{cost.conditioning_macs:,} MACs" in n for n in report.notes)


def test_modelmaker_check_shows_the_conditioning(capsys):
    rc, out, err = cli(capsys, "check", "NAM_FiLMWaveNet_nano", "--device", "nam-pedal-heavy")
    assert "conditioning" in out and "knobs, per block" in out
    assert re.search(r"knob conditioning: [\d,]+ MACs once per block of 64 samples", out)
