"""The shipped configs over several seeds, on this machine: the figures of docs/results.md (not a test).

    python bench/bench_results.py                         # every config below, seeds 42 1 2; writes the JSON
    python bench/bench_results.py --configs timeseries_classification --seeds 42 1 2 3 4
    python bench/bench_results.py --render                # docs/results.md from bench/results/*.json only

Each (config, seed) is a full run (data → training → every export verified → report) through the same runner
as `./run.sh`, in a temporary projects folder. Per run it records the task's headline metric for PyTorch float and
for each int8 artifact, the verification status (every row PASS?), the TFLM arena and the wall time; per config it
prints mean ± standard deviation and min–max over the seeds. The results go to
``bench/results/results_<cpu tag>.json`` with the machine (CPU model, int8-relevant flags, cores, package versions),
and docs/results.md is rendered from every JSON file there (see also ``bench/bench_int8_cpus.py``): a README figure
is a mean over seeds on a named CPU, never one lucky run.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import statistics
import tempfile
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "results.md"
CONFIGS = ("timeseries_classification", "timeseries_regression", "timeseries_forecasting",
           "timeseries_anomaly_detection", "audio_amp_capture", "audio_knob_capture")
PACKAGES = ("torch", "onnxruntime", "onnx", "tensorflow", "ai-edge-litert", "tflite-micro", "lightning", "numpy")
INT8_ROWS = ("ONNX int8", "TFLite int8 (LiteRT)", "TFLite int8 (TFLM)", "C array (TFLM)")
AUDIO_ROWS = ("ONNX int8", "TFLite int8 (TFLM)", "TFLite int16x8 (TFLM)")


def machine() -> dict:
    """What the figures depend on: the CPU (int8 kernels and float summation order differ), cores, packages."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"model name\s*:\s*(.*)", info)
    flags = set((re.search(r"flags\s*:\s*(.*)", info) or re.search(r"Features\s*:\s*(.*)", info)
                 or re.search("()", "")).group(1).split())
    return {"cpu": model.group(1).strip() if model else platform.processor() or platform.machine(),
            "arch": platform.machine(), "cores": os.cpu_count(),
            "int8_flags": sorted(flags & {"avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "asimddp", "i8mm"}),
            "packages": {p: _version(p) for p in PACKAGES}}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def cpu_tag(m: dict) -> str:
    vnni = "vnni" if {"avx512_vnni", "avx_vnni"} & set(m["int8_flags"]) else "avx2" if "avx2" in m["int8_flags"] \
        else m["arch"]
    return f"{m['arch']}-{vnni}"


def one_run(config: Path, seed: int, out: Path) -> dict:
    from modelmaker import runner
    from modelmaker.compilation import VerificationError

    t0 = time.time()
    name = f"{config.stem}_seed{seed}"
    overrides = {"common": {"projects_path": str(out), "verbose": False, "seed": seed, "run_name": name}}
    failed = None
    try:
        summary = runner.run(config, overrides=overrides)
    except VerificationError as err:  # the run folder is complete; the table says which row failed
        failed = str(err).splitlines()[0]
        summary = json.loads((out / name / "summary.json").read_text())
    rows = {r["artifact"]: r for r in (summary.get("compilation") or {}).get("verification", [])
            or (summary.get("compilation") or {}).get("rows", [])}
    rec = {"seed": seed, "wall_s": round(time.time() - t0, 1), "load_avg_1min": round(os.getloadavg()[0], 2),
           "verification": (summary.get("verification") or {}).get("status"),
           "failures": (summary.get("verification") or {}).get("failures", []), "error": failed,
           "params": (summary.get("model") or {}).get("params"), "model": (summary.get("model") or {}).get("name")}
    if summary.get("modality") == "audio":
        rec["metric"] = "validation ESR"
        rec["higher_is_better"] = False
        rec["float"] = summary["validation"]["esr"]
        rec["int8"] = {a: rows[a].get("esr_vs_target") for a in AUDIO_ROWS if a in rows}
        if "esr_unseen" in summary:  # a knob model: float ESR at seen settings, and at held-out ones
            rec["metric"] = "validation ESR at seen settings"
            rec.update({k: summary.get(k) for k in ("esr_seen", "esr_unseen", "esr_outside")})
            rec["unseen_over_seen"] = summary["validation"].get("unseen_over_seen")
            rec["int8"] = {}  # its export rows hold the worst setting's ESR; the verification column says PASS
        rec["arena_bytes"] = (rows.get("TFLite int8 (TFLM)") or {}).get("tflm_arena_bytes")
    else:
        test = summary.get("test") or {}
        rec["metric"] = test.get("headline") or summary["compilation"]["metric"]
        rec["higher_is_better"] = any(k in rec["metric"] for k in ("acc", "auc", "f1", "r2"))
        rec["float"] = rows["PyTorch float"]["metric"]
        rec["int8"] = {a: rows[a].get("metric") for a in INT8_ROWS if a in rows}
        rec["arena_bytes"] = (rows.get("TFLite int8 (TFLM)") or {}).get("arena_bytes")
    return rec


def stats(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    digits = ".4f" if abs(mean) < 10 else ".2f"
    return f"{mean:{digits}} ± {sd:{digits}} ({min(values):{digits}}–{max(values):{digits}})"


def render() -> str:
    files = sorted(RESULTS.glob("results_*.json"))
    out = ["# Measured results", "",
           "Generated by `python bench/bench_results.py --render` from `bench/results/*.json`; do not edit by hand.",
           "Each figure is a mean ± standard deviation (min–max) over the seeds listed, every seed a full run of the",
           "shipped config (`./run.sh configs/<name>.yaml` with `common.seed` set) on the CPU named above its table.",
           "", "## What varies across CPUs", "",
           "- **Float training** sums in a different order on AVX2, AVX-512 and ARM (oneDNN/MLAS kernels), so the same",
           "  seed trains to slightly different weights on different CPUs: a test metric can move by a test sample or",
           "  two (GunPoint: one series = 0.67 points). Within one machine a run reproduces exactly.",
           "- **int8 in TFLM and the C array** use reference integer kernels: the same `.tflite` gives the same",
           "  outputs on every CPU. LiteRT's reference kernels agree with TFLM to a few output steps (they round",
           "  some requantizations differently: 2 steps on the anomaly autoencoder, 0–1 on the classifier).",
           "- **Wall times** depend on what else runs: each run records the 1-minute load average at its end",
           "  (`load_avg_1min` in the JSON); on an idle 2-core machine the default config takes about 25–35 s.",
           "- **int8 ONNX**: onnxruntime picks fused int8 kernels per CPU. Full-range int8 weights saturate on x86",
           "  CPUs without VNNI; our int8 ONNX uses 7-bit weights so it computes the same on every CPU, and every",
           "  run checks the fused kernels against the unfused QDQ arithmetic of the same file (see the last section).",
           ""]
    for f in files:
        data = json.loads(f.read_text())
        m = data["machine"]
        out += [f"## {m['cpu']} ({m['arch']}, {m['cores']} cores; int8 flags: {', '.join(m['int8_flags']) or '-'})",
                "", "Packages: " + ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v), ""]
        out += ["| config | model | params | metric | seeds | PyTorch float | ONNX int8 | TFLite int8 (TFLM) | "
                "int16x8 (TFLM) | verification | TFLM arena (B) | wall (s) |",
                "|---|---|---:|---|---|---|---|---|---|---|---:|---|"]
        for name, runs in data["configs"].items():
            if not runs:
                continue
            r0 = runs[0]
            col = lambda art: stats([(r["int8"] or {}).get(art) for r in runs])  # noqa: E731
            passed = sum(r["verification"] == "PASS" for r in runs)
            out.append(f"| `{name}` | {r0.get('model')} | {r0.get('params') or '-'} | {r0['metric']} "
                       f"({'higher' if r0['higher_is_better'] else 'lower'} is better) | "
                       f"{' '.join(str(r['seed']) for r in runs)} | {stats([r['float'] for r in runs])} | "
                       f"{col('ONNX int8')} | {col('TFLite int8 (TFLM)')} | {col('TFLite int16x8 (TFLM)')} | "
                       f"{passed}/{len(runs)} PASS | {r0.get('arena_bytes') or '-'} | "
                       f"{stats([r['wall_s'] for r in runs])} |")
        for name, runs in data["configs"].items():
            if runs and "esr_unseen" in runs[0]:
                out += ["", f"`{name}` (knob model), float validation ESR by kind of setting over seeds "
                        f"{' '.join(str(r['seed']) for r in runs)}: seen {stats([r['esr_seen'] for r in runs])}; "
                        f"unseen (interpolation) {stats([r['esr_unseen'] for r in runs])}; outside the trained range "
                        f"{stats([r['esr_outside'] for r in runs])}; unseen / seen "
                        f"{stats([r['unseen_over_seen'] for r in runs])}. Every export row is verified at 3 or more "
                        "settings (the verification column)."]
        fails = [f"- `{n}` seed {r['seed']}: {'; '.join(r['failures'])}" for n, rs in data["configs"].items()
                 for r in rs if r["verification"] != "PASS"]
        if fails:
            out += ["", "Rows that failed verification:", ""] + fails
        out.append("")
    cpus = RESULTS / "int8_cpus.json"
    if cpus.exists():
        data = json.loads(cpus.read_text())
        out += ["## int8 ONNX on CPUs with and without VNNI", "",
                f"Generated by `python bench/bench_int8_cpus.py` ({data['note']}). The default config's model, "
                "quantized two ways, run by onnxruntime with default session options; 'reference' is the same file "
                "with `ORT_DISABLE_ALL` (DequantizeLinear → float op → QuantizeLinear), which no CPU feature changes.",
                "", "| weights | CPU | accuracy (fused kernels) | accuracy (reference) | argmax agreement | "
                "max diff (output steps) |", "|---|---|---|---|---|---|"]
        for r in data["rows"]:
            out.append(f"| {r['weights']} | {r['cpu']} | {r['acc_fused']:.2%} | {r['acc_reference']:.2%} | "
                       f"{r['agreement']:.3f} | {r['max_steps']:.1f} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), help="names in configs/ (without .yaml)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 2])
    ap.add_argument("--render", action="store_true", help="only render docs/results.md from bench/results/")
    args = ap.parse_args()
    if not args.render:
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        m = machine()
        path = RESULTS / f"results_{cpu_tag(m)}.json"
        data = json.loads(path.read_text()) if path.exists() else {"configs": {}}
        data["machine"] = m
        out = Path(tempfile.mkdtemp(prefix="bench_results_"))
        for name in args.configs:
            runs = []
            for seed in args.seeds:
                rec = one_run(ROOT / "configs" / f"{name}.yaml", seed, out)
                runs.append(rec)
                print(f"{name} seed {seed}: {rec['metric']} float {rec['float']:.4g}, int8 "
                      + ", ".join(f"{k} {v:.4g}" for k, v in rec["int8"].items() if v is not None)
                      + f" | {rec['verification']} | {rec['wall_s']} s", flush=True)
            data["configs"][name] = runs
            RESULTS.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(data, indent=2) + "\n")  # after each config: a cut-off bench keeps its part
    DOC.write_text(render())
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
