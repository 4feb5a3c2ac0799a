"""``modelmaker models [--task T] [--include W] [--exclude W] [--input-shape C,L] [--device D]``"""
from __future__ import annotations

import argparse

from modelmaker.commands import parse_shape, print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the model zoo with params and MACs (and device fit)")
    p.add_argument("--task", help="only models of this task (e.g. classification)")
    p.add_argument("--include", help="wildcard, e.g. 'CLS_*'")
    p.add_argument("--exclude", help="wildcard to leave out")
    p.add_argument("--input-shape", type=parse_shape, help="channels,length (default: each model's default)")
    p.add_argument("--num-classes", type=int)
    p.add_argument("--device", help="also check each model against this device profile (name or YAML): est. flash/RAM "
                   "and whether it fits")
    p.add_argument("--fits-only", action="store_true", help="with --device: list only the models that fit")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from tinyverse.models import create_model, list_models, model_arguments
    from tinyverse.registry import MODEL_REGISTRY

    names = list_models(args.include, args.exclude, task=args.task)
    rows = []
    for name in names:
        entry = MODEL_REGISTRY.entry(name)
        accepted = model_arguments(name)
        kwargs = {}
        if args.input_shape and "input_shape" in accepted:
            kwargs["input_shape"] = args.input_shape
        if args.num_classes and "num_classes" in accepted:
            kwargs["num_classes"] = args.num_classes
        try:
            model = create_model(name, **kwargs)
        except Exception as err:  # a model that cannot take this input shape is listed, not fatal
            if not args.fits_only:
                rows.append([name, entry.metadata.get("task", "-"), "-", "-", *(["-", "-"] if args.device else []),
                             "-", f"error: {err}", entry.source])
            continue
        spec = getattr(model, "spec", None)
        params = sum(p.numel() for p in model.parameters())
        fit = "-"
        est = []
        if args.device:
            est = ["-", "-"]
            if spec is not None:
                from tinyverse.devices import check_spec

                # the same estimate as tinyverse.compile.fitting_models: int8 weights + runtime, peak activations
                report = check_spec(spec, args.device)
                fit = "fits" if report.fits else f"no: {report.violations[0]}"
                est = [f"{report.totals['flash_bytes']:,}", f"{report.totals['ram_bytes']:,}"]
                if args.fits_only and not report.fits:
                    continue
            elif args.fits_only:
                continue
        rows.append([name, entry.metadata.get("task", "-"), f"{params:,}",
                     f"{spec.macs:,}" if spec is not None else "-", *est, fit, "", entry.source])
    header = ["model", "task", "params", "MACs", *(["est. flash (B)", "est. RAM (B)"] if args.device else []),
              f"fits {args.device}" if args.device else "device", "note", "source"]
    print_table(header, rows)
    shape = "x".join(map(str, args.input_shape)) if args.input_shape else "each model's default"
    print(f"\n{len(rows)} models; MACs per inference for input {shape}")
    return 0
