"""``modelmaker combine amp.nam cab.wav [more...] -o rig.nam`` / ``modelmaker combine --dag graph.yaml -o rig.nam``

Composes models into one "full rig" .nam file (docs/composition.md): a chain becomes NAM Core's ``Sequential``
(.nam files, impulse-response WAVs, zoo model names and checkpoints in order); a graph file (YAML: nodes, fan-out,
``sum`` / ``mean`` / ``weighted`` fan-ins, ``output``) becomes a DAG — written as a plain ``Sequential`` when it is a
chain, so NAM Core loads it, otherwise in tinyverse's documented extension of the format. IRs at another sample rate
are resampled to the chain's (``--strict-sample-rate`` refuses them instead). Prints the whole chain's cost.

``--flatten MODEL`` writes one plain model instead, for pedals that cannot load containers: the zoo model MODEL
(e.g. ``NAM_WaveNet_feather``) trained on the chain's output for a standard-style input, with its ESR against the
chain printed; ``--flatten fold`` folds a WaveNet → IR chain exactly into one WaveNet (its post-stack head).

``--export DIR`` also writes what was written as streaming artifacts — one ONNX graph (float, int8) and one TFLite
graph (float, int8, int16x8) for the whole rig, and the int8 C array (``model_int8.h`` / ``.c``) — each rendered block
by block and judged against the rig (:func:`tinyverse.audio.model_export.export_model`); a FAIL row exits 2 after
the files and ``compile_report.md`` are written.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("combine", help="chain .nam models and cabinet IRs (or a graph of them) into one .nam file")
    p.add_argument("models", nargs="*",
                   help="stages in order: .nam files, impulse responses (.wav/.flac/.aiff), knob models (.pt), zoo "
                        "model names, .ckpt")
    p.add_argument("--dag", metavar="GRAPH.yaml", help="a graph file (nodes, fan-out, fan-in, output) instead of a chain")
    p.add_argument("-o", "--output", required=True, help="the .nam file to write")
    p.add_argument("--sample-rate", type=int, default=None,
                   help="the rig's sample rate (default: the NAM models', else the first IR's, else 48000)")
    p.add_argument("--strict-sample-rate", action="store_true",
                   help="refuse an impulse response at another sample rate instead of resampling it")
    p.add_argument("--name", help="metadata name of the rig (default: the stages' names joined by ' + ')")
    p.add_argument("--flatten", metavar="MODEL|fold",
                   help="write one plain model instead: a zoo model (e.g. NAM_WaveNet_feather) trained on the chain's "
                        "output, or 'fold' (exact: a WaveNet -> IR chain as one WaveNet with the IR as its head)")
    p.add_argument("--flatten-epochs", type=int, default=10, help="--flatten MODEL: training epochs (default 10)")
    p.add_argument("--flatten-seconds", type=float, default=40.0,
                   help="--flatten MODEL: seconds of standard-style input the chain renders (default 40)")
    p.add_argument("--export", metavar="DIR",
                   help="also write the streaming exports of what is written (ONNX, TFLite float/int8/int16x8, the "
                        "int8 C array) into DIR (new or empty), each verified block by block against it")
    p.set_defaults(func=main)


def _stage_names(model) -> list[str]:
    def name(d: dict) -> str:
        return d.get("knob_architecture", d.get("architecture", next(iter(d))))

    d = model.describe()
    if "models" in d:
        return [name(m) for m in d["models"]]
    return [f"{n}: {name(v)}" for n, v in d["nodes"].items()]


def main(args: argparse.Namespace) -> int:
    from tinyverse.audio.composition import CompositionError, combine, load_graph
    from tinyverse.audio.nam import NamFormatError, save_nam

    if args.dag and args.models:
        raise CompositionError("give either models to chain or --dag GRAPH.yaml, not both")
    if not args.dag and not args.models:
        raise CompositionError("nothing to combine: give models to chain (amp.nam cab.wav ...) or --dag GRAPH.yaml")
    if args.flatten and (args.flatten_epochs < 1 or args.flatten_seconds < 15):
        raise CompositionError("--flatten-epochs must be >= 1 and --flatten-seconds >= 15 (a standard-style input "
                               "needs room for its validation blocks and a training region)")
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
    export_dir = Path(args.export) if args.export else None
    if export_dir is not None and (export_dir.is_file() or (export_dir.is_dir() and any(export_dir.iterdir()))):
        what = "a file" if export_dir.is_file() else "a folder that is not empty"
        raise CompositionError(f"--export {export_dir} is {what}: exports never overwrite; give a new folder")
    logging.getLogger("tinyverse.audio").setLevel(logging.INFO)  # say which IRs were resampled
    if args.dag:
        composed = load_graph(args.dag, sample_rate=args.sample_rate, strict_rate=args.strict_sample_rate)
        default_name = Path(args.dag).stem
    else:
        composed = combine(args.models, sample_rate=args.sample_rate, strict_rate=args.strict_sample_rate)
        default_name = " + ".join(Path(m).stem for m in args.models)
    model = composed.model
    if args.flatten:
        model = _flatten(args, composed, output, args.name or default_name)
        return _export(model, composed.sample_rate, export_dir) if export_dir is not None else 0
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
    if model.knobs is not None:
        knobs = ", ".join(f"{n} {k.min:g}..{k.max:g}" if k.type == "continuous" else f"{n} on/off"
                          for n, k in model.knobs.knobs.items())
        print(f"  knobs: {knobs}; set them when playing: modelmaker render {output} in.wav out.wav --param NAME=VALUE")
        print("  a knob stage is tinyverse's KnobModel extension of .nam (docs/composition.md): NAM Core cannot load "
              "the file; modelmaker render plays it")
    elif arch == "Sequential":
        print("  NAM Core's Sequential format: plugins with a Core that reads Sequential load it "
              "(older Core and most pedals do not)")
    else:
        print("  tinyverse's DAG extension of .nam (docs/composition.md): NAM Core cannot load it; "
              "modelmaker render plays it")
    return _export(model, composed.sample_rate, export_dir) if export_dir is not None else 0


def _export(model, sample_rate: int, export_dir: Path) -> int:
    """The streaming exports of ``model``, each verified; 2 when a row failed (the files and report are written)."""
    from tinyverse.audio.model_export import export_model
    from tinyverse.verification import failed_rows

    def on_row(row: dict) -> None:
        status = (row.get("verdict") or {}).get("status", "-")
        note = row["error"] if "error" in row else f"ESR vs the model {row['esr_vs_torch']:.2e}"
        print(f"  {row['artifact']:<26} {status:<4}  {note}")

    print(f"exporting into {export_dir} (each artifact rendered block by block on standard-style input) ...")
    result = export_model(model, sample_rate, export_dir, on_row=on_row)
    for label, why in result["not_available"].items():
        print(f"  {label:<26} n/a   {why}")
    files = sorted(p.name for p in export_dir.iterdir() if p.is_file())
    print(f"wrote {export_dir}: {', '.join(files)}")
    failed = failed_rows(result["rows"])
    if failed:
        print(f"modelmaker: error: {len(failed)} export row(s) failed: {failed[0]} (see "
              f"{export_dir / 'compile_report.md'})", file=sys.stderr)
        return 2
    return 0


def _flatten(args: argparse.Namespace, composed, output: Path, name: str):
    """Write one plain model for ``composed`` (distilled into a zoo model, or folded exactly) and return it."""
    from tinyverse.audio import esr_verdict
    from tinyverse.audio.composition import CompositionError
    from tinyverse.audio.flatten import FlattenError, distil, fold, fold_ir
    from tinyverse.audio.nam import save_nam
    from tinyverse.models import create_model
    from tinyverse.registry import RegistryError

    chain, rate = composed.model, composed.sample_rate
    try:
        folded = fold_ir(chain)
        fold_note = (f"exact alternative: --flatten fold (one 0.7.0 WaveNet with the IR as its post-stack head, "
                     f"{folded.cost().macs_per_sample:,} MACs/sample; NAM Core >= 0.4.1 loads it, 0.5-era pedal "
                     "engines do not)")
    except FlattenError as e:
        folded, fold_note = None, str(e)
    if args.flatten == "fold":
        if folded is None:
            raise CompositionError(f"--flatten fold: {fold_note}")
        result = fold(chain, rate)
        save_nam(result.model, output, {"name": name}, rate)
        cost = result.model.cost()
        print(f"wrote {output}: {name} folded into one WaveNet (version {result.model.nam_version()}): ESR "
              f"{result.esr:.1e} against the chain, the same samples after the first {result.info['settle_samples']:,} "
              "of a stream (until then the folded head hears the amp's answer to silence)")
        print(f"  receptive field {cost.receptive_field:,} samples, {cost.macs_per_sample:,} MACs/sample, "
              f"{cost.weights:,} weights")
        return result.model
    try:
        student = create_model(args.flatten)
    except RegistryError as e:
        raise CompositionError(f"--flatten: {str(e).splitlines()[0]}") from None
    except (TypeError, ValueError) as e:
        raise CompositionError(f"--flatten {args.flatten}: cannot be built: {e}") from None
    try:
        result = distil(chain, student, sample_rate=rate, seconds=args.flatten_seconds, epochs=args.flatten_epochs)
    except FlattenError as e:
        raise CompositionError(f"--flatten {args.flatten}: {e}") from None
    save_nam(result.model, output, {"name": f"{name} (flattened)", "validation_esr": result.esr}, rate)
    cost = result.model.cost()
    info = result.info
    print(f"wrote {output}: {name} distilled into {args.flatten} (version {result.model.nam_version()})")
    print(f"  ESR against the chain: {result.esr:.4f} ({esr_verdict(result.esr)}) on the "
          f"{info['validation_seconds']} s validation block; {info['epochs']} epochs on "
          f"{info['train_seconds_of_audio']} s of the chain's output in {info['seconds']:.0f} s")
    print(f"  receptive field {cost.receptive_field:,} samples (the chain's: {chain.receptive_field:,}), "
          f"{cost.macs_per_sample:,} MACs/sample (the chain's: {chain.cost().macs_per_sample:,})")
    print(f"  {fold_note}")
    return result.model
