"""``modelmaker check <model_name> --device D [--input-shape C,L] [--num-classes K] [--json]``

Checks a zoo model's spec against a device profile without data or training: the per-layer table (op class, where
it runs and why), totals against the budgets, then "fits" or "does not fit" with one line per violation.
Exit code 0 if it fits, 1 if not (2 for a bad model or device name).
"""
from __future__ import annotations

import argparse
import json
import sys

from modelmaker.commands import parse_shape, print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="check a zoo model against a device profile (no data, no training)")
    p.add_argument("model", help="zoo model name (see `modelmaker models`)")
    p.add_argument("--device", required=True, help="device profile name (see `modelmaker devices`) or a YAML file")
    p.add_argument("--input-shape", type=parse_shape, help="channels,length (default: the model's default)")
    p.add_argument("--num-classes", type=int)
    p.add_argument("--json", action="store_true", help="print the device report as JSON")
    p.set_defaults(func=main)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:,}"


def main(args: argparse.Namespace) -> int:
    from tinyverse.devices import check_spec
    from tinyverse.layers import SpecError
    from tinyverse.models import get_model_spec, model_arguments
    from tinyverse.registry import MODEL_REGISTRY

    MODEL_REGISTRY.get(args.model)  # unknown name: RegistryError with did-you-mean (exit 2)
    accepted = model_arguments(args.model)
    kwargs = {}
    if args.input_shape:
        kwargs["input_shape"] = args.input_shape
    if args.num_classes:
        if "num_classes" not in accepted:
            print(f"modelmaker: error: {args.model} takes no --num-classes", file=sys.stderr)
            return 2
        kwargs["num_classes"] = args.num_classes
    if MODEL_REGISTRY.entry(args.model).metadata.get("modality") == "audio":
        # Audio models (NAM modules) are plain nn.Modules: checked per sample (MAC/sample, sample rate, op rules).
        from tinyverse.audio.devices import check_audio_model
        from tinyverse.models import create_model

        report = check_audio_model(create_model(args.model), args.device, model_name=args.model)
        shape = "1 sample/step, streaming"
    else:
        try:
            spec = get_model_spec(args.model, **kwargs)
        except SpecError:
            raise
        except (TypeError, ValueError) as err:  # e.g. an --input-shape the zoo function cannot take
            given = ", ".join(f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in kwargs.items())
            raise SpecError(f"{args.model}({given}) cannot be built: {' '.join(str(err).split())}") from None
        report = check_spec(spec, args.device)
        shape = "x".join(map(str, next(iter(spec.inputs.values()))))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0 if report.fits else 1
    print(f"{args.model} (input {shape}) on {report.device} ({report.kind})\n")
    rows = [[lc.layer, lc.type, lc.op_class, lc.placement, f"{lc.params:,}", f"{lc.macs:,}",
             "; ".join(lc.reasons) if lc.reasons else "ok"] for lc in report.layers]
    print_table(["layer", "type", "op class", "runs on", "params", "MACs", "why / fix"], rows)
    print()
    budget_rows = [[key, _fmt(report.totals.get(key)), _fmt(report.budgets.get(key))]
                   for key in ("flash_bytes", "ram_bytes", "macs")]
    print_table(["budget", "estimate", "limit"], budget_rows)
    for note in report.notes:
        print(f"note: {note}")
    print()
    if report.fits:
        print(f"fits {report.device}")
        return 0
    print(f"does not fit {report.device}: {len(report.violations)} violation(s)")
    for v in report.violations:
        print(f"  - {v}")
    return 1
