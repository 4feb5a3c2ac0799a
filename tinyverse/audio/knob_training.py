"""The knob-modelling training recipe (``TASKS["knob_modelling"]``): amp modelling with a knob vector per window.

Batches are ``(x, params, y)``: ``x`` (N, ny + receptive_field − 1) with its context, ``params`` (N, K) the
normalised knob values of the setting the window was recorded at, ``y`` (N, ny) — what
:meth:`tinyverse.audio.knob_capture.KnobCaptureData.windows` returns. Loss, optimizer, schedule and LSTM burn-in are
the amp-modelling task's (:class:`tinyverse.audio.training.AmpModellingTask`, :func:`~tinyverse.audio.training.amp_loss`);
``val_esr`` over the validation windows picks the checkpoint (ESR per setting, seen and unseen, is computed on the
whole validation signals after training). The checkpoint carries the model's record (``knob_model``: architecture,
config, knob declaration, sample rate), so ``modelmaker render`` / ``freeze`` rebuild it from the checkpoint alone.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tinyverse.audio.training import AmpModellingTask, amp_loss, esr_loss
from tinyverse.registry import TASKS

__all__ = ["KnobModellingTask"]

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@TASKS.register("knob_modelling", modality="audio")
class KnobModellingTask(AmpModellingTask):
    """Train a knob-conditioned model (:class:`tinyverse.audio.nam.knob_models.KnobModel`) on (window, knobs,
    target). ``sample_rate``: stored with the checkpoint's model record."""

    def __init__(self, model: nn.Module, *, sample_rate: float | None = None, **kwargs: Any) -> None:
        if "params" not in getattr(model, "input_shapes", {}):
            raise ValueError(f"knob_modelling needs a knob-conditioned model (inputs audio and params); "
                             f"{type(model).__name__} takes audio only — use amp_modelling")
        super().__init__(model, **kwargs)
        self.hparams.sample_rate = sample_rate

    def forward(self, x: torch.Tensor, params: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(x, params)

    def predict_batch(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(prediction, target) of a batch, the LSTM burn-in cut from both."""
        x, params, y = batch
        pred = self.model(x, params)
        if pred.shape[-1] != y.shape[-1]:
            raise ValueError(f"model output has {pred.shape[-1]} samples, target {y.shape[-1]}: the input windows "
                             "must carry receptive_field − 1 samples of context")
        b = int(self.hparams.burn_in)
        if b and y.shape[-1] > b:
            pred, y = pred[..., b:], y[..., b:]
        return pred, y

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        pred, y = self.predict_batch(batch)
        loss, mse = amp_loss(pred, y, float(self.hparams.stft_weight), float(self.hparams.pre_emphasis_coef))
        n = y.shape[0]
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=n)
        self.log("train_mse", mse, on_step=False, on_epoch=True, batch_size=n)
        return loss

    def evaluate_batch(self, batch: Batch, stage: str) -> torch.Tensor:
        pred, y = self.predict_batch(batch)
        e = esr_loss(pred, y)
        n = y.shape[0]
        self.log(f"{stage}_esr", e, on_step=False, on_epoch=True, prog_bar=True, batch_size=n)
        self.log(f"{stage}_loss", F.mse_loss(pred, y), on_step=False, on_epoch=True, batch_size=n)
        return e

    def validation_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self.evaluate_batch(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self.evaluate_batch(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        x, params = batch[0], batch[1]
        return self.model(x, params)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Plain data only: the checkpoint stays loadable with torch.load(weights_only=True).
        checkpoint["knob_model"] = {**self.model.record(), "sample_rate": self.hparams.sample_rate}
