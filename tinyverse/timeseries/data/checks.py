"""Dataset checks before any training: bad values, empty splits, too-short series, constant channels, class
imbalance. A problem training cannot survive is a one-line ``DatasetError`` naming the dataset and the fix;
one it can survive is a warning string, returned so the caller can log it and put it in the run report.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .splits import DatasetError

SPLITS = ("train", "val", "test")
# Largest / smallest class count in the train split above which a warning says accuracy may hide a class.
MAX_CLASS_RATIO = 10.0


def _label(data: Any, source: str) -> str:
    name = getattr(data, "name", "") or "?"
    return f"dataset '{name}'" + (f" ({source})" if source else "")


def check_finite(data: Any, source: str = "", stage: str = "") -> None:
    """NaN or inf anywhere in X (and in float targets): a DatasetError with the first position.

    ``stage``: "" for the loaded data, or what produced the arrays (e.g. "feature_extraction Frame -> FFT").
    """
    for split in SPLITS:
        for kind in ("X", "y"):
            arr = np.asarray(getattr(data, f"{kind}_{split}"))
            if arr.size == 0 or not np.issubdtype(arr.dtype, np.floating):
                continue
            bad = ~np.isfinite(arr)
            if not bad.any():
                continue
            n_nan, n_inf = int(np.isnan(arr).sum()), int(np.isinf(arr).sum())
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            at = (f"sample {where[0]}, channel {where[1]}, step {where[2]}" if kind == "X" and len(where) == 3
                  else "sample " + ", ".join(map(str, where)))
            what = f"{kind}_{split} holds {n_nan} NaN and {n_inf} inf values (first at {at})"
            if stage:
                raise DatasetError(f"{stage} turned {_label(data, source)} into non-finite values: {what}; check the "
                                   f"inputs' range and the transforms' parameters (e.g. LogDB eps)")
            raise DatasetError(f"{_label(data, source)}: {what}; fill or drop the gaps in the source data (e.g. "
                               f"interpolate missing samples) before training")


def check_splits(data: Any, source: str = "", need_test: bool = True, need_val: bool = True) -> list[str]:
    """An empty train split (or test split when ``need_test``) is an error; an empty validation split a warning,
    unless ``need_val`` is False: the caller chooses nothing on validation (e.g. it keeps the last epoch)."""
    counts = {s: len(getattr(data, f"y_{s}")) for s in SPLITS}
    if counts["train"] == 0:
        raise DatasetError(f"{_label(data, source)}: the train split is empty; add data or lower "
                           f"dataset.val_fraction / dataset.test_fraction")
    if need_test and counts["test"] == 0:
        raise DatasetError(f"{_label(data, source)}: the test split is empty but testing/compilation need it; give "
                           f"the dataset a test split (e.g. dataset.test_fraction > 0) or set testing.enable: false "
                           f"and compilation.enable: false")
    if counts["val"] == 0 and need_val:
        return [f"{_label(data, source)}: the validation split is empty, so the best checkpoint and early stopping "
                f"watch the training metrics (e.g. train_loss); set dataset.val_fraction > 0 to choose on held-out "
                f"data, or training.final_checkpoint: last to keep the last epoch of a fixed schedule"]
    return []


def check_length(data: Any, min_length: int, reason: str, source: str = "") -> None:
    """Series shorter than ``min_length`` (e.g. a model's receptive field) are an error."""
    length = int(np.asarray(data.X_train).shape[2])
    if length < min_length:
        raise DatasetError(f"{_label(data, source)}: series are {length} samples long, shorter than {min_length} "
                           f"({reason}); use longer series (e.g. dataset.frame_size) or a smaller model")


def check_constant_channels(data: Any, source: str = "") -> list[str]:
    """A channel with one value across the whole train split carries no information: a warning per channel."""
    X = np.asarray(data.X_train)
    if X.size == 0:
        return []
    lo, hi = X.min(axis=(0, 2)), X.max(axis=(0, 2))
    names = (getattr(data, "info", None) or {}).get("channel_names") or []
    out = []
    for c in np.flatnonzero(lo == hi):
        label = f"channel {c} ('{names[c]}')" if len(names) == X.shape[1] else f"channel {c}"
        out.append(f"{_label(data, source)}: {label} is constant ({float(lo[c]):g}) in every training series and "
                   f"carries no information; drop it (e.g. dataset.channels) or check the sensor")
    return out


def check_class_balance(data: Any, source: str = "", max_ratio: float = MAX_CLASS_RATIO) -> list[str]:
    """Classification only (non-empty class_names): a class missing from train is an error, a large imbalance a
    warning. Value targets (regression, forecasting) have no classes and are not checked."""
    classes = list(getattr(data, "class_names", []) or [])
    if not classes:
        return []
    counts = np.bincount(np.asarray(data.y_train, dtype=np.int64).reshape(-1), minlength=len(classes))
    missing = [classes[k] for k in np.flatnonzero(counts == 0)]
    if missing:
        raise DatasetError(f"{_label(data, source)}: class(es) {missing} have no training series, so the model "
                           f"cannot learn them; add training data for them or drop them from the dataset")
    big, small = int(np.argmax(counts)), int(np.argmin(counts))
    ratio = counts[big] / counts[small]
    if ratio > max_ratio:
        return [f"{_label(data, source)}: class imbalance in the train split, '{classes[big]}' has {counts[big]} "
                f"series and '{classes[small]}' {counts[small]} ({ratio:.0f}x); accuracy can hide the rare class, so "
                f"read the per-class results (confusion matrix) or add data for it"]
    return []


def check_dataset(data: Any, source: str = "", stage: str = "", need_test: bool = True, need_val: bool = True,
                  min_length: int = 1, length_reason: str = "the shortest usable series", classes: bool = True,
                  max_class_ratio: float = MAX_CLASS_RATIO) -> list[str]:
    """Every check on the arrays the model will see; raises DatasetError, returns the warnings.

    ``classes`` False skips the class checks for tasks whose labels are not training targets (an anomaly
    detector trains on the normal class only)."""
    check_finite(data, source, stage)
    found = check_splits(data, source, need_test, need_val)
    check_length(data, min_length, length_reason, source)
    if classes:
        found += check_class_balance(data, source, max_class_ratio)
    return found + check_constant_channels(data, source)
