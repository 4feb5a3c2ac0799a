"""``modelmaker devices [--json]``: the device profiles in the DEVICES registry (built-in, misc/, extensions)."""
from __future__ import annotations

import argparse
import json

from modelmaker.commands import print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("devices", help="list device profiles (name, kind, flash, RAM, source)")
    p.add_argument("--json", action="store_true", help="print the profiles as JSON")
    p.set_defaults(func=main)


def _kb(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n // 1024:,} KB" if n < 1024 * 1024 or n % (1024 * 1024) else f"{n // (1024 * 1024):,} MB"


def _latency(p) -> str:
    """The cost model in a word: its clock (or throughput), and the budget if the profile sets one."""
    lat = p.latency
    if lat is None:
        return "-"
    what = f"{lat.clock_hz / 1e6:g} MHz" if lat.clock_hz else "MAC/s"
    return what + (f", budget {lat.budget_ms:g} ms" if lat.budget_ms is not None else "")


def main(args: argparse.Namespace) -> int:
    from tinyverse.devices import DEVICES

    profiles = [DEVICES.get(name) for name in DEVICES.names()]
    if args.json:
        print(json.dumps([p.model_dump() for p in profiles], indent=2, default=str))
        return 0
    rows = [[p.name, p.kind, _kb(p.flash_bytes), _kb(p.ram_bytes),
             "-" if p.max_macs_per_inference is None else f"{p.max_macs_per_inference:,}", _latency(p), p.source,
             p.description] for p in profiles]
    print_table(["device", "kind", "flash", "RAM", "max MACs", "latency model", "source", "description"], rows)
    print(f"\n{len(rows)} device profiles; use one as common.target_device or `modelmaker check MODEL --device NAME`")
    return 0
