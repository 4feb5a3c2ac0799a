"""``modelmaker check <model_name | file.nam> --device D [--input-shape C,L] [--num-classes K] [--sample-rate HZ]
[--json]``

Checks a zoo model (or a .nam file) against a device profile without data or training
(``tinyverse.devices.check_model``, the check a run does): the per-layer table (op class, where it runs and why; a
streaming audio model per op, costed per sample), totals against the budgets, then "fits" or "does not fit" with one
line per violation. A model of submodels (NAM_A2, an A2 .nam: a SlimmableContainer) lists each submodel's fit and
is judged by the largest one the device can run (the size-knob range that selects it is printed).
Exit code 0 if it fits, 1 if not (2 for a bad model, file or device name).
"""
from __future__ import annotations

import argparse
import json
import sys

from modelmaker.commands import parse_shape, print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="check a zoo model against a device profile (no data, no training)")
    p.add_argument("model", help="zoo model name (see `modelmaker models`) or a .nam file")
    p.add_argument("--device", required=True, help="device profile name (see `modelmaker devices`) or a YAML file")
    p.add_argument("--input-shape", type=parse_shape, help="channels,length (default: the model's default)")
    p.add_argument("--num-classes", type=int)
    p.add_argument("--sample-rate", type=int, default=None,
                   help="audio models: the rate the device must run them at (default: a .nam file's own, else 48000)")
    p.add_argument("--json", action="store_true", help="print the device report as JSON")
    p.set_defaults(func=main)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:,}"


def _nam_file(args: argparse.Namespace):
    """The model of a .nam file; its sample rate unless --sample-rate says otherwise."""
    from modelmaker.compilation import ModelFileError
    from tinyverse.audio.nam import NamFormatError, load_nam, model_from_nam

    if args.input_shape or args.num_classes:
        raise ModelFileError(f"{args.model}: a .nam model streams one sample at a time (no --input-shape / "
                             "--num-classes)")
    try:
        nam = load_nam(args.model)
        model = model_from_nam(nam)
    except NamFormatError as err:
        raise ModelFileError(str(err)) from None
    if args.sample_rate is None:
        args.sample_rate = int(nam.sample_rate) if nam.sample_rate else 48_000
    return model


def main(args: argparse.Namespace) -> int:
    from tinyverse.layers import SpecError
    from tinyverse.models import create_model, model_arguments
    from tinyverse.registry import MODEL_REGISTRY

    if args.model.lower().endswith(".nam"):
        return _report(args, _nam_file(args))
    if args.sample_rate is None:
        args.sample_rate = 48_000
    MODEL_REGISTRY.get(args.model)  # unknown name: RegistryError with did-you-mean (exit 2)
    accepted = model_arguments(args.model)
    kwargs = {}
    for flag, key, value in (("--input-shape", "input_shape", args.input_shape),
                             ("--num-classes", "num_classes", args.num_classes)):
        if value:
            if key not in accepted:
                print(f"modelmaker: error: {args.model} takes no {flag}"
                      + (" (it streams one sample at a time)" if key == "input_shape" else ""), file=sys.stderr)
                return 2
            kwargs[key] = value
    try:
        model = create_model(args.model, **kwargs)
    except SpecError:
        raise
    except (TypeError, ValueError) as err:  # e.g. an --input-shape the zoo function cannot take
        given = ", ".join(f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in kwargs.items())
        raise SpecError(f"{args.model}({given}) cannot be built: {' '.join(str(err).split())}") from None
    return _report(args, model)


def _report(args: argparse.Namespace, model) -> int:
    from tinyverse.devices import check_model
    from tinyverse.devices.check import BUDGET_KEYS
    from tinyverse.devices.latency import fmt_ms
    from tinyverse.models.roles import never_ships

    # One check for every model: a spec layer by layer, a streaming (audio) model per sample at --sample-rate.
    report = check_model(model, args.device, sample_rate=args.sample_rate, model_name=args.model)
    teacher = never_ships(model)  # a float teacher: its table is shown, but it is never said to fit
    spec = getattr(model, "spec", None)
    shape = "x".join(map(str, next(iter(spec.inputs.values())))) if spec is not None else \
        f"1 sample/step, streaming at {args.sample_rate:,} Hz"
    if args.json:
        print(json.dumps({**report.to_dict(), **({"never_ships": teacher} if teacher else {})}, indent=2))
        return 0 if report.fits and not teacher else 1
    print(f"{args.model} (input {shape}) on {report.device} ({report.kind})\n")
    timed = any(lc.latency_ms is not None for lc in report.layers)
    rows = [[lc.layer, lc.type, lc.op_class, lc.placement, f"{lc.params:,}", f"{lc.macs:,}",
             *([fmt_ms(None if lc.latency_ms is None else 1e3 * lc.latency_ms)] if timed else []),
             "; ".join(lc.reasons) if lc.reasons else "ok"] for lc in report.layers]
    print_table(["layer", "type", "op class", "runs on", "params", "MACs", *(["est. µs"] if timed else []),
                 "why / fix"], rows)
    print()
    num = lambda key: fmt_ms if key == "latency_ms" else _fmt  # noqa: E731
    budget_rows = [[key, num(key)(report.totals.get(key)), num(key)(report.budgets.get(key))]
                   for key in BUDGET_KEYS if key in report.totals or key in report.budgets]
    print_table(["budget", "estimate", "limit"], budget_rows)
    if report.choices:  # a container: every submodel's fit; the tables above are the picked (or smallest) one's
        print()
        print_table(["submodel", "slim", "MACs/sample", "params", "fits"],
                    [[c["name"] + (" (picked)" if c["name"] == report.picked else ""),
                      f"{c['slim'][0]:g}-{c['slim'][1]:g}", _fmt(c["macs_per_sample"]), _fmt(c["params"]),
                      "yes" if c["fits"] else f"no: {c['violations'][0]}"] for c in report.choices])
    for note in report.notes:
        print(f"note: {note}")
    print()
    if teacher:
        print(f"{args.model} never ships: {teacher}")
        return 1
    if report.fits:
        print(f"fits {report.device}" + (f": runs submodel {report.picked}" if report.picked else ""))
        return 0
    print(f"does not fit {report.device}: {len(report.violations)} violation(s)")
    for v in report.violations:
        print(f"  - {v}")
    return 1
