"""``modelmaker run config.yaml [--set KEY=VALUE ...] [--resume RUN_FOLDER]``"""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a config end to end (data → training → export → report)")
    p.add_argument("config", help="path to a YAML config")
    p.add_argument("--resume", metavar="RUN_FOLDER",
                   help="continue training from RUN_FOLDER/checkpoints/last.ckpt")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override a config value, validated like the file (repeatable; VALUE is YAML), e.g. "
                   "--set training.epochs=3 --set dataset.ucr_name=OSULeaf --set compilation.exporters=[onnx,tflite]")
    p.add_argument("--strict-extensions", action="store_true",
                   help="stop (exit 2) when an extension fails to import, instead of reporting and skipping it")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from modelmaker.config import parse_overrides
    from modelmaker.runner import run

    summary = run(args.config, resume=args.resume, overrides=parse_overrides(args.overrides),
                  strict_extensions=args.strict_extensions)
    test = summary.get("test", {})
    onnx = summary.get("onnx", {})
    line = f"run folder: {summary['run_dir']}"
    if "accuracy" in test:
        line += f" | test accuracy {test['accuracy']:.2%}"
    if onnx:
        line += f" | ONNX max |diff| {onnx['max_abs_diff']:.1e}"
    quant = summary.get("quantization") or {}
    if quant.get("int8_metric") is not None:
        value = quant["int8_metric"]
        shown = f"{value:.2%}" if quant.get("metric") == "accuracy" else f"{value:.4g}"
        line += f" | int8 {quant.get('metric')} {shown} ({quant.get('int8_artifact')})"
    device = summary.get("device")
    if device:
        line += f" | {'fits' if device.get('fits') else 'DOES NOT FIT'} {device.get('device')}"
    print(line)
    if device and not device.get("fits"):
        for v in device.get("violations", []):
            print(f"  - {v}")
    return 0
