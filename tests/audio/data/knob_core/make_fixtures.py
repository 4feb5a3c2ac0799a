"""Regenerate the knob models in this folder, their frozen snapshots and NeuralAmpModelerCore's renders of those.

    python tests/audio/data/knob_core/make_fixtures.py CORE_RENDER_BINARY

``CORE_RENDER_BINARY``: the driver described in ``../nam_a2_core/make_fixtures.py`` (NeuralAmpModelerCore commit
daae2d0: ``nam::get_dsp``, ``Reset(sample_rate, 64)`` with its pre-warm, 64-sample blocks). For each knob model
(tiny, random weights) this writes the model (``NAME.pt``, :func:`tinyverse.audio.knob_file.save_knob_model`), its
snapshot frozen at ``SETTING`` (``NAME_frozen.nam``: LSTM, WaveNet or ConvNet, version 0.5.4) and Core's render of
the snapshot for the first ``SAMPLES`` samples of the shared ``input_guitar.wav``. A batch-norm ConvNet (what NAM's
trainer writes by default) is rendered too, for the ConvNet reader. The tests check that the knob model at
``SETTING`` and our reader's render of the snapshot both match Core's render.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from tinyverse.audio.knob_file import save_knob_model
from tinyverse.audio.nam import save_nam
from tinyverse.audio.nam.convnet import NAMConvNet
from tinyverse.audio.nam.knob_models import NAMCatLSTM, NAMCatWaveNet, NAMFiLMWaveNet, NAMHyperConvNet

HERE = Path(__file__).resolve().parent
INPUT = Path(__file__).resolve().parents[5] / "shared" / "fixtures" / "nam_a2" / "input_guitar.wav"
SAMPLES = 4000
KNOBS = {"gain": {"min": 0, "max": 10, "default": 5}, "bright": {"type": "bool"}}
SETTING = {"gain": 7.0, "bright": 1.0}
LAYERS = [
    {"input_size": 1, "condition_size": 1, "head_size": 2, "channels": 3, "kernel_size": 3, "dilations": [1, 2, 4],
     "activation": "Tanh", "gated": False, "head_bias": False},
    {"input_size": 3, "condition_size": 1, "head_size": 1, "channels": 2, "kernel_size": 2, "dilations": [8, 1],
     "activation": "Tanh", "gated": True, "head_bias": True},
]
MODELS = {
    "catlstm": lambda: NAMCatLSTM(hidden_size=5, num_layers=2, knobs=KNOBS),
    "catwavenet": lambda: NAMCatWaveNet(layers=LAYERS, head_scale=0.3, knobs=KNOBS),
    "filmwavenet": lambda: NAMFiLMWaveNet(layers=LAYERS, head_scale=0.3, embedding_size=3, hidden_size=4,
                                          films=["conv_pre_film", "activation_pre_film", "input_mixin_post_film"],
                                          knobs=KNOBS),
    "hyperconvnet": lambda: NAMHyperConvNet(channels=3, dilations=[1, 2, 4, 8], hyper_units=4, knobs=KNOBS),
}


def render(core: str, nam: Path, out: Path) -> None:
    subprocess.run([core, str(nam), str(HERE / "in.f32"), str(HERE / "out.f32")], check=True)
    np.save(out, np.fromfile(HERE / "out.f32", np.float32))


def main(core: str) -> None:
    x, _ = sf.read(str(INPUT), dtype="float32")
    x[:SAMPLES].tofile(HERE / "in.f32")
    for name, build in MODELS.items():
        torch.manual_seed(0)
        model = build()
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn_like(p) * 0.4)
        model.prepare_for_inference()
        save_knob_model(model, HERE / f"{name}.pt", sample_rate=48_000)
        frozen = model.frozen(model.knobs.vector(SETTING, "SETTING"))
        save_nam(frozen, HERE / f"{name}_frozen.nam", metadata={"name": f"{name} at {SETTING}"}, sample_rate=48_000)
        render(core, HERE / f"{name}_frozen.nam", HERE / f"{name}_frozen__input_guitar.npy")
    torch.manual_seed(1)
    bn = NAMConvNet(3, [1, 2, 4], batchnorm=True, activation="Tanh")
    with torch.no_grad():
        for t in bn.ordered_tensors():
            t.copy_(torch.randn_like(t) * 0.4)
        for norm in bn.norms:
            norm.running_var.copy_(torch.rand_like(norm.running_var) + 0.5)
            norm.eps.fill_(1e-5)
    save_nam(bn, HERE / "convnet_batchnorm.nam", metadata={"name": "convnet_batchnorm"}, sample_rate=48_000)
    render(core, HERE / "convnet_batchnorm.nam", HERE / "convnet_batchnorm__input_guitar.npy")
    (HERE / "in.f32").unlink()
    (HERE / "out.f32").unlink()


if __name__ == "__main__":
    main(sys.argv[1])
