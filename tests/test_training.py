"""Training on Lightning: a tiny separable problem, checkpoints, metrics.csv, seeding, resume, plots."""
from __future__ import annotations

import copy
import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tinyverse.registry import DATASETS, MODEL_REGISTRY, TASKS
from tinyverse.training import (
    ClassificationTask,
    TaskModule,
    TrainConfig,
    confusion_matrix,
    evaluate,
    fit,
    load_checkpoint,
    load_task_weights,
    plot_confusion_matrix,
    plot_loss_curves,
    predict,
)

L_SEQ = 32
BATCH = 32


def make_data(n: int, seed: int, shift: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Class = sign of the series mean; inputs shaped (N, C, L, 1) like the time-series pipeline."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(0.0, 1.0, (n, 1, L_SEQ, 1)) + np.where(y == 1, shift, -shift)[:, None, None, None]
    return x.astype(np.float32), y.astype(np.int64)


TRAIN = make_data(256, seed=0)
VAL = make_data(128, seed=1)


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(L_SEQ, 8), nn.ReLU(), nn.Linear(8, 2))


def task(model: nn.Module | None = None, **kwargs) -> ClassificationTask:
    kwargs.setdefault("learning_rate", 0.01)
    kwargs.setdefault("epochs", 4)
    return ClassificationTask(model if model is not None else tiny_model(), num_classes=2, **kwargs)


def cfg(**kwargs) -> TrainConfig:
    kwargs.setdefault("epochs", 4)
    kwargs.setdefault("batch_size", BATCH)
    kwargs.setdefault("progress_bar", False)
    return TrainConfig(**kwargs)


def read_csv(path: Path) -> list[dict[str, str]]:
    with Path(path).open(newline="") as f:
        return list(csv.DictReader(f))


def weights(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_classification_is_registered():
    assert TASKS.get("classification") is ClassificationTask


def test_fit_learns_and_writes_run_files(tmp_path):
    t = task()
    result = fit(t, TRAIN, VAL, tmp_path, cfg(epochs=4))

    assert result.best_checkpoint == tmp_path / "checkpoints" / "best.ckpt"
    assert result.last_checkpoint == tmp_path / "checkpoints" / "last.ckpt"
    assert result.best_checkpoint.is_file() and result.last_checkpoint.is_file()
    assert result.epochs_run == 4

    rows = read_csv(result.metrics_csv)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]  # one row per epoch, train and val merged
    for column in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
        assert all(r[column] for r in rows), column
    val_acc = [float(r["val_acc"]) for r in rows]
    assert max(val_acc) > 0.9
    assert result.best_score == pytest.approx(max(val_acc))
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])

    # The best checkpoint loads safely (weights_only) into a fresh task and reproduces the best val_acc.
    fresh = load_task_weights(task(tiny_model(seed=123)), result.best_checkpoint)
    logits = predict(fresh.model, VAL[0], batch_size=50)
    assert logits.shape == (len(VAL[1]), 2)
    assert (logits.argmax(1) == VAL[1]).mean() == pytest.approx(result.best_score)
    metrics = evaluate(fresh, VAL, cfg())
    assert metrics["test_acc"] == pytest.approx(result.best_score)
    assert metrics["test_loss"] > 0


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    init = tiny_model()
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        t = task(copy.deepcopy(init))
        fit(t, TRAIN, VAL, tmp_path / name, cfg(epochs=2, seed=seed))
        runs[name] = weights(t)
    for key in runs["a"]:
        assert torch.equal(runs["a"][key], runs["b"][key]), key
    # The seed drives the shuffle order, so another seed must give other weights.
    assert any(not torch.equal(runs["a"][k], runs["c"][k]) for k in runs["a"])


def test_resume_continues_where_last_checkpoint_left_off(tmp_path):
    init = tiny_model()
    # Easy data: val_acc saturates in epoch 0, so later epochs never improve the monitored metric.
    # last.ckpt must still follow every epoch (Lightning 2.6's save_last=True would not).
    easy_train, easy_val = make_data(256, seed=0, shift=2.0), make_data(128, seed=1, shift=2.0)
    steps_per_epoch = 256 // BATCH

    first = fit(task(copy.deepcopy(init)), easy_train, easy_val, tmp_path / "run", cfg(epochs=2))
    ckpt = load_checkpoint(first.last_checkpoint)
    assert (ckpt["epoch"], ckpt["global_step"]) == (1, 2 * steps_per_epoch)

    resumed_task = task(tiny_model(seed=99))  # other init: the weights must come from the checkpoint
    resumed = fit(resumed_task, easy_train, easy_val, tmp_path / "run", cfg(epochs=4),
                  resume_from=first.last_checkpoint)
    assert resumed.epochs_run == 4
    assert [int(r["epoch"]) for r in read_csv(resumed.metrics_csv)] == [0, 1, 2, 3]
    # The resumed fit trained only epochs 2 and 3; nothing was re-trained.
    second_log = read_csv(tmp_path / "run" / "logs" / "version_1" / "metrics.csv")
    assert {int(r["epoch"]) for r in second_log if r["epoch"]} == {2, 3}
    assert load_checkpoint(resumed.last_checkpoint)["global_step"] == 4 * steps_per_epoch

    # Resuming is exact: same weights as four epochs without a break.
    straight = task(copy.deepcopy(init))
    fit(straight, easy_train, easy_val, tmp_path / "straight", cfg(epochs=4))
    for key, value in weights(straight).items():
        assert torch.allclose(value, resumed_task.state_dict()[key], atol=1e-6), key


def test_resume_from_missing_checkpoint_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        fit(task(), TRAIN, VAL, tmp_path, cfg(), resume_from=tmp_path / "nope.ckpt")


def test_early_stopping_stops_on_a_plateau(tmp_path):
    t = task(learning_rate=0.0, lr_scheduler="none", epochs=20)
    result = fit(t, TRAIN, VAL, tmp_path, cfg(epochs=20, early_stopping_patience=2))
    # Epoch 0 sets the best; epochs 1 and 2 do not improve it; patience 2 stops after epoch 2.
    assert result.epochs_run == 3
    assert len(read_csv(result.metrics_csv)) == 3


def test_without_validation_monitors_training_metric(tmp_path):
    result = fit(task(), TRAIN, None, tmp_path, cfg(epochs=2))
    rows = read_csv(result.metrics_csv)
    assert len(rows) == 2 and "val_loss" not in rows[0]
    assert result.best_score == pytest.approx(max(float(r["train_acc"]) for r in rows))
    assert result.best_checkpoint.is_file()


@pytest.mark.parametrize("optimizer,scheduler", [("sgd", "onecycle"), ("adamw", "cosine"), ("adam", "none")])
def test_optimizer_and_scheduler_choices_train(tmp_path, optimizer, scheduler):
    t = task(optimizer=optimizer, lr_scheduler=scheduler, learning_rate=0.05, weight_decay=1e-4,
             label_smoothing=0.1, epochs=2)
    result = fit(t, TRAIN, VAL, tmp_path, cfg(epochs=2, early_stopping_patience=None))
    assert result.epochs_run == 2
    assert result.best_score > 0.8


def test_bad_task_options_are_rejected():
    with pytest.raises(ValueError, match="optimizer"):
        task(optimizer="lamb")
    with pytest.raises(ValueError, match="lr_scheduler"):
        task(lr_scheduler="step")


def test_hyperparameters_exclude_the_model():
    t = task(label_smoothing=0.1)
    assert "model" not in t.hparams
    assert t.hparams.num_classes == 2 and t.hparams.label_smoothing == 0.1


def test_num_classes_is_inferred_from_the_model():
    model = nn.Sequential(nn.Flatten(), nn.Linear(L_SEQ, 5))
    assert ClassificationTask(model).hparams.num_classes == 5
    with pytest.raises(ValueError, match="num_classes"):
        ClassificationTask(nn.Sequential(nn.Flatten()))


def test_seed_compat_initializers_forward_to_registries():
    def ctor(**kwargs):
        return tiny_model()

    name = "test_training_compat_net"
    try:
        TaskModule.register_net_initializer(name, ctor)
        assert MODEL_REGISTRY.get(name) is ctor
        ClassificationTask.register_dataset_initializer(name, ctor)
        assert DATASETS.get(name) is ctor
    finally:
        MODEL_REGISTRY.unregister(name)
        DATASETS.unregister(name)
    assert name not in MODEL_REGISTRY and name not in DATASETS


def test_confusion_matrix_counts():
    y_true = np.array([0, 0, 1, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 2])
    expected = np.array([[1, 1, 0],
                         [0, 2, 1],
                         [0, 0, 1]])
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, 3), expected)
    with pytest.raises(ValueError):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)


def test_plots_write_png_files(tmp_path):
    metrics = tmp_path / "metrics.csv"
    metrics.write_text("epoch,train_acc,train_loss,val_acc,val_loss,lr,step\n"
                       "0,0.6,0.9,0.7,0.8,0.01,7\n1,0.8,0.5,0.85,0.45,0.01,15\n")
    curves = plot_loss_curves(metrics, tmp_path / "plots" / "loss.png")
    cm = plot_confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), ["a", "b", "c"],
                               tmp_path / "plots" / "cm.png", title="test split")
    for png in (curves, cm):
        data = png.read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 1000
