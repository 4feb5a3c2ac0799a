"""NAM compatibility against NeuralAmpModelerCore's own renders (shared/fixtures/nam), plus the .nam
reader/writer contract: exact round trips, metadata, and one-line errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tinyverse.audio import esr, esr_verdict
from tinyverse.audio.nam import (
    A1_LSTM,
    A1_WAVENET,
    NAMLSTM,
    NAMLinear,
    NAMWaveNet,
    NamFormatError,
    a1_wavenet_layers,
    load_nam,
    model_from_nam,
    render,
    save_nam,
)

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "nam"
TOL = 1e-5

MODELS = sorted(p.name for p in FIXTURES.glob("*.nam")) if FIXTURES.is_dir() else []
INPUTS = sorted(p.stem for p in FIXTURES.glob("input_*.wav")) if FIXTURES.is_dir() else []

def test_nam_fixtures_are_present():
    # CI clones the repo with shared/ beside it; a missing fixture folder must fail, not silently skip.
    assert MODELS and INPUTS, f"NAM fixtures not found at {FIXTURES}"


def read_wav(path: Path) -> np.ndarray:
    try:
        import soundfile as sf

        data, _ = sf.read(str(path), dtype="float32")
    except ImportError:
        from scipy.io import wavfile

        _, data = wavfile.read(str(path))
    assert data.ndim == 1 and data.dtype == np.float32, f"{path.name}: expected mono float32"
    return data


def _render_all(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    return render(model, x).numpy()


# --------------------------------------------------------------------------------- Core's renders


@pytest.mark.parametrize("inp", INPUTS)
@pytest.mark.parametrize("name", MODELS)
def test_matches_core_render(name: str, inp: str) -> None:
    target_path = FIXTURES / f"{Path(name).stem}__{inp}.wav"
    assert target_path.exists(), f"no Core render {target_path.name} for {name}"
    x, target = read_wav(FIXTURES / f"{inp}.wav"), read_wav(target_path)
    model = model_from_nam(FIXTURES / name)

    y = _render_all(model, x)  # float64 reference render
    assert y.shape == target.shape
    err64 = float(np.abs(y - target).max())
    assert err64 <= TOL, f"{name} on {inp}: max abs error {err64:.3g} (float64)"

    # The trainable float32 module itself, zero-padded at the start as Core's pre-warm does.
    with torch.no_grad():
        y32 = model(torch.from_numpy(x)[None], pad_start=True)[0].numpy()
    err32 = float(np.abs(y32 - target).max())
    assert err32 <= TOL, f"{name} on {inp}: max abs error {err32:.3g} (float32)"


@pytest.mark.parametrize("name", MODELS)
def test_valid_mode_alignment(name: str) -> None:
    """forward() without padding = NAM trainer's valid mode: the tail of the padded render."""
    model = model_from_nam(FIXTURES / name).double()
    x = torch.from_numpy(read_wav(FIXTURES / f"{INPUTS[0]}.wav")[:6000].astype(np.float64))[None]
    with torch.no_grad():
        full = model(x, pad_start=True)
        valid = model(x)
        valid3 = model(x[:, None, :])
    assert valid.shape == (1, x.shape[1] - model.receptive_field + 1)
    torch.testing.assert_close(valid, full[:, model.receptive_field - 1 :], rtol=0, atol=1e-12)
    torch.testing.assert_close(valid3, valid, rtol=0, atol=0)


# ------------------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("name", MODELS)
def test_export_import_round_trip_is_exact(name: str, tmp_path: Path) -> None:
    nf = load_nam(FIXTURES / name)
    model = model_from_nam(nf)
    assert model.export_weights() == nf.weights  # bit-identical, same order

    out = tmp_path / name
    save_nam(model, out, metadata=nf.metadata, sample_rate=nf.sample_rate or 48_000)
    raw = json.loads(out.read_text())
    assert raw["version"] == "0.5.4"
    assert raw["sample_rate"] == 48_000
    if raw["architecture"] == "WaveNet":
        assert raw["config"]["head"] is None

    nf2 = load_nam(out)
    assert nf2.weights == nf.weights
    assert nf2.config == nf.config
    assert nf2.architecture == nf.architecture
    # Every field comes back unchanged, nested training info included; save_nam only adds the fields
    # the trainer always writes (date, name, gear ...) when a file lacked them.
    assert {k: nf2.metadata[k] for k in nf.metadata} == nf.metadata
    if "date" in nf.metadata:
        assert nf2.metadata == nf.metadata

    model2 = model_from_nam(nf2)
    x = read_wav(FIXTURES / f"{INPUTS[0]}.wav")[:8000]
    np.testing.assert_array_equal(_render_all(model2, x), _render_all(model, x))


def test_fixture_metadata_is_read() -> None:
    nf = load_nam(FIXTURES / "wavenet.nam")
    assert nf.version == "0.5.4" and nf.sample_rate == 48_000
    assert nf.metadata["gear_make"] == "Darkglass Electronics"
    assert nf.metadata["loudness"] == pytest.approx(-20.0207, abs=1e-4)
    assert nf.metadata["training"]["validation_esr"] == pytest.approx(0.13345, abs=1e-5)


# ------------------------------------------------------------------------------------- bad files


def _write(tmp_path: Path, fname: str, d: dict) -> Path:
    p = tmp_path / fname
    p.write_text(json.dumps(d))
    return p


def _small_wavenet_dict() -> dict:
    layers = [
        {"input_size": 1, "condition_size": 1, "head_size": 2, "channels": 3, "kernel_size": 3,
         "dilations": [1, 2], "activation": "Tanh", "gated": False, "head_bias": False},
        {"input_size": 3, "condition_size": 1, "head_size": 1, "channels": 2, "kernel_size": 3,
         "dilations": [8], "activation": "Tanh", "gated": False, "head_bias": True},
    ]
    m = NAMWaveNet(layers, 0.02)
    return {"version": "0.5.4", "architecture": "WaveNet", "config": m.nam_config(),
            "weights": m.export_weights(), "sample_rate": 48000, "metadata": {}}


def test_wrong_weight_count_names_file(tmp_path: Path) -> None:
    d = _small_wavenet_dict()
    n = len(d["weights"])
    d["weights"] = d["weights"][:-1]
    p = _write(tmp_path, "short_weights.nam", d)
    with pytest.raises(NamFormatError) as ei:
        load_nam(p)
    msg = str(ei.value)
    assert "short_weights.nam" in msg and f"expected {n} got {n - 1}" in msg and "\n" not in msg


def test_unknown_architecture_names_file(tmp_path: Path) -> None:
    d = _small_wavenet_dict()
    d["architecture"] = "Transformer"
    p = _write(tmp_path, "weird_arch.nam", d)
    with pytest.raises(NamFormatError, match=r"weird_arch\.nam.*unsupported architecture 'Transformer'"):
        load_nam(p)


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0", "banana"])
def test_unsupported_version_names_file(tmp_path: Path, version: str) -> None:
    d = _small_wavenet_dict()
    d["version"] = version
    p = _write(tmp_path, "old_version.nam", d)
    with pytest.raises(NamFormatError, match=r"old_version\.nam.*version"):
        model_from_nam(p)


def test_newer_layout_and_bad_activation_are_refused(tmp_path: Path) -> None:
    d = _small_wavenet_dict()
    d["version"] = "0.7.0"
    d["config"]["layers"][0]["groups_1x1"] = 2  # an old trainer key Core no longer reads: never ignored silently
    with pytest.raises(NamFormatError, match=r"a2\.nam.*groups_1x1"):
        load_nam(_write(tmp_path, "a2.nam", d))
    d = _small_wavenet_dict()
    d["config"]["layers"][0]["activation"] = "Swish"
    with pytest.raises(NamFormatError, match=r"act\.nam.*activation 'Swish'"):
        load_nam(_write(tmp_path, "act.nam", d))
    d = _small_wavenet_dict()
    d["version"] = "0.6.1"  # 0.6/0.7 in the old layout reads fine
    load_nam(_write(tmp_path, "ok06.nam", d))


def test_invalid_json_names_file(tmp_path: Path) -> None:
    p = tmp_path / "broken.nam"
    p.write_text("{not json")
    with pytest.raises(NamFormatError, match=r"broken\.nam.*not valid JSON"):
        load_nam(p)


# ------------------------------------------------------------------------ architectures, no fixture


def test_linear_uses_core_impulse_response_order(tmp_path: Path) -> None:
    ir = [1.0, 0.5, -0.25, 0.125, 0.0, 0.75]  # asymmetric, so a reversed order would show
    m = NAMLinear(len(ir), bias=True)
    m.import_weights(ir + [0.125])
    assert m.export_weights() == ir + [0.125]  # float32-exact values come back bit for bit
    x = np.random.default_rng(0).standard_normal(300).astype(np.float32)
    expected = np.convolve(x.astype(np.float64), ir)[: len(x)] + 0.125  # y[n] = sum_k ir[k] x[n-k] + b
    np.testing.assert_allclose(_render_all(m, x), expected, atol=1e-6)

    nf = save_nam(m, tmp_path / "ir.nam", metadata={"name": "IR"}, sample_rate=44_100)
    assert nf.config == {"receptive_field": 6, "bias": True} and nf.sample_rate == 44_100
    assert model_from_nam(tmp_path / "ir.nam").export_weights() == m.export_weights()


def _core_lstm_reference(flat: list[float], hidden: int, layers: int, x: np.ndarray) -> np.ndarray:
    """Direct transcription of Core's LSTMCell::process_ / LSTM::_process_sample, in float64."""
    it = iter(flat)
    take = lambda n: np.array([next(it) for _ in range(n)])  # noqa: E731
    cells = []
    for k in range(layers):
        n_in = 1 if k == 0 else hidden
        w = take(4 * hidden * (n_in + hidden)).reshape(4 * hidden, n_in + hidden)
        b = take(4 * hidden)
        h, c = take(hidden), take(hidden)
        cells.append([w, b, h, c])
    head_w, head_b = take(hidden), take(1)[0]
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    out = np.empty(len(x))
    for n, s in enumerate(x):
        inp = np.array([s])
        for cell in cells:
            w, b, h, c = cell
            ifgo = w @ np.concatenate([inp, h]) + b
            i, f, g, o = np.split(ifgo, 4)
            c = sig(f) * c + sig(i) * np.tanh(g)
            h = sig(o) * np.tanh(c)
            cell[2], cell[3] = h, c
            inp = h
        out[n] = head_w @ inp + head_b
    return out


def test_multilayer_lstm_matches_core_transcription(tmp_path: Path) -> None:
    torch.manual_seed(0)
    m = NAMLSTM(hidden_size=5, num_layers=2)
    with torch.no_grad():
        m.initial_hidden.normal_()
        m.initial_cell.normal_()
        m.core.bias_hh_l1.normal_()  # b_ih + b_hh must be summed on export
    flat = m.export_weights()
    assert len(flat) == m.num_weights
    x = np.random.default_rng(1).standard_normal(400).astype(np.float32) * 0.5
    np.testing.assert_allclose(_render_all(m, x), _core_lstm_reference(flat, 5, 2, x.astype(np.float64)), atol=1e-6)

    m2 = model_from_nam(save_nam(m, tmp_path / "lstm2.nam", sample_rate=48_000))
    assert m2.export_weights() == flat


def test_settle_initial_state_reaches_silence_steady_state() -> None:
    torch.manual_seed(0)
    m = NAMLSTM(hidden_size=4)
    m.settle_initial_state(4_000)
    with torch.no_grad():
        y = m(torch.zeros(1, 50))
    assert float(y.std()) < 1e-5  # silence in, constant out: the state no longer moves


def test_gated_wavenet_modes() -> None:
    layers = [{"input_size": 1, "condition_size": 1, "head_size": 1, "channels": 2, "kernel_size": 2,
               "dilations": [1, 2], "activation": "Tanh", "gated": True, "head_bias": True}]
    torch.manual_seed(0)
    new = NAMWaveNet(layers, 0.5)
    flat = new.export_weights()
    assert len(flat) == new.num_weights == 1 * 2 + 2 * (4 * 2 * 2 + 4 + 4 + 4 + 2) + 2 + 1 + 1
    old = NAMWaveNet(layers, 0.5, legacy_gating=True)
    old.import_weights(flat)
    x = torch.randn(1, 64)
    with torch.no_grad():
        # act(top) * sigmoid(bottom) vs the old engine's act(top) * sigmoid(act(bottom)).
        assert not torch.allclose(new(x), old(x))
        z = new.layer_arrays[0].layers[0].conv(new.layer_arrays[0].rechannel(x[:, None]))
        assert z.shape[1] == 4


@pytest.mark.parametrize("preset", list(A1_WAVENET))
def test_a1_presets_weight_counts(preset: str) -> None:
    expected = {"standard": 13_802, "lite": 6_554, "feather": 3_026, "nano": 842}[preset]
    m = NAMWaveNet(a1_wavenet_layers(preset), 0.02)
    assert m.num_weights == expected and m.receptive_field == 4_093
    n, h = A1_LSTM[preset]
    assert NAMLSTM(h, n).num_weights == len(NAMLSTM(h, n).export_weights())


def test_save_nam_metadata(tmp_path: Path) -> None:
    m = NAMWaveNet(a1_wavenet_layers("nano"), 0.02)
    meta = {"name": "Nano", "modeled_by": "me", "gear_type": "amp_cab", "gear_make": "Fender",
            "gear_model": "Deluxe", "tone_type": "crunch", "loudness": -18.5, "input_level_dbu": 12.0,
            "validation_esr": 0.0042, "latency": 3, "custom": {"anything": 1}}
    nf = save_nam(m, tmp_path / "nano.nam", metadata=meta, sample_rate=48_000)
    md = json.loads((tmp_path / "nano.nam").read_text())["metadata"]
    assert md == nf.metadata
    assert md["training"]["validation_esr"] == 0.0042
    assert md["training"]["data"]["latency"]["manual"] == 3
    assert md["loudness"] == -18.5 and md["gear_type"] == "amp_cab" and md["custom"] == {"anything": 1}
    assert "output_level_dbu" not in md  # Core throws on null numbers it reads: omit, never null
    assert set(md["date"]) == {"year", "month", "day", "hour", "minute", "second"}

    with pytest.raises(NamFormatError, match=r"bad\.nam.*gear_type 'guitar'"):
        save_nam(m, tmp_path / "bad.nam", metadata={"gear_type": "guitar"})
    assert not (tmp_path / "bad.nam").exists()


def test_esr_and_verdicts() -> None:
    t = np.sin(np.linspace(0, 20, 1000))
    assert esr(t, t) == 0.0
    assert esr(t, np.zeros_like(t)) == pytest.approx(1.0)
    assert esr(t, 0.9 * t) == pytest.approx(0.01)
    assert esr(torch.tensor(t), torch.tensor(1.1 * t)) == pytest.approx(0.01)
    batch = np.stack([t, 2 * t])
    assert esr(batch, np.stack([0.9 * t, 2 * t])) == pytest.approx(0.005)  # per-row ratio, then mean
    assert esr_verdict(0.005) == "Great!"
    assert esr_verdict(0.01) == "Not bad!"
    assert esr_verdict(0.05) == "...This *might* sound ok!"
    assert esr_verdict(0.2) == "...This probably won't sound great :("
    assert esr_verdict(0.5) == "...Something seems to have gone wrong."
