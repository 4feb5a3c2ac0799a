"""One trial of ``modelmaker search``: the sampled config is loaded and its model built and checked against the
device exactly as ``modelmaker run`` does it — before anything trains; an infeasible point is pruned with the
device's reason. A feasible one trains for the trial's short schedule, scored on the validation split only, and
reports its validation accuracy every epoch so Optuna's pruner can stop a poor trial early.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from lightning.pytorch.callbacks import Callback

from modelmaker.search.errors import SearchError
from modelmaker.search.space import SearchSpace, merge, sample


# Trial attributes (Optuna user attrs) the report reads.
ATTR_OVERRIDES, ATTR_REASON, ATTR_STAGE = "overrides", "reason", "stage"
STAGE_DEVICE, STAGE_TRAINING, STAGE_DONE = "device", "training", "trained"
MONITOR = ("val_acc", "max")  # classification: scored on validation accuracy


@dataclass
class TrialContext:
    """What every trial of one search shares."""

    config_path: str
    overrides: dict  # the user's --set / --device / --budget-ms overrides
    space: SearchSpace
    search_dir: Path
    threads: int = 1

    def trial_dir(self, number: int) -> Path:
        return self.search_dir / "trials" / f"{number:04d}"


class ReportToOptuna(Callback):
    """Reports the validation metric to the trial after every epoch; stops training when the pruner says so (the
    trial is pruned once the trainer has shut down cleanly)."""

    def __init__(self, trial: optuna.trial.BaseTrial, monitor: str) -> None:
        self.trial, self.monitor = trial, monitor
        self.pruned_at: int | None = None
        self.value: float | None = None

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value, epoch = float(trainer.callback_metrics[self.monitor]), int(trainer.current_epoch)
        self.value = value
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch
            trainer.should_stop = True


_DEFAULTS_LOADED: list[bool] = []  # this process has loaded the default extensions (entry points: a slow scan)
_DATA: dict[str, Any] = {}  # this process's data sets, by the config sections that decide them


def trial_config(ctx: TrialContext, point: dict[str, Any]):
    """The validated config of a sampled point (the user's overrides, then the point's), as ``modelmaker run``
    loads it (the default extensions once per process, the config's own each time)."""
    from modelmaker.config import load_config
    from modelmaker.runner import load_run_config
    from tinyverse import extensions

    overrides = merge(ctx.overrides, point)
    if not _DEFAULTS_LOADED:
        _DEFAULTS_LOADED.append(True)
        return load_run_config(ctx.config_path, overrides)
    return load_config(ctx.config_path, overrides=overrides, extension_loader=extensions.load_extensions)


def trial_data(module, cfg):
    """The data a trial trains on: loaded once per process for each dataset / feature_extraction setting (the input
    fit is pinned by the search space, so the model does not change them)."""
    key = json.dumps([cfg.common.modality, cfg.dataset.model_dump(mode="json"),
                      cfg.feature_extraction.model_dump(mode="json")], sort_keys=True, default=str)
    if key not in _DATA:
        _DATA[key] = module.load_data(cfg)
    return _DATA[key]


def prune(trial, stage: str, reason: str) -> optuna.TrialPruned:
    trial.set_user_attr(ATTR_STAGE, stage)
    trial.set_user_attr(ATTR_REASON, reason)
    return optuna.TrialPruned(reason)


def objective(trial, ctx: TrialContext) -> float:
    """Sample, check on the device (pruned when it does not fit), train briefly, return the best validation
    accuracy. Costs and the point's overrides are stored on the trial for the Pareto table and the final run."""
    from modelmaker.ai_modules import AI_MODULES
    from modelmaker.compilation import target_device
    from modelmaker.runner import seed_everything
    from tinyverse.devices import check_model
    from tinyverse.layers import SpecError

    point = sample(trial, ctx.space)
    trial.set_user_attr(ATTR_OVERRIDES, json.dumps(point))
    cfg = trial_config(ctx, point)
    module = AI_MODULES.get(cfg.common.modality)()
    seed_everything(cfg.common.seed)
    data = trial_data(module, cfg)
    try:
        model, _ = module.build_model(cfg, data)
    except (SpecError, ValueError, TypeError) as err:
        raise prune(trial, STAGE_DEVICE, f"cannot be built: {' '.join(str(err).split())}") from None
    device = target_device(cfg)
    if device is not None:
        report = check_model(model, device, model_name=cfg.training.model_name)
        totals = report.totals
        for key in ("params", "macs", "flash_bytes", "ram_bytes", "latency_ms"):
            if totals.get(key) is not None:
                trial.set_user_attr(key, totals[key])
        if not report.fits:
            raise prune(trial, STAGE_DEVICE, f"does not fit {report.device}: {report.violations[0]}"
                        + (f" (+{len(report.violations) - 1} more)" if len(report.violations) > 1 else ""))
    else:
        trial.set_user_attr("params", sum(p.numel() for p in model.parameters()))
    trial.set_user_attr("input_shape", list(data.input_shape))
    return train_trial(trial, ctx, cfg, module, data, model)


def train_trial(trial, ctx: TrialContext, cfg, module, data, model) -> float:
    """The trial's short schedule with Optuna pruning; validation accuracy only (the test split is never read)."""
    import torch

    from modelmaker.ai_modules.timeseries.layout import as_nchw
    from tinyverse.training import TrainConfig, fit
    from tinyverse.training.tasks import build_task

    t = cfg.training
    if len(data.y_val) == 0:
        raise SearchError(f"{data.name}: the search scores on the validation split, which is empty → set "
                          f"dataset.val_fraction above 0")
    torch.set_num_threads(ctx.threads)
    task = build_task(cfg.common.task_type, model, optimizer=t.optimizer, learning_rate=t.learning_rate,
                      weight_decay=t.weight_decay, lr_scheduler=t.lr_scheduler, epochs=t.epochs,
                      label_smoothing=t.label_smoothing, num_classes=data.num_classes or None, loss=t.loss,
                      augmentation=t.augmentation.model_dump())
    monitor, mode = MONITOR
    reporter = ReportToOptuna(trial, monitor)
    train_cfg = TrainConfig(epochs=t.epochs, batch_size=t.batch_size, seed=cfg.common.seed, accelerator="cpu",
                            devices=1, early_stopping_patience=None, monitor=monitor, monitor_mode=mode,
                            progress_bar=False)
    out = ctx.trial_dir(trial.number)
    result = fit(task, (as_nchw(data.X_train), data.y_train), (as_nchw(data.X_val), data.y_val), out, train_cfg,
                 callbacks=[reporter])
    best = float(result.best_score)
    trial.set_user_attr("epochs_run", result.epochs_run)
    trial.set_user_attr("checkpoint", str(result.best_checkpoint))
    trial.set_user_attr("val_loss", _best_val_loss(result.metrics_csv))
    if reporter.pruned_at is not None:
        raise prune(trial, STAGE_TRAINING, f"stopped by the pruner after epoch {reporter.pruned_at + 1}: "
                                           f"{monitor} {reporter.value:.3f} below the median of earlier trials")
    trial.set_user_attr(ATTR_STAGE, STAGE_DONE)
    if math.isnan(best):
        raise prune(trial, STAGE_TRAINING, f"no {monitor} was logged")
    return best


def _best_val_loss(metrics_csv: Path) -> float | None:
    import csv

    try:
        with Path(metrics_csv).open(newline="") as f:
            losses = [float(r["val_loss"]) for r in csv.DictReader(f) if r.get("val_loss")]
    except (OSError, KeyError, ValueError):
        return None
    return min(losses) if losses else None


__all__ = ["ReportToOptuna", "TrialContext", "objective", "trial_config"]
