"""Composition (#14): NAM Core's Sequential container (amp + cabinet IR as one full-rig model) against Core's renders
(shared/fixtures/nam_composition), IR WAVs as Linear stages (resampling, strict, stereo, empty), the DAG (fan-out,
sum / mean / weighted fan-in against a hand computation, the longest path), cost arithmetic, round trips, and
``modelmaker combine`` / ``render`` / ``check`` with a one-line error for every bad input."""
from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tinyverse.audio.composition import CompositionError, combine, graph_from_dict, load_graph
from tinyverse.audio.ir import IRError, load_ir, resample_ir
from tinyverse.audio.nam import (
    NAMDAG,
    NAMLSTM,
    NAMLinear,
    NAMSequential,
    NAMWaveNet,
    DagNode,
    NamFormatError,
    a1_wavenet_layers,
    load_nam,
    model_from_nam,
    nam_to_dict,
    render,
    save_nam,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
FIX = SHARED / "nam_composition"
AMP = SHARED / "nam" / "wavenet_a1_standard.nam"
INPUTS = ("input_guitar", "input_core_example")
TOL = 1e-5


def wav(name: str) -> np.ndarray:
    data, _ = sf.read(FIX / f"{name}.wav", dtype="float32")
    return data


def test_fixtures_are_present():
    assert (FIX / "rig_sequential.nam").is_file() and (FIX / "cab_ir.wav").is_file() and AMP.is_file()


# ------------------------------------------------------------------------------- NAM Core's Sequential fixture


@pytest.fixture(scope="module")
def rig() -> NAMSequential:
    return model_from_nam(FIX / "rig_sequential.nam")


@pytest.mark.parametrize("inp", INPUTS)
def test_rig_sequential_matches_core(rig: NAMSequential, inp: str) -> None:
    assert isinstance(rig, NAMSequential) and [type(m) for m in rig.models] == [NAMWaveNet, NAMLinear]
    x, target = wav(inp), wav(f"rig_sequential__{inp}")
    y64 = render(rig, x).numpy()
    assert y64.shape == target.shape
    assert float(np.abs(y64 - target).max()) <= TOL
    with torch.no_grad():  # the float32 module itself
        y32 = rig(torch.from_numpy(x)[None], pad_start=True)[0].numpy()
    assert float(np.abs(y32 - target).max()) <= TOL


def test_rig_streams_block_by_block_like_core(rig: NAMSequential) -> None:
    # Each child keeps its own state: blocks of 64 (Core's) and of uneven lengths give Core's samples.
    x, target = wav("input_guitar")[:9000], wav("rig_sequential__input_guitar")[:9000]
    m = rig.double()
    for cuts in (range(0, 9000, 64), [0, 1, 700, 6200, 6201, 8999]):
        state, out = m.stream_init(torch.float64), []
        bounds = [*cuts, 9000]
        for a, b in zip(bounds[:-1], bounds[1:]):
            y, state = m.stream_block(torch.from_numpy(x[a:b]).double()[None], state)
            out.append(y.numpy())
        assert float(np.abs(np.concatenate(out) - target).max()) <= TOL
    rig.float()


def test_each_child_prewarms_on_its_own_silence(rig: NAMSequential) -> None:
    # A chain-wide pre-warm (the cab hearing the amp's answer to silence) is what Core does not do: it is off.
    x, target = wav("input_guitar"), wav("rig_sequential__input_guitar")
    rf = rig.receptive_field
    with torch.no_grad():
        chain_wide = rig.double()(torch.nn.functional.pad(torch.from_numpy(x).double()[None], (rf - 1, 0)))[0]
    rig.float()
    assert float(np.abs(chain_wide.numpy() - target).max()) > 1e-4


def test_cab_ir_wav_is_the_linear_of_cab_ir_nam() -> None:
    model, rate = load_ir(FIX / "cab_ir.wav")
    assert rate == 48_000 and model.receptive_field == 2048
    ref = load_nam(FIX / "cab_ir.nam")
    assert model.export_weights() == ref.weights  # weights[0] = the tap on the current sample, bit for bit
    for inp in INPUTS:
        assert float(np.abs(render(model, wav(inp)).numpy() - wav(f"cab_ir__{inp}")).max()) <= TOL


def test_sequential_round_trip_keeps_every_child(rig: NAMSequential, tmp_path: Path) -> None:
    src = json.loads((FIX / "rig_sequential.nam").read_text())
    out = save_nam(rig, tmp_path / "rig.nam", src["metadata"], 48_000)
    d = json.loads((tmp_path / "rig.nam").read_text())
    assert (d["version"], d["architecture"], d["weights"], d["sample_rate"]) == ("0.7.0", "Sequential", [], 48000)
    assert set(d["config"]) == {"models"} and len(d["config"]["models"]) == 2
    for mine, core in zip(d["config"]["models"], src["config"]["models"]):
        assert mine["architecture"] == core["architecture"] and mine["config"] == core["config"]
        assert mine["weights"] == core["weights"] and mine["sample_rate"] == 48000
    assert d["config"]["models"][1]["metadata"] == src["config"]["models"][1]["metadata"]
    back = model_from_nam(out)
    x = wav("input_core_example")[:8000]
    assert np.array_equal(render(back, x).numpy(), render(rig, x).numpy())


def test_child_at_another_sample_rate_is_refused(tmp_path: Path) -> None:
    d = json.loads((FIX / "rig_sequential.nam").read_text())
    d["config"]["models"][1]["sample_rate"] = 44100
    (tmp_path / "bad.nam").write_text(json.dumps(d))
    with pytest.raises(NamFormatError) as e:
        load_nam(tmp_path / "bad.nam")
    msg = str(e.value)
    assert "\n" not in msg and "bad.nam" in msg and "model 1" in msg and "44100" in msg and "48000" in msg


def test_sequential_config_errors_name_the_file(tmp_path: Path) -> None:
    d = json.loads((FIX / "rig_sequential.nam").read_text())
    d["config"]["models"] = []
    (tmp_path / "empty.nam").write_text(json.dumps(d))
    with pytest.raises(NamFormatError, match=r"empty\.nam: invalid Sequential config: .*non-empty 'models'"):
        load_nam(tmp_path / "empty.nam")
    d["config"] = {"models": [json.loads((FIX / "cab_ir.nam").read_text())], "gain": 1}
    (tmp_path / "extra.nam").write_text(json.dumps(d))
    with pytest.raises(NamFormatError, match=r"unsupported key\(s\): gain"):
        load_nam(tmp_path / "extra.nam")


# ------------------------------------------------------------------------------------------- cost arithmetic


def nano(seed: int) -> NAMWaveNet:
    torch.manual_seed(seed)
    return NAMWaveNet(a1_wavenet_layers("nano"), 0.02)


def fir(taps: list[float]) -> NAMLinear:
    m = NAMLinear(len(taps))
    m.import_weights(taps)
    return m


def test_sequential_cost_adds_up_and_nests() -> None:
    amp, lstm, ir = nano(0), NAMLSTM(4, 1), fir([0.5, 0.25, -0.125, 0.0625, 0.1])
    seq = NAMSequential([amp, lstm, ir])
    c, parts = seq.cost(), [amp.cost(), lstm.cost(), ir.cost()]
    assert c.params == sum(p.params for p in parts) == sum(p.numel() for p in seq.parameters())
    assert c.macs_per_sample == sum(p.macs_per_sample for p in parts)
    assert c.weights == sum(p.weights for p in parts) and seq.num_weights == 0 and seq.export_weights() == []
    assert c.receptive_field == seq.receptive_field == (4093 - 1) + (1 - 1) + (5 - 1) + 1 == 4097
    assert c.latency_samples == 0 and seq.stream_kind == "state"  # the LSTM carries state
    assert [op["op_class"] for op in seq.device_ops()] == ["WAVENET", "TANH", "LSTM", "FIR"]
    nested = NAMSequential([NAMSequential([amp, lstm]), ir])
    assert nested.cost() == c
    # nested streams like the whole-input forward, each child with its own state
    x = torch.randn(1, 500, dtype=torch.float64) * 0.3
    m = nested.double()
    with torch.no_grad():
        whole = m(x, pad_start=True)[0]
    state, out = m.stream_init(torch.float64), []
    for a, b in [(0, 7), (7, 300), (300, 500)]:
        y, state = m.stream_block(x[:, a:b], state)
        out.append(y)
    np.testing.assert_allclose(torch.cat(out).numpy(), whole.numpy(), atol=1e-12)
    # valid mode shortens by the whole receptive field
    assert m(torch.zeros(1, 5000, dtype=torch.float64)).shape[-1] == 5000 - 4097 + 1


def test_composed_models_have_every_streaming_export() -> None:
    # one ONNX / TFLite graph for the whole chain or graph (tests/audio/test_composition_exports.py renders them)
    for model in (NAMSequential([nano(0), fir([1.0, 0.5])]), two_cab_dag("sum")):
        assert model.unavailable_exports() == {} and model.stream_kind == "state"
        assert list(model.streaming_twin(64).input_shape) == [64, 1, 1]  # the block alone: histories are inside


def test_nested_sequential_round_trips_through_a_file(tmp_path: Path) -> None:
    seq = NAMSequential([NAMSequential([nano(1), fir([1.0, -0.5])]), fir([0.3, 0.2, 0.1])])
    back = model_from_nam(save_nam(seq, tmp_path / "nested.nam"))
    assert isinstance(back.models[0], NAMSequential)
    x = np.random.default_rng(0).standard_normal(3000).astype(np.float32) * 0.2
    assert np.array_equal(render(back, x).numpy(), render(seq, x).numpy())


def test_a_sequential_refuses_what_is_no_audio_stage() -> None:
    with pytest.raises(ValueError, match="at least one model"):
        NAMSequential([])
    with pytest.raises(ValueError, match=r"model 1: Linear is not a streaming NAM model"):
        NAMSequential([nano(0), torch.nn.Linear(2, 2)])


# -------------------------------------------------------------------------------------------------- IR files


def write_ir(path: Path, data: np.ndarray, rate: int = 48_000) -> Path:
    sf.write(path, data, rate, subtype="FLOAT")
    return path


def test_ir_at_another_rate_is_resampled_with_its_response_kept(tmp_path: Path, caplog) -> None:
    # the fixture's 48 kHz cabinet IR joins a 44.1 kHz chain
    path = FIX / "cab_ir.wav"
    ir = wav("cab_ir").astype(np.float64)
    with caplog.at_level(logging.INFO, logger="tinyverse.audio.ir"):
        model, rate = load_ir(path, 44_100)
    assert rate == 44_100 and abs(model.receptive_field - 2048 * 44_100 / 48_000) <= 1
    assert any("48000 Hz" in r.message and "44100 Hz" in r.message for r in caplog.records)
    taps = np.asarray(model.export_weights())
    np.testing.assert_allclose(taps, resample_ir(ir, 48_000, 44_100))

    def gain_db(h: np.ndarray, rate: int, f: float) -> float:
        return 20 * np.log10(abs(np.sum(h * np.exp(-2j * np.pi * f * np.arange(len(h)) / rate))))

    # the cabinet's response is kept (unscaled taps would be 0.74 dB louder: 48/44.1 more taps per second)
    for f in (100.0, 500.0, 1000.0, 2000.0, 5000.0, 8000.0, 12000.0):
        assert abs(gain_db(taps, 44_100, f) - gain_db(ir, 48_000, f)) < 0.05, f
    with pytest.raises(IRError) as e:
        load_ir(path, 44_100, strict=True)
    assert "48000 Hz" in str(e.value) and "44100 Hz" in str(e.value) and "cab_ir.wav" in str(e.value)


def test_stereo_empty_and_silent_irs_are_refused(tmp_path: Path) -> None:
    stereo = write_ir(tmp_path / "stereo.wav", np.stack([np.r_[1.0, 0.5], np.r_[0.2, 0.1]], 1).astype(np.float32))
    with pytest.raises(IRError, match=r"stereo\.wav has 2 channels; .*choose a channel"):
        load_ir(stereo)
    model, _ = load_ir(stereo, channel=1)  # a chosen channel is used
    assert model.export_weights() == pytest.approx([0.2, 0.1])
    with pytest.raises(IRError, match="channel 2 does not exist"):
        load_ir(stereo, channel=2)
    with pytest.raises(IRError, match=r"empty\.wav holds no audio"):
        load_ir(write_ir(tmp_path / "empty.wav", np.zeros(0, np.float32)))
    with pytest.raises(IRError, match=r"zeros\.wav is all zeros"):
        load_ir(write_ir(tmp_path / "zeros.wav", np.zeros(8, np.float32)))
    with pytest.raises(IRError, match=r"no such file"):
        load_ir(tmp_path / "missing.wav")


# ------------------------------------------------------------------------------------------------------ DAG


def two_cab_dag(mix: str, weights: tuple[float, ...] | None = None, trainable: bool = False) -> NAMDAG:
    return NAMDAG({"amp": DagNode(model=nano(3)),
                   "cab_a": DagNode(model=fir([0.9, -0.3, 0.1]), input="amp"),
                   "cab_b": DagNode(model=fir([0.5, 0.2, 0.1, 0.05, 0.01, 0.3]), input="amp"),
                   "mix": DagNode(mix=mix, inputs=("cab_a", "cab_b"), weights=weights, trainable=trainable)}, "mix")


@pytest.mark.parametrize("mix,weights", [("sum", None), ("mean", None), ("weighted", (0.7, 0.3))])
def test_dag_fan_in_equals_the_hand_computation(mix: str, weights) -> None:
    dag = two_cab_dag(mix, weights)
    x = np.random.default_rng(1).standard_normal(2000).astype(np.float32) * 0.3
    a = render(NAMSequential([dag.nodes["amp"].model, dag.nodes["cab_a"].model]), x).numpy()
    b = render(NAMSequential([dag.nodes["amp"].model, dag.nodes["cab_b"].model]), x).numpy()
    w = dag.mix_weight("mix").double().numpy() if mix == "weighted" else None  # 0.7 and 0.3 as float32 holds them
    expected = {"sum": a + b, "mean": (a + b) / 2, "weighted": w[0] * a + w[1] * b if w is not None else None}[mix]
    assert w is None or np.allclose(w, [0.7, 0.3])
    np.testing.assert_allclose(render(dag, x).numpy(), expected, atol=1e-12)
    # streaming in uneven blocks: the same samples
    m, xt = dag.double(), torch.from_numpy(x).double()[None]
    state, out = m.stream_init(torch.float64), []
    for lo, hi in [(0, 3), (3, 1000), (1000, 2000)]:
        y, state = m.stream_block(xt[:, lo:hi], state)
        out.append(y)
    np.testing.assert_allclose(torch.cat(out).numpy(), expected, atol=1e-12)


def test_dag_cost_and_receptive_field_follow_the_longest_path() -> None:
    dag = two_cab_dag("weighted", (0.7, 0.3))
    amp, a, b = (dag.nodes[n].model for n in ("amp", "cab_a", "cab_b"))
    c = dag.cost()
    assert c.receptive_field == dag.receptive_field == 4093 + 6 - 1  # amp -> cab_b, the longer branch
    assert c.macs_per_sample == amp.cost().macs_per_sample + 3 + 6 + 2  # + a multiply-add per weighted input
    assert c.params == amp.cost().params + 9 and c.latency_samples == 0
    assert c.weights == amp.num_weights + 9 + 2
    # valid mode: branches end together, the output is as long as the longest path allows
    with torch.no_grad():
        assert dag(torch.zeros(1, 6000)).shape[-1] == 6000 - dag.receptive_field + 1
    assert two_cab_dag("sum").mix_macs() == 1 and two_cab_dag("mean").mix_macs() == 2
    # a dry/wet blend reads the audio input itself
    blend = NAMDAG({"amp": DagNode(model=nano(3)),
                    "mix": DagNode(mix="weighted", inputs=("input", "amp"), weights=(0.25, 0.75))}, "mix")
    x = np.random.default_rng(2).standard_normal(600).astype(np.float32)
    np.testing.assert_allclose(render(blend, x).numpy(), 0.25 * x + 0.75 * render(nano(3), x).numpy(), atol=1e-9)
    assert blend.receptive_field == 4093


def test_dag_file_round_trip_and_trainable_weights(tmp_path: Path) -> None:
    dag = two_cab_dag("weighted", (0.7, 0.3), trainable=True)
    assert dag.mix_weight("mix").requires_grad and dag.cost().params == dag.nodes["amp"].model.cost().params + 9 + 2
    with torch.no_grad():
        dag.mix_weight("mix").copy_(torch.tensor([0.6, 0.45]))  # as training would move them
    d = nam_to_dict(dag)
    assert d["architecture"] == "DAG" and d["version"] == "0.7.0" and d["weights"] == []
    assert [n["name"] for n in d["config"]["nodes"]] == ["amp", "cab_a", "cab_b", "mix"]
    mix = d["config"]["nodes"][-1]
    assert mix["weighted"] == pytest.approx({"cab_a": 0.6, "cab_b": 0.45}) and mix["trainable"] is True
    assert d["config"]["nodes"][0]["input"] is None and d["config"]["nodes"][1]["input"] == "amp"
    back = model_from_nam(save_nam(dag, tmp_path / "dag.nam"))
    assert isinstance(back, NAMDAG) and back.mix_weight("mix").requires_grad
    x = np.random.default_rng(3).standard_normal(1500).astype(np.float32) * 0.3
    assert np.array_equal(render(back, x).numpy(), render(dag, x).numpy())


def test_a_dag_that_is_a_chain_is_written_as_sequential(tmp_path: Path) -> None:
    chain = NAMDAG({"cab": DagNode(model=fir([0.5, 0.5]), input="amp"), "amp": DagNode(model=nano(4))}, "cab")
    assert chain.is_chain and chain.chain() == ["amp", "cab"]
    d = nam_to_dict(chain)
    assert d["architecture"] == "Sequential" and [m["architecture"] for m in d["config"]["models"]] == \
        ["WaveNet", "Linear"]
    back = model_from_nam(save_nam(chain, tmp_path / "chain.nam"))
    assert isinstance(back, NAMSequential)
    x = np.random.default_rng(4).standard_normal(800).astype(np.float32)
    assert np.array_equal(render(back, x).numpy(), render(chain, x).numpy())


def test_dag_nests_a_sequential_and_a_dag(tmp_path: Path) -> None:
    inner = two_cab_dag("mean")
    outer = NAMDAG({"rig": DagNode(model=inner), "post": DagNode(model=NAMSequential([fir([0.5, 0.1])]), input="rig"),
                    "out": DagNode(mix="sum", inputs=("rig", "post"))}, "out")
    assert outer.receptive_field == inner.receptive_field + 1
    x = np.random.default_rng(5).standard_normal(900).astype(np.float32) * 0.3
    r = render(inner, x).numpy()
    post = render(fir([0.5, 0.1]), r).numpy()
    np.testing.assert_allclose(render(outer, x).numpy(), r + post, atol=1e-12)
    back = model_from_nam(save_nam(outer, tmp_path / "outer.nam"))
    assert isinstance(back.nodes["rig"].model, NAMDAG)
    assert np.array_equal(render(back, x).numpy(), render(outer, x).numpy())


@pytest.mark.parametrize("nodes,output,message", [
    ({"amp": DagNode(model=fir([1.0]), input="amp2")}, "amp", "node 'amp' reads 'amp2', which is not a node"),
    ({"a": DagNode(model=fir([1.0]), input="b"), "b": DagNode(model=fir([1.0]), input="a")}, "a",
     "the graph has a cycle: "),
    ({"a": DagNode(model=fir([1.0]))}, "mix", "output 'mix' is not a node"),
    ({"a": DagNode(model=fir([1.0])), "b": DagNode(model=fir([1.0]))}, "a", "node 'b' is not on a path to the output"),
    ({"input": DagNode(model=fir([1.0]))}, "input", "reserved for the audio input"),
    ({"a": DagNode(model=fir([1.0])), "m": DagNode(mix="weighted", inputs=("a",), weights=(float("nan"),))}, "m",
     "weights must be finite"),
    ({"a": DagNode(model=fir([1.0])), "m": DagNode(mix="median", inputs=("a",))}, "m", "unknown fan-in 'median'"),
])
def test_dag_refuses_bad_graphs_in_one_line(nodes, output, message) -> None:
    with pytest.raises(ValueError) as e:
        NAMDAG(nodes, output)
    assert message in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------- graph files


def write_graph(folder: Path, text: str) -> Path:
    path = folder / "graph.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def files(tmp_path: Path) -> Path:
    save_nam(nano(7), tmp_path / "amp.nam", sample_rate=48_000)
    save_nam(nano(8), tmp_path / "amp44.nam", sample_rate=44_100)
    write_ir(tmp_path / "cab_a.wav", np.array([0.8, -0.2, 0.1], np.float32))
    write_ir(tmp_path / "cab_b.wav", np.array([0.3, 0.3, 0.2, 0.1], np.float32))
    write_ir(tmp_path / "stereo.wav", np.ones((4, 2), np.float32))
    write_ir(tmp_path / "empty.wav", np.zeros(0, np.float32))
    return tmp_path


GRAPH = """nodes:
  amp:   {model: amp.nam}
  cab_a: {model: cab_a.wav, input: amp}
  cab_b: {model: cab_b.wav, input: amp}
  mix:   {mean: [cab_a, cab_b]}
output: mix
"""


def test_graph_file_builds_the_issue_example(files: Path) -> None:
    composed = load_graph(write_graph(files, GRAPH))
    dag = composed.model
    assert isinstance(dag, NAMDAG) and composed.sample_rate == 48_000 and dag.nam_architecture == "DAG"
    x = np.random.default_rng(6).standard_normal(1000).astype(np.float32) * 0.3
    amp = model_from_nam(files / "amp.nam")
    a = render(NAMSequential([amp, fir([0.8, -0.2, 0.1])]), x).numpy()
    b = render(NAMSequential([amp, fir([0.3, 0.3, 0.2, 0.1])]), x).numpy()
    np.testing.assert_allclose(render(dag, x).numpy(), (a + b) / 2, atol=1e-7)  # float32 IR taps
    chain = load_graph(write_graph(files, "nodes:\n  amp: {model: amp.nam}\n  cab: {model: cab_a.wav, input: amp}\n"
                                          "output: cab\n")).model
    assert nam_to_dict(chain)["architecture"] == "Sequential"


@pytest.mark.parametrize("text,message", [
    (GRAPH.replace("input: amp}\n  cab_b", "input: amp2}\n  cab_b"), "node 'cab_a' reads 'amp2', which is not a node "
                                                                    "(did you mean 'amp'?)"),
    (GRAPH.replace("{model: amp.nam}", "{model: amp.nam, input: mix}"), "the graph has a cycle: "),
    (GRAPH.replace("output: mix\n", ""), "no 'output'"),
    (GRAPH.replace("output: mix", "output: mixx"), "output 'mixx' is not a node (did you mean 'mix'?)"),
    (GRAPH.replace("mean: [cab_a, cab_b]", "mean: [cab_a, cab_c]"), "node 'mix' reads 'cab_c'"),
    (GRAPH.replace("amp.nam", "missing.nam"), "node 'amp' (missing.nam): no such file"),
    (GRAPH.replace("cab_b.wav", "stereo.wav"), "stereo.wav has 2 channels"),
    (GRAPH.replace("cab_b.wav", "empty.wav"), "empty.wav holds no audio"),
    (GRAPH.replace("cab_b.wav, input: amp", "amp44.nam, input: amp"), "sample-rate mismatch: "),
    (GRAPH.replace("cab_b.wav", "NAM_WaveNet_nanoo"), "'NAM_WaveNet_nanoo' is neither a file nor a zoo model"),
    (GRAPH.replace("{mean: [cab_a, cab_b]}", "{mean: [cab_a, cab_b], sum: [cab_a]}"), "node 'mix' needs exactly one"),
    (GRAPH.replace("{model: amp.nam}", "{model: amp.nam, gain: 2}"), "node 'amp' has unknown key(s) gain"),
    (GRAPH + "extra: 1\n", "unknown key(s) extra"),
    ("nodes: [amp]\noutput: amp\n", "'nodes' must map node names"),
    ("nodes:\n  amp: {model: amp.nam\n", "not valid YAML at line"),
])
def test_graph_file_errors_are_one_line_naming_file_and_node(files: Path, text: str, message: str) -> None:
    path = write_graph(files, text)
    with pytest.raises(CompositionError) as e:
        load_graph(path)
    msg = str(e.value)
    assert message in msg and "\n" not in msg and str(path) in msg, msg


def test_graph_nodes_take_zoo_models_and_ir_channels(files: Path) -> None:
    composed = graph_from_dict({"nodes": {"eq": {"model": "NAM_Linear", "config": {"receptive_field": 4}},
                                          "cab": {"model": "stereo.wav", "channel": 1, "input": "eq"}},
                                "output": "cab"}, "g", files)
    chain = composed.model.as_sequential()
    assert [m.receptive_field for m in chain.models] == [4, 4] and composed.sample_rate == 48_000


def test_combine_takes_a_run_checkpoint(files: Path) -> None:
    # a run folder: model.nam as written after training, checkpoints/best.ckpt holding other (later) weights
    run = files / "run"
    (run / "checkpoints").mkdir(parents=True)
    save_nam(nano(11), run / "model.nam", sample_rate=48_000)
    trained = nano(12)
    torch.save({"state_dict": {f"model.{k}": v for k, v in trained.state_dict().items()}},
               run / "checkpoints" / "best.ckpt")
    c = combine([str(run / "checkpoints" / "best.ckpt"), str(files / "cab_a.wav")])
    assert c.sample_rate == 48_000
    x = np.random.default_rng(8).standard_normal(500).astype(np.float32)
    expected = render(NAMSequential([trained, fir([0.8, -0.2, 0.1])]), x).numpy()
    np.testing.assert_allclose(render(c.model, x).numpy(), expected, atol=1e-7)
    (run / "model.nam").unlink()
    with pytest.raises(CompositionError, match=r"best\.ckpt: cannot load the checkpoint: cannot tell the architecture: no model\.nam"):
        combine([str(run / "checkpoints" / "best.ckpt")])


def test_combine_resolves_the_chain_rate(files: Path) -> None:
    write_ir(files / "cab44.wav", np.array([1.0, 0.5, 0.25, 0.125], np.float32), 44_100)
    c = combine([str(files / "amp.nam"), str(files / "cab44.wav")])
    assert c.sample_rate == 48_000 and c.notes == [f"{files / 'cab44.wav'}: impulse response resampled from 44100 "
                                                   "Hz to 48000 Hz"]
    assert combine([str(files / "cab44.wav")]).sample_rate == 44_100  # no NAM model: the IR's own rate
    with pytest.raises(CompositionError, match="runs at 44100 Hz but .*amp.nam at 48000 Hz"):
        combine([str(files / "amp.nam"), str(files / "amp44.nam")])
    with pytest.raises(CompositionError, match="sample rate 44100 Hz asked for"):
        combine([str(files / "amp.nam")], sample_rate=44_100)
    with pytest.raises(CompositionError, match="44100 Hz, the chain at 48000 Hz"):
        combine([str(files / "amp.nam"), str(files / "cab44.wav")], strict_rate=True)


# ------------------------------------------------------------------------------------------------------ CLI


def cli(capsys, *args) -> tuple[int, str, str]:
    from modelmaker.cli import main

    capsys.readouterr()
    rc = main([*map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_combine_render_and_check_the_fixture_rig(tmp_path: Path, capsys) -> None:
    rig = tmp_path / "rig.nam"
    rc, out, err = cli(capsys, "combine", AMP, FIX / "cab_ir.wav", "-o", rig)
    assert rc == 0, err
    assert "Sequential of WaveNet, Linear at 48,000 Hz" in out and "15,369 MACs/sample" in out
    assert "receptive field 6,140 samples" in out
    d = json.loads(rig.read_text())
    assert d["architecture"] == "Sequential" and d["sample_rate"] == 48000
    for inp in INPUTS:  # the written file renders Core's full-rig output
        assert float(np.abs(render(model_from_nam(rig), wav(inp)).numpy() - wav(f"rig_sequential__{inp}")).max()) \
            <= TOL
    # modelmaker render plays it block by block
    n = 12_000
    sf.write(tmp_path / "in.wav", wav("input_guitar")[:n], 48_000, subtype="FLOAT")
    rc, out, err = cli(capsys, "render", rig, tmp_path / "in.wav", tmp_path / "out.wav", "--block-size", "64")
    assert rc == 0, err
    y, _ = sf.read(tmp_path / "out.wav", dtype="float32")
    assert float(np.abs(y - wav("rig_sequential__input_guitar")[:n]).max()) <= TOL


def test_cli_check_sees_the_whole_chain(capsys) -> None:
    # the amp fits the Pocket Master's budget; amp + cab (15,369 MACs/sample) does not
    rc, out, err = cli(capsys, "check", FIX / "rig_sequential.nam", "--device", "pocket-master")
    assert rc == 1 and "15,369" in out and "FIR" in out and "WAVENET" in out and "MACs/sample: 15,369 over" in out
    rc, out, _ = cli(capsys, "check", AMP, "--device", "pocket-master")
    assert rc == 0, out


def test_cli_combine_dag(files: Path, capsys) -> None:
    rc, out, err = cli(capsys, "combine", "--dag", write_graph(files, GRAPH), "-o", files / "rig.nam")
    assert rc == 0, err
    assert "DAG of amp: WaveNet" in out and "NAM Core cannot load it" in out
    assert isinstance(model_from_nam(files / "rig.nam"), NAMDAG)
    rc, out, err = cli(capsys, "render", files / "rig.nam", files / "cab_a.wav", files / "out.wav")
    assert rc == 0, err


@pytest.mark.parametrize("case,message", [
    ("unknown node", "node 'cab_a' reads 'amp2', which is not a node"),
    ("cycle", "the graph has a cycle"),
    ("missing output", "no 'output'"),
    ("missing file", "node 'amp' (missing.nam): no such file"),
    ("sample-rate mismatch", "sample-rate mismatch"),
    ("stereo IR", "stereo.wav has 2 channels"),
    ("empty IR", "empty.wav holds no audio"),
    ("strict rate", "44100 Hz, the chain at 48000 Hz"),
    ("models and --dag", "either models to chain or --dag"),
    ("nothing", "nothing to combine"),
    ("not .nam", "the output is a .nam file"),
    ("output is an input", "is one of the inputs"),
    ("missing graph", "no such file"),
])
def test_cli_combine_errors_are_one_line_exit_2(files: Path, capsys, case: str, message: str) -> None:
    write_ir(files / "cab44.wav", np.array([1.0, 0.5], np.float32), 44_100)
    graph = {"unknown node": GRAPH.replace("input: amp}\n  cab_b", "input: amp2}\n  cab_b"),
             "cycle": GRAPH.replace("{model: amp.nam}", "{model: amp.nam, input: mix}"),
             "missing output": GRAPH.replace("output: mix\n", ""),
             "missing file": GRAPH.replace("amp.nam", "missing.nam"),
             "sample-rate mismatch": GRAPH.replace("cab_b.wav, input: amp", "amp44.nam, input: amp")}
    out = files / "rig.nam"
    args = {"stereo IR": [files / "amp.nam", files / "stereo.wav", "-o", out],
            "empty IR": [files / "amp.nam", files / "empty.wav", "-o", out],
            "strict rate": [files / "amp.nam", files / "cab44.wav", "-o", out, "--strict-sample-rate"],
            "models and --dag": [files / "amp.nam", "--dag", write_graph(files, GRAPH), "-o", out],
            "nothing": ["-o", out],
            "not .nam": [files / "amp.nam", "-o", files / "rig.json"],
            "output is an input": [files / "amp.nam", files / "cab_a.wav", "-o", files / "amp.nam"],
            "missing graph": ["--dag", files / "nope.yaml", "-o", out]}.get(case)
    if args is None:
        args = ["--dag", write_graph(files, graph[case]), "-o", out]
    before = (files / "amp.nam").read_bytes()
    rc, stdout, err = cli(capsys, "combine", *args)
    assert rc == 2 and message in err and err.startswith("modelmaker: error: ") and err.count("\n") == 1, err
    assert not out.exists() and (files / "amp.nam").read_bytes() == before  # nothing written, nothing lost


# -------------------------------------------------------------------------------------------------- flatten


def test_fold_makes_one_wavenet_that_renders_the_full_rig(rig: NAMSequential) -> None:
    from tinyverse.audio.flatten import fold

    result = fold(rig)
    folded = result.model
    assert isinstance(folded, NAMWaveNet) and folded.nam_version() == "0.7.0"
    assert folded.receptive_field == rig.receptive_field and result.info["settle_samples"] == 2047
    assert folded.cost().macs_per_sample == rig.cost().macs_per_sample and result.esr < 1e-6
    x, target = wav("input_guitar"), wav("rig_sequential__input_guitar")
    y = render(folded, x).numpy()
    assert float(np.abs(y[2047:] - target[2047:]).max()) <= TOL  # Core's full-rig samples once the IR has filled
    assert float(np.abs(y[:2047] - target[:2047]).max()) > 1e-4  # the start-up differs (the amp's DC in the head)


@pytest.mark.parametrize("stages,reason", [
    (lambda: [fir([1.0, 0.5]), nano(0)], "Linear -> WaveNet"),
    (lambda: [NAMLSTM(4), fir([1.0, 0.5])], "LSTM -> Linear"),
    (lambda: [nano(0)], "WaveNet"),
])
def test_fold_says_when_a_chain_does_not_fold(stages, reason: str) -> None:
    from tinyverse.audio.flatten import FlattenError, fold_ir

    with pytest.raises(FlattenError, match=f"no exact fold for a chain of {reason}: .*distil it instead"):
        fold_ir(NAMSequential(stages()))


def test_fold_combines_several_irs_and_their_biases() -> None:
    from tinyverse.audio.flatten import fold_ir

    b1 = NAMLinear(3, bias=True)
    b1.import_weights([0.5, -0.25, 0.1, 0.05])  # taps, then the bias
    chain = NAMSequential([nano(2), b1, fir([0.8, 0.3])])
    folded = fold_ir(chain)
    x = np.random.default_rng(7).standard_normal(6000).astype(np.float32) * 0.3
    np.testing.assert_allclose(render(folded, x).numpy()[10:], render(chain, x).numpy()[10:], atol=1e-9)


def test_distil_trains_a_plain_model_on_the_chain(tmp_path: Path) -> None:
    from tinyverse.audio.flatten import distil
    from tinyverse.models import create_model

    chain = NAMSequential([fir([0.5, 0.3, -0.2]), fir([0.9, 0.1])])
    student = create_model("NAM_Linear", receptive_field=8)  # starts as a pass-through
    before = student.export_weights()
    result = distil(chain, student, seconds=15, epochs=2, work_dir=tmp_path / "work")
    assert result.method == "distil" and result.model is student and result.info["epochs"] == 2
    assert (tmp_path / "work" / "checkpoints" / "best.ckpt").is_file()
    assert student.export_weights() != before
    # the reported ESR is the student's against the chain on the validation block of the standard-style input
    from tinyverse.audio import esr
    from tinyverse.audio.capture import standard_input

    x, layout = standard_input(48_000, 0, 15)
    v0, v1 = layout.validation[-1]
    expected = esr(render(chain, x).numpy()[v0:v1], render(student, x).numpy()[v0:v1])
    assert result.esr == pytest.approx(expected, rel=1e-4)
    untrained = esr(render(chain, x).numpy()[v0:v1], x[v0:v1].astype(np.float64))  # the pass-through's
    assert result.esr < untrained


def test_cli_flatten(files: Path, capsys) -> None:
    out = files / "flat.nam"
    rc, stdout, err = cli(capsys, "combine", AMP, FIX / "cab_ir.wav", "-o", out, "--flatten", "fold")
    assert rc == 0, err
    assert "folded into one WaveNet (version 0.7.0)" in stdout and "first 2,047 of a stream" in stdout
    y = render(model_from_nam(out), wav("input_core_example")).numpy()
    assert float(np.abs(y[2047:] - wav("rig_sequential__input_core_example")[2047:]).max()) <= TOL
    rc, stdout, err = cli(capsys, "combine", files / "cab_a.wav", files / "cab_b.wav", "-o", out, "--flatten",
                          "NAM_Linear", "--flatten-epochs", "1", "--flatten-seconds", "15")
    assert rc == 0, err
    assert "distilled into NAM_Linear" in stdout and "ESR against the chain: " in stdout
    assert "no exact fold for a chain of Linear -> Linear" in stdout
    d = json.loads(out.read_text())
    assert d["architecture"] == "Linear" and "validation_esr" in d["metadata"]["training"]
    for args, message in ((["--flatten", "fold"], "--flatten fold: no exact fold for a chain of Linear -> Linear"),
                          (["--flatten", "NAM_WaveNet_feathr"], "--flatten: "),
                          (["--flatten", "NAM_Linear", "--flatten-seconds", "5"], "--flatten-seconds >= 15")):
        rc, _, err = cli(capsys, "combine", files / "cab_a.wav", files / "cab_b.wav", "-o", files / "x.nam", *args)
        assert rc == 2 and message in err and err.count("\n") == 1, err
        assert not (files / "x.nam").exists()


def test_the_size_knob_of_a_composed_model_moves_every_slimmable_child() -> None:
    """A full rig built on an A2 container: slim picks the container's size inside the chain (Sequential and
    DAG alike); a chain with nothing slimmable refuses the knob with one line."""
    from tinyverse.models import create_model

    torch.manual_seed(0)
    amp = create_model("NAM_A2")
    ir = fir([0.9, -0.3, 0.1])
    x = torch.randn(1, 8000) * 0.1  # longer than the A2 receptive field (6,347)
    for composed in (NAMSequential([amp, ir]),
                     NAMDAG({"amp": DagNode(model=amp), "cab": DagNode(model=ir, input="amp")}, "cab")):
        assert composed.slimmable and composed.slim == 1.0
        reference = copy.deepcopy(amp)  # set by hand, apart from the chain
        for value in (0.0, 1.0):
            composed.set_slim(value)
            reference.set_slim(value)
            with torch.no_grad():
                expected = ir(reference(x))
                got = composed(x)
            n = min(expected.shape[-1], got.shape[-1])
            torch.testing.assert_close(got[..., -n:], expected[..., -n:])
            assert composed.slim == value and amp.slim == value
        with torch.no_grad():  # the two sizes really differ, so the comparison above means something
            reference.set_slim(0.0)
            lite = reference(x)
            reference.set_slim(1.0)
            assert float((lite - reference(x)).abs().max()) > 1e-4
    with pytest.raises(ValueError, match="no model in this Sequential has a slimmable size"):
        NAMSequential([nano(1), fir([1.0])]).set_slim(0.0)


# -------------------------------------------------------------------------------------------------- knob stages


KNOB_CORE = Path(__file__).parent / "data" / "knob_core"


def knob_stage(name: str = "catwavenet"):
    from tinyverse.audio.knob_file import load_knob_model
    from tinyverse.audio.nam import KnobStage

    return KnobStage(load_knob_model(KNOB_CORE / f"{name}.pt")[0])


def test_cost_receptive_field_and_latency_add_up_with_knob_stages() -> None:
    drive, ir, amp = knob_stage("catwavenet"), fir([0.5, 0.25, -0.125, 0.0625]), nano(0)
    k = drive.model.cost()
    seq = NAMSequential([drive, amp, ir])
    c = seq.cost()
    assert c.params == k.params + amp.cost().params + 4 == sum(p.numel() for p in seq.parameters())
    assert c.macs_per_sample == k.macs_per_sample + amp.cost().macs_per_sample + 4  # the audio path, per sample
    assert c.conditioning_macs == k.conditioning_macs > 0 and c.conditioning_per == k.conditioning_per == "sample"
    assert c.weights == drive.num_weights + amp.num_weights + 4
    assert c.receptive_field == seq.receptive_field == drive.receptive_field + 4093 + 4 - 2 and c.latency_samples == 0
    assert seq.input_shapes == {"audio": (None,), "params": (2,)} and seq.knobs.names == ["bright", "gain"]
    assert NAMSequential([amp, ir]).cost().conditioning_macs is None  # no knob stage: nothing per knob change
    # a DAG: the knob stage on one branch, the longest path gives the receptive field, fan-in MACs on top
    dag = NAMDAG({"drive": DagNode(model=knob_stage("hyperconvnet")), "cab": DagNode(model=ir, input="drive"),
                  "dry": DagNode(model=fir([1.0] + [0.0] * 40)),
                  "mix": DagNode(mix="mean", inputs=("cab", "dry"))}, "mix")
    h = dag.nodes["drive"].model.model.cost()
    d = dag.cost()
    assert d.receptive_field == max(h.receptive_field + 3, 41)
    assert d.macs_per_sample == h.macs_per_sample + 4 + 41 + 2 and d.conditioning_macs == h.conditioning_macs
    assert d.conditioning_per == "block"  # a hypernet runs once per block
    # stages that condition differently: the per-sample ones count with every sample, the per-block ones apart
    both = NAMSequential([knob_stage("catwavenet"), knob_stage("hyperconvnet")]).cost()
    assert both.macs_per_sample == k.macs_per_sample + k.conditioning_macs + h.macs_per_sample
    assert (both.conditioning_macs, both.conditioning_per) == (h.conditioning_macs, "block")
    # the device check sees the whole chain, knob stage included
    from tinyverse.devices import check_model

    report = check_model(seq, "pocket-master", model_name="rig")
    assert report.totals["macs_per_sample"] == c.macs_per_sample + c.conditioning_macs  # knob columns, every sample


def test_knob_stages_play_at_their_share_of_the_knob_vector(tmp_path: Path) -> None:
    drive, second = knob_stage("catwavenet"), knob_stage("hyperconvnet")
    seq = NAMSequential([drive, fir([0.6, 0.3]), second]).double()
    x = np.random.default_rng(4).standard_normal(1500) * 0.3
    setting = {"gain": 7.0, "bright": 1.0}
    p = seq.knobs.vector(setting, "test")
    with torch.no_grad():
        whole = seq(torch.as_tensor(x)[None], pad_start=True, params=torch.as_tensor(p, dtype=torch.float64))[0]
        by_hand = torch.as_tensor(x)[None]
        for m in seq.models:  # both knob models declare gain and bright alike: one knob drives both
            if hasattr(m, "knobs"):
                by_hand = m(by_hand, pad_start=True, params=torch.as_tensor(m.knobs.vector(setting, "t")).double())
            else:
                by_hand = m(by_hand, pad_start=True)
    np.testing.assert_allclose(whole.numpy(), by_hand[0].numpy(), atol=1e-12)
    # streamed in blocks, moving a knob between blocks as a host does
    state = seq.stream_init(torch.float64, params=p)
    y1, state = seq.stream_block(torch.as_tensor(x[:700])[None], state)
    y2, _ = seq.stream_block(torch.as_tensor(x[700:])[None], state)
    np.testing.assert_allclose(torch.cat([y1, y2]).numpy(), whole.numpy(), atol=1e-9)
    moved = seq.stream_params(seq.stream_init(torch.float64, params=p),
                              seq.knobs.vector({"gain": 2.0, "bright": 0}, "t"))
    y3, _ = seq.stream_block(torch.as_tensor(x[:700])[None], moved)
    assert np.abs(y3.numpy() - y1.numpy()).max() > 1e-4
    # a round trip through the file (tinyverse's KnobModel extension object)
    back = model_from_nam(save_nam(seq.float(), tmp_path / "rig.nam", {}, 48_000))
    d = json.loads((tmp_path / "rig.nam").read_text())
    assert [m["architecture"] for m in d["config"]["models"]] == ["KnobModel", "Linear", "KnobModel"]
    with torch.no_grad():
        pt = torch.as_tensor(p)
        assert torch.equal(back(torch.as_tensor(x, dtype=torch.float32)[None], pad_start=True, params=pt),
                           seq.float()(torch.as_tensor(x, dtype=torch.float32)[None], pad_start=True, params=pt))


def test_knob_stages_that_disagree_are_refused_in_one_line() -> None:
    from tinyverse.audio.knob_file import load_knob_model
    from tinyverse.audio.nam import KnobStage
    from tinyverse.audio.nam.knob_models import NAMCatWaveNet

    other = NAMCatWaveNet(knobs={"gain": {"min": 0, "max": 5}})
    with pytest.raises(ValueError) as e:
        NAMSequential([knob_stage("catwavenet"), KnobStage(other)])
    assert "knob 'gain' is declared by model 0" in str(e.value) and "model 1" in str(e.value)
    with pytest.raises(ValueError, match="declares no knobs"):
        KnobStage(NAMCatWaveNet(num_knobs=2))
    with pytest.raises(ValueError, match="wrap a knob model in tinyverse.audio.nam.KnobStage"):
        NAMSequential([load_knob_model(KNOB_CORE / "catwavenet.pt")[0]])
    with pytest.raises(NamFormatError, match="a KnobModel object is a stage of a Sequential or DAG"):
        d = nam_to_dict(NAMSequential([knob_stage()]))["config"]["models"][0]
        model_from_nam(__import__("tinyverse.audio.nam", fromlist=["nam_from_dict"]).nam_from_dict(d))


def test_cli_combine_a_knob_model_and_render_it_at_a_setting(tmp_path: Path, capsys) -> None:
    from modelmaker.cli import main as cli

    sf.write(tmp_path / "cab.wav", np.array([0.6, 0.3, 0.1], np.float32), 48_000, subtype="FLOAT")
    rig = tmp_path / "rig.nam"
    assert cli(["combine", str(KNOB_CORE / "catwavenet.pt"), str(tmp_path / "cab.wav"), "-o", str(rig)]) == 0
    out = capsys.readouterr().out
    assert "CatWaveNet" in out and "knobs: bright on/off, gain 0..10" in out and "NAM Core cannot load" in out
    x = np.random.default_rng(5).standard_normal(3000).astype(np.float32) * 0.3
    sf.write(tmp_path / "in.wav", x, 48_000, subtype="FLOAT")
    assert cli(["render", str(rig), str(tmp_path / "in.wav"), str(tmp_path / "g7.wav"), "--param", "gain=7"]) == 0
    assert cli(["render", str(rig), str(tmp_path / "in.wav"), str(tmp_path / "g2.wav"), "--param", "gain=2"]) == 0
    g7, g2 = sf.read(tmp_path / "g7.wav", dtype="float32")[0], sf.read(tmp_path / "g2.wav", dtype="float32")[0]
    model = model_from_nam(rig)
    with torch.no_grad():
        expected = model(torch.as_tensor(x)[None], pad_start=True,
                         params=torch.as_tensor(model.knobs.vector({"gain": 7}, "t", fill_defaults=True)))[0].numpy()
    assert np.abs(g7 - expected).max() < 1e-5 and np.abs(g7 - g2).max() > 1e-3
    assert "knob 'bright' not given: using its default 0" in capsys.readouterr().err
    assert cli(["render", str(rig), str(tmp_path / "in.wav"), str(tmp_path / "bad.wav"), "--param", "drive=1"]) == 2
    err = capsys.readouterr().err
    assert "unknown knob 'drive'" in err and err.strip().count("\n") == 0
