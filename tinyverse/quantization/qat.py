"""Quantization-aware fine-tuning with a simple, explicit fake-quant: per-channel symmetric int8 on conv/linear
weights and per-tensor int8 on every spec layer's output (moving-average min/max observers).

It returns a *float* model: the fake-quant is removed after fine-tuning, leaving weights that were trained under
int8 rounding noise, so the PTQ exporters (ONNX int8, TFLite int8) lose less accuracy. Note the BatchNorm of a
ConvBNReLU layer is folded into the conv at export, which rescales the weights again; QAT here trains the
network to tolerate int8 noise, it does not pin the exact deployed grid.
"""
from __future__ import annotations

import logging
from typing import Callable

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


def _evaluate(model: nn.Module, arrays: Arrays, loss_fn, batch_size: int) -> tuple[float, float | None]:
    X, y = arrays
    model.eval()
    losses, correct = [], 0
    with torch.no_grad():
        for s in range(0, len(X), batch_size):
            xb, yb = torch.as_tensor(X[s:s + batch_size]), torch.as_tensor(y[s:s + batch_size])
            out = model(xb)
            losses.append(float(loss_fn(out, yb)) * len(xb))
            if yb.dtype in (torch.int64, torch.int32):
                correct += int((out.argmax(1) == yb).sum())
    is_cls = np.issubdtype(y.dtype, np.integer)
    return sum(losses) / len(X), (correct / len(X) if is_cls else None)


def qat_finetune(model: nn.Module, train_arrays: Arrays, val_arrays: Arrays | None = None, epochs: int = 3,
                 lr: float = 1e-4, batch_size: int = 64, loss_fn: Callable | None = None,
                 seed: int = 0) -> nn.Module:
    """Fine-tune ``model`` (in place) with int8 fake-quant for ``epochs``; returns it as a float model.

    ``train_arrays``/``val_arrays`` are ``(X, y)``; integer ``y`` means classification (cross-entropy), float
    ``y`` regression (MSE), unless ``loss_fn`` is given. ``model.qat_history`` keeps per-epoch val metrics.
    """
    X, y = (np.asarray(a) for a in train_arrays)
    X = X.astype(np.float32)
    y = y.astype(np.int64) if np.issubdtype(y.dtype, np.integer) else y.astype(np.float32)
    loss_fn = loss_fn or _default_loss(y)
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
            model.train()
            fqs.train()
            order = torch.randperm(len(X), generator=g).numpy()
            for s in range(0, len(X), batch_size):
                idx = order[s:s + batch_size]
                if len(idx) < 2:  # BatchNorm cannot train on one sample
                    continue
                opt.zero_grad()
                loss = loss_fn(model(torch.as_tensor(X[idx])), torch.as_tensor(y[idx]))
                loss.backward()
                opt.step()
            if val_arrays is not None:
                vX, vy = (np.asarray(a) for a in val_arrays)
                vy = vy.astype(np.int64) if np.issubdtype(vy.dtype, np.integer) else vy.astype(np.float32)
                vloss, vacc = _evaluate(model, (vX.astype(np.float32), vy), loss_fn, batch_size)
                history.append({"epoch": epoch, "val_loss": vloss, "val_accuracy": vacc})
                log.info("QAT epoch %d: val loss %.4f%s", epoch, vloss,
                         "" if vacc is None else f", val accuracy {vacc:.4f}")
    finally:
        for h in hooks:
            h.remove()
        for m in weighted:  # keep the trained latent float weights; exporters quantize them again
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)
    model.eval()
    model.qat_history = history  # type: ignore[attr-defined]
    return model
