"""Training on Lightning: task modules (registered in ``TASKS``), fit/evaluate/predict, and plots."""
from tinyverse.training.fit import (
    FitResult,
    TrainConfig,
    evaluate,
    fit,
    load_checkpoint,
    load_task_weights,
    make_loader,
    merge_metrics,
    predict,
    quiet_lightning,
)
from tinyverse.training.plots import confusion_matrix, plot_confusion_matrix, plot_loss_curves
from tinyverse.training.tasks import ClassificationTask, TaskModule

__all__ = [
    "ClassificationTask",
    "FitResult",
    "TaskModule",
    "TrainConfig",
    "confusion_matrix",
    "evaluate",
    "fit",
    "load_checkpoint",
    "load_task_weights",
    "make_loader",
    "merge_metrics",
    "plot_confusion_matrix",
    "plot_loss_curves",
    "predict",
    "quiet_lightning",
]
