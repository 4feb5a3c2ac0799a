"""Classification metrics on logits (N, K) and integer labels (N,)."""
from __future__ import annotations

import numpy as np

from tinyverse.evaluation import Evaluation


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.asarray(logits).reshape(len(labels), -1).argmax(1) == np.asarray(labels).reshape(-1)))


def macro_f1(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """Unweighted mean of per-class F1 (a class absent from both pred and labels is left out)."""
    scores = []
    for k in range(num_classes):
        tp = int(np.sum((pred == k) & (labels == k)))
        fp = int(np.sum((pred == k) & (labels != k)))
        fn = int(np.sum((pred != k) & (labels == k)))
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def evaluate_classification(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> Evaluation:
    labels = np.asarray(labels).reshape(-1)
    pred = np.asarray(logits).reshape(len(labels), -1).argmax(1)
    metrics = {"accuracy": accuracy(logits, labels), "macro_f1": macro_f1(pred, labels, num_classes),
               "num_samples": int(len(labels))}
    return Evaluation(metrics, "accuracy", True, metric_fn=lambda out: accuracy(out, labels))
