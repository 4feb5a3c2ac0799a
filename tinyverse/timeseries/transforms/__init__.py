"""Feature extractors and augmenters (``TRANSFORMS``), applied to time-series arrays shaped (N, C, L).

The interface a transform meets (built-in or registered by an extension):

- the registry entry is a class or factory; the config's ``feature_extraction.transforms`` items are
  ``{name: <TRANSFORMS key>, **kwargs}`` and the kwargs go to its constructor;
- ``__call__(X: np.ndarray) -> np.ndarray``: X is float32 (N, C, L); the result must be a 3-D array with the same
  N (C and L may change: the model's input shape follows the transformed training split);
- ``fit(X_train)`` (optional) is called once on the training split before any split is transformed, so
  statistics come from training data only.

:func:`apply_transforms` builds them in order, fits each on the (already transformed) training split and
applies it to every split; a transform that breaks the interface gets a one-line error naming its file.

Built-in primitives (one module per concept): ``framing`` (Frame, Concat), ``spectral`` (FFT, Magnitude,
DropDCBin, Binning, LogDB), ``scaling`` (Standardize, MinMaxScale, RemoveMean), ``resampling`` (Downsample),
``statistics`` (Statistics); ``presets`` composes them into TI's named presets; ``golden`` writes the fitted
pipeline's golden feature vectors as a C header. Each built-in has ``arithmetic()``: its exact computation.
"""
from __future__ import annotations

import inspect
from typing import Any, Iterable, Mapping

import numpy as np

from tinyverse.registry import TRANSFORMS


class TransformError(ValueError):
    """A transform that breaks the interface (wrong return type or shape). ``str()`` is one line."""


class Transform:
    """Optional base class: override ``__call__`` (and ``fit`` when the transform learns from training data)."""

    def fit(self, X: np.ndarray) -> "Transform":
        return self

    def __call__(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def arithmetic(self) -> str:
        """What the transform computes, exactly enough for device C code to reproduce (override it)."""
        return f"{type(self).__name__}: see {_where(self).rstrip(': ')}"


def _where(obj: Any) -> str:
    target = obj if inspect.isclass(obj) or inspect.isfunction(obj) else type(obj)
    try:
        return f"{inspect.getsourcefile(target)}: "
    except TypeError:
        return ""


def build_transform(name: str, params: Mapping[str, Any] | None = None) -> Any:
    factory = TRANSFORMS.get(name)
    transform = factory(**dict(params or {}))
    if not callable(transform):
        raise TransformError(f"{_where(factory)}transform '{name}' built a {type(transform).__name__}, which is "
                             f"not callable; a transform needs __call__(X) -> np.ndarray")
    return transform


def check_output(out: Any, X: np.ndarray, name: str, transform: Any, split: str) -> np.ndarray:
    if not isinstance(out, np.ndarray):
        raise TransformError(f"{_where(transform)}transform '{name}' returned {type(out).__name__} for the {split} "
                             f"split; expected a numpy array shaped (N, C, L)")
    if out.ndim != 3 or out.shape[0] != X.shape[0]:
        raise TransformError(f"{_where(transform)}transform '{name}' returned shape {out.shape} for the {split} "
                             f"split of shape {X.shape}; expected (N, C, L) with the same N={X.shape[0]}")
    return np.ascontiguousarray(out, dtype=np.float32)


def apply_transforms(specs: Iterable[tuple[str, Mapping[str, Any]]], splits: Mapping[str, np.ndarray],
                     fit_split: str = "train") -> tuple[dict[str, np.ndarray], list[Any]]:
    """Apply ``[(name, kwargs), ...]`` in order to every split; returns the new splits and the fitted transforms."""
    out = {k: np.asarray(v, dtype=np.float32) for k, v in splits.items()}
    fitted = []
    for name, params in specs:
        transform = build_transform(name, params)
        if hasattr(transform, "fit"):
            transform.fit(out[fit_split])
        for split, X in out.items():
            out[split] = check_output(transform(X), X, name, transform, split)
        fitted.append(transform)
    return out, fitted


__all__ = ["TRANSFORMS", "Transform", "TransformError", "apply_transforms", "build_transform"]
