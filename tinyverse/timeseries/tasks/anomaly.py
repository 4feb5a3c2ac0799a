"""``anomaly_detection``: an autoencoder trained on normal windows to reconstruct its input.

The model maps (N, C, L, 1) to the same shape (the ``AD_*`` zoo). Training minimises the mean squared
reconstruction error; the labels are not used by ``training_step`` (the training split holds normal windows only).
Validation logs ``val_loss`` over the *normal* validation windows only (label 0), so anomalous windows a
dataset keeps in validation for choosing the threshold never steer early stopping or the best checkpoint.

Test evaluation (:mod:`tinyverse.timeseries.evaluation.anomaly`): anomaly score = mean squared reconstruction error per
window, threshold chosen on validation (``dataset.threshold`` / ``dataset.threshold_percentile`` through
``data.info["anomaly"]``), ROC AUC (headline, recomputed for every exported artifact), precision / recall / F1
at the threshold. Files: ``anomaly_scores.png`` (score along the series with the threshold and the labelled
regions), ``anomaly_roc.png`` (ROC curve and score histograms) and ``anomaly_threshold.json``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tinyverse.evaluation import Evaluation
from tinyverse.registry import TASKS
from tinyverse.training.augment import BatchAugment
from tinyverse.training.tasks import OptimizerName, SchedulerName, TaskModule


@TASKS.register("anomaly_detection")
class AnomalyDetectionTask(TaskModule):
    """Reconstruction autoencoder: loss = mean squared error between ``model(x)`` and ``x``.

    ``augmentation`` (BatchAugment arguments) perturbs the training input, which is then also the target.
    """

    default_monitor = ("val_loss", "min")

    def __init__(self, model: nn.Module, *, optimizer: OptimizerName = "adam", learning_rate: float = 1e-3,
                 weight_decay: float = 0.0, momentum: float = 0.9, lr_scheduler: SchedulerName = "cosine",
                 epochs: int = 100, augmentation: dict[str, float] | None = None) -> None:
        super().__init__(model, optimizer=optimizer, learning_rate=learning_rate, weight_decay=weight_decay,
                         momentum=momentum, lr_scheduler=lr_scheduler, epochs=epochs)
        self.save_hyperparameters(ignore=["model"])
        self.augment = BatchAugment(**(augmentation or {}))

    def _errors(self, x: torch.Tensor) -> torch.Tensor:
        recon = self(x)
        if recon.shape != x.shape:
            raise ValueError(f"an anomaly-detection model must return its input's shape {tuple(x.shape[1:])}, got "
                             f"{tuple(recon.shape[1:])}; use an autoencoder (AD_* in the zoo)")
        return (recon - x).pow(2).flatten(1).mean(dim=1)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x = batch[0]
        if self.augment.active:
            x = self.augment(x)
        loss = self._errors(x).mean()
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=x.shape[0],
                 sync_dist=True)
        return loss

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor | None:
        x, y = batch
        errors = self._errors(x)
        normal = y.reshape(-1) == 0
        if not bool(normal.any()):  # a batch of anomalous windows only: nothing for val_loss
            return None
        loss = errors[normal].mean()
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=int(normal.sum()),
                 sync_dist=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        return self._eval_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        return self._eval_step(batch, "test")

    # -- the task kind as the pipeline sees it ------------------------------------------------------------
    @classmethod
    def evaluate(cls, outputs: dict[str, np.ndarray], data: Any) -> Evaluation:
        from tinyverse.timeseries.evaluation.anomaly import evaluate_anomaly

        if not getattr(data, "is_classification", True):
            raise ValueError(f"task anomaly_detection needs 0/1 window labels (normal/anomaly), but dataset "
                             f"{data.name!r} has value targets; use dataset: anomaly_series")
        opts = (getattr(data, "info", None) or {}).get("anomaly") or {}
        return evaluate_anomaly(outputs, data, method=opts.get("threshold", "auto"),
                                percentile=float(opts.get("threshold_percentile", 99.0)))

    @classmethod
    def write_plots(cls, run_dir: Path, outputs: dict[str, np.ndarray], data: Any, evaluation: Evaluation,
                    title: str) -> list[Path]:
        from tinyverse.timeseries.evaluation.anomaly import reconstruction_scores

        run_dir = Path(run_dir)
        scores = {s: reconstruction_scores(outputs[s], getattr(data, f"X_{s}")) for s in ("val", "test")
                  if s in outputs}
        labels = {s: np.asarray(getattr(data, f"y_{s}")).reshape(-1) for s in scores}
        threshold = float(evaluation.state["anomaly_threshold"])
        state_file = run_dir / "anomaly_threshold.json"
        state_file.write_text(json.dumps({**evaluation.state, "model_input": "x, shaped (N, C, L, 1) as model.onnx "
                                          "reads it (normalised as in dataset.json)",
                                          "test_auc_roc": evaluation.metrics.get("auc_roc"),
                                          "test_f1": evaluation.metrics.get("f1")}, indent=2) + "\n")
        files = [state_file]
        files.append(plot_scores_over_time(scores, labels, data, threshold, run_dir / "anomaly_scores.png",
                                           title=f"{title}: anomaly score per window", metrics=evaluation.metrics))
        files.append(plot_roc_and_histogram(scores["test"], labels["test"], threshold, run_dir / "anomaly_roc.png",
                                            title=title))
        return files


def _positions(data: Any, split: str, n: int) -> tuple[np.ndarray, int, int, str]:
    """Window start (in samples of the original series), window length and downsample factor, axis label."""
    info = getattr(data, "info", None) or {}
    starts = (info.get("window_starts") or {}).get(split)
    k = int(info.get("downsample", 1) or 1)
    length = int(np.asarray(getattr(data, f"X_{split}")).shape[-1])
    if starts is None or len(starts) != n:  # not an anomaly_series dataset: window index as the axis
        return np.arange(n, dtype=np.float64) * length, length, 1, "window index x window length"
    return np.asarray(starts, dtype=np.float64) * k, length, k, "sample of the series"


def plot_scores_over_time(scores: dict[str, np.ndarray], labels: dict[str, np.ndarray], data: Any,
                          threshold: float, out_png: Path, title: str = "",
                          metrics: dict[str, Any] | None = None) -> Path:
    """Top: the (normalised) first channel of the val and test parts, labelled events shaded. Bottom: the score of
    each window at its centre, the threshold, windows labelled anomalous in red."""
    from matplotlib.figure import Figure

    from tinyverse.training.plots import save_figure

    info = getattr(data, "info", None) or {}
    fig = Figure(figsize=(13, 6))
    ax_sig, ax_score = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 1.3]})
    for split, colour in (("val", "tab:grey"), ("test", "tab:blue")):
        if split not in scores:
            continue
        X = np.asarray(getattr(data, f"X_{split}"))
        start, length, k, xlabel = _positions(data, split, len(X))
        # The signal, rebuilt from the windows: each window's first `stride` samples, then all of the last one.
        stride = int(info.get("stride", length)) if len(start) == len(X) else length
        pieces = [X[i, 0] if i == len(X) - 1 else X[i, 0, :stride] for i in range(len(X))]
        t = np.concatenate([s + np.arange(len(p)) * k for s, p in zip(start, pieces)]) if pieces else np.zeros(0)
        ax_sig.plot(t, np.concatenate(pieces) if pieces else t, color=colour, lw=0.7, label=f"{split} part")
        centre = start + length * k / 2
        ax_score.plot(centre, scores[split], color=colour, lw=1, label=f"{split} windows")
        bad = labels[split] > 0
        if bad.any():
            ax_score.scatter(centre[bad], scores[split][bad], s=8, color="tab:red", zorder=3,
                             label=f"{split} windows labelled anomalous")
        ax_score.set_xlabel(xlabel)
    for i, (a, b) in enumerate(info.get("events") or []):
        for ax in (ax_sig, ax_score):
            ax.axvspan(a, b, color="tab:red", alpha=0.15, lw=0, label="labelled anomaly" if i == 0 and ax is ax_sig
                       else None)
    ax_score.axhline(threshold, color="black", ls="--", lw=1, label=f"threshold {threshold:.4g}")
    ax_sig.set_ylabel("input (normalised)")
    ax_score.set_ylabel("reconstruction MSE")
    ax_score.set_yscale("log")
    for ax in (ax_sig, ax_score):
        ax.grid(True, alpha=0.3)
        handles, names = ax.get_legend_handles_labels()
        if handles:
            ax.legend(loc="upper left", fontsize=8)
    m = metrics or {}
    sub = ", ".join(f"{name} {m[key]:.3f}" for key, name in (("auc_roc", "test AUC"), ("f1", "F1"),
                                                              ("precision", "precision"), ("recall", "recall"))
                    if key in m)
    fig.suptitle(f"{title}\n{sub}" if sub else title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out_png)


def plot_roc_and_histogram(scores: np.ndarray, labels: np.ndarray, threshold: float, out_png: Path,
                           title: str = "") -> Path:
    """Left: the test ROC curve with the threshold's operating point. Right: score histograms per class."""
    from matplotlib.figure import Figure
    from sklearn.metrics import roc_curve

    from tinyverse.timeseries.evaluation.anomaly import precision_recall_f1, roc_auc
    from tinyverse.training.plots import save_figure

    labels = np.asarray(labels).reshape(-1) > 0
    fig = Figure(figsize=(11, 4.5))
    ax_roc, ax_hist = fig.subplots(1, 2)
    if labels.any() and (~labels).any():
        fpr, tpr, _ = roc_curve(labels, scores)
        ax_roc.plot(fpr, tpr, lw=1.5, label=f"AUC {roc_auc(scores, labels):.3f}")
        at = precision_recall_f1(scores, labels, threshold)
        op_fpr = at["fp"] / max(at["fp"] + at["tn"], 1)
        ax_roc.scatter([op_fpr], [at["recall"]], color="black", zorder=3, label=f"threshold (F1 {at['f1']:.3f})")
    ax_roc.plot([0, 1], [0, 1], color="grey", lw=1, ls=":")
    ax_roc.set_xlabel("false positive rate")
    ax_roc.set_ylabel("true positive rate")
    ax_roc.set_title("ROC, test windows")
    ax_roc.grid(True, alpha=0.3)
    ax_roc.legend(loc="lower right", fontsize=8)
    logs = np.log10(np.maximum(np.asarray(scores, dtype=np.float64), 1e-12))
    bins = np.linspace(logs.min(), max(logs.max(), np.log10(max(threshold, 1e-12))), 40)
    for mask, name, colour in ((~labels, "normal", "tab:blue"), (labels, "anomalous", "tab:red")):
        if mask.any():
            ax_hist.hist(logs[mask], bins=bins, alpha=0.6, color=colour, label=f"{name} ({int(mask.sum())})")
    ax_hist.axvline(np.log10(max(threshold, 1e-12)), color="black", ls="--", lw=1, label="threshold")
    ax_hist.set_xlabel("log10 reconstruction MSE")
    ax_hist.set_ylabel("windows")
    ax_hist.set_title("score histogram, test windows")
    ax_hist.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out_png)
