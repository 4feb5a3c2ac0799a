"""The default classification recipe on the UCR/UEA sets the sktime wheel ships, against FCN (issue #15 item 5).

    python bench/bench_ucr.py                                   # every shipped classification set, seed 42
    python bench/bench_ucr.py --sets GunPoint BasicMotions JapaneseVowels
    python bench/bench_ucr.py --sets OSULeaf --set training.teacher="{model_name: TEACHER_FCN}"
    python bench/bench_ucr.py --search                          # also `modelmaker search` per set, where it exists

Each set is one full run of configs/timeseries_classification.yaml with only ``dataset.ucr_name`` changed (plus any
``--set``), through the same runner as ``./run.sh``: input fit, training, int8 export verified in TFLM, F28P55 check.
Per set it prints float and int8 (TFLM) test accuracy, parameters, estimated flash and RAM (and latency, where the
device profile has a cost model), the FCN reference (bench/fcn_reference.csv, Fawaz et al. 2019) and the gap; then the
mean gap over the sets that have a reference. JSON with the machine goes to ``bench/results/bench_ucr_<cpu tag>.json``
(merged by set and variant, so runs of a few sets at a time add up).
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from bench_results import cpu_tag, machine  # noqa: E402 - a sibling script, not a package

CONFIG = ROOT / "configs" / "timeseries_classification.yaml"
REFERENCE = ROOT / "bench" / "fcn_reference.csv"
RESULTS = ROOT / "bench" / "results"


def fcn_reference(path: Path = REFERENCE) -> dict[str, float | None]:
    with path.open(newline="") as f:
        rows = csv.DictReader(line for line in f if not line.startswith("#"))
        return {r["dataset"]: float(r["fcn_accuracy"]) if r["fcn_accuracy"] else None for r in rows}


def shipped_sets() -> list[str]:
    from tinyverse.timeseries.data import UCRDataset

    return UCRDataset.available()


def run_set(name: str, seed: int, overrides: dict, projects: Path, config: Path) -> dict:
    from modelmaker.runner import run

    sets = {"dataset": {"ucr_name": name}, "common": {"projects_path": str(projects), "run_name": f"{name}-{seed}",
                                                       "seed": seed, "verbose": False}}
    for section, values in overrides.items():
        sets.setdefault(section, {}).update(values)
    t0 = time.time()
    summary = run(config, overrides=sets)
    wall = time.time() - t0
    device = summary.get("device") or {}
    totals = device.get("totals") or {}
    quant = summary.get("quantization") or {}
    row = {"set": name, "seed": seed, "model": summary["model"]["name"], "params": summary["model"]["params"],
           "macs": summary["model"].get("macs"), "input": summary["dataset"]["input_shape"],
           "input_fit": (summary.get("input") or {}).get("description"),
           "float_acc": summary["test"]["accuracy"], "int8_acc": quant.get("int8_metric"),
           "int8_artifact": quant.get("int8_artifact"), "flash_bytes": totals.get("flash_bytes"),
           "ram_bytes": totals.get("ram_bytes"), "latency_ms": totals.get("latency_ms"),
           "fits": device.get("fits"), "device": device.get("device"),
           "verification": (summary.get("verification") or {}).get("status"), "wall_s": round(wall, 1),
           "epochs_run": (summary.get("training") or {}).get("epochs_run")}
    if summary.get("distillation"):
        row["distillation"] = {r["role"]: r.get("test_accuracy") for r in summary["distillation"]["rows"]}
    return row


def search_set(name: str, seed: int, projects: Path, config: Path) -> dict | None:
    """``modelmaker search`` on the set with its defaults, when the command exists (another engineer builds it)."""
    if importlib.util.find_spec("modelmaker.commands.search") is None:
        return None
    import subprocess

    cmd = [sys.executable, "-m", "modelmaker.cli", "search", str(config), "--device", "F28P55",
           "--set", f"dataset.ucr_name={name}", "--set", f"common.projects_path={projects}",
           "--set", f"common.seed={seed}"]
    t0 = time.time()
    done = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(projects.glob("**/summary.json"), key=lambda p: p.stat().st_mtime)
    if done.returncode != 0 or not found:
        return {"set": name, "seed": seed, "error": (done.stderr or done.stdout).strip().splitlines()[-1:]}
    summary = json.loads(found[-1].read_text())
    quant = summary.get("quantization") or {}
    return {"set": name, "seed": seed, "model": summary["model"]["name"], "params": summary["model"]["params"],
            "float_acc": summary["test"]["accuracy"], "int8_acc": quant.get("int8_metric"),
            "wall_s": round(time.time() - t0, 1)}


def pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def table(rows: list[dict], refs: dict[str, float | None]) -> tuple[str, dict]:
    header = ["set", "model", "input", "float %", "int8 TFLM %", "FCN %", "gap (int8-FCN)", "params", "flash B",
              "RAM B", "latency ms", "fits"]
    lines = [header]
    gaps, drops = [], []
    for r in rows:
        ref = refs.get(r["set"])
        gap = None if ref is None or r["int8_acc"] is None else 100 * r["int8_acc"] - ref
        if gap is not None:
            gaps.append(gap)
        if r["int8_acc"] is not None:
            drops.append(100 * (r["float_acc"] - r["int8_acc"]))
        lines.append([r["set"], r["model"], "x".join(map(str, r["input"])), pct(r["float_acc"]), pct(r["int8_acc"]),
                      "-" if ref is None else f"{ref:.1f}", "-" if gap is None else f"{gap:+.1f}",
                      f"{r['params']:,}", f"{r['flash_bytes']:,}" if r["flash_bytes"] else "-",
                      f"{r['ram_bytes']:,}" if r["ram_bytes"] else "-",
                      f"{r['latency_ms']:.2f}" if r.get("latency_ms") is not None else "-",
                      "yes" if r["fits"] else "no"])
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(header))]
    text = "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in lines)
    with_ref = [r["set"] for r in rows if refs.get(r["set"]) is not None and r["int8_acc"] is not None]
    stats = {"mean_gap": statistics.mean(gaps) if gaps else None, "sets_with_reference": with_ref,
             "max_int8_drop": max(drops) if drops else None,
             "without_reference": [r["set"] for r in rows if refs.get(r["set"]) is None]}
    if gaps:
        text += (f"\n\nmean gap int8 TFLM - FCN over {len(gaps)} set(s) with a published FCN figure "
                 f"({', '.join(with_ref)}): {stats['mean_gap']:+.2f} points")
    if stats["without_reference"]:
        text += f"\nno FCN reference: {', '.join(stats['without_reference'])}"
    if drops:
        text += f"\nlargest float -> int8 drop: {stats['max_int8_drop']:.2f} points"
    return text, stats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", nargs="+", help="default: every classification set the installed wheels ship")
    p.add_argument("--seeds", nargs="+", type=int, default=[42])
    p.add_argument("--config", type=Path, default=CONFIG)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="config override for every run, as `modelmaker run --set`")
    p.add_argument("--variant", default="default", help="name the results are filed under (e.g. 'distilled')")
    p.add_argument("--search", action="store_true", help="also run `modelmaker search` per set (if it exists)")
    p.add_argument("--out", type=Path)
    args = p.parse_args()

    from modelmaker.config import parse_overrides

    logging.basicConfig(level=logging.WARNING)
    overrides = parse_overrides(args.overrides)
    refs = fcn_reference()
    sets = args.sets or shipped_sets()
    rows, searched = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in sets:
            for seed in args.seeds:
                row = run_set(name, seed, overrides, Path(tmp) / "runs", args.config)
                print(json.dumps(row), flush=True)
                rows.append(row)
                if args.search:
                    found = search_set(name, seed, Path(tmp) / "search" / f"{name}-{seed}", args.config)
                    if found is None:
                        print("modelmaker search is not available here: skipped", flush=True)
                    else:
                        searched.append(found)
                        print(json.dumps(found), flush=True)
    text, stats = table(rows, refs)
    print("\n" + text)

    m = machine()
    out = args.out or RESULTS / f"bench_ucr_{cpu_tag(m)}.json"
    old = json.loads(out.read_text()) if out.is_file() else {}
    variants = old.get("variants", {})
    keep = [r for r in variants.get(args.variant, {}).get("rows", [])
            if (r["set"], r["seed"]) not in {(n["set"], n["seed"]) for n in rows}]
    merged = sorted(keep + rows, key=lambda r: (r["set"].lower(), r["seed"]))
    _, merged_stats = table(merged, refs)
    variants[args.variant] = {"config": str(args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT)
                                            else args.config),
                              "overrides": overrides, "rows": merged, "stats": merged_stats,
                              **({"search": searched} if searched else {})}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": m, "reference": str(REFERENCE.relative_to(ROOT)), "variants": variants},
                              indent=2) + "\n")
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
