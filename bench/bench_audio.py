"""Benchmark the NAM A1 WaveNet presets on the generated capture (figures, not a test; run by hand).

    python bench/bench_audio.py --epochs 2                     # all four presets, a short training budget
    python bench/bench_audio.py --presets nano feather --epochs 10 --val-seconds 2
    python bench/bench_audio.py --models NAM_LSTM_nano --epochs 2   # any audio MODEL_REGISTRY name

For each preset: params, MAC/sample, training throughput (output samples through forward + backward of the
training loss, MSE + pre-emphasised multi-resolution STFT, per second), training wall time, validation ESR of the
best epoch, then every streaming artifact (PyTorch float, ONNX float / int8, TFLite float / int8 / int16x8 on
LiteRT's reference kernels and in TFLite Micro) rendering the validation audio block by block: ESR vs the
target, ESR vs PyTorch, and the render real-time factor (processing seconds per second of audio, one thread).
Training uses one thread per process (what the runner does on a 2-core machine).
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _fmt(v, spec: str) -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def train(model, X, Y, Xv, Yv, epochs: int, batch_size: int, lr: float, seed: int = 0):
    """NAM's recipe (Adam, ExponentialLR 0.993, MSE + 2e-4 · MRSTFT of pre-emphasised signals), best epoch by
    validation ESR. Returns (best model, best ESR, samples/s, wall seconds)."""
    from tinyverse.audio import esr
    from tinyverse.audio.training import AmpModellingTask, multi_resolution_stft_loss, pre_emphasis

    task = AmpModellingTask(model, epochs=epochs, learning_rate=lr)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, 0.993)
    rng = np.random.default_rng(seed)
    best, best_esr, samples = copy.deepcopy(model), float("inf"), 0
    t0 = time.perf_counter()
    train_s = 0.0
    for _ in range(epochs):
        model.train()
        ts = time.perf_counter()
        for idx in np.array_split(rng.permutation(len(X)), max(1, len(X) // batch_size)):
            opt.zero_grad()
            p, y = task._pred(torch.as_tensor(X[idx]), torch.as_tensor(Y[idx]))
            loss = torch.nn.functional.mse_loss(p, y) + 2e-4 * multi_resolution_stft_loss(
                pre_emphasis(p, 0.85), pre_emphasis(y, 0.85))
            loss.backward()
            opt.step()
            samples += y.numel()
        sched.step()
        train_s += time.perf_counter() - ts
        model.eval()
        with torch.no_grad():
            e = esr(Yv[0], model(torch.as_tensor(Xv)).numpy()[0])
        if e < best_esr:
            best, best_esr = copy.deepcopy(model), e
    return best.eval(), best_esr, samples / max(train_s, 1e-9), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["nano", "feather", "lite", "standard"])
    ap.add_argument("--models", nargs="*", default=[], help="extra MODEL_REGISTRY names (e.g. NAM_LSTM_nano)")
    ap.add_argument("--seconds", type=float, default=20.0, help="generated capture length (the default config's)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--lr", type=float, default=0.004)
    ap.add_argument("--ny", type=int, default=8192)
    ap.add_argument("--block-size", type=int, default=512, help="streaming block (samples)")
    ap.add_argument("--val-seconds", type=float, default=1.0,
                    help="seconds of the validation block rendered through each artifact")
    ap.add_argument("--num-calib", type=int, default=32, help="int8 calibration blocks from the training audio")
    ap.add_argument("--exporters", nargs="*", default=None,
                    help="EXPORTERS names (default: tinyverse.audio.verify.DEFAULT_EXPORTERS)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from tinyverse.audio.dataset import NamCaptureDataset
    from tinyverse.audio.models import device_summary
    from tinyverse.audio.nam import NAMLSTM
    from tinyverse.audio.verify import export_and_verify
    from tinyverse.models import create_model

    data = NamCaptureDataset(generated_seconds=args.seconds, ny=args.ny).load()
    sr = data.sample_rate
    t0, t1 = data.layout.train
    names = [f"NAM_WaveNet_{p}" for p in args.presets] + list(args.models)
    print(f"generated capture: {args.seconds:g} s at {sr} Hz ({(t1 - t0) / sr:.1f} s training audio); "
          f"{args.epochs} epochs, batch {args.batch_size}, lr {args.lr}; streaming blocks of {args.block_size}, "
          f"{args.val_seconds:g} s of validation audio per artifact; torch threads 1", flush=True)
    summary_rows, esr_rows, rtf_rows = [], [], []
    for name in names:
        torch.manual_seed(0)
        model = create_model(name)
        cost = device_summary(model)
        rf = int(model.receptive_field)
        X, Y = data.windows(rf)
        Xv, Yv = data.validation(rf)
        model, val_esr, sps, wall = train(model, X, Y, Xv, Yv, args.epochs, args.batch_size, args.lr)
        if isinstance(model, NAMLSTM):
            model.settle_initial_state(48_000)
        n = min(int(args.val_seconds * sr), Yv.shape[1])
        x_val, target = Xv[0][:n + rf - 1], Yv[0][:n]
        with tempfile.TemporaryDirectory(prefix="bench_audio_") as tmp:
            res = export_and_verify(model, tmp, x_val, target, data.x[t0:t1], sr, args.block_size, args.exporters,
                                    num_calib=args.num_calib)
        rows = {r["artifact"]: r for r in res["rows"]}
        artifacts = list(rows)  # the same rows for every model: the exporters' rows, in order
        get = lambda a, k: rows.get(a, {}).get(k)  # noqa: E731
        summary_rows.append([name.replace("NAM_WaveNet_", ""), f"{cost['params']:,}", f"{cost['macs_per_sample']:,}",
                             f"{sps:,.0f}", f"{wall:.0f}", f"{val_esr:.4f}",
                             _fmt(get("PyTorch float", "esr_vs_target"), ".4f"),
                             _fmt(get("ONNX int8", "esr_vs_target"), ".4f"),
                             _fmt(get("TFLite int8 (LiteRT)", "esr_vs_target"), ".4f"),
                             _fmt(get("TFLite int8 (TFLM)", "esr_vs_target"), ".4f"),
                             _fmt(get("TFLite int16x8 (TFLM)", "esr_vs_target"), ".4f")])
        esr_rows.append([name.replace("NAM_WaveNet_", "")] + [
            rows[a]["error"][:60] if "error" in rows[a] else _fmt(rows[a]["esr_vs_torch"], ".1e") for a in artifacts])
        rtf_rows.append([name.replace("NAM_WaveNet_", "")] + [
            "failed" if "error" in rows[a] else _fmt(rows[a]["rtf"], ".3f") for a in artifacts])
        errors = [f"  {a}: {r['error']}" for a, r in rows.items() if "error" in r]
        print(f"{name}: done ({wall:.0f} s training, val ESR {val_esr:.4f})"
              + ("\n" + "\n".join(errors) if errors else ""), flush=True)
    print("\nTraining and ESR vs target (the float model on the whole block; the rest rendered block by block):")
    print(_table(["preset", "params", "MAC/sample", "train samples/s", f"wall s ({args.epochs} ep)",
                  "val ESR (best ep)", "PyTorch stream", "ONNX int8", "TFLite int8 LiteRT", "TFLite int8 TFLM", "TFLite int16x8 TFLM"],
                 summary_rows))
    print("\nESR vs PyTorch float, per artifact:")
    print(_table(["preset", *artifacts], esr_rows))
    print("\nRender real-time factor (processing s / audio s; < 1 is faster than real time), per artifact:")
    print(_table(["preset", *artifacts], rtf_rows))


if __name__ == "__main__":
    main()
