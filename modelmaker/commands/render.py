"""``modelmaker render MODEL in.wav out.wav [--block-size N] [--slim S] [--param NAME=VALUE ...]``

Processes a WAV file through an audio model block by block, as a plugin or pedal does (receptive-field history
or recurrent state carried between blocks), and prints the real-time factor. MODEL is a ``.nam`` file, a run's
checkpoint (``.ckpt``, next to its ``model.nam``), a streaming ``.onnx`` / ``.tflite`` export of a run
(``model_stream*.onnx``, ``model_stream_*.tflite``; float, int8 or int16x8), or a run folder (its ``model.nam``, else
its ``checkpoints/best.ckpt``). ``--slim`` is the NAM plugin's size knob for ``SlimmableContainer`` files (e.g. A2:
lite below 0.5, full above) and slimmable WaveNets.

``--param`` sets a knob of a knob-conditioned model — a knob run's checkpoint or folder, a knob model's ``.pt``, or
any of its streaming exports (their ``params`` input; the knob declaration is in the file's metadata) — in the units
the model declares, checked against its range: an unknown knob name, a value outside [min, max] (a switch: 0 or 1),
a malformed or repeated ``--param`` is a one-line error naming the knob (exit 2). A knob not given takes its
declared default and the command says so: every declared knob has one (the declared ``default``, else the midpoint /
off, written out in every artifact's declaration). A model or file that declares no knobs (built with ``num_knobs``
only: no names, no defaults) cannot be rendered by name: a one-line error.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="process a WAV file with a .nam / checkpoint / streaming ONNX or TFLite model")
    p.add_argument("model",
                   help="model.nam, a run's checkpoints/best.ckpt or run folder, a knob model's .pt, "
                        "model_stream*.onnx or model_stream_*.tflite")
    p.add_argument("input", help="input WAV (mono; channel 0 is used otherwise)")
    p.add_argument("output", help="output WAV (float32; a missing folder is created; never the input file)")
    p.add_argument("--block-size", type=int, default=None,
                   help="samples per block (default 512; a .tflite file's own block length)")
    p.add_argument("--runtime", choices=["litert", "tflm"], default="litert",
                   help=".tflite only: LiteRT reference kernels (default) or the TFLite Micro interpreter")
    p.add_argument("--slim", type=float, default=None,
                   help="model size for SlimmableContainer files and slimmable WaveNets, 0.0 (smallest) to 1.0 "
                        "(full, what NAM Core runs when nothing is set), as the NAM plugin's size knob")
    p.add_argument("--param", action="append", default=None, metavar="NAME=VALUE",
                   help="a knob of a knob-conditioned model, in the units it was declared in (e.g. --param gain=7 "
                        "--param bright=1); repeat for each knob; a knob not given takes its declared default")
    p.set_defaults(func=main)


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    return a.exists() and b.exists() and os.path.samefile(a, b)  # hard links, case-insensitive file systems


def output_problem(output: Path, protected: dict[str, Path]) -> str | None:
    """Why ``output`` cannot be written, checked before any work is done; None when it can."""
    if output.is_dir():
        return f"output {output} is a folder; give a file name, e.g. {output / 'rendered.wav'}"
    for what, path in protected.items():
        if _same_file(output, path):
            return f"output {output} is the {what}: rendering would overwrite it; write to another file"
    parent = output.parent
    while not parent.exists():  # the folders that will be created must end in a writable folder
        parent = parent.parent
    if not parent.is_dir():
        return f"cannot create the folder for output {output}: {parent} is a file"
    if not os.access(parent, os.W_OK):
        return f"cannot write output {output}: no permission to write in {parent}"
    return None


def _write_wav(path: Path, y, sr: int) -> None:
    """Written next to the target and renamed, so a failed write never leaves a half file (or destroys an
    earlier render) under the output name."""
    import soundfile as sf

    tmp = path.with_name(f".{path.name}.tmp")
    try:
        sf.write(str(tmp), y, sr, subtype="FLOAT", format="WAV")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def run_model_file(folder: Path) -> Path:
    """The model a run folder renders with: its ``model.nam`` (a plain run), else its ``checkpoints/best.ckpt`` (a
    knob run's carries the knob model). ValueError (one line) for a folder with neither."""
    for candidate in (folder / "model.nam", folder / "checkpoints" / "best.ckpt"):
        if candidate.is_file():
            return candidate
    raise ValueError(f"model: {folder} is a folder without model.nam or checkpoints/best.ckpt: give a run folder or a "
                     "model file")


def export_knob_setting(proc, pairs: list[str] | None, model_path: Path) -> dict[str, float]:
    """Set a streaming export's knobs from ``--param`` (its ``params`` input, its metadata's declaration); {} for a
    file without knob inputs. ValueError (one line) for a bad setting or ``--param`` given to such a file."""
    from tinyverse.audio.knob_file import parse_param_args
    from tinyverse.audio.knobs import KnobSet

    if not getattr(proc, "knobbed", False):
        if pairs:
            raise ValueError(f"--param: {model_path.name} has no knob inputs (not a knob-conditioned model's export)")
        return {}
    declared = proc.meta.get("knobs")
    if not declared:
        raise ValueError(f"--param: {model_path.name} declares no knobs (names, ranges, defaults) in its metadata")
    knobs = KnobSet.from_declaration(declared, f"{model_path.name} knobs")
    given = parse_param_args(pairs or [])
    setting = knobs.check(given, "--param", fill_defaults=True)
    for name in knobs.names:
        if name not in given:
            print(f"note: knob {name!r} not given: using its default {setting[name]:g}", file=sys.stderr)
    proc.set_params(knobs.vector(setting, "--param"))
    proc.reset()
    return setting


def knob_setting(model, pairs: list[str] | None, model_path: Path) -> tuple[Any, dict[str, float]]:
    """(the knob vector, the setting) a knob model renders at, from ``--param`` values (notes name the knobs that
    took their defaults); (None, {}) for a model without knobs. ValueError (one line) for a bad setting, or
    ``--param`` given to a model without knob inputs."""
    from tinyverse.audio.knob_file import parse_param_args, resolve_setting

    if "params" not in getattr(model, "input_shapes", {}):
        if pairs:
            raise ValueError(f"--param: {model_path.name} has no knob inputs (not a knob-conditioned model)")
        return None, {}
    vector, setting, defaulted = resolve_setting(model, parse_param_args(pairs or []))
    for name in defaulted:
        print(f"note: knob {name!r} not given: using its default {setting[name]:g}", file=sys.stderr)
    return vector, setting


def main(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from tinyverse.audio.audiofile import AudioFileError, read_audio
    from tinyverse.audio.stream import OnnxStreamProcessor, StreamProcessor, load_audio_model, process_file

    if args.block_size is not None and args.block_size < 1:
        print("modelmaker: error: --block-size must be >= 1", file=sys.stderr)
        return 2
    if args.slim is not None and not 0.0 <= args.slim <= 1.0:
        print(f"modelmaker: error: --slim must be between 0.0 and 1.0, got {args.slim}", file=sys.stderr)
        return 2
    model_path = Path(args.model)
    if not model_path.exists():
        print(f"modelmaker: error: model: no such file: {model_path}", file=sys.stderr)
        return 2
    if model_path.is_dir():
        try:
            model_path = run_model_file(model_path)
        except ValueError as e:
            print(f"modelmaker: error: {e}", file=sys.stderr)
            return 2
    if not model_path.is_file():
        print(f"modelmaker: error: model: not a file: {model_path}", file=sys.stderr)
        return 2
    try:
        x, sr = read_audio(args.input, "input")
    except AudioFileError as e:
        print(f"modelmaker: error: {e}", file=sys.stderr)
        return 2
    output = Path(args.output)
    problem = output_problem(output, {"input file": Path(args.input), "model file": model_path})
    if problem:
        print(f"modelmaker: error: {problem}", file=sys.stderr)
        return 2
    if x.shape[1] > 1:
        print(f"note: {args.input} has {x.shape[1]} channels; using channel 0", file=sys.stderr)
    x = x[:, 0]
    torch.set_num_threads(1)  # a plugin runs on one audio thread
    setting: dict[str, float] = {}  # a knob model's knobs
    try:
        if model_path.suffix in (".onnx", ".tflite"):
            if args.slim is not None:
                print(f"modelmaker: error: --slim: {model_path.name} is a streaming export of one model size; "
                      "give the .nam file to choose a size", file=sys.stderr)
                return 2
            from tinyverse.audio.stream import open_stream_processor

            try:
                proc, _, info = open_stream_processor(model_path, args.runtime)
            except ValueError as e:  # an ONNX file written before the stream metadata: the .nam next to it says
                if "no stream metadata" not in str(e):
                    raise
                nam = model_path.with_name("model.nam")
                if not nam.is_file():
                    raise ValueError(f"{model_path}: no stream metadata and no model.nam next to it for the "
                                     "receptive field") from None
                model, info = load_audio_model(nam)
                proc = OnnxStreamProcessor(model_path, int(getattr(model, "receptive_field", 1)))
            setting = export_knob_setting(proc, args.param, model_path)
            if model_path.suffix == ".tflite":
                if args.block_size is None:
                    args.block_size = proc.block
                elif args.block_size % proc.block:
                    print(f"note: {model_path.name} was exported for blocks of {proc.block} samples; blocks of "
                          f"{args.block_size} are cut and zero-padded into those"
                          + (" (an LSTM's state then drifts: use a multiple)" if proc.stateful else ""),
                          file=sys.stderr)
        else:
            model, info = load_audio_model(model_path)
            if args.slim is not None:
                set_slim = getattr(model, "set_slim", None)  # the model knows whether it has sizes
                if set_slim is None:
                    raise ValueError(f"{type(model).__name__} has no slimmable size")
                try:
                    set_slim(args.slim)
                except ValueError as e:
                    raise ValueError(f"--slim: {model_path.name}: {e}") from None
            params, setting = knob_setting(model, args.param, model_path)
            proc = StreamProcessor(model, params=params)
    except (ValueError, FileNotFoundError) as e:
        print(f"modelmaker: error: {e}", file=sys.stderr)
        return 2
    model_sr = info.get("sample_rate")
    if model_sr and int(model_sr) != sr:
        print(f"warning: the model was captured at {int(model_sr)} Hz, the input is {sr} Hz; the tone will differ",
              file=sys.stderr)
    args.block_size = args.block_size or 512
    y, secs = process_file(proc, x, args.block_size)
    created = next((p for p in reversed(output.parents) if not p.exists()), None)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        _write_wav(output, y.astype(np.float32), sr)
    except (OSError, RuntimeError) as e:  # soundfile reports write errors as RuntimeError
        print(f"modelmaker: error: cannot write output {output}: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    dur = len(x) / sr
    rtf = secs / dur if dur else float("nan")
    speed = (f"{1 / rtf:.1f}x faster than real time" if rtf < 1 else f"{rtf:.1f}x slower than real time") \
        if rtf > 0 else "instant"
    size = f", slim {args.slim:g}" if args.slim is not None else ""
    if setting:
        size += ", " + ", ".join(f"{k}={v:g}" for k, v in setting.items())
    print(f"rendered {dur:.2f} s of audio in {secs:.2f} s with {model_path.name}{size} (blocks of {args.block_size}): "
          f"real-time factor {rtf:.3f} ({speed})")
    print(f"wrote {output}" + (f" (created the folder {created})" if created else ""))
    return 0
