"""``modelmaker combine amp.nam cab.wav [more...] -o rig.nam`` / ``modelmaker combine --dag graph.yaml -o rig.nam``

Composes models into one "full rig" .nam file (docs/composition.md): a chain becomes NAM Core's ``Sequential``
(.nam files, impulse-response WAVs, zoo model names and checkpoints in order); a graph file (YAML: nodes, fan-out,
``sum`` / ``mean`` / ``weighted`` fan-ins, ``output``) becomes a DAG — written as a plain ``Sequential`` when it is a
chain, so NAM Core loads it, otherwise in tinyverse's documented extension of the format. IRs at another sample rate
are resampled to the chain's (``--strict-sample-rate`` refuses them instead). Prints the whole chain's cost.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("combine", help="chain .nam models and cabinet IRs (or a graph of them) into one .nam file")
    p.add_argument("models", nargs="*",
                   help="stages in order: .nam files, impulse responses (.wav/.flac/.aiff), zoo model names, .ckpt")
    p.add_argument("--dag", metavar="GRAPH.yaml", help="a graph file (nodes, fan-out, fan-in, output) instead of a chain")
    p.add_argument("-o", "--output", required=True, help="the .nam file to write")
    p.add_argument("--sample-rate", type=int, default=None,
                   help="the rig's sample rate (default: the NAM models', else the first IR's, else 48000)")
    p.add_argument("--strict-sample-rate", action="store_true",
                   help="refuse an impulse response at another sample rate instead of resampling it")
    p.add_argument("--name", help="metadata name of the rig (default: the stages' names joined by ' + ')")
    p.set_defaults(func=main)


def _stage_names(model) -> list[str]:
    d = model.describe()
    if "models" in d:
        return [m["architecture"] for m in d["models"]]
    return [f"{n}: {v.get('architecture', next(iter(v)))}" for n, v in d["nodes"].items()]


def main(args: argparse.Namespace) -> int:
    from tinyverse.audio.composition import CompositionError, combine, load_graph
    from tinyverse.audio.nam import NamFormatError, save_nam

    if args.dag and args.models:
        raise CompositionError("give either models to chain or --dag GRAPH.yaml, not both")
    if not args.dag and not args.models:
        raise CompositionError("nothing to combine: give models to chain (amp.nam cab.wav ...) or --dag GRAPH.yaml")
    if args.sample_rate is not None and args.sample_rate <= 0:
        raise CompositionError(f"--sample-rate must be a positive number of Hz, got {args.sample_rate}")
    output = Path(args.output)
    if output.suffix.lower() != ".nam":
        raise CompositionError(f"-o {output}: the output is a .nam file; name it e.g. {output.with_suffix('.nam')}")
    if output.is_dir():
        raise CompositionError(f"-o {output} is a folder; give a file name, e.g. {output / 'rig.nam'}")
    inputs = [Path(args.dag)] if args.dag else [Path(m) for m in args.models]
    if any(p.exists() and output.exists() and p.resolve() == output.resolve() for p in inputs):
        raise CompositionError(f"-o {output} is one of the inputs: writing would overwrite it; write to another file")
    logging.getLogger("tinyverse.audio").setLevel(logging.INFO)  # say which IRs were resampled
    if args.dag:
        composed = load_graph(args.dag, sample_rate=args.sample_rate, strict_rate=args.strict_sample_rate)
        default_name = Path(args.dag).stem
    else:
        composed = combine(args.models, sample_rate=args.sample_rate, strict_rate=args.strict_sample_rate)
        default_name = " + ".join(Path(m).stem for m in args.models)
    model = composed.model
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        save_nam(model, output, {"name": args.name or default_name}, composed.sample_rate)
    except NamFormatError as e:
        raise CompositionError(str(e)) from None
    except OSError as e:
        raise CompositionError(f"-o {output}: cannot write: {e.strerror or e}") from None
    cost = model.cost()
    arch = model.nam_architecture
    print(f"wrote {output}: {arch} of {', '.join(_stage_names(model))} at {composed.sample_rate:,} Hz")
    print(f"  receptive field {cost.receptive_field:,} samples, latency {cost.latency_samples} samples, "
          f"{cost.macs_per_sample:,} MACs/sample, {cost.weights:,} weights")
    for note in composed.notes:
        print(f"  note: {note}")
    if arch == "Sequential":
        print("  NAM Core's Sequential format: plugins with a Core that reads Sequential load it "
              "(older Core and most pedals do not)")
    else:
        print("  tinyverse's DAG extension of .nam (docs/composition.md): NAM Core cannot load it; "
              "modelmaker render plays it")
    return 0
