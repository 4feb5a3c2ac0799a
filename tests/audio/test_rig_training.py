"""Composition (#14), item 3: a chain trained from a config (``training.model_name: Sequential``), some stages frozen —
frozen stages come out bit for bit as they went in, the others train — and one-line config errors naming the key.
A few seconds of generated capture and one epoch keep the run short."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from modelmaker.cli import main as cli
from modelmaker.config import ConfigError, load_config
from tinyverse.audio.composition import CompositionError
from tinyverse.audio.nam import NAMLSTM, NAMLinear, NAMSequential, load_nam, model_from_nam, save_nam
from tinyverse.models import create_model

SR = 48_000


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYVERSE_CACHE", str(tmp_path / "cache"))


@pytest.fixture()
def amp(tmp_path) -> Path:
    torch.manual_seed(0)
    m = create_model("NAM_WaveNet", channels=[3, 2], dilations=[[1, 2, 4], [8, 1]])
    save_nam(m, tmp_path / "amp.nam", {"name": "amp"}, SR)
    return tmp_path / "amp.nam"


def _config(tmp_path: Path, models: str, **extra: str) -> Path:
    cfg = tmp_path / "rig.yaml"
    training = {"epochs": "1", "batch_size": "4", "learning_rate": "0.004", "lr_scheduler": "exponential",
                "accelerator": "cpu", **extra}
    cfg.write_text(f"""
common: {{task_type: amp_modelling, modality: audio, projects_path: {tmp_path / 'projects'}, run_name: rig,
         verbose: false}}
dataset: {{name: nam_capture, generated_seconds: 6, ny: 2048}}
training:
  model_name: Sequential
  model_args:
    models: {models}
{''.join(f'  {k}: {v}{chr(10)}' for k, v in training.items())}compilation: {{enable: false}}
""")
    return cfg


def test_frozen_stages_are_bit_identical_after_training(tmp_path, amp) -> None:
    cfg = _config(tmp_path, f"[{{model: {amp}, frozen: true}}, {{model: NAM_Linear, config: {{receptive_field: 16}}}}]")
    assert cli(["run", str(cfg)]) == 0
    run_dir = tmp_path / "projects" / "rig"
    nf = load_nam(run_dir / "model.nam")
    assert nf.architecture == "Sequential"
    trained = model_from_nam(nf)
    assert trained.models[0].export_weights() == load_nam(amp).weights  # the frozen amp: every weight bit for bit
    ir = trained.models[1].export_weights()
    assert ir != [1.0] + [0.0] * 15  # the IR trained away from its pass-through start
    state = torch.load(run_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    original = model_from_nam(amp).state_dict()
    for key, value in original.items():
        assert torch.equal(state[f"model.models.0.{key}"], value), key


def test_a_frozen_stage_is_left_alone_by_prepare_for_inference() -> None:
    torch.manual_seed(0)
    lstm = NAMLSTM(4, 1)
    with torch.no_grad():
        lstm.initial_hidden.normal_(0, 0.5)
    before = lstm.initial_hidden.detach().clone()
    chain = NAMSequential([lstm, NAMLinear(4)])
    chain.freeze(0)
    assert not any(p.requires_grad for p in lstm.parameters())
    assert all(p.requires_grad for p in chain.models[1].parameters())
    chain.prepare_for_inference()  # an unfrozen LSTM would settle its initial state on silence here
    assert torch.equal(lstm.initial_hidden, before)
    NAMSequential([lstm, NAMLinear(4)]).prepare_for_inference()
    assert not torch.equal(lstm.initial_hidden, before)


@pytest.mark.parametrize("models,message", [
    ("[{model: amp.nam, frozen: sometimes}]", "models[0].frozen: input should be a valid boolean"),
    ("[{model: amp.nam, freeze: true}]", "models[0].freeze: extra inputs are not permitted"),
    ("[{frozen: true}]", "models[0].model: field required"),
])
def test_bad_stage_keys_fail_the_config_check_naming_the_key(tmp_path, models, message) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(_config(tmp_path, models))
    text = str(e.value)
    assert "training.model_args.models" in text and message in text.lower() and "\n" not in text.strip()


def test_chain_errors_name_the_stage_in_one_line(tmp_path, amp) -> None:
    sf.write(tmp_path / "cab.wav", np.array([0.5, 0.25, 0.1], np.float32), SR, subtype="FLOAT")
    other = model_from_nam(amp)
    save_nam(other, tmp_path / "amp44.nam", {}, 44_100)
    cases = [
        ([{"model": str(amp)}, {"model": "NAM_Lineer"}], "models[1] (NAM_Lineer): 'NAM_Lineer' is neither a file"),
        ([{"model": str(amp)}, {"model": str(tmp_path / "amp44.nam")}], "models: sample-rate mismatch"),
        ([{"model": str(amp), "frozen": True}, {"model": str(tmp_path / "cab.wav"), "frozen": True}],
         "models: every stage is frozen"),
        ([{"model": str(amp), "channel": 0}], "'channel' is for impulse-response files"),
        ([{"model": str(Path(__file__).parent / "data" / "knob_core" / "catwavenet.pt")}],
         "a knob model cannot be a stage of a chain trained from a config yet"),
        ([], "models: list the chain's stages"),
    ]
    for models, message in cases:
        with pytest.raises(CompositionError) as e:
            create_model("Sequential", models=models)
        assert message in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_cli_refuses_an_unknown_stage_and_a_rate_mismatch_before_the_run_folder(tmp_path, amp, capsys) -> None:
    save_nam(model_from_nam(amp), tmp_path / "amp44.nam", {}, 44_100)
    for models, message in [
        (f"[{{model: {amp}, frozen: true}}, {{model: NAM_Lineer}}]", "'NAM_Lineer' is neither a file nor a zoo model"),
        (f"[{{model: {tmp_path / 'amp44.nam'}, frozen: true}}, {{model: NAM_Linear}}]",
         "training.model_args.models: the stages run at 44100 Hz, the capture is 48000 Hz"),
    ]:
        assert cli(["run", str(_config(tmp_path, models))]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and err.startswith("modelmaker: error: training.model_args")
        assert not (tmp_path / "projects").exists()
