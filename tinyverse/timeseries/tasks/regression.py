"""Value-target tasks: ``regression`` (one or more values per series) and the shared base of ``forecasting``.

The model returns (N, num_outputs); targets are float (N, ...) — flattened to (N, num_outputs) for the loss.
Training works in the dataset's (standardised) target units: ``train_loss`` / ``val_loss`` and ``val_rmse`` are
in those units (multiply by the target std of ``info["target_scaler"]`` for units); the test metrics of
``evaluate`` are in the target's own units.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.regression import MeanSquaredError

from tinyverse.evaluation import Evaluation
from tinyverse.registry import TASKS
from tinyverse.training.augment import BatchAugment
from tinyverse.training.tasks import OptimizerName, SchedulerName, SupervisedTask

LossName = Literal["mse", "huber", "mae"]
LOSSES = ("mse", "huber", "mae")


class ValueTask(SupervisedTask):
    """Loss on value targets: ``mse`` (default), ``huber`` (delta ``huber_delta``, in training units) or ``mae``.

    Logs ``{stage}_loss`` and ``{stage}_rmse`` per epoch (RMSE over every value of the epoch, not a mean of batch
    RMSEs). ``augmentation`` (BatchAugment arguments) perturbs training inputs only, never the targets.
    """

    default_monitor = ("val_loss", "min")
    # Augmentations that keep the input→target relation; a subclass may restrict them (forecasting: noise only).
    allowed_augmentations: tuple[str, ...] | None = None

    def __init__(self, model: nn.Module, *, optimizer: OptimizerName = "adam", learning_rate: float = 1e-3,
                 weight_decay: float = 0.0, momentum: float = 0.9, lr_scheduler: SchedulerName = "cosine",
                 epochs: int = 100, loss: LossName | None = None, huber_delta: float = 1.0,
                 augmentation: dict[str, float] | None = None) -> None:
        super().__init__(model, optimizer=optimizer, learning_rate=learning_rate, weight_decay=weight_decay,
                         momentum=momentum, lr_scheduler=lr_scheduler, epochs=epochs)
        loss = loss or "mse"
        if loss not in LOSSES:
            raise ValueError(f"training.loss: unknown loss {loss!r} for {type(self).__name__}; choose one of "
                             f"{', '.join(LOSSES)}")
        if huber_delta <= 0:
            raise ValueError(f"huber_delta must be > 0, got {huber_delta}")
        self.augment = BatchAugment(**(augmentation or {}))
        if self.allowed_augmentations is not None:
            bad = [k for k, v in asdict(self.augment).items() if v and k not in self.allowed_augmentations]
            if bad:
                raise ValueError(f"training.augmentation: {', '.join(bad)} would change the inputs but not the "
                                 f"targets of a {type(self).__name__}; use only "
                                 f"{', '.join(self.allowed_augmentations)}")
        self.save_hyperparameters(ignore=["model"])
        self.hparams.loss = loss
        # One metric object per stage (torchmetrics keeps state); squared=False gives the RMSE.
        self.train_rmse = MeanSquaredError(squared=False)
        self.val_rmse = MeanSquaredError(squared=False)
        self.test_rmse = MeanSquaredError(squared=False)

    def loss_fn(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        name = self.hparams.loss
        if name == "huber":
            return F.huber_loss(pred, target, delta=float(self.hparams.huber_delta))
        if name == "mae":
            return F.l1_loss(pred, target)
        return F.mse_loss(pred, target)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        y = y.float().reshape(len(y), -1)
        pred = self(x).reshape(len(y), -1)
        if pred.shape != y.shape:
            raise ValueError(f"the model returns {pred.shape[1]} values per sample, the targets have {y.shape[1]}; "
                             f"build the model with num_outputs={y.shape[1]}")
        loss = self.loss_fn(pred, y)
        metric = getattr(self, f"{stage}_rmse")
        metric(pred.detach(), y)
        n = x.shape[0]
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=n, sync_dist=True)
        self.log(f"{stage}_rmse", metric, on_step=False, on_epoch=True, prog_bar=True, batch_size=n)
        return loss


@TASKS.register("regression")
class RegressionTask(ValueTask):
    """Regression of one or more values per series (``dataset: ucr_regression`` or ``regression_files``).

    Test metrics (``evaluate``): RMSE (headline, recomputed for every exported artifact), MAE and R^2 in the
    target's units, next to the trivial baseline that predicts the training mean; plot ``pred_vs_true.png``.
    """

    @classmethod
    def evaluate(cls, outputs: dict[str, np.ndarray], data: Any) -> Evaluation:
        from tinyverse.timeseries.data.targets import target_scaler_of
        from tinyverse.timeseries.evaluation.regression import evaluate_regression

        if data.is_classification:
            raise ValueError(f"task regression needs value targets, but dataset {data.name!r} has classes "
                             f"{list(data.class_names)[:5]}; use a regression dataset (ucr_regression, "
                             f"regression_files)")
        return evaluate_regression(outputs["test"], data.y_test, data.y_train, target_scaler_of(data))

    @classmethod
    def write_plots(cls, run_dir: Path, outputs: dict[str, np.ndarray], data: Any, evaluation: Evaluation,
                    title: str) -> list[Path]:
        from tinyverse.timeseries.data.targets import target_scaler_of

        scaler = target_scaler_of(data)
        units = (lambda v: scaler.inverse_transform(v)) if scaler is not None else \
            (lambda v: np.asarray(v, dtype=np.float64).reshape(len(v), *data.target_shape))
        true = units(data.y_test).reshape(len(data.y_test), -1)
        pred = units(outputs["test"]).reshape(len(true), -1)
        names = data.info.get("target_columns") or ([f"target {j}" for j in range(true.shape[1])]
                                                     if true.shape[1] > 1 else [])
        path = Path(run_dir) / "pred_vs_true.png"
        plot_pred_vs_true(true, pred, units(data.y_train).reshape(len(data.y_train), -1).mean(axis=0), path,
                          title=title, metrics=evaluation.metrics, names=list(names))
        return [path]


def plot_pred_vs_true(true: np.ndarray, pred: np.ndarray, train_mean: np.ndarray, out_png: Path, title: str = "",
                      metrics: dict[str, Any] | None = None, names: list[str] | None = None) -> Path:
    """Scatter of predicted against true values (one panel per target value, at most 4) with the y = x line and
    the training-mean baseline."""
    from matplotlib.figure import Figure

    from tinyverse.training.plots import save_figure

    k = min(true.shape[1], 4)
    fig = Figure(figsize=(4.5 * k, 4.5))
    axes = np.atleast_1d(fig.subplots(1, k))
    for j, ax in enumerate(axes):
        t, p = true[:, j], pred[:, j]
        lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="grey", lw=1, label="y = x")
        ax.axhline(float(train_mean[j]), color="tab:red", ls="--", lw=1, label="baseline: train mean")
        ax.scatter(t, p, s=14, alpha=0.8, label="test samples")
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_aspect("equal")
        ax.set_xlabel(f"true {names[j] if names and j < len(names) else ''}".strip())
        ax.set_ylabel("predicted")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    m = metrics or {}
    sub = ", ".join(f"{k_} {m[k_]:.4g}" for k_ in ("rmse", "mae", "r2", "baseline_rmse") if k_ in m)
    fig.suptitle(f"{title}\n{sub}" if sub else title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out_png)
