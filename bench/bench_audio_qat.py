"""int8 after PTQ vs after QAT vs after the same epochs of float fine-tuning, from one trained audio run (figures,
not a test; run by hand).

    ./run.sh configs/audio_amp_capture.yaml                     # any finished audio run
    python bench/bench_audio_qat.py projects/<run> --epochs 3

From the run's ``checkpoints/best.ckpt`` (model and capture from its ``config.yaml``): ``ptq`` exports the trained
model as it is; ``qat`` is the run's own QAT step (``training.quantization: qat``: int8 fake-quant, a tenth of the
learning rate); ``float`` is the control, the same epochs, learning rate, batches and loss without the fake-quant,
so what QAT adds beyond more training shows. Each is exported and rendered block by block (ONNX int8, TFLite int8
on LiteRT's reference kernels): validation ESR vs the target and vs its own float model (the rounding error).
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ARTIFACTS = ["PyTorch float", "ONNX int8", "TFLite int8 (LiteRT)"]


def float_finetune(model, X, Y, epochs: int, lr: float, batch_size: int, seed: int, task_type: str):
    """qat_finetune's loop (same order of batches, optimizer, task loss) without the fake-quant."""
    from tinyverse.registry import TASKS

    task = TASKS.get(task_type)(model=model, learning_rate=lr)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*self\.log\(\)` but the `self\.trainer` reference.*")
        for _ in range(epochs):
            task.train()
            order = torch.randperm(len(X), generator=g).numpy()
            for s in range(0, len(X), batch_size):
                idx = order[s:s + batch_size]
                if len(idx) < 2:
                    continue
                opt.zero_grad()
                task.training_step((torch.as_tensor(X[idx]), torch.as_tensor(Y[idx])), 0).backward()
                opt.step()
    model.eval()
    model.prepare_for_inference()
    return model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", type=Path, help="a finished audio run (its config.yaml and checkpoints/best.ckpt)")
    ap.add_argument("--epochs", type=int, default=3, help="QAT / float fine-tuning epochs")
    ap.add_argument("--calib", type=int, default=64, help="int8 calibration blocks (the audio runner's default)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from modelmaker.ai_modules.audio.quantization import qat_stage
    from modelmaker.config import load_config
    from tinyverse.audio.verify import export_and_verify
    from tinyverse.models import create_model
    from tinyverse.registry import DATASETS
    from tinyverse.training import load_task_weights

    cfg = load_config(args.run_dir / "config.yaml")
    t = cfg.training
    cfg = cfg.model_copy(update={"training": t.model_copy(update={"quantization": "qat", "qat_epochs": args.epochs})})
    data = DATASETS.get(cfg.dataset.name)(**cfg.dataset.params).load()
    base = create_model(t.model_name, **t.model_args)
    load_task_weights(base, args.run_dir / "checkpoints" / "best.ckpt")
    base.eval()
    base.prepare_for_inference()
    rf = int(base.receptive_field)
    X, Y = data.windows(rf)
    Xv, Yv = data.validation(rf)
    t0, t1 = data.layout.train
    out = Path(tempfile.mkdtemp(prefix="bench_audio_qat_"))
    variants = {
        "ptq": lambda m: m,
        "float": lambda m: float_finetune(m, X, Y, args.epochs, t.learning_rate * 0.1, t.batch_size,
                                          cfg.common.seed, cfg.common.task_type),
        "qat": lambda m: (qat_stage(cfg, m, data, rf, out, Xv, Yv), m)[1],
    }
    print(f"{t.model_name}, {args.epochs} epoch(s) of fine-tuning at lr {t.learning_rate * 0.1:g}; validation ESR "
          "vs target (vs own float)")
    print(f"{'variant':>8} | " + " | ".join(f"{a:>24}" for a in ARTIFACTS))
    for name, make in variants.items():
        model = make(copy.deepcopy(base))
        res = export_and_verify(model, out / name, Xv[0], Yv[0], data.x[t0:t1], data.sample_rate, 512,
                                ["onnx_int8", "tflite_int8"], num_calib=args.calib)  # EXPORTERS behind the rows
        rows = {r["artifact"]: r for r in res["rows"]}
        cells = [f"{'error':>24}" if "error" in rows[a] else
                 f"{rows[a]['esr_vs_target']:.4f} ({rows[a]['esr_vs_torch']:.2e})".rjust(24) for a in ARTIFACTS]
        print(f"{name:>8} | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
