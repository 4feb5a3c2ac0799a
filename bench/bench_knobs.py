"""Knob conditionings side by side (issue #13 item 7; figures, not a test; run by hand).

    python bench/bench_knobs.py                                  # the default: nano sizes, 3 x 3 grid, 10 epochs
    python bench/bench_knobs.py --size feather --epochs 20 --seeds 0 1 2
    python bench/bench_knobs.py --families CatWaveNet --points 4 --seconds 8

Data: the generated knob capture (:class:`tinyverse.audio.knob_capture.KnobCaptureDataset`: the standard-style input
through the reference overdrive at every setting of a ``--points`` x ``--points`` grid of its two knobs, ``gain``
→ drive 6..30 dB and ``tone`` → low-pass 2.5..9 kHz), with its default held-out settings: ``unseen`` (the interior
setting nearest the centre, never trained on: interpolation) and ``outside`` (every setting at the largest gain:
extrapolation). Every model trains on the same training settings and keeps its best epoch by the mean validation ESR
of those (seen) settings; nothing is selected on the held-out ones.

Models: each built-in conditioning (``NAM_{CatLSTM,CatWaveNet,HyperConvNet,FiLMWaveNet}_<size>``, parameter
counts matched by the zoo's ladder) against **snapshots**: one plain model (``--snapshot``, default
``NAM_WaveNet_<size>``, the same size class) trained per training setting on that setting's audio alone — what a
user without knob models ships (total parameters = settings x one model). A snapshot set has no model for a
setting it was not trained on: at an unseen or outside setting it plays the nearest trained setting's snapshot
(distance in normalised knob values), which is what such a user would load.

Recipe (as ``configs/audio_knob_capture.yaml``): NAM's loss (MSE + 2e-4 x multi-resolution STFT of pre-emphasised
signals), Adam, lr ``--lr``, ExponentialLR 0.993 per epoch, batches of ``--batch-size`` windows of 8,192 samples,
one torch thread. ESR per setting: the model on the setting's whole validation block (with receptive-field
context) against the recording. Reported per model: parameters, MACs per sample (audio path), training seconds,
mean ESR over the seen, the unseen and the outside settings, and unseen / seen.

Output: a table on stdout and JSON in ``bench/results/knobs_<size>_<cpu>.json`` (``--out`` to change it).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FAMILIES = ("CatLSTM", "CatWaveNet", "HyperConvNet", "FiLMWaveNet")
ROLES = ("train", "unseen", "outside")


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _predict(model: torch.nn.Module, x: np.ndarray, params: np.ndarray | None) -> np.ndarray:
    with torch.no_grad():
        xt = torch.as_tensor(x)
        out = model(xt) if params is None else model(xt, torch.as_tensor(params[None]))
    return out.numpy()[0]


def train(model: torch.nn.Module, windows: tuple[np.ndarray, ...], val: list[dict[str, Any]], epochs: int,
          batch_size: int, lr: float, seed: int, knobbed: bool) -> tuple[torch.nn.Module, float, int, float]:
    """Train on ``windows`` ((X, P, Y) or (X, Y)); keep the epoch with the lowest mean ESR over ``val`` (each a
    setting's {x, y, params}). Returns (best model, its mean ESR, best epoch, training seconds)."""
    from tinyverse.audio import esr
    from tinyverse.audio.knob_training import KnobModellingTask
    from tinyverse.audio.training import AmpModellingTask, amp_loss

    task = KnobModellingTask(model, sample_rate=48_000) if knobbed else AmpModellingTask(model)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, 0.993)
    rng = np.random.default_rng(seed)
    n = len(windows[0])
    best, best_esr, best_epoch, train_s = copy.deepcopy(model), float("inf"), 0, 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        t = time.perf_counter()
        for idx in np.array_split(rng.permutation(n), max(1, n // batch_size)):
            batch = tuple(torch.as_tensor(a[idx]) for a in windows)
            if knobbed:
                pred, y = task.predict_batch(batch)
            else:
                preds, y = task.scored(*batch)
                pred = next(iter(preds.values()))
            loss, _ = amp_loss(pred, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        train_s += time.perf_counter() - t
        model.eval()
        e = float(np.mean([esr(v["y"][0], _predict(model, v["x"], v["params"] if knobbed else None)) for v in val]))
        if e < best_esr:
            best, best_esr, best_epoch = copy.deepcopy(model), e, epoch
    return best.eval(), best_esr, best_epoch, train_s


def role_means(per_setting: list[dict[str, Any]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for role in ROLES:
        e = [s["esr"] for s in per_setting if s["role"] == role]
        out["seen" if role == "train" else role] = float(np.mean(e)) if e else None
    return out


def bench_knob_model(name: str, data: Any, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    from tinyverse.audio import esr
    from tinyverse.models import create_model

    torch.manual_seed(seed)
    model = create_model(name, knobs=data.knobs.declaration())
    cost = model.cost()
    rf = int(model.receptive_field)
    val = data.validation(rf)
    seen = [v for v in val if v["role"] == "train"]
    model, _, best_epoch, train_s = train(model, data.windows(rf), seen, args.epochs, args.batch_size, args.lr, seed,
                                          knobbed=True)
    model.prepare_for_inference()
    per_setting = [{"setting": v["setting"], "role": v["role"],
                    "esr": esr(v["y"][0], _predict(model, v["x"], v["params"]))} for v in val]
    return {"model": name, "seed": seed, "params": cost.params, "macs_per_sample": cost.macs_per_sample,
            "conditioning_macs": cost.conditioning_macs, "best_epoch": best_epoch, "train_seconds": round(train_s, 1),
            "esr": role_means(per_setting), "per_setting": per_setting}


def bench_snapshots(name: str, data: Any, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """One plain ``name`` per training setting; held-out settings play the nearest trained setting's snapshot."""
    from tinyverse.audio import esr
    from tinyverse.models import create_model

    snaps, params, macs, train_s = [], 0, 0, 0.0
    for s in data.role("train"):
        torch.manual_seed(seed)
        model = create_model(name)
        rf = int(model.receptive_field)
        x, y = s.capture.validation(rf)
        model, _, _, secs = train(model, s.capture.windows(rf), [{"x": x, "y": y, "params": None}], args.epochs,
                                  args.batch_size, args.lr, seed, knobbed=False)
        model.prepare_for_inference()
        snaps.append((s.vector, model))
        params += sum(p.numel() for p in model.parameters())
        macs = int(model.cost().macs_per_sample) if hasattr(model, "cost") else 0
        train_s += secs
    per_setting = []
    for s in data.settings:
        vec, model = min(snaps, key=lambda sm: float(np.sum((sm[0] - s.vector) ** 2)))
        x, y = s.capture.validation(int(model.receptive_field))
        per_setting.append({"setting": s.setting, "role": s.role, "esr": esr(y[0], _predict(model, x, None)),
                            "snapshot_of": {k: float(v) for k, v in zip(data.knobs.names, vec)}})
    return {"model": f"{name} x {len(snaps)} snapshots", "seed": seed, "params": params, "macs_per_sample": macs,
            "snapshots": len(snaps), "train_seconds": round(train_s, 1), "esr": role_means(per_setting),
            "per_setting": per_setting}


def _f(v: float | None, spec: str = ".4f") -> str:
    return "–" if v is None else format(v, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="nano", choices=["nano", "feather", "standard"])
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    ap.add_argument("--snapshot", default=None, help="the plain model per setting (default NAM_WaveNet_<size>); "
                                                     "'none' leaves the snapshot row out")
    ap.add_argument("--points", type=int, default=3, help="grid points per knob")
    ap.add_argument("--seconds", type=float, default=12.0, help="generated capture length per setting")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--lr", type=float, default=0.004)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--out", default=None, help="JSON path (default bench/results/knobs_<size>_<cpu>.json)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from tinyverse.audio.knob_capture import KnobCaptureDataset

    data = KnobCaptureDataset(points=args.points, generated_seconds=args.seconds).load()
    roles = {r: [s.label() for s in data.role(r)] for r in ROLES}
    print(f"knob capture: {args.points} x {args.points} grid, {args.seconds:g} s per setting; trained on "
          f"{len(roles['train'])}, unseen {roles['unseen']}, outside {len(roles['outside'])} "
          f"({data.info['holdout']['outside']}); {args.epochs} epochs, batch {args.batch_size}, lr {args.lr}, "
          f"seeds {args.seeds}", flush=True)
    snapshot = args.snapshot or f"NAM_WaveNet_{args.size}"
    started = time.time()
    runs: list[dict[str, Any]] = []
    for seed in args.seeds:
        for family in args.families:
            r = bench_knob_model(f"NAM_{family}_{args.size}", data, args, seed)
            runs.append(r)
            print(f"  seed {seed} {r['model']}: seen {r['esr']['seen']:.4f}, unseen {_f(r['esr']['unseen'])}, "
                  f"outside {_f(r['esr']['outside'])} ({r['train_seconds']:.0f} s)", flush=True)
        if snapshot != "none":
            r = bench_snapshots(snapshot, data, args, seed)
            runs.append(r)
            print(f"  seed {seed} {r['model']}: seen {r['esr']['seen']:.4f}, unseen {_f(r['esr']['unseen'])}, "
                  f"outside {_f(r['esr']['outside'])} ({r['train_seconds']:.0f} s)", flush=True)

    rows, table = [], {}
    for name in dict.fromkeys(r["model"] for r in runs):
        mine = [r for r in runs if r["model"] == name]
        mean = {k: (float(np.mean([r["esr"][k] for r in mine])) if mine[0]["esr"][k] is not None else None)
                for k in ("seen", "unseen", "outside")}
        table[name] = {"params": mine[0]["params"], "macs_per_sample": mine[0]["macs_per_sample"],
                       "train_seconds": float(np.mean([r["train_seconds"] for r in mine])), "esr": mean,
                       "unseen_over_seen": (mean["unseen"] / mean["seen"]) if mean["unseen"] is not None else None}
        t = table[name]
        rows.append([name, f"{t['params']:,}", f"{t['macs_per_sample']:,}", f"{t['train_seconds']:.0f}",
                     _f(mean["seen"]), _f(mean["unseen"]), _f(mean["outside"]), _f(t["unseen_over_seen"], ".2f")])
    print(f"\nMean ESR per setting role ({len(args.seeds)} seed(s); unseen: interpolation, outside: extrapolation):")
    print(_table(["model", "params", "MAC/sample", "train s", "ESR seen", "ESR unseen", "ESR outside",
                  "unseen/seen"], rows))
    knob = {n: t for n, t in table.items() if "snapshots" not in n}
    if knob:
        best = min(knob, key=lambda n: knob[n]["esr"]["unseen"] if knob[n]["esr"]["unseen"] is not None
                   else knob[n]["esr"]["seen"])
        others = sorted((t["esr"]["unseen"] or t["esr"]["seen"], n) for n, t in knob.items() if n != best)
        b = knob[best]["esr"]["unseen"] or knob[best]["esr"]["seen"]
        if others:
            print(f"\nbest conditioning at unseen settings: {best} (ESR {b:.4f}); next {others[0][1]} "
                  f"({others[0][0]:.4f}, {others[0][0] / b:.2f}x)")
    out = Path(args.out) if args.out else Path(__file__).resolve().parent / "results" / (
        f"knobs_{args.size}_{platform.machine()}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "command": "python " + " ".join(sys.argv), "machine": {"cpu": _cpu(), "cores": os.cpu_count(),
                                                             "load_average": os.getloadavg(),
                                                             "torch": torch.__version__, "threads": 1},
        "data": {"points": args.points, "seconds": args.seconds, "knobs": data.knobs.declaration(), "roles": roles,
                 "holdout": data.info["holdout"]},
        "recipe": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seeds": args.seeds},
        "wall_seconds": round(time.time() - started, 1), "table": table, "runs": runs}, indent=1, default=float))
    print(f"\nwritten {out} ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
