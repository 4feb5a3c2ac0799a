"""``modelmaker run config.yaml [--resume RUN_FOLDER]``"""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a config end to end (data → training → export → report)")
    p.add_argument("config", help="path to a YAML config")
    p.add_argument("--resume", metavar="RUN_FOLDER",
                   help="continue training from RUN_FOLDER/checkpoints/last.ckpt")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from modelmaker.runner import run

    summary = run(args.config, resume=args.resume)
    test = summary.get("test", {})
    onnx = summary.get("onnx", {})
    line = f"run folder: {summary['run_dir']}"
    if "accuracy" in test:
        line += f" | test accuracy {test['accuracy']:.2%}"
    if onnx:
        line += f" | ONNX max |diff| {onnx['max_abs_diff']:.1e}"
    print(line)
    return 0
