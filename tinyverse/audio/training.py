"""The amp-modelling training recipe (``TASKS["amp_modelling"]``), NAM's defaults.

Loss: MSE + ``stft_weight`` × multi-resolution STFT of pre-emphasised signals (NAM 0.13: weight 5e-4,
pre-emphasis 0.85). Validation: ESR (``val_esr``), which also picks the checkpoint. Optimizer: Adam,
lr 0.004, ExponentialLR gamma 0.994 per epoch (NAM 0.13). LSTMs: the first ``burn_in`` output samples of each window
are left out of the loss while the state settles.

Batches are ``(x, y)`` with ``x`` of shape (N, ny + receptive_field − 1) and ``y`` of shape (N, ny); the
model runs in "valid" mode, so its output has exactly ``ny`` samples.

A model with more than one output to score (``model.scored_outputs``, the model contract; a SlimmableContainer's
submodels) trains as NAM's packed training does (nam/train/lightning_module.py ``PackedLightningModule``): the loss
is the sum of each output's loss, and each output's validation ESR is logged (``val_esr_<name>``). ``val_esr``,
which picks the checkpoint, is the primary (last, full-size) output's.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tinyverse.audio.metrics import esr
from tinyverse.registry import TASKS
from tinyverse.training.tasks import TaskModule

__all__ = ["AmpModellingTask", "amp_loss", "esr_loss", "multi_resolution_stft_loss", "output_esrs", "pre_emphasis"]

CHUNK_SAMPLES = 65536  # input samples per forward chunk (see AmpModellingTask.scored)
BATCH_STATISTICS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm)  # layers whose output depends on the batch
STFT_RESOLUTIONS = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))  # (fft, hop, window), as auraloss


def pre_emphasis(x: torch.Tensor, coef: float) -> torch.Tensor:
    """First-order high-pass ``x[n] − coef·x[n−1]`` along the last axis (drops the first sample)."""
    return x[..., 1:] - coef * x[..., :-1]


def multi_resolution_stft_loss(pred: torch.Tensor, target: torch.Tensor,
                               resolutions: tuple[tuple[int, int, int], ...] = STFT_RESOLUTIONS,
                               eps: float = 1e-8) -> torch.Tensor:
    """Mean over resolutions of spectral convergence + log-magnitude L1 (auraloss's MultiResolutionSTFTLoss)."""
    total = pred.new_zeros(())
    n = 0
    for fft, hop, win in resolutions:
        if pred.shape[-1] < win:
            continue
        window = torch.hann_window(win, device=pred.device, dtype=pred.dtype)
        sp = torch.stft(pred, fft, hop, win, window, return_complex=True).abs()
        st = torch.stft(target, fft, hop, win, window, return_complex=True).abs()
        sc = torch.linalg.norm(st - sp) / (torch.linalg.norm(st) + eps)
        mag = F.l1_loss(torch.log(sp + eps), torch.log(st + eps))
        total = total + sc + mag
        n += 1
    return total / max(n, 1)


def esr_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per-example ESR averaged over the batch (NAM's losses.esr)."""
    num = torch.mean((pred - target) ** 2, dim=-1)
    den = torch.mean(target ** 2, dim=-1) + eps
    return torch.mean(num / den)


@torch.no_grad()
def output_esrs(model: nn.Module, x: Any, target: Any) -> dict[str, float]:
    """Each scored output's ESR (``model.scored_outputs``: a container's submodels) on the whole input ``x`` (1, L
    with context) against ``target`` (L_out,); {} for a model with one output."""
    fn = getattr(model, "scored_outputs", None)
    outs = fn(torch.as_tensor(x)) if callable(fn) else {}
    if len(outs) < 2:
        return {}
    return {name: esr(target, o[0].numpy()) for name, o in outs.items()}


def amp_loss(pred: torch.Tensor, target: torch.Tensor, stft_weight: float = 2e-4,
             pre_emphasis_coef: float = 0.85) -> tuple[torch.Tensor, torch.Tensor]:
    """NAM's training loss, (MSE + ``stft_weight`` × multi-resolution STFT of pre-emphasised signals, its MSE)."""
    mse = F.mse_loss(pred, target)
    loss = mse
    if stft_weight > 0:
        loss = loss + stft_weight * multi_resolution_stft_loss(pre_emphasis(pred, pre_emphasis_coef),
                                                               pre_emphasis(target, pre_emphasis_coef))
    return loss, mse


def output_gain(level_dbfs: float | None, target_rms: float | None) -> float:
    """The gain that brings a target of RMS ``target_rms`` to ``level_dbfs`` dBFS RMS (NAM's trainer normalises the
    output to -18 dBFS before training); 1.0 when no level is asked for."""
    if level_dbfs is None:
        return 1.0
    if target_rms is None or not np.isfinite(target_rms) or target_rms <= 0:
        raise ValueError(f"output level {level_dbfs} dBFS needs the training target's RMS (> 0), got {target_rms}")
    return float(10 ** (float(level_dbfs) / 20) / float(target_rms))


@TASKS.register("amp_modelling", modality="audio")
class AmpModellingTask(TaskModule):
    """Train a NAM-style audio model on (input window with context, output window) pairs."""

    def __init__(self, model: nn.Module, *, optimizer: str = "adam", learning_rate: float = 0.004,
                 weight_decay: float = 0.0, momentum: float = 0.9, lr_scheduler: str = "exponential",
                 lr_decay: float = 0.994, epochs: int = 100, stft_weight: float = 5e-4,
                 pre_emphasis_coef: float = 0.85, burn_in: int | None = None, output_level_dbfs: float | None = None,
                 target_rms: float | None = None) -> None:
        # The base class knows cosine/onecycle/none; "exponential" (NAM's schedule) is handled here.
        base_sched = "none" if lr_scheduler == "exponential" else lr_scheduler
        super().__init__(model, optimizer=optimizer, learning_rate=learning_rate, weight_decay=weight_decay,
                         momentum=momentum, lr_scheduler=base_sched, epochs=epochs)
        if burn_in is None:
            # LSTMs start each window from the initial state: let it settle before scoring.
            burn_in = 0 if int(getattr(model, "receptive_field", 1)) > 1 else 256
        self.save_hyperparameters(ignore=["model"])
        self.hparams.burn_in = int(burn_in)
        self.hparams.output_gain = output_gain(output_level_dbfs, target_rms)

    def configure_optimizers(self) -> Any:
        if self.hparams.lr_scheduler != "exponential":
            return super().configure_optimizers()
        hp = self.hparams
        opt = torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=hp.learning_rate,
                               weight_decay=hp.weight_decay)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=hp.lr_decay)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

    def scored(self, x: torch.Tensor, y: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """(each output to score by name, the primary last; the target), burn-in cut from both."""
        fn = getattr(self.model, "scored_outputs", None)
        run = (lambda xs: dict(fn(xs))) if callable(fn) else (lambda xs: {"model": self.model(xs)})
        # The batch runs in chunks of about CHUNK_SAMPLES input samples: the same outputs and the same gradient (the
        # chunks' graphs are disjoint, so autograd runs their backward one chunk after the other), but a small
        # model's activations stay in the CPU cache: NAM's batch of 16 windows of 8192 trains ~2.5x faster per
        # sample in chunks of 4 than whole (bench/bench_vs_nam.py).
        n = max(1, CHUNK_SAMPLES // max(1, int(x.shape[-1])))
        batch_stats = any(isinstance(m, BATCH_STATISTICS) and m.training for m in self.model.modules())
        if x.shape[0] <= n or batch_stats:  # batch-norm statistics would change with the chunk
            preds = run(x)
        else:
            parts = [run(x[i:i + n]) for i in range(0, x.shape[0], n)]
            preds = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        for name, pred in preds.items():
            if pred.shape[-1] != y.shape[-1]:
                who = f" ({name})" if len(preds) > 1 else ""
                raise ValueError(f"model output{who} has {pred.shape[-1]} samples, target {y.shape[-1]}: the input "
                                 "windows must carry receptive_field − 1 samples of context")
        b = int(self.hparams.burn_in)
        if b and y.shape[-1] > b:
            preds, y = {k: p[..., b:] for k, p in preds.items()}, y[..., b:]
        return preds, y

    def _loss(self, pred: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(NAM's training loss, its MSE part)."""
        # The loss sees both signals at the normalised level (``output_level_dbfs``, NAM: -18), so the balance
        # of MSE and the scale-free STFT term does not depend on how loud the capture was recorded.
        g = float(self.hparams.output_gain)
        if g != 1.0:
            pred, y = pred * g, y * g
        return amp_loss(pred, y, float(self.hparams.stft_weight), float(self.hparams.pre_emphasis_coef))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        preds, y = self.scored(x, y)
        n = x.shape[0]
        total = None
        for name, pred in preds.items():
            loss, mse = self._loss(pred, y)
            total = loss if total is None else total + loss  # NAM's packed training: the sum of the submodels'
            if len(preds) > 1:
                self.log(f"train_mse_{name}", mse, on_step=False, on_epoch=True, batch_size=n)
        assert total is not None
        self.log("train_loss", total, on_step=False, on_epoch=True, prog_bar=True, batch_size=n)
        self.log("train_mse", mse, on_step=False, on_epoch=True, batch_size=n)  # the primary output's
        return total

    def _eval(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        preds, y = self.scored(x, y)
        n = x.shape[0]
        for name, pred in preds.items():
            e = esr_loss(pred, y)
            if len(preds) > 1:
                self.log(f"{stage}_esr_{name}", e, on_step=False, on_epoch=True, batch_size=n)
        self.log(f"{stage}_esr", e, on_step=False, on_epoch=True, prog_bar=True, batch_size=n)  # the primary's
        self.log(f"{stage}_loss", F.mse_loss(pred, y), on_step=False, on_epoch=True, batch_size=n)
        return e

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._eval(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._eval(batch, "test")
