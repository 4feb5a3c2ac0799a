"""The ``modelmaker`` command line."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

from modelmaker.commands import add_all

# Lightning, TensorFlow and torch.onnx speak a lot at import; a run's console should show the run.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors caused by input: printed as one line with exit code 2, never as a traceback."""
    from modelmaker.compilation import DeviceCheckError, ModelFileError, VerificationError
    from modelmaker.config import ConfigError
    from modelmaker.run_folder import RunFolderError
    from modelmaker.search.errors import SearchError
    from tinyverse.audio.composition import CompositionError
    from tinyverse.timeseries.data import DatasetError
    from tinyverse.devices import ProfileError
    from tinyverse.export import ExportError
    from tinyverse.extensions import ExtensionError
    from tinyverse.layers import SpecError
    from tinyverse.registry import RegistryError
    from tinyverse.timeseries.transforms import TransformError

    return (ConfigError, RunFolderError, DatasetError, SpecError, RegistryError, ExportError, ExtensionError,
            DeviceCheckError, ModelFileError, ProfileError, TransformError, VerificationError, CompositionError,
            SearchError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelmaker", description="TinyML model zoo and YAML-driven pipeline")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    add_all(sub)
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
    except KeyboardInterrupt as err:  # a run says where it stopped and how to resume (RunInterrupted)
        print(f"modelmaker: {str(err) or 'interrupted'}", file=sys.stderr)
        return 130
    except Exception as err:
        if isinstance(err, _user_errors()):
            print(f"modelmaker: error: {err}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
