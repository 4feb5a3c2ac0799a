"""``modelmaker freeze MODEL --param NAME=VALUE [...] -o snapshot.nam``

Folds constant knob values into a knob-conditioned model and writes the plain NAM model it becomes at that setting
(:meth:`tinyverse.audio.nam.knob_models.KnobModel.frozen`): CatLSTM → LSTM, CatWaveNet / FiLMWaveNet → WaveNet
(A1 layout, version 0.5.4), HyperConvNet → ConvNet — files any NAM plugin or pedal loads. MODEL is a knob run's
run folder, its checkpoint (``checkpoints/best.ckpt``) or a knob model's ``.pt``. Each ``--param`` is checked against the range the
model declares; a knob not given takes its declared default (and the command says so). The written file is read
back and streamed against the knob model at that setting; the largest difference is printed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from modelmaker.commands.render import knob_setting, output_problem, run_model_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("freeze", help="write a knob model at one knob setting as a plain .nam snapshot")
    p.add_argument("model", help="a knob run folder, its checkpoints/best.ckpt, or a knob model's .pt")
    p.add_argument("--param", action="append", default=None, metavar="NAME=VALUE",
                   help="a knob value in the units it was declared in (e.g. --param gain=7); repeat per knob; a knob "
                        "not given takes its declared default")
    p.add_argument("-o", "--output", required=True, help="the snapshot to write (.nam; a missing folder is created)")
    p.add_argument("--name", default=None, help="metadata name of the snapshot (default: the model's and the setting)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from tinyverse.audio.nam import model_from_nam, save_nam
    from tinyverse.audio.stream import StreamProcessor, load_audio_model, process_file

    model_path, output = Path(args.model), Path(args.output)
    if model_path.is_dir():  # a run folder: the knob model its checkpoint holds
        try:
            model_path = run_model_file(model_path)
        except ValueError as e:
            print(f"modelmaker: error: {e}", file=sys.stderr)
            return 2
    if not model_path.is_file():
        print(f"modelmaker: error: model: no such file: {model_path}", file=sys.stderr)
        return 2
    if output.suffix != ".nam":
        print(f"modelmaker: error: -o {output}: a snapshot is a .nam file (e.g. {output.with_suffix('.nam')})",
              file=sys.stderr)
        return 2
    problem = output_problem(output, {"model file": model_path})
    if problem:
        print(f"modelmaker: error: {problem}", file=sys.stderr)
        return 2
    try:
        model, info = load_audio_model(model_path)
        if "params" not in getattr(model, "input_shapes", {}):
            raise ValueError(f"{model_path.name} has no knob inputs: only a knob-conditioned model (a knob run's "
                             "checkpoint or .pt) can be frozen")
        vector, setting = knob_setting(model, args.param, model_path)
        frozen = model.frozen(vector)
    except (ValueError, FileNotFoundError) as e:
        print(f"modelmaker: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    label = ", ".join(f"{k}={v:g}" for k, v in setting.items())
    arch = model.record()["architecture"]
    sr = info.get("sample_rate") or 48_000.0
    metadata = {"name": args.name or f"{model_path.stem} ({label})",
                "frozen": {"from": arch, "setting": setting, "knobs": model.knobs.declaration()}}
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        nf = save_nam(frozen, output, metadata=metadata, sample_rate=float(sr))
    except (OSError, ValueError) as e:
        print(f"modelmaker: error: cannot write {output}: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2

    # Read the file back and stream both at this setting (0.5 s of a chirp with silence before it).
    torch.set_num_threads(1)
    n = int(sr) // 2
    t = np.arange(n) / float(sr)
    x = np.concatenate([np.zeros(n // 4), 0.5 * np.sin(2 * np.pi * (80 + 1500 * t) * t)]).astype(np.float64)
    ref, _ = process_file(StreamProcessor(model, torch.float64, params=vector), x, 256)
    got, _ = process_file(StreamProcessor(model_from_nam(output), torch.float64), x, 256)
    err = float(np.max(np.abs(ref - got)))
    print(f"froze {arch} at {label} -> {output} ({nf.architecture}, .nam {nf.version}, {len(nf.weights):,} weights); "
          f"matches the knob model to {err:.1e} on {len(x) / sr:.2f} s of test audio")
    return 0
