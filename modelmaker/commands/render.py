"""``modelmaker render MODEL in.wav out.wav [--block-size N]``

Processes a WAV file through an audio model block by block, as a plugin or pedal does (receptive-field history
or recurrent state carried between blocks), and prints the real-time factor. MODEL is a ``.nam`` file, a run's
checkpoint (``.ckpt``, next to its ``model.nam``), or a streaming ``.onnx`` / ``.tflite`` export of a run
(``model_stream*.onnx``, ``model_stream_*.tflite``; float or int8).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="process a WAV file with a .nam / checkpoint / streaming ONNX or TFLite model")
    p.add_argument("model",
                   help="model.nam, a run's checkpoints/best.ckpt, model_stream*.onnx or model_stream_*.tflite")
    p.add_argument("input", help="input WAV (mono; channel 0 is used otherwise)")
    p.add_argument("output", help="output WAV (float32)")
    p.add_argument("--block-size", type=int, default=None,
                   help="samples per block (default 512; a .tflite file's own block length)")
    p.add_argument("--runtime", choices=["litert", "tflm"], default="litert",
                   help=".tflite only: LiteRT reference kernels (default) or the TFLite Micro interpreter")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import numpy as np
    import soundfile as sf
    import torch

    from tinyverse.audio.stream import OnnxStreamProcessor, StreamProcessor, load_audio_model, process_file

    if args.block_size is not None and args.block_size < 1:
        print("modelmaker: error: --block-size must be >= 1", file=sys.stderr)
        return 2
    model_path = Path(args.model)
    if not model_path.is_file():
        print(f"modelmaker: error: model file not found: {model_path}", file=sys.stderr)
        return 2
    try:
        x, sr = sf.read(args.input, dtype="float32", always_2d=True)
    except Exception as e:
        print(f"modelmaker: error: cannot read {args.input}: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    if x.shape[1] > 1:
        print(f"note: {args.input} has {x.shape[1]} channels; using channel 0", file=sys.stderr)
    x = x[:, 0]
    torch.set_num_threads(1)  # a plugin runs on one audio thread
    try:
        if model_path.suffix in (".onnx", ".tflite"):
            from tinyverse.audio.stream import open_stream_processor

            try:
                proc, _, info = open_stream_processor(model_path, args.runtime)
            except ValueError:  # an ONNX file written before the stream metadata: the .nam next to it says
                nam = model_path.with_name("model.nam")
                if not nam.is_file():
                    raise ValueError(f"{model_path}: no stream metadata and no model.nam next to it for the "
                                     "receptive field") from None
                model, info = load_audio_model(nam)
                proc = OnnxStreamProcessor(model_path, int(getattr(model, "receptive_field", 1)))
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
            proc = StreamProcessor(model)
    except (ValueError, FileNotFoundError) as e:
        print(f"modelmaker: error: {e}", file=sys.stderr)
        return 2
    model_sr = info.get("sample_rate")
    if model_sr and int(model_sr) != sr:
        print(f"warning: the model was captured at {int(model_sr)} Hz, the input is {sr} Hz; the tone will differ",
              file=sys.stderr)
    args.block_size = args.block_size or 512
    y, secs = process_file(proc, x, args.block_size)
    sf.write(args.output, y.astype(np.float32), sr, subtype="FLOAT")
    dur = len(x) / sr
    rtf = secs / dur if dur else float("nan")
    speed = (f"{1 / rtf:.1f}x faster than real time" if rtf < 1 else f"{rtf:.1f}x slower than real time") \
        if rtf > 0 else "instant"
    print(f"rendered {dur:.2f} s of audio in {secs:.2f} s with {model_path.name} (blocks of {args.block_size}): "
          f"real-time factor {rtf:.3f} ({speed})")
    print(f"wrote {args.output}")
    return 0
