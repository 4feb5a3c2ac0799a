"""NAM parity for A2 and .nam 0.6 / 0.7 (issue #12): NeuralAmpModelerCore's renders of the shared fixtures
(shared/fixtures/nam_a2: A2 and a second SlimmableContainer at slim 0 and 1, a slimmable WaveNet, WaveNets with
condition_dsp / FiLM / grouped and bottleneck convs / per-layer activations, NAM 0.13's A1 nano in the 0.7
layout) and of two synthetic models (tests/audio/data/nam_a2_core: post-stack head, head dilation, blended
gating, slimming through FiLM); round trips; the oldest version written; ``modelmaker render --slim``; one-line
errors that name the file and the key."""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tinyverse.audio.nam import (
    NAMSlimmableContainer,
    NAMWaveNet,
    NamFormatError,
    a1_wavenet_layers,
    load_nam,
    model_from_nam,
    nam_from_dict,
    render,
    save_nam,
)
from tinyverse.audio.stream import OnnxStreamProcessor, StreamProcessor, process_file
from tinyverse.audio.twin import AudioExportError

FIX = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "nam_a2"
EXTRA = Path(__file__).resolve().parent / "data" / "nam_a2_core"
N = 12_000  # from the start (Core's pre-warm) past A2's receptive field of 6,347 samples
TOL = 1e-5
ARBITRARY = {"slimmable_wavenet", "wavenet_a2_max"}  # arbitrary test weights: the README's 1e-5 × output peak
INPUTS = ["input_core_example", "input_guitar"]
# (model file, slim value or None, Core render name)
CASES = [("A2", 0.0, "A2_slim0"), ("A2", 1.0, "A2_slim1"),
         ("slimmable_container", 0.0, "slimmable_container_slim0"),
         ("slimmable_container", 1.0, "slimmable_container_slim1"),
         ("slimmable_wavenet", None, "slimmable_wavenet"), ("wavenet_a2_max", None, "wavenet_a2_max"),
         ("wavenet_condition_dsp", None, "wavenet_condition_dsp"), ("nam013_a1_nano", None, "nam013_a1_nano")]
MODELS = sorted({c[0] for c in CASES})
WRITTEN = {"A2": "0.7.0", "slimmable_container": "0.7.0", "slimmable_wavenet": "0.7.0",
           "wavenet_a2_max": "0.6.0", "wavenet_condition_dsp": "0.6.0", "nam013_a1_nano": "0.5.4"}


def test_fixtures_are_present():
    missing = [f"{c[2]}__{i}.wav" for c in CASES for i in INPUTS if not (FIX / f"{c[2]}__{i}.wav").is_file()]
    assert not missing and all((FIX / f"{m}.nam").is_file() for m in MODELS), f"missing under {FIX}: {missing}"


@functools.cache
def wav(name: str) -> np.ndarray:
    data, sr = sf.read(str(FIX / f"{name}.wav"), dtype="float32")
    assert data.ndim == 1 and sr == 48_000
    return data


def tolerance(model_name: str, target: np.ndarray) -> float:
    return TOL * float(np.abs(target).max()) if model_name in ARBITRARY else TOL


def model(name: str, slim: float | None = None):
    m = model_from_nam(FIX / f"{name}.nam")
    if slim is not None:
        m.set_slim(slim)
    return m


# ------------------------------------------------------------------------------------------ Core's renders


@pytest.mark.parametrize("inp", INPUTS)
@pytest.mark.parametrize("name,slim,tag", CASES, ids=[c[2] for c in CASES])
def test_renders_like_core(name: str, slim: float | None, tag: str, inp: str) -> None:
    x, full = wav(inp)[:N], wav(f"{tag}__{inp}")
    target, tol = full[:N], tolerance(name, full)
    m = model(name, slim)
    y = render(m, x).numpy()  # float64 reference
    assert y.shape == target.shape
    err = float(np.abs(y - target).max())
    assert err <= tol, f"{tag} on {inp}: max abs error {err:.3g} > {tol:.3g} (float64)"
    with torch.no_grad():  # the trainable float32 module itself, zero-padded as Core's pre-warm
        y32 = m(torch.from_numpy(x)[None], pad_start=True)[0].numpy()
    err32 = float(np.abs(y32 - target).max())
    assert err32 <= tol, f"{tag} on {inp}: max abs error {err32:.3g} > {tol:.3g} (float32)"


@pytest.mark.parametrize("name,slim,tag", [c for c in CASES if c[0] != "nam013_a1_nano"], ids=lambda v: str(v))
def test_streams_like_core(name: str, slim: float | None, tag: str) -> None:
    """A plugin's view: float32, 64-sample blocks, history / state carried between blocks, pre-warmed."""
    full = wav(f"{tag}__input_guitar")
    x, target = wav("input_guitar")[:8000], full[:8000]
    y, _ = process_file(StreamProcessor(model(name, slim)), x, block_size=64)
    assert float(np.abs(y - target).max()) <= tolerance(name, full)


@pytest.mark.parametrize("name,slims", [("kitchen_sink", [None]), ("slimmable_film", [0.0, 0.5, 1.0])])
def test_synthetic_a2_features_render_like_core(name: str, slims: list) -> None:
    """Post-stack head, head convs with kernel > 1 and a dilation, blended / gated layers with PReLU,
    LeakyHardtanh, SiLU, Hardswish, FiLM with and without shift, a 0.7-layout condition DSP; a slimmable WaveNet
    sliced through gating, bottleneck, FiLM and head1x1 weights (renders: see data/nam_a2_core/make_fixtures.py)."""
    m = model_from_nam(EXTRA / f"{name}.nam")
    x = wav("input_guitar")[:4000]
    outputs = []
    for slim in slims:
        if slim is not None:
            m.set_slim(slim)
        target = np.load(EXTRA / f"{name}{'' if slim is None else f'_slim{slim:g}'}__input_guitar.npy")
        y = render(m, x).numpy()
        assert float(np.abs(y - target).max()) <= TOL * float(np.abs(target).max()), f"{name} slim {slim}"
        outputs.append(y)
    assert all(not np.allclose(a, b) for a, b in zip(outputs, outputs[1:]))  # each size computes its own


@pytest.mark.parametrize("name,slim", [("kitchen_sink", None), ("slimmable_film", 0.5),
                                       ("wavenet_a2_max", None)])
def test_stream_hooks_match_the_whole_input_forward(name: str, slim: float | None) -> None:
    path = EXTRA / f"{name}.nam" if (EXTRA / f"{name}.nam").is_file() else FIX / f"{name}.nam"
    m = model_from_nam(path).double().eval()
    if slim is not None:
        m.set_slim(slim)
    x = torch.from_numpy(wav("input_guitar")[1000:1700].astype(np.float64))[None]
    with torch.no_grad():
        whole = m(x, pad_start=True)[0]
        valid = m(x)
    assert valid.shape[-1] == x.shape[-1] - m.receptive_field + 1
    np.testing.assert_allclose(valid[0].numpy(), whole[m.receptive_field - 1:].numpy(), rtol=0, atol=1e-12)
    state, pieces = m.stream_init(torch.float64), []
    for a, b in [(0, 1), (1, 65), (65, 300), (300, 700)]:
        y, state = m.stream_block(x[:, a:b], state)
        pieces.append(y)
    np.testing.assert_allclose(torch.cat(pieces).numpy(), whole.numpy(), rtol=0, atol=1e-9)


# ----------------------------------------------------------------------------------------- size selection


def test_container_picks_the_submodel_core_picks() -> None:
    a2 = model("A2")
    assert isinstance(a2, NAMSlimmableContainer) and a2.slimmable
    assert a2.active_index == 1  # Core's default is the full (last) submodel
    assert [a2.index_for(v) for v in (0.0, 0.49, 0.5, 0.75, 1.0)] == [0, 0, 1, 1, 1]  # slim < max_value
    assert a2.slim_breakpoints() == [0.5]
    sc = model("slimmable_container")
    assert [sc.index_for(v) for v in (0.0, 0.329, 0.33, 0.5, 0.66, 1.0)] == [0, 0, 1, 1, 2, 2]

    a2.set_slim(0.0)
    lite = a2.active.cost()
    assert (lite.params, lite.weights, lite.receptive_field) == (1870, 1871, 6347)  # "lite": 1,871 weights
    # the container computes the lite one; it holds (and a host loads) both
    assert (a2.cost().macs_per_sample, a2.cost().params, a2.cost().weights) == (lite.macs_per_sample, 14015, 14017)
    assert a2.describe()["active_submodel"] == 0 and a2.describe()["submodels"][0]["max_value"] == 0.5
    a2.set_slim(1.0)
    assert (a2.active.cost().params, a2.active.cost().weights) == (12145, 12146)  # "full": 12,146 weights
    assert {"op_class": "LEAKYRELU"} in a2.device_ops() and a2.device_ops()[0]["kernel_size"] == 16
    sc.set_slim(0.0)
    assert sc.stream_kind == "state" and sc.receptive_field == 1  # its small submodel is an LSTM
    sc.set_slim(1.0)
    assert sc.stream_kind == "context" and sc.receptive_field > 1
    with pytest.raises(ValueError, match="between 0.0 and 1.0"):
        a2.set_slim(1.5)
    a2.slim = 0.2  # the attribute is the knob too
    assert a2.active_index == 0 and a2.slim == 0.2
    with pytest.raises(ValueError, match="no slimmable size"):
        model("nam013_a1_nano").slim = 0.5


def test_a_built_container_is_written_as_07_with_its_submodels_versions(tmp_path: Path) -> None:
    torch.manual_seed(0)
    lite, full = NAMWaveNet(a1_wavenet_layers("nano"), 0.02), NAMWaveNet(a1_wavenet_layers("feather"), 0.02)
    c = NAMSlimmableContainer([(0.5, lite), (1.0, full)], [{"name": "lite"}, {"name": "full"}])
    save_nam(c, tmp_path / "c.nam", metadata={"name": "both"}, sample_rate=44_100)
    raw = json.loads((tmp_path / "c.nam").read_text())
    assert (raw["version"], raw["architecture"], raw["weights"], raw["sample_rate"]) == \
        ("0.7.0", "SlimmableContainer", [], 44_100)
    subs = raw["config"]["submodels"]
    assert [(s["max_value"], s["model"]["version"], s["model"]["sample_rate"], s["model"]["metadata"]["name"])
            for s in subs] == [(0.5, "0.5.4", 44_100, "lite"), (1.0, "0.5.4", 44_100, "full")]
    back = model_from_nam(tmp_path / "c.nam")
    x = torch.randn(1, 5000, dtype=torch.float64) * 0.2
    for slim, sub in ((0.0, lite), (1.0, full)):
        back.set_slim(slim)
        np.testing.assert_array_equal(render(back, x).numpy(), render(sub, x).numpy())


def _core_slimmed_weights(flat: list[float], ch: int, new: int, n_layers: int, k: int) -> list[float]:
    """Transcription of Core's ``extract_slimmed_weights`` for one plain layer array (rechannel without bias,
    per layer conv + bias, mixin, layer1x1 + bias; head rechannel without bias, head_size 1), then head_scale."""
    it, out = iter(flat), []

    def conv(cin, cout, slim_in, slim_out, taps, bias):
        for i in range(cout):
            for j in range(cin):
                for _ in range(taps):
                    w = next(it)
                    if i < slim_out and j < slim_in:
                        out.append(w)
        for i in range(cout if bias else 0):
            b = next(it)
            if i < slim_out:
                out.append(b)

    conv(1, ch, 1, new, 1, False)
    for _ in range(n_layers):
        conv(ch, ch, new, new, k, True)
        conv(1, ch, 1, new, 1, False)
        conv(ch, ch, new, new, 1, True)
    conv(ch, 1, new, 1, 1, False)
    out.append(next(it))
    assert next(it, None) is None
    return out


@pytest.mark.parametrize("slim,channels", [(0.0, 1), (0.33, 1), (0.34, 2), (0.5, 2), (0.67, 3), (1.0, 3)])
def test_slimmable_wavenet_slices_weights_as_core(slim: float, channels: int) -> None:
    nf = load_nam(FIX / "slimmable_wavenet.nam")
    m = model_from_nam(nf)
    la = nf.config["layers"][0]
    assert m.slim_channels(slim) == (channels,)  # allowed [1, 2, 3] at index min(floor(slim · 3), 2)
    m.set_slim(slim)
    cfg = {k: v for k, v in la.items() if k != "slimmable"}
    plain = NAMWaveNet([dict(cfg, channels=channels)], nf.config["head_scale"])
    plain.import_weights(_core_slimmed_weights(nf.weights, 3, channels, len(la["dilations"]), 3))
    x = wav("input_guitar")[:3000]
    np.testing.assert_array_equal(render(m, x).numpy(), render(plain, x).numpy())
    assert m.cost().params == plain.cost().params and m.describe()["slim_channels"] == [channels]


# --------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", MODELS + ["kitchen_sink", "slimmable_film"])
def test_round_trip_renders_identically(name: str, tmp_path: Path) -> None:
    src = EXTRA / f"{name}.nam" if name in ("kitchen_sink", "slimmable_film") else FIX / f"{name}.nam"
    nf = load_nam(src)
    m = model_from_nam(nf)
    out = save_nam(m, tmp_path / f"{name}.nam", metadata=nf.metadata, sample_rate=nf.sample_rate or 48_000)
    raw = json.loads((tmp_path / f"{name}.nam").read_text())
    assert raw["version"] == WRITTEN.get(name, "0.7.0") and raw["sample_rate"] == 48_000
    assert {k: raw["metadata"][k] for k in nf.metadata} == nf.metadata
    m2 = model_from_nam(out)
    assert m2.export_weights() == m.export_weights()
    if raw["architecture"] == "SlimmableContainer":
        assert raw["weights"] == [] and [s["max_value"] for s in raw["config"]["submodels"]] == m.max_values
        for s, a, b in zip(raw["config"]["submodels"], m.submodels, m2.submodels):
            assert b.export_weights() == a.export_weights() and s["model"]["sample_rate"] == 48_000
        assert [s["model"]["version"] for s in raw["config"]["submodels"]] == \
            [s["model"]["version"] for s in json.loads(src.read_text())["config"]["submodels"]]
    x = wav("input_guitar")[:4000]
    for slim in ([0.0, 1.0] if m.slimmable else [None]):
        if slim is not None:
            m.set_slim(slim)
            m2.set_slim(slim)
        np.testing.assert_array_equal(render(m2, x).numpy(), render(m, x).numpy())
    # Written again, the file is the same: the writer's layout is a fixed point.
    again = json.loads(json.dumps(nam_from_dict(raw).config))
    assert json.loads(json.dumps(save_nam(m2, tmp_path / "again.nam", metadata=raw["metadata"]).config)) == again


def test_a1_in_the_07_layout_is_written_as_054(tmp_path: Path) -> None:
    m = model("nam013_a1_nano")
    save_nam(m, tmp_path / "nano.nam")
    cfg = json.loads((tmp_path / "nano.nam").read_text())["config"]
    assert cfg["head"] is None and cfg["layers"] == a1_wavenet_layers("nano")


def _layers(**la0) -> list[dict]:
    layers = a1_wavenet_layers("nano")
    layers[0].update(la0)
    return layers


@pytest.mark.parametrize("change,version", [
    ({}, "0.5.4"),
    ({"activation": {"type": "LeakyReLU", "negative_slope": 0.01}}, "0.6.0"),
    ({"conv_pre_film": {"active": True, "shift": False, "groups": 1}}, "0.6.0"),
    ({"gating_mode": "blended"}, "0.6.0"),
    ({"kernel_sizes": [3, 2, 3, 3, 3, 3, 3], "kernel_size": None}, "0.7.0"),
    ({"head": {"out_channels": 2, "kernel_size": 4, "bias": False}, "head_size": None, "head_bias": None}, "0.7.0"),
    ({"slimmable": {"method": "slice_channels_uniform", "kwargs": {"allowed_channels": [2, 4]}}}, "0.7.0"),
])
def test_the_oldest_version_that_expresses_the_model_is_written(change: dict, version: str, tmp_path: Path) -> None:
    layers = _layers(**{k: v for k, v in change.items() if v is not None})
    for k in [k for k, v in change.items() if v is None]:
        del layers[0][k]
    m = NAMWaveNet(layers, 0.02)
    raw = json.loads(json.dumps(save_nam(m, tmp_path / "m.nam").config))
    assert json.loads((tmp_path / "m.nam").read_text())["version"] == version
    la = raw["layers"][0]
    # 0.5 / 0.6: the keys NAM Core 0.4.0 reads (one kernel_size, head_size); 0.7: the trainer 0.13 layout.
    assert ("kernel_size" in la and "head_size" in la) == (version != "0.7.0")
    assert ("kernel_sizes" in la and "head" in la) == (version == "0.7.0")
    x = torch.randn(1, 5000, dtype=torch.float64) * 0.3
    np.testing.assert_array_equal(render(model_from_nam(tmp_path / "m.nam"), x).numpy(), render(m, x).numpy())


def test_post_stack_head_needs_07(tmp_path: Path) -> None:
    m = NAMWaveNet(_layers(), 0.02)
    layers = a1_wavenet_layers("nano")
    layers[1]["head_size"] = 2
    with_head = NAMWaveNet(layers, 0.02, head={"channels": 2, "out_channels": 1, "kernel_sizes": [2, 2],
                                               "activation": "ReLU"})
    assert m.nam_version() == "0.5.4" and with_head.nam_version() == "0.7.0"
    assert with_head.receptive_field == m.receptive_field + 2
    save_nam(with_head, tmp_path / "h.nam")
    assert json.loads((tmp_path / "h.nam").read_text())["config"]["head"]["kernel_sizes"] == [2, 2]


# ------------------------------------------------------------------------------------------- exports


def test_streaming_twin_names_the_a2_features_and_onnx_still_works(tmp_path: Path) -> None:
    from tinyverse.audio.export import export_streaming_onnx

    a2 = model("A2", 0.0)
    with pytest.raises(AudioExportError, match=r"head kernel_size 16.*LeakyReLU activation"):
        a2.streaming_twin(64)
    with pytest.raises(AudioExportError, match=r"FiLM \(conv_pre_film\).*condition_dsp"):
        model("wavenet_a2_max").streaming_twin(64)
    model("nam013_a1_nano").streaming_twin(64)  # the A1 layer still has its twin

    path = export_streaming_onnx(a2, tmp_path / "a2_lite.onnx", block_size=256)
    x, full = wav("input_guitar")[:8000], wav("A2_slim0__input_guitar")
    y, _ = process_file(OnnxStreamProcessor(path), x, block_size=100)  # any block length, context carried
    assert float(np.abs(y - full[:8000]).max()) <= TOL


# ------------------------------------------------------------------------------------------ modelmaker render


def _render(capsys, *args) -> tuple[int, str, str]:
    from modelmaker.cli import main as cli

    capsys.readouterr()
    rc = cli(["render", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture
def guitar_wav(tmp_path: Path) -> Path:
    path = tmp_path / "in.wav"
    sf.write(path, wav("input_guitar")[:N], 48_000, subtype="FLOAT")
    return path


@pytest.mark.parametrize("slim,tag", [("0", "A2_slim0"), ("1.0", "A2_slim1"), (None, "A2_slim1")])
def test_render_slim_renders_like_core(slim: str | None, tag: str, guitar_wav: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out.wav"
    rc, stdout, err = _render(capsys, FIX / "A2.nam", guitar_wav, out, *(["--slim", slim] if slim else []))
    assert rc == 0, err
    assert ("slim " in stdout) == (slim is not None)
    y, _ = sf.read(out, dtype="float32")
    assert float(np.abs(y - wav(f"{tag}__input_guitar")[:N]).max()) <= TOL


def test_render_slim_errors_are_one_line(guitar_wav: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out.wav"
    out.write_bytes(b"earlier render")
    rc, _, err = _render(capsys, FIX / "nam013_a1_nano.nam", guitar_wav, out, "--slim", "0")
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith("modelmaker: error: --slim: nam013_a1_nano.nam:") and "no slimmable size" in err
    rc, _, err = _render(capsys, FIX / "A2.nam", guitar_wav, out, "--slim", "1.5")
    assert rc == 2 and err.strip() == "modelmaker: error: --slim must be between 0.0 and 1.0, got 1.5"
    assert out.read_bytes() == b"earlier render"  # nothing earlier lost

    from tinyverse.audio.export import export_streaming_onnx
    from tinyverse.models import create_model

    onnx = export_streaming_onnx(create_model("NAM_Linear", receptive_field=8), tmp_path / "m.onnx", 64)
    rc, _, err = _render(capsys, onnx, guitar_wav, out, "--slim", "0")
    assert rc == 2 and "--slim: m.onnx is a streaming export of one model size" in err


# ------------------------------------------------------------------------------------------ clear errors


def _fixture_dict(path: Path) -> dict:
    return json.loads(path.read_text())


def _wavenet_case(mutate):
    def make():
        d = _fixture_dict(EXTRA / "kitchen_sink.nam")
        mutate(d)
        return d
    return make


def _container_case(mutate):
    def make():
        d = _fixture_dict(FIX / "slimmable_container.nam")
        mutate(d)
        return d
    return make


def _set(path: list, value):
    def mutate(d):
        node = d
        for k in path[:-1]:
            node = node[k]
        if value is KeyError:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    return mutate


LA0 = ["config", "layers", 0]
BAD = [
    (_wavenet_case(_set(LA0 + ["groups_1x1"], 2)), r"layer array 0 uses unsupported key\(s\): groups_1x1"),
    (_wavenet_case(_set(["config", "post_head"], None)), r"WaveNet config uses unsupported key\(s\): post_head"),
    (_wavenet_case(_set(LA0 + ["activation", 2], {"type": "Swish"})), r"unknown activation type 'Swish'"),
    (_wavenet_case(_set(LA0 + ["activation", 2], {"type": "LeakyReLU", "alpha": 0.1})),
     r"activation\[2\]: unsupported key\(s\) alpha for activation LeakyReLU"),
    (_wavenet_case(_set(LA0 + ["activation", 2], {"type": "Hardtanh", "min_val": -2.0, "max_val": 1.0})),
     r"Hardtanh min_val=-2.0 is not supported"),
    (_wavenet_case(_set(LA0 + ["conv_pre_film", "scale"], True)), r"conv_pre_film: unsupported key\(s\) scale"),
    (_wavenet_case(_set(["config", "layers", 1, "layer1x1_post_film"], {"active": True, "shift": True, "groups": 1})),
     r"layer array 1: layer1x1_post_film cannot be active when layer1x1.active is false"),
    (_wavenet_case(_set(LA0 + ["kernel_size"], 3)), r"give kernel_size or kernel_sizes, not both"),
    (_wavenet_case(_set(LA0 + ["gating_mode", 1], "mixed")), r"gating_mode 'mixed' is not one of"),
    (_wavenet_case(_set(LA0 + ["slimmable"], {"method": "prune", "kwargs": {}})), r"slimmable method 'prune'"),
    (_wavenet_case(_set(LA0 + ["groups_input"], 3)), r"groups_input=3 must divide"),
    (_wavenet_case(_set(["config", "in_channels"], 2)), r"in_channels 2: only mono input"),
    (_wavenet_case(_set(["config", "condition_dsp", "architecture"], "LSTM")),
     r"only a WaveNet condition DSP is supported, got 'LSTM'"),
    (_wavenet_case(_set(["config", "condition_dsp", "sample_rate"], 44_100)),
     r"condition_dsp: sample_rate 44100 differs from the enclosing model's 48000"),
    (_wavenet_case(_set(["config", "condition_dsp", "config", "layers", 0, "channels"], 3)),
     r"condition_dsp: weight count mismatch"),
    (_container_case(_set(["config", "submodels", 0, "min_value"], 0.1)),
     r"submodel 0 uses unsupported key\(s\): min_value"),
    (_container_case(_set(["config", "submodels", 1, "max_value"], 0.2)), r"max_value 0.2 must be greater"),
    (_container_case(_set(["config", "submodels", 2, "max_value"], 0.9)), r"last submodel's max_value must be >= 1.0"),
    (_container_case(_set(["config", "submodels", 1, "model", "sample_rate"], 44_100)),
     r"submodel 1: sample_rate 44100 differs"),
    (_container_case(_set(["config", "submodels", 2, "model", "config", "layers", 0, "slimmable"], {"method": "x"})),
     r"submodel 2: invalid WaveNet config: layer array 0: slimmable method 'x'"),
    (_container_case(_set(["config", "submodels", 1, "model", "weights"], [0.0])),
     r"submodel 1: weight count mismatch: expected 131 got 1"),
    (_container_case(_set(["config", "extra"], 1)), r"SlimmableContainer config uses unsupported key\(s\): extra"),
]


@pytest.mark.parametrize("make,pattern", BAD, ids=[p for _, p in BAD])
def test_bad_files_give_one_line_naming_file_and_key(make, pattern: str, tmp_path: Path) -> None:
    path = tmp_path / "bad_model.nam"
    path.write_text(json.dumps(make()))
    with pytest.raises(NamFormatError) as ei:
        model_from_nam(path)
    msg = str(ei.value)
    assert msg.startswith(str(path)) and "\n" not in msg
    assert re.search(pattern, msg), msg


def test_unchanged_fixture_dicts_are_valid() -> None:
    """The mutations above break otherwise valid files."""
    for path in (EXTRA / "kitchen_sink.nam", FIX / "slimmable_container.nam"):
        d = copy.deepcopy(_fixture_dict(path))
        assert nam_from_dict(d, str(path)).architecture in ("WaveNet", "SlimmableContainer")
