"""DDP on 2 CPU processes (gloo): one pipeline, one run folder, rank 0 writes every artifact, the trained weights
come back to the process that exports them."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from tinyverse.training import ClassificationTask, TrainConfig, fit, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(0.0, 1.0, (n, 1, 32, 1)) + np.where(y == 1, 0.5, -0.5)[:, None, None, None]
    return x.astype(np.float32), y.astype(np.int64)


def test_fit_on_two_processes_returns_the_trained_weights(tmp_path):
    torch.manual_seed(0)
    task = ClassificationTask(nn.Sequential(nn.Flatten(), nn.Linear(32, 8), nn.ReLU(), nn.Linear(8, 2)),
                              num_classes=2, learning_rate=0.01, epochs=2)
    initial = {k: v.clone() for k, v in task.state_dict().items()}
    cfg = TrainConfig(epochs=2, batch_size=32, accelerator="cpu", devices=2, strategy="ddp", progress_bar=False)
    result = fit(task, make_data(256, 0), make_data(128, 1), tmp_path, cfg)

    last = load_checkpoint(result.last_checkpoint)
    # each of the 2 ranks saw half of the 256 samples: 4 steps of 32 per epoch (one process would take 8)
    assert last["global_step"] == 2 * 4
    assert result.epochs_run == 2  # read back from the workers' checkpoint, not this process's idle trainer
    best = last["callbacks"][next(k for k in last["callbacks"]
                                  if k.startswith("ModelCheckpoint") and "'monitor': 'val_acc'" in k)]
    assert result.best_score == float(best["best_model_score"]) and math.isfinite(result.best_score)
    assert result.best_checkpoint == tmp_path / "checkpoints" / "best.ckpt"
    # this process now holds the weights the workers trained (the last epoch's), not the initial ones
    for key, value in task.state_dict().items():
        assert torch.equal(value, last["state_dict"][key]), key
    assert any(not torch.equal(initial[k], last["state_dict"][k]) for k in initial)
    assert [int(r.split(",")[0]) for r in result.metrics_csv.read_text().splitlines()[1:]] == [0, 1]


def test_pipeline_with_two_cpu_processes_runs_once(tmp_path):
    """The command line as a user types it: Lightning's default ``ddp`` would re-run it in rank 1 (a second data
    load, a second run folder, and the run dying); here rank 1 only trains."""
    data = {
        "common": {"task_type": "classification", "modality": "timeseries", "run_name": "{date}-{time}_{model_name}",
                   "projects_path": str(tmp_path / "projects"), "seed": 0, "verbose": False},
        "dataset": {"name": "ucr", "ucr_name": "ItalyPowerDemand", "val_fraction": 0.2},
        "training": {"model_name": "CLS_500_NPU", "epochs": 2, "batch_size": 16, "learning_rate": 0.01,
                     "accelerator": "cpu", "devices": 2, "strategy": "ddp"},
        "testing": {"enable": True},
        "compilation": {"enable": False},
    }
    cfg = tmp_path / "ddp.yaml"
    cfg.write_text(yaml.safe_dump(data))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "modelmaker.cli", "run", str(cfg)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    folders = list((tmp_path / "projects").iterdir())
    assert len(folders) == 1, folders  # one pipeline, one run folder
    run_dir = folders[0]
    assert proc.stderr.count("run folder ") == 1 and proc.stderr.count("dataset ItalyPowerDemand") == 1
    assert f"run folder: {run_dir}" in proc.stdout

    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "complete" and status["attempts"] == []
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["state"] == "complete" and summary["training"]["epochs_run"] == 2
    for name in ("config.yaml", "run.log", "dataset.json", "model_spec.yaml", "metrics.csv", "loss_curves.png",
                 "model.onnx", "report.md", "checkpoints/best.ckpt", "checkpoints/last.ckpt"):
        assert (run_dir / name).is_file(), name
    # 2 ranks split the training series: ceil(ceil(53 / 2) / 16) = 2 steps per epoch (one process: 4)
    train = summary["dataset"]["counts"]["train"]
    assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 2 * math.ceil(
        math.ceil(train / 2) / 16)
    assert summary["onnx"]["parity"] is True and np.isfinite(summary["test"]["accuracy"])
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 1 + 2
