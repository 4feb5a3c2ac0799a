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
    p.add_argument("--device", help="also check each model against this device profile (name or YAML): est. flash/RAM, "
                   "est. latency (ms at the profile's clock; audio: per block) and whether it fits")
    p.add_argument("--fits-only", action="store_true", help="with --device: list only the models that fit")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from tinyverse.devices import check_model, model_cost
    from tinyverse.devices.latency import fmt_ms
    from tinyverse.models import create_model, list_models, model_arguments
    from tinyverse.models.roles import TEACHER
    from tinyverse.registry import MODEL_REGISTRY

    names = list_models(args.include, args.exclude, task=args.task)
    rows = []
    streaming = 0
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
                rows.append([name, entry.metadata.get("task", "-"), "-", "-", *(["-", "-", "-"] if args.device else []),
                             "-", f"error: {err}", entry.source])
            continue
        spec = getattr(model, "spec", None)
        params = sum(p.numel() for p in model.parameters())
        # MACs per inference for a spec; per output sample for a streaming model that reports its own cost (NAM)
        cost = None if spec is not None else model_cost(model)
        per_sample = cost is not None and cost.get("macs_per_sample") is not None
        macs = f"{spec.macs:,}" if spec is not None else f"{cost['macs_per_sample']:,}/sample" if per_sample else \
            f"{cost['macs_per_inference']:,}" if cost and cost.get("macs_per_inference") is not None else "-"
        streaming += per_sample
        fit = "-"
        est = []
        teacher = entry.metadata.get("role") == TEACHER  # a float training aid: never judged as if it could ship
        if teacher:
            fit = "teacher (never ships)"
            if args.fits_only:
                continue
        if args.device:
            est = ["-", "-", "-"]
            if not teacher and (spec is not None or cost is not None):
                # the check a run does before training (tinyverse.devices.check_model): for a spec int8 weights +
                # runtime and peak activations; for a streaming model its weights and streaming state
                report = check_model(spec if spec is not None else model, args.device, model_name=name)
                fit = ("fits" + (f" ({report.picked})" if report.picked else "")) if report.fits else \
                    f"no: {report.violations[0]}"
                est = [f"{report.totals['flash_bytes']:,}", f"{report.totals['ram_bytes']:,}",
                       fmt_ms(report.totals.get("latency_ms"))]
                if per_sample and report.totals.get("macs_per_sample"):  # the check's count: + knob conditioning
                    macs = f"{report.totals['macs_per_sample']:,}/sample"
                if args.fits_only and not report.fits:
                    continue
            elif args.fits_only:
                continue
        note = f"rf {cost['receptive_field']:,}" if per_sample else ""  # a streaming model's receptive field (samples)
        rows.append([name, entry.metadata.get("task", "-"), f"{params:,}", macs, *est, fit, note, entry.source])
    header = ["model", "task", "params", "MACs", *(["est. flash (B)", "est. RAM (B)", "est. ms"] if args.device else []),
              f"fits {args.device}" if args.device else "device", "note", "source"]
    print_table(header, rows)
    shape = "x".join(map(str, args.input_shape)) if args.input_shape else "each model's default"
    print(f"\n{len(rows)} models; MACs per inference for input {shape}"
          + ("; streaming (audio) models: MACs per output sample" if streaming else ""))
    if args.device:
        print(f"est. ms: latency per inference from the cost model of {args.device} (streaming models: per processing "
              f"block); `modelmaker check MODEL --device {args.device}` shows it per layer with its sources")
    return 0
