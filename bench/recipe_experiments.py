"""Short training runs behind the default classification recipe (issue #15 item 4): not a test, not the bench.

    python bench/recipe_experiments.py --sets GunPoint BasicMotions --recipes default long_aug --seeds 42
    python bench/recipe_experiments.py --list                     # the recipes below

Each (set, recipe, seed) loads the set as the runner does (official train/test split, 20 % of train held out for
validation, per-channel standardisation), fits the input to the model and F28P55 as the runner does
(:mod:`tinyverse.timeseries.data.input_fit`), trains the float model with the recipe and prints the float test
accuracy (no export: that is bench/bench_ucr.py's job). One JSON line per run is appended to
``bench/results/recipe_experiments.jsonl``; the recipe of configs/timeseries_classification.yaml is the one these
lines support across sets (no per-set tuning).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "recipe_experiments.jsonl"

BASE = dict(model="CLS_4k_NPU", model_args={}, epochs=150, batch_size=16, learning_rate=0.005, weight_decay=1e-4,
            optimizer="adamw", lr_scheduler="cosine", label_smoothing=0.1, monitor=("val_loss", "min"),
            augmentation={"time_shift": 0.1, "scale": 0.2, "noise": 0.05}, input_length="auto", min_length=None,
            max_length=None, variable="pad", teacher=None, val_fraction=0.2, keep="best")
# Named variations of the recipe the default config shipped with before issue #15 ("gunpoint").
RECIPES = {
    "gunpoint": {"input_length": None},
    "default": {},
    "aug_warp": {"augmentation": {"time_shift": 0.1, "scale": 0.2, "noise": 0.05, "time_warp": 0.1,
                                  "magnitude_warp": 0.1}},
    "no_aug": {"augmentation": {}},
    "ep300": {"epochs": 300},
    "ep75": {"epochs": 75},
    "ep10": {"epochs": 10},
    "monitor_acc": {"monitor": ("val_acc", "max")},
    "wd1e-3": {"weight_decay": 1e-3},
    "dropout": {"model_args": {"dropout": 0.2}},
    "bs32": {"batch_size": 32},
    "lr2e-3": {"learning_rate": 0.002},
    "stretch": {"variable": "stretch"},
    "len128": {"max_length": 128},
    "len256": {"max_length": 256},
    "len1024": {"max_length": 1024},
    "len2048": {"max_length": 2048},
    "min32": {"min_length": 32},
    "min128": {"min_length": 128},
    "cls13k": {"model": "CLS_13k_NPU"},
    "cls20k": {"model": "CLS_20k_NPU"},
    "cls55k": {"model": "CLS_55k_NPU"},
    "res5k": {"model": "CLS_RES_5k_NPU"},
    # wider than the ladder's top (still fits F28P55: ~150k params, flash < 1 MB, RAM < 136 kB at 512 steps)
    "wide": {"model": "CLS_55k_NPU", "model_args": {"channels": [64, 128, 128, 128, 128]}},
    "ep500": {"epochs": 500},
    "val10": {"val_fraction": 0.1},
    # FCN's protocol: every official training series trains, the last epoch of the fixed schedule is kept
    "whole": {"val_fraction": 0.0, "keep": "last"},
    "warp05": {"augmentation": {"time_shift": 0.1, "scale": 0.2, "noise": 0.05, "time_warp": 0.05,
                                "magnitude_warp": 0.05}},
    "lr1e-3": {"learning_rate": 0.001},
    "shift": {"augmentation": {"time_shift": 0.1}},
    "scale": {"augmentation": {"scale": 0.2}},
    "noise": {"augmentation": {"noise": 0.05}},
    "shift_scale": {"augmentation": {"time_shift": 0.1, "scale": 0.2}},
    "shift_noise02": {"augmentation": {"time_shift": 0.1, "noise": 0.02}},
    "shift_noise05": {"augmentation": {"time_shift": 0.1, "noise": 0.05}},
    "magwarp": {"augmentation": {"time_shift": 0.1, "scale": 0.2, "noise": 0.05, "magnitude_warp": 0.1}},
    "ls0": {"label_smoothing": 0.0},
    # distillation from a Fawaz FCN teacher (full width, or half width: ~4x fewer MACs to train on a CPU)
    "kd_fcn": {"teacher": {"model": "TEACHER_FCN", "args": {}, "temperature": 4.0, "alpha": 0.5}},
    "kd_fcn_half": {"teacher": {"model": "TEACHER_FCN", "args": {"channels": [64, 128, 64]}, "temperature": 4.0,
                                "alpha": 0.5}},
    "kd_a09": {"teacher": {"model": "TEACHER_FCN", "args": {"channels": [64, 128, 64]}, "temperature": 4.0,
                           "alpha": 0.9}},
}
TEACHERS = ROOT / "bench" / "work" / "recipe_teachers"  # trained teachers, reused across student variants


def recipe(name: str) -> dict:
    out = dict(BASE)
    for part in name.split("+"):  # "cls13k+ep300" combines variations
        if part not in RECIPES:
            sys.exit(f"unknown recipe {part!r}; known: {', '.join(RECIPES)}")
        out.update(RECIPES[part])
    return out


def int8_input(X, X_calibration):
    """``X`` rounded to the grid an int8 export's input uses (affine, range from the calibration data and 0, as the
    TFLite converter sets it): the float model on these inputs shows what the input's 256 levels alone cost."""
    lo, hi = min(0.0, float(X_calibration.min())), max(0.0, float(X_calibration.max()))
    scale = (hi - lo) / 255
    zero = round(-128 - lo / scale)
    q = np.clip(np.round(X / scale) + zero, -128, 127)
    return ((q - zero) * scale).astype(np.float32)


def run_one(set_name: str, name: str, seed: int, threads: int) -> dict:
    import torch

    from tinyverse.devices import check_model
    from tinyverse.models import create_model
    from tinyverse.timeseries.data import UCRDataset
    from tinyverse.timeseries.data import input_fit as fit_mod
    from tinyverse.training import TrainConfig, fit, load_task_weights, predict
    from tinyverse.training.tasks import ClassificationTask

    torch.set_num_threads(threads)
    r = recipe(name)
    data = UCRDataset(set_name, val_fraction=r["val_fraction"], seed=seed).load()

    def accepts(c: int, length: int) -> list[str]:
        try:
            model = create_model(r["model"], input_shape=[c, length], num_classes=data.num_classes, **r["model_args"])
        except Exception as err:  # noqa: BLE001 - a shape the model cannot take is a problem, not a crash
            return [str(err)]
        return check_model(model, "F28P55").violations

    saved = fit_mod.AUTO_MIN_LENGTH, fit_mod.AUTO_MAX_LENGTH
    fit_mod.AUTO_MIN_LENGTH = r["min_length"] or saved[0]
    fit_mod.AUTO_MAX_LENGTH = r["max_length"] or saved[1]
    try:
        chosen = fit_mod.choose_input_fit(data, "auto", r["input_length"], accepts, variable=r["variable"])
    finally:
        fit_mod.AUTO_MIN_LENGTH, fit_mod.AUTO_MAX_LENGTH = saved
    data = fit_mod.apply_input_fit(data, chosen)
    cfg = TrainConfig(epochs=r["epochs"], batch_size=r["batch_size"], seed=seed, accelerator="cpu", devices=1,
                      early_stopping_patience=None, monitor=r["monitor"][0], monitor_mode=r["monitor"][1],
                      progress_bar=False)
    X = lambda a: a[..., None]  # noqa: E731 - (N, C, L) -> (N, C, L, 1)

    def train(model, distillation=None):
        task = ClassificationTask(model, data.num_classes, optimizer=r["optimizer"], learning_rate=r["learning_rate"],
                                  weight_decay=r["weight_decay"], lr_scheduler=r["lr_scheduler"], epochs=r["epochs"],
                                  label_smoothing=r["label_smoothing"], augmentation=r["augmentation"],
                                  teacher=distillation)
        with tempfile.TemporaryDirectory() as tmp:
            val = (X(data.X_val), data.y_val) if len(data.y_val) else None
            result = fit(task, (X(data.X_train), data.y_train), val, Path(tmp), cfg)
            load_task_weights(task, result.checkpoint(r["keep"]))
        return task.model.eval()

    accuracy = lambda m, Xt=None: float((predict(m, X(data.X_test if Xt is None else Xt)).argmax(1)  # noqa: E731
                                         == data.y_test).mean())
    t0 = time.time()
    extra = {}
    distillation = None
    if r["teacher"]:
        from tinyverse.training.distill import Distillation

        t = r["teacher"]
        torch.manual_seed(seed)
        teacher = create_model(t["model"], input_shape=list(data.input_shape), num_classes=data.num_classes,
                               **t["args"])
        key = f"{set_name}-{seed}-{t['model']}-{'-'.join(map(str, t['args'].get('channels', [])))}-{r['epochs']}.pt"
        cached = TEACHERS / key
        if cached.is_file():
            teacher.load_state_dict(torch.load(cached, weights_only=True))
        else:
            teacher = train(teacher)
            TEACHERS.mkdir(parents=True, exist_ok=True)
            torch.save(teacher.state_dict(), cached)
        extra = {"teacher": t["model"], "teacher_params": sum(p.numel() for p in teacher.parameters()),
                 "teacher_acc": round(accuracy(teacher.eval()), 4), "temperature": t["temperature"],
                 "alpha": t["alpha"]}
        distillation = Distillation(teacher, t["temperature"], t["alpha"])
    torch.manual_seed(seed)
    model = create_model(r["model"], input_shape=list(data.input_shape), num_classes=data.num_classes,
                         **r["model_args"])
    model = train(model, distillation)
    seconds = time.time() - t0
    return {"set": set_name, "recipe": name, "seed": seed, "test_acc": round(accuracy(model), 4),
            "test_acc_int8_input": round(accuracy(model, int8_input(data.X_test, data.X_train)), 4),
            "epochs": r["epochs"], "model": r["model"], "params": sum(p.numel() for p in model.parameters()),
            "input": list(data.input_shape), "fit": chosen.describe(), "train_seconds": round(seconds, 1),
            "train_series": len(data.y_train), "kept": r["keep"], **extra}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", nargs="+", default=["GunPoint"])
    p.add_argument("--recipes", nargs="+", default=["default"])
    p.add_argument("--seeds", nargs="+", type=int, default=[42])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--list", action="store_true")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    if args.list:
        for k, v in RECIPES.items():
            print(f"{k:12s} {v}")
        return
    import logging

    logging.disable(logging.INFO)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for set_name in args.sets:
        for name in args.recipes:
            for seed in args.seeds:
                row = run_one(set_name, name, seed, args.threads)
                print(json.dumps(row), flush=True)
                with args.out.open("a") as f:
                    f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
