"""Anomaly-detection metrics on reconstruction autoencoders.

Labels: 0 = normal, 1 = anomalous (``class_names == ["normal", "anomaly"]``, the convention of the anomaly
datasets). The anomaly score of a window is its **mean squared reconstruction error** over all C*L values, in the
model's input units (the normalised values the model reads)::

    score = mean((x - model(x))^2)

A window is flagged anomalous when ``score > threshold``. The threshold is chosen on the validation split, never
on the test split:

- ``max_f1``: the score that maximises F1 on the validation windows (needs labelled anomalies in validation);
  the threshold is the midpoint between that score and the next higher validation score;
- ``percentile``: the ``percentile``-th percentile of the *normal* validation windows' scores (default 99: about
  1 % false alarms on normal data), for validation data without labelled anomalies;
- ``auto`` (default): ``max_f1`` when validation holds both classes, else ``percentile``.

The headline metric is the ROC AUC of the scores on the test split (threshold-free); precision, recall and F1 are
reported at the saved threshold.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tinyverse.evaluation import Evaluation

THRESHOLD_METHODS = ("auto", "max_f1", "percentile")
SCORE_DEFINITION = ("mean squared reconstruction error over the window's C*L values, in the model's input units "
                    "(dequantize the int8 input and output first): score = mean((x - y)^2); anomalous if "
                    "score > threshold")


def reconstruction_scores(reconstructions: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """Per-window mean squared error between a model's output and its input (any matching per-sample shape)."""
    x = np.asarray(inputs, dtype=np.float64)
    y = np.asarray(reconstructions, dtype=np.float64).reshape(x.shape)
    return np.mean((y - x).reshape(len(x), -1) ** 2, axis=1)


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (sklearn); NaN when only one class is present."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels).reshape(-1) > 0
    if labels.all() or not labels.any():
        return float("nan")
    return float(roc_auc_score(labels, np.asarray(scores, dtype=np.float64).reshape(-1)))


def precision_recall_f1(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall and F1 of ``score > threshold`` against ``labels`` (0 when undefined), with the counts."""
    pred = np.asarray(scores).reshape(-1) > threshold
    truth = np.asarray(labels).reshape(-1) > 0
    tp, fp = int(np.sum(pred & truth)), int(np.sum(pred & ~truth))
    fn, tn = int(np.sum(~pred & truth)), int(np.sum(~pred & ~truth))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def max_f1_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold with the highest F1 of ``score > threshold``: midway between the best cut and the next score."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1) > 0
    if not labels.any():
        raise ValueError("max_f1 needs anomalous windows in the validation split")
    values = np.unique(scores)
    best, best_f1 = values[-1], -1.0
    # Flagging everything at or above values[i] is "score > cut" with the cut just below values[i].
    for i in range(len(values)):
        f1 = precision_recall_f1(scores, labels, values[i - 1] if i else -np.inf)["f1"]
        if f1 > best_f1:
            best_f1, best = f1, i
    if best == 0:
        return float(values[0] - max(abs(values[0]) * 1e-6, 1e-12))
    return float((values[best - 1] + values[best]) / 2)


def select_threshold(scores: np.ndarray, labels: np.ndarray, method: str = "auto",
                     percentile: float = 99.0) -> tuple[float, str]:
    """(threshold, how it was chosen) from validation scores and labels; see the module docstring."""
    if method not in THRESHOLD_METHODS:
        raise ValueError(f"unknown threshold method {method!r}; use one of {', '.join(THRESHOLD_METHODS)}")
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1) > 0
    if not len(scores):
        raise ValueError("no validation windows to choose the anomaly threshold on")
    has_both = bool(labels.any() and (~labels).any())
    if method == "max_f1" or (method == "auto" and has_both):
        if not has_both:
            raise ValueError("threshold method max_f1 needs normal and anomalous windows in the validation split; "
                             "use percentile (normal validation data only)")
        return max_f1_threshold(scores, labels), "max F1 on the validation split"
    if not 0 < percentile <= 100:
        raise ValueError(f"threshold percentile must be in (0, 100], got {percentile}")
    normal = scores[~labels]
    if not len(normal):
        raise ValueError("no normal validation windows to take a percentile of")
    return float(np.percentile(normal, percentile)), f"{percentile:g}th percentile of normal validation scores"


def normal_is_zero(class_names: Any) -> None:
    names = list(class_names or [])
    if names and "normal" in names and names.index("normal") != 0:
        raise ValueError(f"anomaly detection reads label 0 as normal, but the dataset's classes are {names}; "
                         f"order them so 'normal' comes first (e.g. class_names ['normal', 'anomaly'])")


def evaluate_anomaly(outputs: dict[str, np.ndarray], data: Any, method: str = "auto",
                     percentile: float = 99.0) -> Evaluation:
    """Scores from reconstructions of the val and test windows; threshold from val; AUC and F1 on test."""
    normal_is_zero(getattr(data, "class_names", None))
    X_test, y_test = np.asarray(data.X_test), np.asarray(data.y_test).reshape(-1)
    if "val" not in outputs or not len(getattr(data, "X_val", [])):
        raise ValueError("anomaly detection chooses its threshold on the validation split, which is empty")
    val_scores = reconstruction_scores(outputs["val"], data.X_val)
    threshold, how = select_threshold(val_scores, data.y_val, method, percentile)
    test_scores = reconstruction_scores(outputs["test"], X_test)
    at = precision_recall_f1(test_scores, y_test, threshold)
    metrics: dict[str, float | int] = {
        "auc_roc": roc_auc(test_scores, y_test), **{k: at[k] for k in ("precision", "recall", "f1")},
        "threshold": threshold, "val_auc_roc": roc_auc(val_scores, data.y_val),
        **{k: at[k] for k in ("tp", "fp", "fn", "tn")},
        "num_samples": int(len(y_test)), "num_anomalous": int(np.sum(y_test > 0)),
    }
    for name, mask in (("mean_score_normal", y_test == 0), ("mean_score_anomalous", y_test > 0)):
        if mask.any():
            metrics[name] = float(np.mean(test_scores[mask]))
    if np.isnan(metrics["val_auc_roc"]):  # validation without labelled anomalies (the usual case)
        del metrics["val_auc_roc"]
    state = {"anomaly_threshold": threshold, "threshold_method": how, "anomaly_score": SCORE_DEFINITION}

    def metric_fn(out: np.ndarray) -> float:  # the verification table's AUC, per exported artifact
        return roc_auc(reconstruction_scores(out, X_test), y_test)

    return Evaluation(metrics, "auc_roc", True, metric_fn=metric_fn, state=state)
