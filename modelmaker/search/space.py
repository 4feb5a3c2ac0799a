"""The search space of ``modelmaker search``: which zoo entries, how wide and deep, which input features, which
recipe settings — and how one sampled point becomes ordinary config overrides (so a trial, and the winner's final
run, are validated and built exactly as ``modelmaker run`` builds them).

Widths and depths are the zoo functions' own arguments (``training.model_args``): a width multiplier scales a
``channels`` list or a ``width`` (rounded to multiples of 4, the TI NPU's channel rule, which costs nothing
elsewhere); a depth step drops or repeats the last stage of the ``channels`` / ``kernel_sizes`` / ``strides`` lists
(a repeated stage keeps the length: stride 1) or changes ``blocks``.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

WIDTHS = (0.5, 0.75, 1.0, 1.5, 2.0)
DEPTHS = (-1, 0, 1)
DROPOUTS = (0.0, 0.1, 0.2)
DOWNSAMPLE_FACTORS = (2, 4)
MIN_FEATURE_LENGTH = 16  # shorter inputs leave nothing for the conv ladders' strides
# Architecture arguments the data decides (never searched, never carried from one entry to another).
DATA_ARGS = ("input_shape", "num_classes", "num_outputs")
AS_CONFIGURED = "as configured"


@dataclass
class SearchSpace:
    """The choices of one search. ``features`` maps a label to the ``feature_extraction`` section it stands for
    (None: the config's own)."""

    models: list[str]
    features: dict[str, dict | None]
    base_args: dict[str, dict[str, Any]]  # per entry: its architecture arguments before width/depth
    learning_rate: tuple[float, float]
    epochs: tuple[int, int]
    augmentation: dict[str, tuple[float, float]] = field(default_factory=dict)
    # The input as the config's own run fitted it (dataset.input_channels / input_length: zero channels the device
    # needs, the length policy), pinned for every trial: the fit is decided once, not searched per trial. Feature
    # variants keep the length they produce.
    input_shape: tuple[int, int] | None = None

    def describe(self) -> list[str]:
        """One line per dimension, for the report."""
        lo, hi = self.learning_rate
        return [f"model: {', '.join(self.models)}",
                f"width multiplier: {', '.join(f'{w:g}' for w in WIDTHS)} (channels rounded to multiples of 4)",
                f"depth step: {', '.join(f'{d:+d}' for d in DEPTHS)} (stages or residual blocks)",
                f"input features: {', '.join(self.features)}",
                f"learning rate: {lo:.2g}-{hi:.2g} (log)", f"epochs per trial: {self.epochs[0]}-{self.epochs[1]}",
                "augmentation: " + ", ".join(f"{k} {a:g}-{b:g}" for k, (a, b) in self.augmentation.items()),
                f"dropout: {', '.join(f'{d:g}' for d in DROPOUTS)} (entries that take it)"]


def round4(c: float) -> int:
    return max(4, int(round(c / 4)) * 4)


def scale_args(args: dict[str, Any], width: float, depth: int) -> dict[str, Any]:
    """A zoo entry's architecture arguments at a width multiplier and a depth step (see the module docstring)."""
    out = copy.deepcopy(args)
    lists = [k for k in ("channels", "kernel_sizes", "strides") if isinstance(out.get(k), (list, tuple))]
    if "channels" in lists:
        n = len(out["channels"])
        same = [k for k in lists if len(out[k]) == n]
        if depth < 0 and n > 1:
            for k in same:
                out[k] = list(out[k])[:depth]
        elif depth > 0:
            extra = {"channels": out["channels"][-1], "kernel_sizes": 3, "strides": 1}
            for k in same:
                out[k] = list(out[k]) + [extra[k]] * depth
        out["channels"] = [round4(c * width) for c in out["channels"]]
    if isinstance(out.get("width"), int):
        out["width"] = round4(out["width"] * width)
    if isinstance(out.get("blocks"), int):
        out["blocks"] = max(1, out["blocks"] + depth)
    for k in ("channels", "kernel_sizes", "strides"):
        if isinstance(out.get(k), tuple):
            out[k] = list(out[k])
    return out


def architecture_args(name: str, configured: str | None, model_args: dict[str, Any]) -> dict[str, Any]:
    """An entry's searchable arguments: its defaults, with the config's model_args when it is the configured entry."""
    from tinyverse.models import model_arguments

    args = {k: v for k, v in model_arguments(name).items() if k not in DATA_ARGS and not _empty(v)}
    if name == configured:
        args.update({k: v for k, v in model_args.items() if k not in DATA_ARGS})
    return {k: list(v) if isinstance(v, tuple) else v for k, v in args.items()}


def _empty(v: Any) -> bool:
    import inspect

    return v is inspect.Parameter.empty


def feature_options(cfg, series_length: int) -> dict[str, dict | None]:
    """The input variants: the config's own, decimated by 2 and 4 (while at least MIN_FEATURE_LENGTH samples stay),
    and the named feature presets whose frame the series can fill."""
    from tinyverse.registry import TRANSFORMS
    from tinyverse.timeseries.transforms.presets import Preset

    fe = cfg.feature_extraction
    own = fe.enable and (fe.preset or fe.transforms)
    options: dict[str, dict | None] = {AS_CONFIGURED: None}
    if own:
        return options  # the user chose the features; only the model and recipe are searched
    for f in DOWNSAMPLE_FACTORS:
        if series_length // f >= MIN_FEATURE_LENGTH:
            options[f"downsample x{f}"] = {"enable": True, "preset": None,
                                           "transforms": [{"name": "Downsample", "factor": f}]}
    for name in TRANSFORMS.names():
        cls = TRANSFORMS.get(name)
        if isinstance(cls, type) and issubclass(cls, Preset) and cls().samples_needed <= series_length:
            options[name] = {"enable": True, "preset": name, "transforms": []}
    return options


def build_space(cfg, input_shape: Sequence[int], trial_epochs: int, models: Sequence[str] | None = None) -> SearchSpace:
    """The space for a config whose data (as its own run loads them) have ``input_shape`` (channels, length): the
    shippable zoo entries of its task (or ``models``), its features, and recipe ranges around the config's own
    learning rate and augmentation."""
    from tinyverse.devices.fitting import shippable_entries

    t = cfg.training
    names = list(models) if models else shippable_entries(task=cfg.common.task_type)
    base = {n: architecture_args(n, t.model_name, dict(t.model_args)) for n in names}
    lr = float(t.learning_rate)
    aug = t.augmentation
    ranges = {"time_shift": (0.0, max(0.2, 2 * aug.time_shift)), "scale": (0.0, max(0.3, 2 * aug.scale)),
              "noise": (0.0, max(0.1, 2 * aug.noise))}
    ranges = {k: (a, min(b, 0.9)) for k, (a, b) in ranges.items()}
    channels, length = int(input_shape[0]), int(input_shape[-1])
    return SearchSpace(names, feature_options(cfg, length), base, (lr / 4, lr * 4),
                       (max(1, math.ceil(trial_epochs / 2)), trial_epochs), ranges, (channels, length))


def sample(trial, space: SearchSpace) -> dict[str, Any]:
    """One point of ``space`` drawn by an Optuna trial: the config overrides it stands for (``training`` and, when
    the features change, ``feature_extraction``)."""
    from tinyverse.models import model_arguments

    name = trial.suggest_categorical("model", space.models)
    width = trial.suggest_categorical("width", list(WIDTHS))
    depth = trial.suggest_categorical("depth", list(DEPTHS))
    features = trial.suggest_categorical("features", list(space.features))
    args = scale_args(space.base_args[name], width, depth)
    if "dropout" in model_arguments(name):
        args["dropout"] = trial.suggest_categorical("dropout", list(DROPOUTS))
    lr = trial.suggest_float("learning_rate", *space.learning_rate, log=True)
    epochs = trial.suggest_int("epochs", *space.epochs)
    aug = {k: round(trial.suggest_float(k, lo, hi), 4) for k, (lo, hi) in space.augmentation.items()}
    training = {"model_name": name, "model_config": None, "model_args": args, "learning_rate": lr, "epochs": epochs,
                "augmentation": aug}
    out: dict[str, Any] = {"training": training}
    if space.features[features] is not None:
        out["feature_extraction"] = space.features[features]
    if space.input_shape is not None:
        channels, length = space.input_shape
        out["dataset"] = {"input_channels": channels, "input_length": length if features == AS_CONFIGURED else None}
    return out


def merge(base: dict, extra: dict) -> dict:
    """Nested dict update (``extra`` wins), copying ``base``."""
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "model_args":
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


__all__ = ["AS_CONFIGURED", "SearchSpace", "build_space", "feature_options", "merge", "sample", "scale_args"]
