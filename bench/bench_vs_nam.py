"""Our audio trainer against NAM's own trainer (neural-amp-modeler 0.13.0), side by side (figures, not a test).

    bash bench/nam_venv.sh                                   # once: NAM's trainer in bench/.venv-nam
    python bench/bench_vs_nam.py                             # every available capture, nano, 20 epochs, 60 s
    python bench/bench_vs_nam.py --captures lv2_studiopre highgain --presets nano feather --epochs 20
    python bench/bench_vs_nam.py --captures overdrive --seconds 20 --epochs 1 --out bench/work/smoke.json  # smoke

For each capture of bench/captures.py × preset, both trainers get the same files, the same latency (found from the
blips when the capture was made), the same split, the same preset and the same number of epochs:

* split: train on [end of the first validation block + 0.4 s, start of the second), validate on the second
  validation block (the first one repeats its input, so it is never trained on). The 0.4 s is NAM's
  ``require_input_pre_silence`` (it lies in the silence after the first block);
* ours: ``modelmaker.runner.run`` (what ``./run.sh`` runs) on the preset's shipped config (nano:
  configs/audio_amp_capture.yaml, feather: configs/audio_amp_capture_feather.yaml: their batch size, learning
  rate and schedule) with ``dataset.input_path`` / ``output_path`` / ``latency`` / ``train_range`` /
  ``validation_range`` set, ``training.epochs`` overridden and compilation off (bench/ours_worker.py);
* NAM: ``nam.train.full.main`` (what ``nam-full`` runs) in the NAM venv with the same A1 WaveNet preset
  (layer arrays from tinyverse.audio.nam.presets: NAM's nano / feather, same weights and receptive field), NAM
  0.13's recipe (loss, Adam, ExponentialLR 0.994 from its packaged config; batch 16, ny 8192, output normalised to
  -18 dBFS RMS as its ``core.train`` does) on CPU (bench/nam_worker.py).

Both trainers keep their best epoch by validation ESR. Scoring is the same for both: each exported .nam renders
the validation input (with receptive-field context) and the ESR against the validation output is computed by
tinyverse.audio.esr on the arrays the dataset gives (``CaptureData.validation``). Ours is rendered by our .nam
reader; NAM's by our reader when it can read the file, else by NAM's own reader (``init_from_nam``; the JSON says
which, and why). Wall time: "train s" is ``Trainer.fit`` on both sides (per-epoch validation included; data
loading, imports and export excluded), "process s" the whole worker process. Threads: each side's torch
threads as used (ours: the runner's choice, one thread on a ≤ 2-core CPU; NAM: ``--nam-threads``, default 1;
``--nam-threads default`` leaves torch's default, what a NAM user gets, which on a busy 2-core machine was 6×
slower per epoch, see issue #12). Both workers run without OMP_NUM_THREADS / MKL_NUM_THREADS from this shell
unless a count is given.

Results: a table on stdout and JSON (default ``bench/results/vs_nam_<cpu>.json``) with the machine (CPU model,
cores, load average). One job runs at a time; on a shared machine the load average is recorded per job.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_results import cpu_tag, machine  # noqa: E402
from bench.captures import RECIPES, available, layout_of, make_capture  # noqa: E402
from modelmaker.config.load import apply_overrides, parse_overrides  # noqa: E402
from tinyverse.audio import esr  # noqa: E402
from tinyverse.audio.dataset import NamCaptureDataset  # noqa: E402
from tinyverse.audio.nam import load_nam, model_from_nam  # noqa: E402
from tinyverse.audio.nam.format import NamFormatError  # noqa: E402
from tinyverse.audio.nam.presets import a1_wavenet_layers  # noqa: E402
from tinyverse.models import create_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NAM_VENV = ROOT / "bench" / ".venv-nam"
WORK = ROOT / "bench" / "work"
RESULTS = ROOT / "bench" / "results"
PRE_SILENCE_SECONDS = 0.4  # NAM's Dataset require_input_pre_silence default
NY = 8192  # output samples per training window: NAM's default and our configs'
NAM_BATCH_SIZE = 16  # NAM core.train's default
# preset -> (our zoo model, the shipped config whose recipe ours uses)
PRESETS = {
    "nano": ("NAM_WaveNet_nano", "configs/audio_amp_capture.yaml"),
    "feather": ("NAM_WaveNet_feather", "configs/audio_amp_capture_feather.yaml"),
    "lite": ("NAM_WaveNet_lite", "configs/audio_amp_capture.yaml"),
    "standard": ("NAM_WaveNet_standard", "configs/audio_amp_capture.yaml"),
}
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


# ------------------------------------------------------------------------------------------ the shared split


def bench_split(capture: dict[str, Any], x: np.ndarray | None = None) -> dict[str, list[int]]:
    """Train and validation ranges ``[start, stop)`` in input samples, the same for both trainers."""
    layout = layout_of(capture)
    sr = layout.sample_rate
    (_, a1), (b0, b1) = layout.validation[0], layout.validation[-1]
    t0 = a1 + int(PRE_SILENCE_SECONDS * sr)
    if x is not None and np.any(x[a1:t0]):
        raise ValueError(f"{capture['name']}: the input is not silent for {PRE_SILENCE_SECONDS} s after the first "
                         "validation block; NAM's trainer would refuse the training range")
    return {"train": [t0, b0], "validation": [b0, b1]}


def our_ranges(split: dict[str, list[int]], length: int) -> dict[str, list[str | None]]:
    """``dataset.train_range`` / ``validation_range`` for the split. A range that ends at the end of the file ends
    at ``null`` (the edge): our ranges apply after the latency correction, which shortens the pair."""
    def end(v: int) -> str | None:
        return None if v >= length else f"{v} samples"

    return {f"{k}_range": [f"{a} samples", end(b)] for k, (a, b) in split.items()}


def nam_data_config(capture: dict[str, Any], split: dict[str, list[int]], latency: int, ny: int = NY) -> dict:
    """NAM ``nam-full`` data config: the bench split in samples, NAM core.train's output normalisation."""
    return {
        "train": {"start_samples": split["train"][0], "stop_samples": split["train"][1], "ny": ny},
        "validation": {"start_samples": split["validation"][0], "ny": None,
                       "stop_samples": None if split["validation"][1] >= capture["layout"]["length"]
                       else split["validation"][1]},
        "common": {"x_path": capture["input_path"], "y_path": capture["output_path"], "delay": int(latency),
                   "allow_unequal_lengths": True},
        "joint": [{"name": "nam.data.normalize_joint_dataset_output", "kwargs": {"level_rms_dbfs": -18.0}}],
    }


def nam_model_config(preset: str) -> dict:
    """The A1 WaveNet preset in NAM 0.13's training layout (``layers_configs`` with a ``head`` per array)."""
    arrays = [{"input_size": la["input_size"], "condition_size": la["condition_size"], "channels": la["channels"],
               "kernel_sizes": la["kernel_size"], "dilations": la["dilations"], "activation": la["activation"],
               "gated": la["gated"],
               "head": {"out_channels": la["head_size"], "kernel_size": 1, "bias": la["head_bias"]}}
              for la in a1_wavenet_layers(preset)]
    return {"net": {"name": "WaveNet", "config": {"layers_configs": arrays, "head_scale": 0.02}}}


def nam_learning_config(epochs: int, batch_size: int = NAM_BATCH_SIZE) -> dict:
    """NAM core.train's learning config, on the CPU."""
    return {"train_dataloader": {"batch_size": batch_size, "shuffle": True, "pin_memory": True, "drop_last": True,
                                 "num_workers": 0},
            "val_dataloader": {},
            "trainer": {"max_epochs": int(epochs), "accelerator": "cpu", "devices": 1}}


def ours_config(base: Path, capture: dict[str, Any], split: dict[str, list[int]], latency: int, model_name: str,
                epochs: int, projects: Path, run_name: str, seed: int, threads: int | None = None,
                overrides: dict[str, Any] | None = None) -> dict:
    """The shipped config ``base`` (its training recipe) pointed at the capture, the split and the latency;
    ``overrides`` (``--ours-set``, dotted keys) change our recipe for an experiment."""
    cfg = yaml.safe_load(base.read_text())
    cfg["common"].update(projects_path=str(projects), run_name=run_name, seed=int(seed), verbose=False)
    cfg["common"].pop("target_device", None)  # a device budget has nothing to do with the comparison
    ds = cfg["dataset"]
    ds.pop("generated_seconds", None)
    ds.update(input_path=capture["input_path"], output_path=capture["output_path"], latency=int(latency), ny=NY,
              **our_ranges(split, capture["layout"]["length"]))
    ds.setdefault("metadata", {}).update(gear_model=capture["name"])
    cfg["training"].update(model_name=model_name, epochs=int(epochs))
    if threads is not None:
        cfg["training"]["threads"] = int(threads)  # training.threads (#12 item 5)
    cfg["compilation"] = {"enable": False}
    return apply_overrides(cfg, overrides)[0]


# ------------------------------------------------------------------------------------------ running the two sides


def _env(threads: int | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_ENV}
    if threads is not None:
        env.update({k: str(threads) for k in THREAD_ENV})
    return env


def _worker(python: Path, script: str, job: dict, folder: Path, threads: int | None, reuse: bool = False) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    job_path, log_path = folder / "job.json", folder / "worker.log"
    text = json.dumps(job, indent=1)
    if reuse and job_path.is_file() and job_path.read_text() == text and Path(job["result"]).is_file():
        # The same job finished before (an interrupted bench): keep its result and the times it measured.
        return {**json.loads(Path(job["result"]).read_text()), "reused": True, "log": str(log_path)}
    job_path.write_text(text)
    t0 = time.perf_counter()
    with log_path.open("w") as log:
        done = subprocess.run([str(python), str(ROOT / "bench" / script), str(job_path)], cwd=ROOT, env=_env(threads),
                              stdout=log, stderr=subprocess.STDOUT, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0 or not Path(job["result"]).is_file():
        tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(f"{script} exited {done.returncode} (log {log_path}): " + " | ".join(tail))
    return {**json.loads(Path(job["result"]).read_text()), "wall_s": round(wall, 2), "log": str(log_path)}


def render_with_our_reader(nam_path: str, xv: np.ndarray) -> np.ndarray:
    import torch

    model = model_from_nam(load_nam(nam_path)).eval()
    with torch.no_grad():
        return model(torch.as_tensor(xv)).numpy()[0]


def run_job(capture: dict[str, Any], preset: str, epochs: int, args: argparse.Namespace) -> dict[str, Any]:
    model_name, base = PRESETS[preset]
    latency = int(capture["latency"]["recommended"])
    folder = Path(args.work) / f"{capture['name']}-{capture['params']['seconds']:g}s" / \
        f"{preset}-e{epochs}-seed{args.train_seed}"
    split = bench_split(capture, _read(capture["input_path"]))
    # The scored arrays, as our dataset gives them (latency applied, receptive-field context before the block).
    data = NamCaptureDataset(input_path=capture["input_path"], output_path=capture["output_path"], latency=latency,
                             **our_ranges(split, capture["layout"]["length"])).load()
    rf = int(create_model(model_name).receptive_field)
    xv, yv = data.validation(rf)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "val_input.npy", xv)
    rec: dict[str, Any] = {"capture": capture["name"], "preset": preset, "epochs": epochs, "latency": latency,
                           "train_seed": args.train_seed,
                           "split": split, "validation_seconds": round(yv.shape[1] / data.sample_rate, 2),
                           "load_avg_1min_before": round(os.getloadavg()[0], 2)}
    def run_ours() -> dict[str, Any]:
        cfg = ours_config(ROOT / base, capture, split, latency, model_name, epochs, folder / "ours",
                          "run", args.train_seed, args.ours_threads, parse_overrides(args.ours_set))
        (folder / "ours").mkdir(parents=True, exist_ok=True)
        cfg_path = folder / "ours" / "config.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        try:
            ours = _worker(Path(sys.executable), "ours_worker.py",
                           {"config": str(cfg_path), "result": str(folder / "ours" / "result.json")},
                           folder / "ours", args.ours_threads, args.reuse)
            pred = render_with_our_reader(ours["nam_path"], xv)
            ours.update(esr=esr(yv[0], pred), rendered_by="tinyverse .nam reader", base_config=base)
        except Exception as e:  # the other side and the other jobs still run; the table says what failed
            ours = {"error": f"{type(e).__name__}: {e}"}
        return ours

    def run_nam() -> dict[str, Any]:
        nam_dir = folder / "nam"
        job = {"data_config": nam_data_config(capture, split, latency), "model_config": nam_model_config(preset),
               "learning_config": nam_learning_config(epochs, args.nam_batch_size), "outdir": str(nam_dir / "train"),
               "seed": args.train_seed, "threads": args.nam_threads, "result": str(nam_dir / "result.json"),
               "render": {"input": str(folder / "val_input.npy"), "output": str(nam_dir / "val_pred.npy"),
                          "length": int(yv.shape[1])}}
        try:
            nam = _worker(Path(args.nam_venv) / "bin" / "python", "nam_worker.py", job, nam_dir, args.nam_threads,
                          args.reuse)
            own = np.load(nam_dir / "val_pred.npy")
            nam.update(esr_nam_reader=esr(yv[0], own), batch_size=args.nam_batch_size)
            try:
                nam.update(esr=esr(yv[0], render_with_our_reader(nam["nam_path"], xv)),
                           rendered_by="tinyverse .nam reader")
            except NamFormatError as e:  # NAM 0.13 writes file version 0.7.0 (#12 item 1)
                nam.update(esr=nam["esr_nam_reader"], rendered_by="NAM's init_from_nam",
                           our_reader_error=str(e).splitlines()[0])
        except Exception as e:
            nam = {"error": f"{type(e).__name__}: {e}"}
        return nam

    sides = {"ours": run_ours, "nam": run_nam}
    chosen = [s for s in ("ours", "nam") if s in args.sides]
    if args.parallel:
        # Both trainers at the same time, one process each: whatever else loads the machine slows both alike.
        with ThreadPoolExecutor(max_workers=len(chosen)) as pool:
            futures = {s: pool.submit(sides[s]) for s in chosen}
            rec.update({s: f.result() for s, f in futures.items()})
    else:
        rec.update({s: sides[s]() for s in chosen})
    rec["parallel"] = bool(args.parallel)
    rec["load_avg_1min_after"] = round(os.getloadavg()[0], 2)
    return rec


def _read(path: str) -> np.ndarray:
    return sf.read(path, dtype="float32", always_2d=True)[0][:, 0]


# ------------------------------------------------------------------------------------------ report


def _f(v: Any, spec: str) -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def _threads(side: dict) -> str:
    t = side.get("threads") or {}
    return _f(t.get("torch_threads"), "d")


def table(rows: list[dict[str, Any]]) -> str:
    header = ["capture", "preset", "epochs", "seed", "ours ESR", "NAM ESR", "ours train s", "NAM train s",
              "ours process s", "NAM process s", "threads ours/NAM"]
    out = []
    for r in rows:
        o, n = r.get("ours") or {}, r.get("nam") or {}
        out.append([r["capture"], r["preset"], str(r["epochs"]), str(r.get("train_seed", "–")),
                    "error" if "error" in o else _f(o.get("esr"), ".4f"),
                    "error" if "error" in n else _f(n.get("esr"), ".4f"),
                    _f(o.get("fit_s"), ".1f"), _f(n.get("fit_s"), ".1f"),
                    _f(o.get("process_s"), ".1f"), _f(n.get("process_s"), ".1f"),
                    f"{_threads(o)}/{_threads(n)}"])
    widths = [max(len(str(x[i])) for x in [header, *out]) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, out)])


def summary(paths: list[str]) -> str:
    """Several result files (e.g. one per training seed) as one table per capture × preset: each side's ESR per
    seed and mean, the mean train-time ratio ours / NAM, and on how many seeds ours is at or below NAM.

    The two sides of a seed may come from different files: an ours-only re-run after a recipe change (``--sides
    ours``) pairs with the NAM run of the same capture, preset, epochs and training seed; a later file wins."""
    pairs: dict[tuple[str, str, Any, Any], dict[str, dict[str, Any]]] = {}
    for p in paths:
        for r in json.loads(Path(p).read_text())["rows"]:
            if "preset" not in r:
                continue
            key = (r["capture"], r["preset"], r["epochs"], r.get("train_seed"))
            for side in ("ours", "nam"):
                if "esr" in (r.get(side) or {}):
                    pairs.setdefault(key, {})[side] = r[side]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for (cap, preset, _, _), both in pairs.items():
        if len(both) == 2:
            groups.setdefault((cap, preset), []).append(both)
    header = ["capture", "preset", "seeds", "ours ESR", "NAM ESR", "ours mean", "NAM mean", "ours ≤ NAM",
              "train s ours / NAM"]
    out = []
    for (cap, preset), rows in groups.items():
        o = [r["ours"]["esr"] for r in rows]
        n = [r["nam"]["esr"] for r in rows]
        ratio = np.mean([r["ours"]["fit_s"] / r["nam"]["fit_s"] for r in rows])
        out.append([cap, preset, str(len(rows)), " / ".join(f"{v:.4f}" for v in o), " / ".join(f"{v:.4f}" for v in n),
                    f"{np.mean(o):.4f}", f"{np.mean(n):.4f}", f"{sum(a <= b for a, b in zip(o, n))}/{len(rows)}",
                    f"{ratio:.2f}"])
    widths = [max(len(str(x[i])) for x in [header, *out]) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, out)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--captures", nargs="+", choices=list(RECIPES), default=None,
                    help="default: every capture that can render here")
    ap.add_argument("--presets", nargs="+", choices=list(PRESETS), default=["nano"])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60.0, help="capture length (bench/captures.py)")
    ap.add_argument("--seed", type=int, default=0, help="capture seed (and both trainers' seed unless --train-seed)")
    ap.add_argument("--train-seed", type=int, default=None, help="both trainers' seed (default: --seed); the same "
                    "capture with another training seed shows how much of a difference is the seed")
    ap.add_argument("--sides", nargs="+", choices=["ours", "nam"], default=["ours", "nam"])
    ap.add_argument("--nam-threads", default="1",
                    help="torch threads for NAM's trainer: a number, or 'default' for torch's default (default 1)")
    ap.add_argument("--ours-threads", type=int, default=None,
                    help="training.threads for ours (default: the runner's own choice)")
    ap.add_argument("--ours-set", action="append", default=[], metavar="KEY=VALUE",
                    help="change our recipe for an experiment (modelmaker's --set, e.g. training.lr_scheduler=cosine); "
                         "recorded in the results; use a separate --work folder per variant")
    ap.add_argument("--parallel", action="store_true",
                    help="run the two trainers at the same time (one process each; on a 2-core machine, one core "
                         "each), so load from anything else hits both alike")
    ap.add_argument("--nam-batch-size", type=int, default=NAM_BATCH_SIZE)
    ap.add_argument("--nam-venv", default=str(NAM_VENV))
    ap.add_argument("--work", default=str(WORK), help="run folders, NAM outputs, logs (git-ignored)")
    ap.add_argument("--out", default=None, help="results JSON (default bench/results/vs_nam_<cpu>.json)")
    ap.add_argument("--reuse", action="store_true",
                    help="keep a side's result when the same job finished before (resume an interrupted bench)")
    ap.add_argument("--summary", nargs="+", metavar="RESULTS_JSON", default=None,
                    help="print one table from result files already written (e.g. one per --train-seed) and exit")
    args = ap.parse_args()
    if args.summary:
        print(summary(args.summary))
        return
    args.nam_threads = None if args.nam_threads == "default" else int(args.nam_threads)
    args.train_seed = args.seed if args.train_seed is None else args.train_seed
    if "nam" in args.sides and not (Path(args.nam_venv) / "bin" / "python").is_file():
        sys.exit(f"bench_vs_nam: error: no NAM venv at {args.nam_venv}; run: bash bench/nam_venv.sh")

    names, missing = available(args.captures)
    for name, why in missing.items():
        print(f"skip capture {name}: {why}")
    m = machine()
    print(f"machine: {m['cpu']}, {m['cores']} cores, load average {os.getloadavg()[0]:.2f}")
    rows: list[dict[str, Any]] = []
    out = Path(args.out) if args.out else RESULTS / f"vs_nam_{cpu_tag(m)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in names:
        try:
            capture = make_capture(name, args.seconds, args.seed)
        except Exception as e:  # one capture that cannot be made does not lose the others
            print(f"skip capture {name}: {type(e).__name__}: {e}", flush=True)
            rows.append({"capture": name, "error": f"{type(e).__name__}: {e}"})
            continue
        for preset in args.presets:
            print(f"{name} × {preset}, {args.epochs} epochs ...", flush=True)
            rec = run_job(capture, preset, args.epochs, args)
            for side in ("ours", "nam"):
                if "error" in (rec.get(side) or {}):
                    print(f"  {side}: {rec[side]['error']}")
            rows.append(rec)
            write_results(out, m, args, rows)  # after every job: an interrupted bench keeps what it measured
    print(table([r for r in rows if "preset" in r]))
    write_results(out, m, args, rows)
    print(f"results: {out}")


def write_results(out: Path, m: dict[str, Any], args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    result = {"machine": {**m, "load_avg": [round(v, 2) for v in os.getloadavg()]},
              "settings": {"epochs": args.epochs, "seconds": args.seconds, "seed": args.seed,
                           "train_seed": args.train_seed,
                           "presets": args.presets, "nam_threads": args.nam_threads or "torch default",
                           "ours_threads": args.ours_threads or "runner default",
                           "ours_set": list(args.ours_set),
                           "nam_batch_size": args.nam_batch_size, "ny": NY, "split": "bench_split",
                           "parallel": bool(args.parallel)},
              "command": " ".join(["python", *sys.argv]), "rows": rows}
    out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
