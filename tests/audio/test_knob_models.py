"""Knob-conditioned models (issue #13 items 3 and 5): CatLSTM, CatWaveNet, HyperConvNet, FiLMWaveNet on the model
contract with two inputs, the knob training task, freezing a setting into a plain .nam (checked against the knob
model and against NAM Core's renders in data/knob_core), ``modelmaker freeze`` and ``render --param``.

Tiny models; the one training run is 2 epochs on a 6 s generated knob capture.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tinyverse.audio.knob_file import load_knob_model, resolve_setting, save_knob_model
from tinyverse.audio.knobs import KnobSet
from tinyverse.audio.nam import load_nam, model_from_nam, render, save_nam
from tinyverse.audio.nam.convnet import NAMConvNet
from tinyverse.audio.nam.knob_models import (FreezeError, NAMCatLSTM, NAMCatWaveNet, NAMFiLMWaveNet,
                                             NAMHyperConvNet, knob_model_from_record)
from tinyverse.audio.stream import StreamProcessor, load_audio_model, process_file
from tinyverse.errors import DatasetError

DATA = Path(__file__).resolve().parent / "data" / "knob_core"
SHARED_INPUT = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "nam_a2" / "input_guitar.wav"
KNOBS = {"gain": {"min": 0, "max": 10, "default": 5}, "bright": {"type": "bool"}}  # ordered: bright, gain
LAYERS = [
    {"input_size": 1, "condition_size": 1, "head_size": 2, "channels": 3, "kernel_size": 3, "dilations": [1, 2, 4],
     "activation": "Tanh", "gated": False, "head_bias": False},
    {"input_size": 3, "condition_size": 1, "head_size": 1, "channels": 2, "kernel_size": 2, "dilations": [8, 1],
     "activation": "Tanh", "gated": True, "head_bias": True},
]
TINY = {
    "CatLSTM": lambda: NAMCatLSTM(hidden_size=5, num_layers=2, knobs=KNOBS),
    "CatWaveNet": lambda: NAMCatWaveNet(layers=LAYERS, head_scale=0.3, knobs=KNOBS),
    "FiLMWaveNet": lambda: NAMFiLMWaveNet(layers=LAYERS, head_scale=0.3, embedding_size=3, hidden_size=4,
                                          films=["conv_pre_film", "conv_post_film", "input_mixin_pre_film",
                                                 "input_mixin_post_film", "activation_pre_film"], knobs=KNOBS),
    "HyperConvNet": lambda: NAMHyperConvNet(channels=3, dilations=[1, 2, 4, 8], hyper_units=4, knobs=KNOBS),
}
CONTEXT = ["CatWaveNet", "FiLMWaveNet", "HyperConvNet"]


def tiny(name: str, dtype: torch.dtype = torch.float64) -> torch.nn.Module:
    """A tiny knob model with random weights large enough that every path (and every knob) matters."""
    torch.manual_seed(0)
    m = TINY[name]()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * 0.4)
    return m.to(dtype).eval().requires_grad_(False)


def knob_registry() -> list[str]:
    from tinyverse.models import MODEL_REGISTRY

    return [e.name for e in MODEL_REGISTRY.entries() if e.metadata.get("task") == "knob_modelling"]


# -- the contract ----------------------------------------------------------------------------------------------
def test_the_zoo_has_a_size_ladder_per_conditioning_with_matched_parameter_counts():
    from tinyverse.models import create_model

    names = knob_registry()
    ladder = {arch: [f"NAM_{arch}_{s}" for s in ("nano", "feather", "standard")] for arch in TINY}
    assert sorted(names) == sorted(n for v in ladder.values() for n in v)
    params = {n: create_model(n).cost().params for n in names}
    for size in ("nano", "feather", "standard"):
        counts = [params[f"NAM_{arch}_{size}"] for arch in TINY]
        assert max(counts) <= 1.5 * min(counts), (size, counts)  # a bench compares conditionings, not sizes
    for arch in TINY:
        assert params[ladder[arch][0]] < params[ladder[arch][1]] < params[ladder[arch][2]]
    with pytest.raises(ValueError, match="takes no argument 'channel'"):
        create_model("NAM_HyperConvNet_nano", channel=3)


@pytest.mark.parametrize("name", knob_registry())
def test_every_knob_model_implements_the_contract(name):
    from tinyverse.models import create_model
    from tinyverse.models.contract import ModelContract, StreamingModel

    model = create_model(name, knobs=KNOBS).eval()
    assert isinstance(model, ModelContract) and isinstance(model, StreamingModel)
    assert model.input_shapes == {"audio": (None,), "params": (2,)}
    rf = model.receptive_field
    cost = model.cost()
    assert cost.receptive_field == rf and cost.params == sum(p.numel() for p in model.parameters())
    assert cost.macs_per_sample > 0 and cost.conditioning_macs > 0 and cost.macs_per_inference is None
    ops = model.device_ops()
    assert ops[0]["op_class"] in ("WAVENET", "LSTM", "CONVNET") and ops[0]["conditioning"]
    assert model.describe()["architecture"] == model.stream_metadata()["architecture"] == model.record()["architecture"]
    assert model.stream_metadata()["knobs"] == KnobSet(KNOBS).declaration()
    x = torch.randn(3, rf + 63) * 0.3
    p = torch.rand(3, 2)
    with torch.no_grad():
        y = model(x, p)
        assert y.shape == (3, 64)  # valid mode: receptive_field − 1 samples of context
        assert model(x[:1], p[:1], pad_start=True).shape == (1, rf + 63)
        # the knobs change the sound, per example
        y2 = model(x[:1].expand(2, -1), torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
        assert float((y2[0] - y2[1]).abs().max()) > 1e-6
    with pytest.raises(ValueError, match=r"params must be \(N, 2\)"):
        model(x, p[:, :1])
    # the record rebuilds the same model
    again = knob_model_from_record(model.record())
    again.load_state_dict(model.state_dict())
    with torch.no_grad():
        np.testing.assert_allclose(again(x, p).numpy(), y.numpy(), atol=1e-6)


@pytest.mark.parametrize("name", CONTEXT)
def test_receptive_field_is_what_an_impulse_reaches(name):
    m = tiny(name)
    rf = m.receptive_field
    n, t0 = rf + 40, 20
    p = torch.tensor([[1.0, 0.3]], dtype=torch.float64)
    x = torch.zeros(1, n, dtype=torch.float64)
    x[0, t0] = 0.5
    with torch.no_grad():
        delta = (m(x, p, pad_start=True)[0] - m(torch.zeros_like(x), p, pad_start=True)[0]).abs()
    assert float(delta[:t0].max()) == 0.0  # causal
    assert float(delta[t0 + rf - 1]) > 0.0  # the impulse still reaches rf − 1 samples later (however faintly)
    assert float(delta[t0 + rf:].max()) == 0.0  # and not one sample further


def test_lstm_receptive_field_is_one_sample_of_input_plus_its_state():
    m = tiny("CatLSTM")
    assert m.receptive_field == 1 and m.stream_kind == "state" and set(m.initial_stream_state()) == {"h", "c"}
    p = torch.tensor([[0.0, 0.4]], dtype=torch.float64)
    x = torch.randn(1, 50, dtype=torch.float64) * 0.3
    x2 = x.clone()
    x2[0, 30] += 0.5
    d = (m(x, p)[0] - m(x2, p)[0]).abs()
    assert float(d[:30].max()) == 0.0 and float(d[30]) > 1e-6


def test_cost_counts_the_audio_path_per_sample_and_the_knobs_per_change():
    for name in ("CatLSTM", "CatWaveNet", "HyperConvNet"):
        m = tiny(name)
        # per sample, the knob model costs what its frozen snapshot (what a pedal runs between knob moves) costs
        assert m.cost().macs_per_sample == m.frozen([0.0, 0.5]).cost().macs_per_sample, name
    lstm, cat, hyper = tiny("CatLSTM"), tiny("CatWaveNet"), tiny("HyperConvNet")
    assert lstm.cost().conditioning_macs == 4 * 5 * 2  # the knob columns of the gates: 4 gates × hidden × knobs
    mixin_rows = sum(layer.input_mixer.weight.shape[0] for la in cat.layer_arrays for layer in la.layers)
    assert cat.cost().conditioning_macs == 2 * (3 + mixin_rows)  # rechannel and mixin knob columns
    mlp = sum(m.weight.numel() for m in hyper.hyper if isinstance(m, torch.nn.Linear))
    generated = sum(t.numel() for t in hyper.frozen([0.0, 0.5]).ordered_tensors())
    assert hyper.cost().conditioning_macs == mlp + generated  # the hypernet, once per knob change


# -- streaming --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(TINY))
def test_streaming_equals_the_whole_signal(name):
    m = tiny(name)
    x = torch.randn(1, 700, dtype=torch.float64) * 0.3
    p = np.array([1.0, 0.8])
    whole = m(x, m.params_tensor(p, 1), pad_start=True)[0]
    state, pieces = m.stream_init(torch.float64, p), []
    for a, b in [(0, 1), (1, 65), (65, 300), (300, 700)]:
        y, state = m.stream_block(x[:, a:b], state)
        pieces.append(y)
    np.testing.assert_allclose(torch.cat(pieces).numpy(), whole.numpy(), rtol=0, atol=1e-9)
    # the stream processor a plugin host uses, at the declared defaults when no params are given
    proc = StreamProcessor(m, torch.float64)
    y, _ = process_file(proc, x[0].numpy(), 128)
    default = m(x, m.params_tensor(m.default_params(), 1), pad_start=True)[0]
    np.testing.assert_allclose(y, default.numpy(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", CONTEXT)
def test_moving_a_knob_mid_stream_keeps_the_history(name):
    m = tiny(name)
    rf = m.receptive_field
    x = torch.randn(1, 400, dtype=torch.float64) * 0.3
    a, b = np.array([0.0, 0.2]), np.array([1.0, 0.9])
    proc = StreamProcessor(m, torch.float64, params=a)
    first = proc.process(x[0, :200].numpy())
    proc.set_params(b)
    second = proc.process(x[0, 200:].numpy())
    at_a = m(x, m.params_tensor(a, 1), pad_start=True)[0].numpy()
    at_b = m(x, m.params_tensor(b, 1), pad_start=True)[0].numpy()
    np.testing.assert_allclose(first, at_a[:200], atol=1e-6)
    # once the new knobs fill the receptive field, the stream is the whole render at the new knobs
    np.testing.assert_allclose(second[rf - 1:], at_b[200 + rf - 1:], atol=1e-6)


def test_moving_a_knob_mid_stream_carries_the_lstm_state():
    m = tiny("CatLSTM")
    x = torch.randn(1, 300, dtype=torch.float64) * 0.3
    a, b = np.array([0.0, 0.2]), np.array([1.0, 0.9])
    proc = StreamProcessor(m, torch.float64, params=a)
    first = proc.process(x[0, :120].numpy())
    proc.set_params(b)
    y = np.concatenate([first, proc.process(x[0, 120:].numpy())])
    # the same LSTM fed the knob columns per sample, switching at sample 120
    p = torch.cat([torch.tensor(a).expand(120, 2), torch.tensor(b).expand(180, 2)])[None]
    inp = torch.cat([x[..., None], p], dim=-1)
    state = (m.initial_hidden[:, None].contiguous(), m.initial_cell[:, None].contiguous())
    with torch.no_grad():
        ref = m.head(m.core(inp, state)[0])[0, :, 0].numpy()
    np.testing.assert_allclose(y, ref, atol=1e-6)


# -- freezing ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,arch", [("CatLSTM", "LSTM"), ("CatWaveNet", "WaveNet"), ("FiLMWaveNet", "WaveNet"),
                                       ("HyperConvNet", "ConvNet")])
def test_freeze_matches_the_knob_model_and_reloads_through_the_reader(name, arch, tmp_path):
    m = tiny(name, torch.float32)
    x = torch.randn(1, 900) * 0.3
    for setting in ({"gain": 7.0, "bright": 1.0}, {"gain": 0.0, "bright": 0.0}):
        p = m.knobs.vector(setting, "t")
        frozen = m.frozen(p)
        assert frozen.nam_architecture == arch and frozen.nam_version() == "0.5.4"  # A1 layout: any NAM loads it
        with torch.no_grad():
            want = m(x, m.params_tensor(p, 1), pad_start=True)[0]
            got = frozen(x, pad_start=True)[0]
        assert float((got - want).abs().max()) <= 1e-5
        nf = save_nam(frozen, tmp_path / "snap.nam", sample_rate=48_000)
        assert (nf.architecture, nf.version) == (arch, "0.5.4")
        again = render(model_from_nam(tmp_path / "snap.nam"), x[0]).numpy()
        assert float(np.abs(again - want.numpy()).max()) <= 1e-5
    # different settings are different snapshots
    w0, w1 = (np.array(m.frozen(m.knobs.vector(s, "t", fill_defaults=True)).export_weights()) for s in ({"gain": 0}, {"gain": 10}))
    assert not np.allclose(w0, w1)


def test_a_prepared_lstm_snapshot_starts_from_silence_at_its_setting():
    m = tiny("CatLSTM", torch.float32)
    m.prepare_for_inference()
    p = m.knobs.vector({"gain": 3.0, "bright": 1.0}, "t")
    frozen = m.frozen(p)
    x = torch.randn(1, 300) * 0.3
    lead = torch.zeros(1, int(m.settle_samples))
    with torch.no_grad():
        want = m(torch.cat([lead, x], dim=1), m.params_tensor(p, 1))[0, -300:]
        assert float((frozen(x)[0] - want).abs().max()) <= 1e-5


def test_a_film_after_the_activation_cannot_be_frozen():
    m = NAMFiLMWaveNet(layers=LAYERS, films=["activation_post_film"], knobs=KNOBS)
    with pytest.raises(FreezeError) as e:
        m.frozen([0.0, 0.5])
    assert "activation_post_film" in str(e.value) and "\n" not in str(e.value)


# -- NAM Core -----------------------------------------------------------------------------------------------------
SETTING = {"gain": 7.0, "bright": 1.0}


def guitar() -> np.ndarray:
    x, sr = sf.read(str(SHARED_INPUT), dtype="float32")
    assert sr == 48_000
    return x[:4000]


@pytest.mark.parametrize("name", ["catlstm", "catwavenet", "filmwavenet", "hyperconvnet"])
def test_the_knob_model_and_its_snapshot_render_like_core(name, tmp_path, capsys):
    """data/knob_core: a knob model (.pt), its snapshot at SETTING and Core's render of the snapshot
    (make_fixtures.py). The knob model itself, our reader's render of the snapshot and a fresh ``modelmaker freeze``
    all agree with Core."""
    target = np.load(DATA / f"{name}_frozen__input_guitar.npy")
    x = guitar()
    tol = 1e-5 * float(np.abs(target).max())
    snapshot = render(model_from_nam(DATA / f"{name}_frozen.nam"), x).numpy()
    assert float(np.abs(snapshot - target).max()) <= tol
    model, info = load_knob_model(DATA / f"{name}.pt")
    assert info["sample_rate"] == 48_000
    p = model.knobs.vector(SETTING, "t")
    lead = int(getattr(model, "settle_samples", 0))  # a prepared LSTM starts from silence's state at its setting
    ours = model.render(np.concatenate([np.zeros(lead, np.float32), x]), p).numpy()[lead:]
    assert float(np.abs(ours - target).max()) <= tol
    rc, out, err = cli(capsys, "freeze", DATA / f"{name}.pt", "--param", "gain=7", "--param", "bright=on",
                       "-o", tmp_path / "snap.nam")
    assert rc == 0 and "matches the knob model to" in out, err
    np.testing.assert_allclose(load_nam(tmp_path / "snap.nam").weights, load_nam(DATA / f"{name}_frozen.nam").weights,
                               rtol=0, atol=1e-6)


def test_the_convnet_reader_renders_a_batchnorm_convnet_like_core():
    target = np.load(DATA / "convnet_batchnorm__input_guitar.npy")
    m = model_from_nam(DATA / "convnet_batchnorm.nam")
    assert isinstance(m, NAMConvNet) and m.batchnorm and m.receptive_field == 8
    assert float(np.abs(render(m, guitar()).numpy() - target).max()) <= 1e-5 * float(np.abs(target).max())
    y, _ = process_file(StreamProcessor(m), guitar(), 64)  # a plugin's 64-sample blocks, pre-warmed
    assert float(np.abs(y - target).max()) <= 1e-5 * float(np.abs(target).max())


# -- files and the CLI -------------------------------------------------------------------------------------------
def cli(capsys, *args) -> tuple[int, str, str]:
    from modelmaker.cli import main

    capsys.readouterr()
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture
def wav_in(tmp_path) -> Path:
    path = tmp_path / "in.wav"
    sf.write(str(path), (np.random.default_rng(0).standard_normal(9600) * 0.2).astype(np.float32), 48_000)
    return path


def test_knob_model_files_round_trip(tmp_path):
    m = tiny("FiLMWaveNet", torch.float32)
    save_knob_model(m, tmp_path / "m.pt", sample_rate=44_100, metadata={"name": "fuzz"})
    again, info = load_audio_model(tmp_path / "m.pt")
    assert info == {"sample_rate": 44_100.0, "metadata": {"name": "fuzz"}}
    assert again.knobs.declaration() == m.knobs.declaration() and again.films == m.films
    x, p = torch.randn(2, 200), torch.rand(2, 2)
    with torch.no_grad():
        np.testing.assert_array_equal(again(x, p).numpy(), m(x, p).numpy())
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="junk.pt: cannot read as a knob model"):
        load_knob_model(tmp_path / "junk.pt")
    torch.save({"state_dict": {}}, tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="plain.pt: not a knob model file"):
        load_knob_model(tmp_path / "plain.pt")


def test_render_param_renders_the_knob_model_at_that_setting(tmp_path, wav_in, capsys):
    m = tiny("CatWaveNet", torch.float32)
    save_knob_model(m, tmp_path / "m.pt", sample_rate=48_000)
    rc, out, err = cli(capsys, "render", tmp_path / "m.pt", wav_in, tmp_path / "out.wav", "--param", "gain=2.5")
    assert rc == 0 and "bright=0, gain=2.5" in out
    assert "knob 'bright' not given: using its default 0" in err  # a missing knob takes its default, and says so
    y, _ = sf.read(str(tmp_path / "out.wav"), dtype="float32")
    x, _ = sf.read(str(wav_in), dtype="float32")
    want = m.render(x, m.knobs.vector({"gain": 2.5, "bright": 0}, "t")).numpy()
    assert float(np.abs(y - want).max()) <= 1e-5


@pytest.mark.parametrize("args, message", [
    (["--param", "gain=11"], "--param: knob 'gain' = 11 is outside [0, 10]"),
    (["--param", "level=3"], "--param: unknown knob 'level'; the knobs are bright, gain"),
    (["--param", "bright=0.5"], "--param: knob 'bright' is a switch (0 or 1)"),
    (["--param", "gain"], "--param 'gain': expected NAME=VALUE"),
    (["--param", "gain=1", "--param", "gain=2"], "--param: knob 'gain' is given twice"),
])
@pytest.mark.parametrize("command", ["render", "freeze"])
def test_bad_settings_are_one_line_errors(command, args, message, tmp_path, wav_in, capsys):
    save_knob_model(tiny("HyperConvNet", torch.float32), tmp_path / "m.pt")
    out = tmp_path / "out.nam" if command == "freeze" else tmp_path / "out.wav"
    where = ["-o", out] if command == "freeze" else [wav_in, out]
    rc, _, err = cli(capsys, command, tmp_path / "m.pt", *where, *args)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith(f"modelmaker: error: {message}"), err
    assert not out.exists()


def test_models_without_knobs_refuse_param_and_freeze(tmp_path, wav_in, capsys):
    plain = DATA / "catwavenet_frozen.nam"
    rc, _, err = cli(capsys, "render", plain, wav_in, tmp_path / "o.wav", "--param", "gain=1")
    assert rc == 2 and "--param: catwavenet_frozen.nam has no knob inputs" in err and not (tmp_path / "o.wav").exists()
    rc, _, err = cli(capsys, "freeze", plain, "--param", "gain=1", "-o", tmp_path / "s.nam")
    assert rc == 2 and "has no knob inputs" in err and len(err.strip().splitlines()) == 1
    # a knob model built without a declaration has no knob names and no defaults to render at
    anonymous = NAMHyperConvNet(num_knobs=2, channels=2, dilations=[1, 2])
    save_knob_model(anonymous, tmp_path / "anon.pt")
    rc, _, err = cli(capsys, "render", tmp_path / "anon.pt", wav_in, tmp_path / "o.wav")
    assert rc == 2 and "declares no knobs" in err and not (tmp_path / "o.wav").exists()
    with pytest.raises(DatasetError, match="no knob inputs"):
        resolve_setting(model_from_nam(plain), {})


def test_freeze_refuses_what_no_nam_architecture_holds_and_never_overwrites(tmp_path, capsys):
    m = NAMFiLMWaveNet(layers=LAYERS, films=["activation_post_film"], knobs=KNOBS)
    save_knob_model(m, tmp_path / "m.pt")
    rc, _, err = cli(capsys, "freeze", tmp_path / "m.pt", "-o", tmp_path / "s.nam")
    assert rc == 2 and "cannot freeze a FiLMWaveNet with activation_post_film" in err and not (tmp_path / "s.nam").exists()
    rc, _, err = cli(capsys, "freeze", tmp_path / "m.pt", "-o", tmp_path / "s.wav")
    assert rc == 2 and "a snapshot is a .nam file" in err


# -- training ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def knob_data(tmp_path_factory):
    from tinyverse.audio.knob_capture import KnobCaptureDataset

    old = os.environ.get("TINYVERSE_CACHE")
    os.environ["TINYVERSE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        yield KnobCaptureDataset(generated_seconds=6.0, points=3, ny=2048).load()
    finally:
        if old is None:
            os.environ.pop("TINYVERSE_CACHE", None)
        else:
            os.environ["TINYVERSE_CACHE"] = old


def test_the_knob_task_needs_a_knob_model():
    from tinyverse.models import create_model
    from tinyverse.registry import TASKS

    with pytest.raises(ValueError, match="needs a knob-conditioned model"):
        TASKS.get("knob_modelling")(create_model("NAM_WaveNet_nano"))


def test_a_short_training_run_lowers_esr_at_seen_and_unseen_settings(knob_data, tmp_path, wav_in, capsys):
    from tinyverse.audio.knob_training import KnobModellingTask
    from tinyverse.audio.metrics import esr
    from tinyverse.training import TrainConfig, fit, load_checkpoint

    layers = [{**LAYERS[0], "channels": 6, "head_size": 4, "dilations": [1, 2, 4, 8, 16]},
              {**LAYERS[1], "input_size": 6, "channels": 4, "gated": False, "dilations": [1, 2, 4, 8, 16]}]
    torch.manual_seed(0)
    model = NAMCatWaveNet(layers=layers, knobs=knob_data.knobs.declaration())
    rf = model.receptive_field
    val = knob_data.validation(rf)

    def esr_by_role() -> dict[str, float]:
        out: dict[str, list[float]] = {}
        with torch.no_grad():
            for v in val:
                y = model(torch.from_numpy(v["x"]).float(), torch.from_numpy(v["params"][None]))[0].numpy()
                out.setdefault(v["role"], []).append(esr(v["y"][0], y))
        return {k: float(np.mean(e)) for k, e in out.items()}

    before = esr_by_role()
    X, P, Y = knob_data.windows(rf, 2048, stride=8192)
    seen = [v for v in val if v["role"] == "train"]
    n = min(v["y"].shape[1] for v in seen)
    Xv = np.concatenate([v["x"][:, :n + rf - 1] for v in seen]).astype(np.float32)
    Yv = np.concatenate([v["y"][:, :n] for v in seen]).astype(np.float32)
    Pv = np.stack([v["params"] for v in seen]).astype(np.float32)
    task = KnobModellingTask(model, sample_rate=knob_data.sample_rate, learning_rate=0.01)
    cfg = TrainConfig(epochs=2, batch_size=16, seed=0, monitor="val_esr", monitor_mode="min", progress_bar=False)
    result = fit(task, (X, P, Y), (Xv, Pv, Yv), tmp_path / "run", cfg)
    model.eval()
    after = esr_by_role()
    assert np.isfinite(result.best_score) and "val_esr" in result.metrics_csv.read_text().splitlines()[0]
    with capsys.disabled():
        print(f"\nESR per setting role before {before}, after 2 epochs {after}")
    assert after["train"] < 0.7 * before["train"] and after["unseen"] < 0.7 * before["unseen"], (before, after)

    # The checkpoint carries the model's record: render and freeze work from it alone.
    ckpt = result.best_checkpoint
    record = load_checkpoint(ckpt)["knob_model"]
    assert record["architecture"] == "CatWaveNet" and record["knobs"] == knob_data.knobs.declaration()
    best, info = load_audio_model(ckpt)
    assert info["sample_rate"] == 48_000
    setting = {"gain": 7.0, "tone": 3.0}
    p = best.knobs.vector(setting, "t")
    rc, out, err = cli(capsys, "render", ckpt, wav_in, tmp_path / "out.wav", "--param", "gain=7", "--param", "tone=3")
    assert rc == 0, err
    x, _ = sf.read(str(wav_in), dtype="float32")
    want = best.render(x, p).numpy()
    y, _ = sf.read(str(tmp_path / "out.wav"), dtype="float32")
    assert float(np.abs(y - want).max()) <= 1e-5
    rc, out, err = cli(capsys, "freeze", ckpt, "--param", "gain=7", "--param", "tone=3", "-o", tmp_path / "snap.nam")
    assert rc == 0, err
    snap = load_nam(tmp_path / "snap.nam")
    assert snap.metadata["frozen"]["setting"] == setting and snap.version == "0.5.4"
    assert float(np.abs(render(model_from_nam(tmp_path / "snap.nam"), x).numpy() - want).max()) <= 1e-5
