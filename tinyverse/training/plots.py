"""Training and testing plots as PNG files.

Figures are built with matplotlib's object API (``Figure``, rendered by Agg) instead of pyplot, so nothing
here switches the user's backend, opens a window, needs a display or leaks figures into pyplot's state.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """Counts (k, k) with rows = true class, columns = predicted class."""
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y_true.size} vs {y_pred.size}")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= k):
            raise ValueError(f"{name} holds labels outside 0..{k - 1}")
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


def _read_columns(metrics_csv: Path) -> dict[str, list[float]]:
    with Path(metrics_csv).open(newline="") as f:
        rows = list(csv.DictReader(f))
    columns: dict[str, list[float]] = {}
    for key in (rows[0].keys() if rows else []):
        columns[key] = [float(r[key]) if r.get(key) not in ("", None) else math.nan for r in rows]
    return columns


def plot_loss_curves(metrics_csv: Path, out_png: Path) -> Path:
    """Two panels from a per-epoch metrics.csv: train/val loss and train/val accuracy (or, for value-target tasks
    that log no accuracy, RMSE) against epoch."""
    cols = _read_columns(metrics_csv)
    epochs = cols.get("epoch", [])
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    second = next(((m, label) for m, label in (("acc", "accuracy"), ("rmse", "RMSE"))
                   if any(f"{stage}_{m}" in cols for stage in ("train", "val"))), ("acc", "accuracy"))
    for ax, metric, label in ((axes[0], "loss", "loss"), (axes[1], *second)):
        drawn = False
        for stage in ("train", "val"):
            values = cols.get(f"{stage}_{metric}")
            if values is None or all(math.isnan(v) for v in values):
                continue
            ax.plot(epochs, values, marker="o", markersize=3, label=stage)
            drawn = True
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(label)
        ax.grid(True, alpha=0.3)
        if drawn:
            ax.legend()
        else:
            ax.text(0.5, 0.5, f"no {label} logged", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return save_figure(fig, out_png)


def plot_confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str], out_png: Path,
                          title: str = "Confusion matrix") -> Path:
    """Counts written in the cells; colour is the row-normalised rate, so rare classes stay readable."""
    k = len(class_names)
    cm = confusion_matrix(y_true, y_pred, k)
    totals = cm.sum(axis=1, keepdims=True)
    rates = np.divide(cm, totals, out=np.zeros(cm.shape, dtype=float), where=totals > 0)
    accuracy = np.trace(cm) / max(cm.sum(), 1)

    size = max(4.0, 0.6 * k + 2.5)
    fig = Figure(figsize=(size + 1, size))
    ax = fig.subplots()
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ax.set_xticks(range(k), labels=list(class_names), rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
    ax.set_yticks(range(k), labels=list(class_names))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\naccuracy {accuracy:.2%} (n={int(cm.sum())})")
    if k <= 30:  # beyond that the numbers overlap and only the colour says anything
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if rates[i, j] > 0.5 else "black")
    fig.tight_layout()
    return save_figure(fig, out_png)


def save_figure(fig: Figure, out_png: Path) -> Path:
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120)
    return out_png
