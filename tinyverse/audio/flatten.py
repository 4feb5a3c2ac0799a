"""Flattening a composed model into one plain model, for pedals and plugins that cannot load containers.

Two ways (docs/composition.md, "Flattening"):

* :func:`distil` — train a plain zoo model (e.g. ``NAM_WaveNet_feather``) on the chain's own output for a
  standard-style input (:func:`tinyverse.audio.capture.standard_input`), with the amp-modelling recipe (NAM's loss,
  ESR on the held-out validation block picks the checkpoint), and report its ESR against the chain. Lossy; works for
  any chain; the student is written in the oldest .nam version that expresses it (0.5.4 for an A1 preset, which the
  0.5-era engines of pedals load).
* :func:`fold_ir` — exact, where the architecture allows: a WaveNet followed only by IRs (Linear stages) becomes one
  WaveNet whose post-stack head is the IRs' combined filter (a single ``kernel_size = taps`` conv behind an identity
  activation: LeakyReLU with slope 1). Same samples as the chain once the IR's length has passed after a reset (until
  then the folded head hears the amp's answer to silence, where Core's Sequential starts the IR from zeros); same
  cost, too. A version-0.7.0 file that NAM Core >= 0.4.1 loads, not the 0.5-era engines.
"""
from __future__ import annotations

import copy
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tinyverse.audio.metrics import esr
from tinyverse.audio.nam import model_from_nam, nam_from_dict, nam_to_dict, render

__all__ = ["FlattenError", "Flattened", "chain_capture", "distil", "fold", "fold_ir"]

log = logging.getLogger(__name__)

IDENTITY_ACTIVATION = {"type": "LeakyReLU", "negative_slope": 1.0}  # x > 0 ? x : 1.0 · x, in every NAM Core


class FlattenError(ValueError):
    """A chain that cannot be flattened this way; ``str()`` is one line with the reason and the alternative."""


@dataclass
class Flattened:
    """A plain model standing in for a chain, how it was made, and its ESR against the chain's output."""

    model: nn.Module
    method: str  # "fold" (exact) or "distil"
    esr: float  # against the chain on the validation block (distil) or on the whole input (fold)
    info: dict[str, Any] = field(default_factory=dict)


def _stages(chain: nn.Module) -> list[nn.Module]:
    """The chain's stages in order, nested Sequentials opened (a DAG with a fan-in has no order to fold)."""
    arch = getattr(chain, "nam_architecture", None)
    if arch != "Sequential":
        return [chain]
    models = chain.as_sequential().models if hasattr(chain, "as_sequential") else chain.models
    return [s for m in models for s in _stages(m)]


def fold_ir(chain: nn.Module) -> nn.Module:
    """The exact one-model equivalent of ``WaveNet → IR (→ IR ...)``: the WaveNet with the IRs (convolved into one
    filter) as its post-stack head. Raises :class:`FlattenError` saying why a chain does not fold."""
    stages = _stages(chain)
    archs = [getattr(s, "nam_architecture", type(s).__name__) for s in stages]
    if len(stages) < 2 or archs[0] != "WaveNet" or any(a != "Linear" for a in archs[1:]):
        raise FlattenError(f"no exact fold for a chain of {' -> '.join(archs)}: only a WaveNet followed by impulse "
                           "responses (Linear stages) folds into one model; distil it instead (--flatten MODEL)")
    amp = stages[0]
    if amp.slimmable:
        raise FlattenError("no exact fold for a slimmable WaveNet (each size would need its own head); distil it")
    d = nam_to_dict(amp)
    if d["config"].get("head") is not None:
        raise FlattenError("no exact fold: the WaveNet already has a post-stack head, which is not linear; distil it")
    ir, bias = np.ones(1), 0.0
    for s in stages[1:]:
        w = np.asarray(s.export_weights(), np.float64)
        taps = w[:s.receptive_field]
        has_bias = len(w) > s.receptive_field
        bias = bias * taps.sum() + (w[-1] if has_bias else 0.0)  # an earlier bias passes through the later IR
        ir = np.convolve(ir, taps)
    d["version"] = "0.7.0"
    d["config"]["head"] = {"channels": 1, "out_channels": 1, "kernel_sizes": [len(ir)],
                           "activation": dict(IDENTITY_ACTIVATION)}
    # Flat order: layer arrays, then the post-stack head's conv (torch order: the newest sample's tap last), then
    # head_scale.
    d["weights"] = d["weights"][:-1] + ir[::-1].tolist() + [bias] + d["weights"][-1:]
    return model_from_nam(nam_from_dict(d, "folded chain"))


def chain_capture(chain: nn.Module, sample_rate: int, seconds: float, seed: int = 0):
    """A standard-style input, the chain's output for it (from silence, as a player renders), as capture data."""
    from tinyverse.audio.capture import standard_input
    from tinyverse.audio.dataset import CaptureData, LatencyResult

    x, layout = standard_input(sample_rate, seed, seconds)
    y = render(chain, x).numpy().astype(np.float32)
    return CaptureData(x=x, y=y, sample_rate=sample_rate, layout=layout,
                       latency=LatencyResult(delay=0, delays=[], threshold=0.0, manual=True),
                       repeatability_esr=None, warnings=[], info={}, name="chain")


def distil(chain: nn.Module, student: nn.Module, *, sample_rate: int = 48_000, seconds: float = 40.0,
           epochs: int = 10, batch_size: int = 4, ny: int = 4096, learning_rate: float = 0.004, seed: int = 0,
           accelerator: str = "cpu",
           work_dir: str | Path | None = None, progress_bar: bool = False) -> Flattened:
    """Train ``student`` (a plain streaming NAM model, e.g. ``create_model("NAM_WaveNet_feather")``) to compute what
    ``chain`` computes on ``seconds`` of standard-style input; the checkpoint with the lowest validation ESR is kept.
    ``work_dir`` holds the checkpoints (a temporary folder by default). Small batches of short windows by default
    (NAM trains 100 epochs of 16 × 8,192 samples): a short run on a CPU gains more from many updates than from
    large ones (A1 standard + 2,048-tap cab into feather, 40 s, 10 epochs: ESR 0.27 with batches of 4 × 4,096
    samples, 0.56 with 16 × 8,192)."""
    from tinyverse.registry import TASKS
    from tinyverse.training import TrainConfig, fit, load_task_weights

    if getattr(student, "nam_architecture", None) in ("Sequential", "DAG", "SlimmableContainer"):
        raise FlattenError("the flattened model must be a plain model (a WaveNet, LSTM or Linear zoo model)")
    started = time.time()
    data = chain_capture(chain, sample_rate, seconds, seed)
    rf = int(student.receptive_field)
    X, Y = data.windows(rf, ny=ny)
    Xv, Yv = data.validation(rf)
    task = TASKS.get("amp_modelling")(model=student, epochs=epochs, learning_rate=learning_rate)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, accelerator=accelerator, devices=1,
                      early_stopping_patience=None, monitor="val_esr", monitor_mode="min", progress_bar=progress_bar)
    log.info("distilling into %s: %d windows of %d samples (%.1f s of chain output), %d epochs",
             type(student).__name__, len(X), ny, Y.size / sample_rate, epochs)
    with tempfile.TemporaryDirectory(prefix="flatten-") as tmp:
        out = Path(work_dir) if work_dir is not None else Path(tmp)
        result = fit(task, (X, Y), (Xv, Yv), out, cfg)
        load_task_weights(task, result.best_checkpoint)
    model = task.model.cpu().eval()
    model.prepare_for_inference()
    with torch.no_grad():
        pred = copy.deepcopy(model).double()(torch.as_tensor(Xv, dtype=torch.float64)).numpy()[0]
    value = esr(Yv[0].astype(np.float64), pred)
    return Flattened(model, "distil", value, {"epochs": result.epochs_run, "seconds": round(time.time() - started, 1),
                                              "train_seconds_of_audio": round(Y.size / sample_rate, 1),
                                              "validation_seconds": round(Yv.size / sample_rate, 2)})


def fold(chain: nn.Module, sample_rate: int = 48_000, seconds: float = 2.0, seed: int = 0) -> Flattened:
    """:func:`fold_ir` and its ESR against the chain on ``seconds`` of noise-like input (≈ 0: the fold is exact
    once ``info["settle_samples"]`` samples of a stream have passed — before that the folded head hears the amp's
    answer to silence, where the chain's IR stage starts from zeros)."""
    folded = fold_ir(chain)
    x = np.random.default_rng(seed).standard_normal(int(sample_rate * seconds)).astype(np.float32) * 0.3
    value = esr(render(chain, x).numpy(), render(folded, x).numpy())
    amp_rf = _stages(chain)[0].receptive_field
    return Flattened(folded, "fold", value, {"settle_samples": int(folded.receptive_field - amp_rf)})
