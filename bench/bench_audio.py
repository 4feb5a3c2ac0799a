"""Benchmark the audio presets on the generated capture (not a test; run by hand).

    python bench/bench_audio.py                    # speed only: params, MAC/sample, train samples/s, render RTF
    python bench/bench_audio.py --epochs 5         # also train each preset and report validation ESR + wall time
    python bench/bench_audio.py --presets nano feather --seconds 20 --threads 1

Prints one row per preset: params, MAC/sample, training samples/s (output samples through forward+backward),
wall time, validation ESR, streaming-ONNX ESR vs PyTorch, render real-time factor (torch streaming, ONNX).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", nargs="+", default=["nano", "feather", "lite", "standard"])
    ap.add_argument("--seconds", type=float, default=20.0, help="generated capture length")
    ap.add_argument("--epochs", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--ny", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--block-size", type=int, default=512)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from tinyverse.audio import esr
    from tinyverse.audio.dataset import NamCaptureDataset
    from tinyverse.audio.export import export_streaming_onnx, onnx_stream_render
    from tinyverse.audio.models import device_summary
    from tinyverse.audio.stream import StreamProcessor, process_file
    from tinyverse.audio.training import AmpModellingTask
    from tinyverse.models import create_model

    data = NamCaptureDataset(generated_seconds=args.seconds, ny=args.ny).load()
    sr = data.sample_rate
    rows = []
    for preset in args.presets:
        name = f"NAM_WaveNet_{preset}"
        torch.manual_seed(0)
        model = create_model(name)
        s = device_summary(model)
        rf = model.receptive_field
        X, Y = data.windows(rf)
        Xv, Yv = data.validation(rf)
        task = AmpModellingTask(model, epochs=max(args.epochs, 1))
        opt = task.configure_optimizers()["optimizer"]
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, 0.993)
        # training speed: a few steps
        xb, yb = torch.as_tensor(X[:args.batch_size]), torch.as_tensor(Y[:args.batch_size])
        t = time.perf_counter()
        steps = 3
        for _ in range(steps):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(*task._pred(xb, yb))
            loss.backward()
            opt.step()
        sps = steps * yb.numel() / (time.perf_counter() - t)
        wall, val = None, None
        if args.epochs:
            t = time.perf_counter()
            rng = np.random.default_rng(0)
            for _ in range(args.epochs):
                for idx in np.array_split(rng.permutation(len(X)), max(1, len(X) // args.batch_size)):
                    opt.zero_grad()
                    p, y = task._pred(torch.as_tensor(X[idx]), torch.as_tensor(Y[idx]))
                    torch.nn.functional.mse_loss(p, y).backward()
                    opt.step()
                sched.step()
            wall = time.perf_counter() - t
        model.eval()
        with torch.no_grad():
            pred = model(torch.as_tensor(Xv)).numpy()[0]
        val = esr(Yv[0], pred)
        xs = data.x[:sr * 2]
        _, secs = process_file(StreamProcessor(model), xs, args.block_size)
        rtf_torch = secs / (len(xs) / sr)
        onnx_path = export_streaming_onnx(model, f"/tmp/bench_{preset}.onnx")
        t = time.perf_counter()
        yo = onnx_stream_render(onnx_path, model, xs, args.block_size)
        rtf_onnx = (time.perf_counter() - t) / (len(xs) / sr)
        from tinyverse.audio.nam import render

        onnx_esr = esr(render(model, xs, dtype=torch.float32).numpy(), yo)
        rows.append([preset, s["params"], s["macs_per_sample"], round(sps), None if wall is None else round(wall, 1),
                     f"{val:.4f}", f"{onnx_esr:.1e}", f"{rtf_torch:.3f}", f"{rtf_onnx:.3f}"])
    header = ["preset", "params", "MAC/sample", "train samples/s", f"wall s ({args.epochs} ep)", "val ESR",
              "ONNX ESR vs torch", "RTF torch", "RTF onnx"]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    print("int8: not measured (no audio PTQ path yet)")


if __name__ == "__main__":
    main()
