"""``modelmaker extensions [PATH ...] [--config CFG] [--registry R] [--only-extensions] [--strict]``

Loads the extensions a run would load (entry points, ``~/.tinyverse/extensions``, ``TINYVERSE_EXTENSIONS``, the
given paths and the config's ``extensions:`` list), then lists every registered entry of every registry with
its source (built-in, extension file, entry point) and location, and the extensions that failed and why.
"""
from __future__ import annotations

import argparse

from modelmaker.commands import print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("extensions", help="list every registered model, dataset, task, transform, device and "
                                          "modality with where it came from, and extensions that failed to load")
    p.add_argument("paths", nargs="*", help="extra extension files or folders to load first")
    p.add_argument("--config", help="also load this config's extensions: list")
    p.add_argument("--registry", action="append", help="only this registry (models, datasets, tasks, transforms, "
                                                       "devices, layers, exporters, ai_modules); repeatable")
    p.add_argument("--only-extensions", action="store_true", help="leave out built-in entries")
    p.add_argument("--strict", action="store_true", help="exit 2 on the first extension that fails to load")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import modelmaker.ai_modules  # noqa: F401  (binds the ai_modules registry)
    from tinyverse import extensions

    extensions.load_defaults(strict=args.strict)
    extensions.load_extensions(args.paths, strict=args.strict)
    if args.config:
        from modelmaker.config import ConfigError, load_config

        try:  # only the extensions list matters here; the rest may name things that failed to load
            load_config(args.config, extension_loader=lambda paths: extensions.load_extensions(paths,
                                                                                               strict=args.strict))
        except ConfigError as err:
            print(f"note: {err}")
    regs = extensions.registries()
    wanted = args.registry or list(regs)
    unknown = [w for w in wanted if w not in regs]
    if unknown:
        from tinyverse.registry import RegistryError

        raise RegistryError(f"unknown registry {unknown[0]!r}; choose from {', '.join(regs)}")
    rows = []
    for label in wanted:
        for entry in regs[label].entries():
            if args.only_extensions and entry.source == "builtin":
                continue
            rows.append([label, entry.name, entry.source, entry.location])
    print_table(["registry", "name", "source", "location"], rows)
    loaded = extensions.loaded_extensions()
    print(f"\n{len(rows)} entries; {len(loaded)} extension{'s' * (len(loaded) != 1)} loaded")
    for ext in loaded:
        print(f"  loaded {ext.path}: {', '.join(ext.registered) or 'nothing registered'}")
    failed = extensions.failed_extensions()
    if failed:
        print(f"\n{len(failed)} extension{'s' * (len(failed) != 1)} failed to load (skipped):")
        for f in failed:
            print(f"  FAILED {f.line()}")
    return 0
