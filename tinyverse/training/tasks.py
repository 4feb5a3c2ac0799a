"""Lightning modules, one per task kind, registered in ``TASKS``.

A task wraps a plain ``torch.nn.Module`` (the model never knows about Lightning) and owns the loss, the
metrics and the optimizer recipe. Hyperparameters are saved without the model, so checkpoints stay plain
state dicts plus primitives and load with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any, Callable, Literal

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from tinyverse.evaluation import Evaluation
from tinyverse.training.augment import BatchAugment
from tinyverse.training.distill import Distillation
from tinyverse.registry import DATASETS, MODEL_REGISTRY, TASKS

OptimizerName = Literal["adam", "adamw", "sgd"]
SchedulerName = Literal["cosine", "onecycle", "none"]

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("cosine", "onecycle", "none")


class TaskModule(L.LightningModule):
    """Base of every training recipe: holds the model and the optimizer/scheduler configuration."""

    def __init__(self, model: nn.Module, *, optimizer: OptimizerName = "adam", learning_rate: float = 1e-3,
                 weight_decay: float = 0.0, momentum: float = 0.9, lr_scheduler: SchedulerName = "cosine",
                 epochs: int = 100) -> None:
        super().__init__()
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if lr_scheduler not in SCHEDULERS:
            raise ValueError(f"unknown lr_scheduler {lr_scheduler!r}; choose one of {', '.join(SCHEDULERS)}")
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        self.model = model
        # Subclasses call save_hyperparameters themselves so their own arguments are captured too.

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        params = [p for p in self.parameters() if p.requires_grad]
        if hp.optimizer == "adam":
            opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=hp.learning_rate, weight_decay=hp.weight_decay)
        elif hp.optimizer == "adamw":
            opt = torch.optim.AdamW(params, lr=hp.learning_rate, weight_decay=hp.weight_decay)
        else:
            opt = torch.optim.SGD(params, lr=hp.learning_rate, momentum=hp.momentum, weight_decay=hp.weight_decay)

        if hp.lr_scheduler == "none":
            return opt
        if hp.lr_scheduler == "cosine":
            sched: Any = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=hp.epochs)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
        # OneCycle steps per batch and fails when stepped past its end, so size it from the real number of
        # batches per epoch and the longer of the schedule and the trainer's epoch budget.
        trainer = self.trainer
        max_epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else hp.epochs
        steps_per_epoch = trainer.estimated_stepping_batches / max_epochs
        total_steps = max(1, math.ceil(steps_per_epoch * max(hp.epochs, max_epochs)))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=hp.learning_rate, total_steps=total_steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x)

    # -- the task kind as the pipeline sees it. Classmethods: a compile-only run has outputs but no trained module.
    default_monitor: tuple[str, str] = ("val_loss", "min")  # (metric, "min"|"max") when training.monitor is unset
    # Whether the runner may fit the inputs to the model (zero channels appended, series resampled to one length:
    # tinyverse.timeseries.data.input_fit) without changing what the targets mean.
    fits_input: bool = False

    @classmethod
    def evaluate(cls, outputs: dict[str, np.ndarray], data: Any) -> Evaluation | None:
        """Test metrics from the model's outputs per split ("val", "test") and the dataset (its ``y_*`` arrays).

        None (the default for registered tasks that do not override it) means: no metrics, only output
        differences in the verification table.
        """
        return None

    @classmethod
    def write_plots(cls, run_dir: Path, outputs: dict[str, np.ndarray], data: Any, evaluation: Evaluation,
                    title: str) -> list[Path]:
        """The task's test-split figures in ``run_dir``; returns the files written."""
        return []

    def on_train_epoch_start(self) -> None:
        # The learning rate the epoch starts with, as one stable "lr" column whatever the optimizer is called.
        optimizer = self.optimizers()
        if isinstance(optimizer, list):  # manual setups with several optimizers: report the first
            optimizer = optimizer[0]
        self.log("lr", float(optimizer.param_groups[0]["lr"]), on_step=False, on_epoch=True, sync_dist=False)

    # -- seed compatibility (NAM): names forward to the one registry of each kind ------------------------
    # As in NAM, the constructor may take the whole `config` mapping (``constructor(config)``); such a constructor
    # is adapted to the keyword-argument call every registry entry gets (model_args / dataset section as kwargs).
    @classmethod
    def register_net_initializer(cls, name: str, constructor: Callable[..., nn.Module], **kwargs: Any) -> None:
        MODEL_REGISTRY.register(name, config_dict_adapter(constructor), **kwargs)

    @classmethod
    def register_dataset_initializer(cls, name: str, constructor: Callable[..., Any], **kwargs: Any) -> None:
        DATASETS.register(name, config_dict_adapter(constructor), **kwargs)


_CONFIG_PARAM_NAMES = ("config", "cfg", "conf")


def takes_config_dict(constructor: Callable[..., Any]) -> bool:
    """True for NAM-style constructors: exactly one parameter, positional, named config/cfg/conf."""
    try:
        params = list(inspect.signature(constructor).parameters.values())
    except (TypeError, ValueError):
        return False
    return (len(params) == 1 and params[0].name in _CONFIG_PARAM_NAMES
            and params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD))


def config_dict_adapter(constructor: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``constructor(config)`` as ``f(**config)``; other constructors are returned unchanged."""
    if not takes_config_dict(constructor):
        return constructor

    def from_config(**config: Any) -> Any:
        return constructor(dict(config))

    from_config.__name__ = getattr(constructor, "__name__", "from_config")
    from_config.__qualname__ = getattr(constructor, "__qualname__", from_config.__name__)
    from_config.__module__ = getattr(constructor, "__module__", __name__)
    from_config.__doc__ = getattr(constructor, "__doc__", None)
    from_config.__tinyverse_origin__ = constructor  # type: ignore[attr-defined]  # registry location/source
    return from_config


def build_task(name: str, model: nn.Module, **kwargs: Any) -> L.LightningModule:
    """``TASKS[name](model=model, **kwargs)``, passing only the keyword arguments the task accepts (a registered
    task need not take every option of the built-in ones). A task must build a LightningModule (e.g. a subclass
    of :class:`TaskModule` with its own loss in ``training_step``)."""
    cls = TASKS.get(name)
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        params = {}
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    task = cls(model=model, **kwargs)
    if not isinstance(task, L.LightningModule):
        from tinyverse.registered import defined_in
        from tinyverse.extensions import ExtensionError

        raise ExtensionError(f"{defined_in(cls)}: task '{name}' built a {type(task).__name__}, not a "
                             f"LightningModule; subclass tinyverse.training.TaskModule (see docs/extending.md)")
    return task


def infer_num_classes(model: nn.Module) -> int:
    """The class count a classifier produces: ``model.num_classes``, else its last layer's ``out_features``."""
    declared = getattr(model, "num_classes", None)
    if isinstance(declared, int):
        return declared
    for module in reversed(list(model.modules())):
        out_features = getattr(module, "out_features", None)
        if isinstance(out_features, int):
            return out_features
    raise ValueError(f"cannot tell how many classes {type(model).__name__} predicts; pass num_classes")


class SupervisedTask(TaskModule):
    """A task trained on (x, y) batches: a subclass defines ``_step(batch, stage)`` (loss + logged metrics); training
    inputs go through its ``augment`` (a :class:`BatchAugment`) first, targets never do."""

    augment: BatchAugment

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define _step(batch, stage)")

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.augment.active:
            batch = (self.augment(batch[0]), batch[1])
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "test")


@TASKS.register("classification")
class ClassificationTask(SupervisedTask):
    """Cross-entropy classification; the model returns logits (N, K).

    ``num_classes`` defaults to what the model says it predicts (see :func:`infer_num_classes`). ``teacher``: a
    :class:`~tinyverse.training.distill.Distillation` whose soft targets join the labels in the training loss.
    """

    default_monitor = ("val_acc", "max")
    fits_input = True  # a class label does not depend on the time axis or on added zero channels

    @classmethod
    def evaluate(cls, outputs: dict[str, np.ndarray], data: Any) -> Evaluation:
        from tinyverse.evaluation.classification import evaluate_classification

        return evaluate_classification(outputs["test"], data.y_test, data.num_classes)

    @classmethod
    def write_plots(cls, run_dir: Path, outputs: dict[str, np.ndarray], data: Any, evaluation: Evaluation,
                    title: str) -> list[Path]:
        from tinyverse.training.plots import plot_confusion_matrix

        path = Path(run_dir) / "confusion_matrix.png"
        plot_confusion_matrix(data.y_test, outputs["test"].argmax(axis=1), data.class_names, path,
                              title=f"{title} (test acc {evaluation.metrics['accuracy']:.1%})")
        return [path]

    def __init__(self, model: nn.Module, num_classes: int | None = None, *, optimizer: OptimizerName = "adam",
                 learning_rate: float = 1e-3, weight_decay: float = 0.0, momentum: float = 0.9,
                 lr_scheduler: SchedulerName = "cosine", epochs: int = 100, label_smoothing: float = 0.0,
                 class_weights: list[float] | None = None, augmentation: dict[str, float] | None = None,
                 teacher: Distillation | None = None) -> None:
        super().__init__(model, optimizer=optimizer, learning_rate=learning_rate, weight_decay=weight_decay,
                         momentum=momentum, lr_scheduler=lr_scheduler, epochs=epochs)
        if num_classes is None:
            num_classes = infer_num_classes(model)
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.save_hyperparameters(ignore=["model", "teacher"])
        self.hparams.num_classes = int(num_classes)  # the inferred value, so checkpoints record it
        # Soft targets from a frozen teacher on the training batches (tinyverse.training.distill); not a submodule,
        # so its weights stay out of the student's checkpoints.
        self.distillation = teacher
        if teacher is not None:
            self.hparams.distillation = {"temperature": teacher.temperature, "alpha": teacher.alpha}
        # A buffer moves with the module across devices; persistent=False keeps it out of the state dict.
        weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
        self.register_buffer("class_weights", weights, persistent=False)
        self.augment = BatchAugment(**(augmentation or {}))
        # One metric object per stage: torchmetrics keeps state, and sharing it would mix stages.
        self.train_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        y = y.long()
        logits = self(x)
        loss = F.cross_entropy(logits, y, weight=self.class_weights,
                               label_smoothing=float(self.hparams.label_smoothing))
        n = x.shape[0]
        if stage == "train" and self.distillation is not None:  # validation and test stay on the labels alone
            loss, soft = self.distillation.loss(logits, x, loss)
            if soft is not None:
                self.log("train_kd_loss", soft, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        acc = getattr(self, f"{stage}_acc")
        acc(logits, y)
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=n, sync_dist=True)
        # Passing the metric object lets torchmetrics compute and reset it at epoch end (and sync under DDP).
        self.log(f"{stage}_acc", acc, on_step=False, on_epoch=True, prog_bar=True, batch_size=n)
        return loss
