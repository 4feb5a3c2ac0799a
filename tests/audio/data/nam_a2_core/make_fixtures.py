"""Regenerate the synthetic A2-feature models in this folder and NeuralAmpModelerCore's renders of them.

    python tests/audio/data/nam_a2_core/make_fixtures.py CORE_RENDER_BINARY

``CORE_RENDER_BINARY`` is a small driver linked against NeuralAmpModelerCore (commit daae2d0, built with its
default NAM_ENABLE_A2_FAST): ``corerender MODEL.nam in.f32 out.f32 [slim]`` loads the model with
``nam::get_dsp``, calls ``SetSlimmableSize(slim)`` when given, ``Reset(sample_rate, 64)`` (which pre-warms), and
processes raw float32 samples in 64-sample blocks — what ``tools/render.cpp`` does, without the WAV I/O. The
models cover what the shared fixtures do not: a post-stack head, head convs with kernel > 1 and a dilation,
per-layer kernel sizes, blended / gated layers with PReLU, LeakyHardtanh, SiLU, Softsign, Hardswish and
LeakyReLU, FiLM with and without shift, grouped convs, head1x1, a condition DSP in the 0.7 layout, and a
slimmable WaveNet whose slimming cuts through gating, bottleneck, FiLM and head1x1 weights.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from tinyverse.audio.nam import NAMWaveNet, save_nam

HERE = Path(__file__).resolve().parent
INPUT = Path(__file__).resolve().parents[5] / "shared" / "fixtures" / "nam_a2" / "input_guitar.wav"
SAMPLES = 4000
FILM = {"active": True, "shift": True, "groups": 1}


def kitchen_sink() -> NAMWaveNet:
    cond = NAMWaveNet([{
        "input_size": 1, "condition_size": 1, "channels": 2, "bottleneck": 2, "kernel_sizes": [2, 3],
        "dilations": [1, 2], "activation": [{"type": "Tanh"}, {"type": "SiLU"}],
        "head": {"out_channels": 3, "kernel_size": 2, "bias": True, "head_dilation": 2}}], 0.5, mono_output=False)
    layers = [
        {"input_size": 1, "condition_size": 3, "channels": 4, "bottleneck": 2, "kernel_sizes": [3, 2, 4],
         "dilations": [1, 3, 2],
         "activation": [{"type": "PReLU", "negative_slopes": [0.1, 0.2]},
                        {"type": "LeakyHardtanh", "min_val": -0.5, "max_val": 0.7, "min_slope": 0.05, "max_slope": 0.1},
                        {"type": "Softsign"}],
         "gating_mode": ["none", "blended", "gated"],
         "secondary_activation": [None, {"type": "Sigmoid"}, {"type": "LeakyReLU", "negative_slope": 0.2}],
         "head": {"out_channels": 3, "kernel_size": 1, "bias": False},
         "layer1x1": {"active": True, "groups": 2}, "head1x1": {"active": True, "out_channels": 2, "groups": 1},
         "groups_input": 2, "groups_input_mixin": 1,
         "conv_pre_film": FILM, "activation_post_film": {"active": True, "shift": False, "groups": 1},
         "layer1x1_post_film": FILM, "head1x1_post_film": FILM},
        {"input_size": 4, "condition_size": 3, "channels": 3, "bottleneck": 3, "kernel_sizes": [2, 2],
         "dilations": [4, 1], "activation": "Hardswish",
         "head": {"out_channels": 2, "kernel_size": 3, "bias": True, "head_dilation": 2},
         "layer1x1": {"active": False, "groups": 1},
         "input_mixin_pre_film": {"active": True, "shift": True, "groups": 3}, "input_mixin_post_film": FILM},
    ]
    head = {"channels": 3, "out_channels": 1, "kernel_sizes": [2, 3], "activation": "Tanh"}
    return NAMWaveNet(layers, 0.5, head=head, condition_dsp=cond)


def slimmable_film() -> NAMWaveNet:
    layers = [
        {"input_size": 1, "condition_size": 1, "channels": 6, "bottleneck": 4, "kernel_sizes": [3, 3, 2],
         "dilations": [1, 2, 4], "activation": "Tanh", "gating_mode": ["gated", "none", "blended"],
         "head": {"out_channels": 3, "kernel_size": 1, "bias": True},
         "head1x1": {"active": True, "out_channels": 2, "groups": 1},
         "conv_post_film": FILM, "activation_pre_film": FILM, "input_mixin_pre_film": FILM,
         "head1x1_post_film": {"active": True, "shift": False, "groups": 1},
         "slimmable": {"method": "slice_channels_uniform", "kwargs": {"allowed_channels": [2, 4, 6]}}},
        {"input_size": 6, "condition_size": 1, "channels": 3, "kernel_size": 2, "dilations": [8, 1],
         "activation": "ReLU", "head": {"out_channels": 1, "kernel_size": 1, "bias": True}},
    ]
    return NAMWaveNet(layers, 0.3)


def main(core: str) -> None:
    x, _ = sf.read(str(INPUT), dtype="float32")
    x[:SAMPLES].tofile(HERE / "in.f32")
    for name, build, slims in (("kitchen_sink", kitchen_sink, [None]), ("slimmable_film", slimmable_film, [0.0, 0.5, 1.0])):
        torch.manual_seed(0)
        model = build()
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn_like(p) * 0.4)
        save_nam(model, HERE / f"{name}.nam", metadata={"name": name}, sample_rate=48_000)
        for slim in slims:
            args = [core, str(HERE / f"{name}.nam"), str(HERE / "in.f32"), str(HERE / "out.f32")]
            subprocess.run(args + ([str(slim)] if slim is not None else []), check=True)
            tag = "" if slim is None else f"_slim{slim:g}"
            np.save(HERE / f"{name}{tag}__input_guitar.npy", np.fromfile(HERE / "out.f32", np.float32))
    (HERE / "in.f32").unlink()
    (HERE / "out.f32").unlink()


if __name__ == "__main__":
    main(sys.argv[1])
