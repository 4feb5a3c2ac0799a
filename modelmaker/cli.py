"""The ``modelmaker`` command line."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

# Lightning, TensorFlow and torch.onnx speak a lot at import; a run's console should show the run.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors caused by input: printed as one line with exit code 2, never as a traceback."""
    from modelmaker.config import ConfigError
    from modelmaker.run_folder import RunFolderError
    from tinyverse.data import DatasetError
    from tinyverse.export import ExportError
    from tinyverse.layers import SpecError
    from tinyverse.registry import RegistryError

    return (ConfigError, RunFolderError, DatasetError, SpecError, RegistryError, ExportError)


def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.replace("x", ",").split(",") if d.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints like 1,512, got {text!r}") from None
    if not dims or any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"expected positive ints like 1,512, got {text!r}")
    return dims


def cmd_run(args: argparse.Namespace) -> int:
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


def cmd_models(args: argparse.Namespace) -> int:
    from tinyverse.models import create_model, list_models, model_arguments
    from tinyverse.registry import MODEL_REGISTRY

    names = list_models(args.include, args.exclude, task=args.task)
    rows = []
    for name in names:
        entry = MODEL_REGISTRY.entry(name)
        kwargs = {}
        accepted = model_arguments(name)
        if args.input_shape and "input_shape" in accepted:
            kwargs["input_shape"] = args.input_shape
        if args.num_classes and "num_classes" in accepted:
            kwargs["num_classes"] = args.num_classes
        try:
            model = create_model(name, **kwargs)
        except Exception as err:  # a model that cannot take this input shape is listed, not fatal
            rows.append([name, entry.metadata.get("task", "-"), "-", "-", f"error: {err}", entry.source])
            continue
        spec = getattr(model, "spec", None)
        params = sum(p.numel() for p in model.parameters())
        macs = f"{spec.macs:,}" if spec is not None else "-"
        rows.append([name, entry.metadata.get("task", "-"), f"{params:,}", macs, "", entry.source])
    header = ["model", "task", "params", "MACs", "note", "source"]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    shape = "x".join(map(str, args.input_shape)) if args.input_shape else "each model's default"
    print(f"\n{len(rows)} models; MACs per inference for input {shape}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelmaker", description="TinyML model zoo and YAML-driven pipeline")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run a config end to end (data → training → export → report)")
    p.add_argument("config", help="path to a YAML config")
    p.add_argument("--resume", metavar="RUN_FOLDER", help="continue training from RUN_FOLDER/checkpoints/last.ckpt")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("models", help="list the model zoo with params and MACs")
    p.add_argument("--task", help="only models of this task (e.g. classification)")
    p.add_argument("--include", help="wildcard, e.g. 'CLS_*'")
    p.add_argument("--exclude", help="wildcard to leave out")
    p.add_argument("--input-shape", type=_shape, help="channels,length (default: each model's default)")
    p.add_argument("--num-classes", type=int)
    p.set_defaults(func=cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    for noisy in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
                  "lightning.fabric"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("modelmaker: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if isinstance(err, _user_errors()):
            print(f"modelmaker: error: {err}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
