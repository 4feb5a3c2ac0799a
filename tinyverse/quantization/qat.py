"""Quantization-aware fine-tuning with a simple, explicit fake-quant: per-channel symmetric int8 on conv/linear
weights and per-tensor int8 on every spec layer's output (moving-average min/max observers).

It returns a *float* model: the fake-quant is removed after fine-tuning, leaving weights that were trained under
int8 rounding noise, so the PTQ exporters (ONNX int8, TFLite int8) lose less accuracy. Note the BatchNorm of a
ConvBNReLU layer is folded into the conv at export, which rescales the weights again; QAT here trains the
network to tolerate int8 noise, it does not pin the exact deployed grid.
"""
from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

log = logging.getLogger(__name__)

Arrays = tuple[np.ndarray, np.ndarray]


class PerChannelSymmetricFakeQuant(nn.Module):
    """Weight parametrization: round to int8 per output channel (scale = max|w| / 127), straight-through grad."""

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        flat = w.detach().reshape(w.shape[0], -1)
        scale = (flat.abs().amax(dim=1) / 127.0).clamp(min=1e-8)
        zero = torch.zeros(w.shape[0], dtype=torch.int32, device=w.device)
        return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -127, 127)


def _activation_fake_quant() -> nn.Module:
    from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver

    return FakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=-128, quant_max=127, dtype=torch.qint8,
                        qscheme=torch.per_tensor_affine)


def _default_loss(y: np.ndarray) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return nn.functional.cross_entropy if np.issubdtype(y.dtype, np.integer) else nn.functional.mse_loss


def _evaluate(model: nn.Module, root: nn.Module, arrays: Arrays, batch_loss, batch_size: int
              ) -> tuple[float, float | None]:
    """Mean validation loss (batches whose ``batch_loss`` is None, e.g. anomalous windows only, are left out) and,
    for class logits, accuracy. ``root`` is the module whose train/eval mode matters (the task, or the model)."""
    X, y = arrays
    root.eval()
    total, counted, correct = 0.0, 0, 0
    classifies = np.issubdtype(y.dtype, np.integer)
    with torch.no_grad():
        for s in range(0, len(X), batch_size):
            xb, yb = torch.as_tensor(X[s:s + batch_size]), torch.as_tensor(y[s:s + batch_size])
            loss = batch_loss(xb, yb, s // batch_size)
            if loss is not None:
                total, counted = total + float(loss) * len(xb), counted + len(xb)
            if classifies:
                out = model(xb)
                classifies = out.ndim == 2 and out.shape[1] > 1  # logits; an autoencoder's labels are not classes
                correct += int((out.argmax(1) == yb).sum()) if classifies else 0
    return (total / counted if counted else float("nan")), (correct / len(X) if classifies else None)


@contextlib.contextmanager
def _task_steps(task, model: nn.Module):
    """(train_loss, val_loss) of ``task``'s own ``training_step`` / ``validation_step`` outside a Trainer.

    The steps log through ``self.log``; detached from its (finished) Trainer, Lightning skips those calls with a
    warning that is expected here. The trainer reference and the task's metric states are restored afterwards.
    """
    import lightning as L
    from torchmetrics import Metric

    if not isinstance(task, L.LightningModule) or not any(m is model for m in task.modules()):
        raise ValueError("qat_finetune: task must be a LightningModule that holds the model being fine-tuned")
    try:
        trainer = task.trainer
    except RuntimeError:  # never attached
        trainer = None
    task.trainer = None
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*self\.log\(\)` but the `self\.trainer` reference.*")
            yield (lambda xb, yb, i: task.training_step((xb, yb), i),
                   lambda xb, yb, i: task.validation_step((xb, yb), i))
    finally:
        task.trainer = trainer
        for m in task.modules():
            if isinstance(m, Metric):
                m.reset()


def qat_finetune(model: nn.Module, train_arrays: Arrays, val_arrays: Arrays | None = None, epochs: int = 3,
                 lr: float = 1e-4, batch_size: int = 64, loss_fn: Callable | None = None,
                 seed: int = 0, task: Any = None) -> nn.Module:
    """Fine-tune ``model`` (in place) with int8 fake-quant for ``epochs``; returns it as a float model.

    ``train_arrays``/``val_arrays`` are ``(X, y)``. The loss of a batch is, in order of preference: ``task``'s own
    ``training_step`` (a Lightning task holding ``model``, e.g. ``TASKS[...]``: its loss, targets and augmentation,
    so an autoencoder reconstructs its input; validation uses its ``validation_step``), else
    ``loss_fn(output, y)``, else cross-entropy for integer ``y`` and MSE for float ``y``.
    ``model.qat_history`` keeps per-epoch val metrics.
    """
    X, y = (np.asarray(a) for a in train_arrays)
    X = X.astype(np.float32)
    y = y.astype(np.int64) if np.issubdtype(y.dtype, np.integer) else y.astype(np.float32)
    with contextlib.ExitStack() as stack:
        if task is not None:
            train_loss, val_loss = stack.enter_context(_task_steps(task, model))
        else:
            fn = loss_fn or _default_loss(y)
            train_loss = val_loss = lambda xb, yb, i: fn(model(xb), yb)  # noqa: E731
        return _finetune(model, task if task is not None else model, X, y, val_arrays, epochs, lr, batch_size,
                         seed, train_loss, val_loss)


def _finetune(model: nn.Module, root: nn.Module, X: np.ndarray, y: np.ndarray, val_arrays: Arrays | None,
              epochs: int, lr: float, batch_size: int, seed: int, train_loss, val_loss) -> nn.Module:
    weighted = [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]
    for m in weighted:
        parametrize.register_parametrization(m, "weight", PerChannelSymmetricFakeQuant())
    # fake-quant every spec layer's output (or every leaf's output for a plain nn.Module)
    targets = list(model.layers.values()) if hasattr(model, "layers") else [
        m for m in model.modules() if not list(m.children())]
    fqs = nn.ModuleList(_activation_fake_quant() for _ in targets)
    hooks = [t.register_forward_hook(lambda mod, inp, out, fq=fq: fq(out) if isinstance(out, torch.Tensor) else out)
             for t, fq in zip(targets, fqs)]
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    try:
        for epoch in range(epochs):
            root.train()
            fqs.train()
            order = torch.randperm(len(X), generator=g).numpy()
            for s in range(0, len(X), batch_size):
                idx = order[s:s + batch_size]
                if len(idx) < 2:  # BatchNorm cannot train on one sample
                    continue
                opt.zero_grad()
                loss = train_loss(torch.as_tensor(X[idx]), torch.as_tensor(y[idx]), s // batch_size)
                loss.backward()
                opt.step()
            if val_arrays is not None:
                vX, vy = (np.asarray(a) for a in val_arrays)
                vy = vy.astype(np.int64) if np.issubdtype(vy.dtype, np.integer) else vy.astype(np.float32)
                vloss, vacc = _evaluate(model, root, (vX.astype(np.float32), vy), val_loss, batch_size)
                history.append({"epoch": epoch, "val_loss": vloss, "val_accuracy": vacc})
                log.info("QAT epoch %d: val loss %.4f%s", epoch, vloss,
                         "" if vacc is None else f", val accuracy {vacc:.4f}")
    finally:
        for h in hooks:
            h.remove()
        for m in weighted:  # keep the trained latent float weights; exporters quantize them again
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)
    root.eval()
    model.qat_history = history  # type: ignore[attr-defined]
    return model
