"""The default classification recipe on the UCR/UEA sets the sktime wheel ships, against FCN (issue #15 item 5).

    python bench/bench_ucr.py                                   # every shipped classification set, seed 42
    python bench/bench_ucr.py --sets GunPoint BasicMotions JapaneseVowels
    python bench/bench_ucr.py --sets OSULeaf --set training.teacher="{model_name: TEACHER_FCN}"
    python bench/bench_ucr.py --search                          # also `modelmaker search` per set, where it exists
    python bench/bench_ucr.py --best-fit F28P55 --variant best-fit --seeds 42 1   # the largest entry that fits

Each set is one full run of configs/timeseries_classification.yaml with only ``dataset.ucr_name`` changed (plus any
``--set``), through the same runner as ``./run.sh``: input fit, training, int8 export verified in TFLM, F28P55 check.
Per set it prints float and int8 (TFLM) test accuracy, parameters, estimated flash and RAM (and latency, where the
device profile has a cost model), the FCN reference (bench/fcn_reference.csv, Fawaz et al. 2019) and the gap; then the
mean gap over the sets that have a reference. JSON with the machine goes to ``bench/results/bench_ucr_<cpu tag>.json``
(merged by set and variant, so runs of a few sets at a time add up).

``--best-fit DEVICE`` applies one rule to every set instead of the config's model: the shippable classification zoo
entry with the most parameters that fits DEVICE at the input the run fits the set to (:func:`best_fit`).
With several seeds the mean gap is over the sets' means over their seeds; every row shows its float -> int8 drop.
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
# --best-fit's length policy: series stretched to >= 64 steps as by default, shrunk only beyond 1,024 (the default
# caps at 512 for its 4k-parameter model; the top of the ladder reads ACSF1 better at 1,024: docs/timeseries.md).
BEST_FIT_MAX_LENGTH = 1024
# The device check's RAM is an estimate: for CLS_150k_NPU at 1,024 steps it said 132,608 B and TFLM's arena took
# 138,912 B (+4.8 %), over F28P55's 136,192. --best-fit keeps this share of the RAM budget as headroom.
BEST_FIT_RAM_HEADROOM = 0.1


def fcn_reference(path: Path = REFERENCE) -> dict[str, float | None]:
    with path.open(newline="") as f:
        rows = csv.DictReader(line for line in f if not line.startswith("#"))
        return {r["dataset"]: float(r["fcn_accuracy"]) if r["fcn_accuracy"] else None for r in rows}


def shipped_sets() -> list[str]:
    from tinyverse.timeseries.data import UCRDataset

    return UCRDataset.available()


def best_fit(name: str, device: str, seed: int = 42, task: str = "classification") -> dict:
    """``--best-fit``'s rule, the same for every set: of the shippable zoo entries of ``task`` (teachers left out), the
    one with the most parameters that fits ``device`` (rules, flash, RAM with BEST_FIT_RAM_HEADROOM to spare, latency
    budget) at the set's input: its own
    length brought into [64, BEST_FIT_MAX_LENGTH] steps, channels padded as the entry and device need (as
    ``dataset.input_channels: auto`` does). Returns the entry's check and the input."""
    from tinyverse.devices.check import get_device
    from tinyverse.devices.fitting import check_entry, shippable_entries
    from tinyverse.models import model_arguments
    from tinyverse.timeseries.data import UCRDataset
    from tinyverse.timeseries.data.input_fit import auto_length, choose_input_fit

    data = UCRDataset(name, seed=seed).load()
    length = auto_length(data.length, max_length=BEST_FIT_MAX_LENGTH)
    ram = get_device(device).ram_bytes
    ram_limit = None if ram is None else (1 - BEST_FIT_RAM_HEADROOM) * ram
    found = []
    for entry in shippable_entries(task):
        if "input_shape" not in model_arguments(entry):
            continue

        def accepts(c: int, length: int, entry: str = entry) -> list[str]:
            fit = check_entry(entry, device, {"input_shape": [c, length], "num_classes": data.num_classes})
            return fit.violations or ([] if fit.fits else ["does not fit"])

        shape = choose_input_fit(data, "auto", length, accepts)
        fit = check_entry(entry, device, {"input_shape": [shape.channels, shape.length],
                                          "num_classes": data.num_classes})
        if fit.fits and (ram_limit is None or fit.ram_bytes is None or fit.ram_bytes <= ram_limit):
            found.append((fit.params or 0, entry, fit, [shape.channels, shape.length]))
    if not found:
        label = getattr(device, "name", device)
        raise SystemExit(f"--best-fit {label}: no {task} zoo entry fits {label} for {name}")
    _, entry, fit, shape = max(found)
    return {"model": entry, "params": fit.params, "input": shape, "flash_bytes": fit.flash_bytes,
            "ram_bytes": fit.ram_bytes, "latency_ms": fit.latency_ms}


def set_overrides(overrides: dict, args: argparse.Namespace, name: str) -> dict:
    """The config overrides of one set's runs: ``--set`` values, then what --best-fit / --teacher decide."""
    out = {k: dict(v) for k, v in overrides.items()}
    if args.best_fit:
        pick = best_fit(name, args.best_fit)
        print(f"{name}: --best-fit {args.best_fit} -> {pick['model']} ({pick['params']:,} params at "
              f"{'x'.join(map(str, pick['input']))})", flush=True)
        out.setdefault("training", {})["model_name"] = pick["model"]
        out.setdefault("dataset", {})["input_length"] = pick["input"][1]
        out.setdefault("common", {})["target_device"] = args.best_fit
    if args.teacher:
        out.setdefault("training", {})["teacher"] = {"model_name": args.teacher}
    return out


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
           "epochs_run": (summary.get("training") or {}).get("epochs_run"),
           # how many official training series trained (the rest validated) and which epoch was kept
           "train_series": summary["dataset"]["counts"]["train"], "val_series": summary["dataset"]["counts"]["val"],
           "final_checkpoint": (summary.get("training") or {}).get("final_checkpoint")}
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
    header = ["set", "seed", "model", "input", "float %", "int8 TFLM %", "int8 drop", "FCN %", "gap (int8-FCN)",
              "params", "flash B", "RAM B", "latency ms", "fits"]
    lines = [header]
    gaps, drops = [], []
    for r in rows:
        ref = refs.get(r["set"])
        gap = None if ref is None or r["int8_acc"] is None else 100 * r["int8_acc"] - ref
        if gap is not None:
            gaps.append(gap)
        drop = None if r["int8_acc"] is None else 100 * (r["float_acc"] - r["int8_acc"])
        if drop is not None:
            drops.append(drop)
        lines.append([r["set"], str(r["seed"]), r["model"], "x".join(map(str, r["input"])), pct(r["float_acc"]),
                      pct(r["int8_acc"]), "-" if drop is None else f"{drop:.2f}",
                      "-" if ref is None else f"{ref:.1f}", "-" if gap is None else f"{gap:+.1f}",
                      f"{r['params']:,}", f"{r['flash_bytes']:,}" if r["flash_bytes"] else "-",
                      f"{r['ram_bytes']:,}" if r["ram_bytes"] else "-",
                      f"{r['latency_ms']:.2f}" if r.get("latency_ms") is not None else "-",
                      "yes" if r["fits"] else "no"])
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(header))]
    text = "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in lines)
    per_set = set_means(rows, refs)
    with_ref = [n for n, m in per_set.items() if m["gap"] is not None]
    set_gaps = [per_set[n]["gap"] for n in with_ref]
    stats = {"mean_gap": statistics.mean(set_gaps) if set_gaps else None, "sets_with_reference": with_ref,
             "max_int8_drop": max(drops) if drops else None, "per_set": per_set,
             "without_reference": sorted({r["set"] for r in rows if refs.get(r["set"]) is None})}
    if len(rows) > len(per_set):
        text += "\n\nper set, mean over seeds:\n" + "\n".join(
            f"  {n}: float {m['float']:.2f}  int8 {m['int8']:.2f}  drop {m['drop']:.2f}  "
            f"gap {'-' if m['gap'] is None else format(m['gap'], '+.2f')}  ({m['seeds']} seed(s))"
            for n, m in per_set.items() if m["int8"] is not None)
    if set_gaps:
        text += (f"\n\nmean gap int8 TFLM - FCN over {len(set_gaps)} set(s) with a published FCN figure "
                 f"({', '.join(with_ref)}; each set's mean over its seeds): {stats['mean_gap']:+.2f} points")
    if stats["without_reference"]:
        text += f"\nno FCN reference: {', '.join(stats['without_reference'])}"
    if drops:
        text += f"\nlargest float -> int8 drop: {stats['max_int8_drop']:.2f} points"
    return text, stats


def set_means(rows: list[dict], refs: dict[str, float | None]) -> dict[str, dict]:
    """Per set, the mean over its seeds (%): float, int8 TFLM, float -> int8 drop, gap to FCN (None without one)."""
    out: dict[str, dict] = {}
    for name in dict.fromkeys(r["set"] for r in rows):
        mine = [r for r in rows if r["set"] == name and r["int8_acc"] is not None]
        if not mine:
            out[name] = {"float": None, "int8": None, "drop": None, "gap": None, "seeds": 0}
            continue
        f = statistics.mean(100 * r["float_acc"] for r in mine)
        q = statistics.mean(100 * r["int8_acc"] for r in mine)
        ref = refs.get(name)
        out[name] = {"float": f, "int8": q, "drop": f - q, "gap": None if ref is None else q - ref,
                     "seeds": len(mine)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", nargs="+", help="default: every classification set the installed wheels ship")
    p.add_argument("--seeds", nargs="+", type=int, default=[42])
    p.add_argument("--config", type=Path, default=CONFIG)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="config override for every run, as `modelmaker run --set`")
    p.add_argument("--variant", default="default", help="name the results are filed under (e.g. 'distilled')")
    p.add_argument("--search", action="store_true", help="also run `modelmaker search` per set (if it exists)")
    p.add_argument("--best-fit", metavar="DEVICE",
                   help="per set, train the largest classification zoo entry (by parameters) that fits DEVICE at the "
                        "set's fitted input (one rule for every set; sets common.target_device too)")
    p.add_argument("--teacher", metavar="ENTRY", help="distil from this teacher (training.teacher.model_name)")
    p.add_argument("--out", type=Path)
    args = p.parse_args()

    from modelmaker.config import apply_overrides, parse_overrides

    logging.basicConfig(level=logging.WARNING)
    # dotted --set keys as sections ({'dataset': {'val_fraction': 0}}), the shape set_overrides and run_set merge
    overrides = apply_overrides({}, parse_overrides(args.overrides))[0]
    refs = fcn_reference()
    sets = args.sets or shipped_sets()
    rows, searched = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in sets:
            for seed in args.seeds:
                try:
                    row = run_set(name, seed, set_overrides(overrides, args, name), Path(tmp) / "runs",
                                  args.config)
                except Exception as err:  # noqa: BLE001 - one set's failure (e.g. over budget) must not lose the rest
                    print(json.dumps({"set": name, "seed": seed, "error": " ".join(str(err).split())[:500]}),
                          flush=True)
                    continue
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
                              "overrides": overrides, "best_fit": args.best_fit, "teacher": args.teacher,
                              "rows": merged, "stats": merged_stats,
                              **({"search": searched} if searched else {})}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": m, "reference": str(REFERENCE.relative_to(ROOT)), "variants": variants},
                              indent=2) + "\n")
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
