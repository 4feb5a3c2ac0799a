"""Quantization-aware fine-tuning with a simple, explicit fake-quant: per-channel symmetric int8 on the weights of
conv, linear and recurrent (LSTM/GRU) modules, and per-tensor int8 on activations (moving-average or running
min/max observers): every spec layer's output for a spec model; for any other module (e.g. NAM's WaveNet / LSTM) the output
of every submodule that is not a container — each tensor of a tuple output on its own grid — and optionally the
model's input. Inside a recurrent module only the weights are fake-quantized: its gates and cell state run in float
(the per-step activations would need the cell unrolled in Python).

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


# Activation range observers: a moving average of per-batch min/max, or the running min/max over everything seen,
# first over one pass of the training data (what MinMax calibration of the int8 exporters computes; it suits signals
# whose level varies over the data, such as an amp capture, where a moving average of batch extremes clips the loud
# passages).
OBSERVERS = ("moving_average", "minmax")


def _activation_fake_quant(observer: str = "moving_average") -> nn.Module:
    from torch.ao.quantization import FakeQuantize, MinMaxObserver, MovingAverageMinMaxObserver

    obs = {"moving_average": MovingAverageMinMaxObserver, "minmax": MinMaxObserver}[observer]
    return FakeQuantize(observer=obs, quant_min=-128, quant_max=127, dtype=torch.qint8,
                        qscheme=torch.per_tensor_affine)


# Module types whose weights are fake-quantized: the parameter names, per module.
def _weight_names(m: nn.Module) -> list[str]:
    if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
        return ["weight"]
    if isinstance(m, nn.RNNBase):  # weight_ih_l0, weight_hh_l0, ... (biases stay float, int32 in int8 kernels)
        return [n for n, _ in m.named_parameters(recurse=False) if n.startswith("weight_")]
    return []


def quantized_weights(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(module, parameter name) of every weight QAT rounds to the int8 grid."""
    return [(m, n) for m in model.modules() for n in _weight_names(m)]


def activation_points(model: nn.Module) -> list[nn.Module]:
    """The modules whose outputs QAT fake-quantizes: a spec model's layers; else every submodule (the model
    included) that is not a container, so a hand-written model's sub-blocks (residual sums, activations they
    return) are covered as well as its convs."""
    if hasattr(model, "layers"):
        return list(model.layers.values())
    return [m for m in model.modules() if not isinstance(m, (nn.ModuleList, nn.ModuleDict, nn.Sequential))]


class OutputFakeQuant(nn.Module):
    """int8 fake-quant of a module's output: one observer per floating tensor of a (nested) tuple output, made on
    first use, so the residual and the activation a block returns each get their own range."""

    def __init__(self, observer: str = "moving_average") -> None:
        super().__init__()
        self.observer = observer
        self.fqs = nn.ModuleList()

    def forward(self, out: Any) -> Any:
        count = 0

        def q(o: Any) -> Any:
            nonlocal count
            if isinstance(o, torch.Tensor) and o.is_floating_point():
                if count == len(self.fqs):
                    self.fqs.append(_activation_fake_quant(self.observer))
                count += 1
                return self.fqs[count - 1](o)
            if isinstance(o, tuple):
                vals = [q(v) for v in o]
                return type(o)(*vals) if hasattr(o, "_fields") else tuple(vals)
            return o

        return q(out)


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
                 seed: int = 0, task: Any = None, quantize_input: bool = False,
                 observer: str = "moving_average") -> nn.Module:
    """Fine-tune ``model`` (in place) with int8 fake-quant for ``epochs``; returns it as a float model.

    ``train_arrays``/``val_arrays`` are ``(X, y)``. The loss of a batch is, in order of preference: ``task``'s own
    ``training_step`` (a Lightning task holding ``model``, e.g. ``TASKS[...]``: its loss, targets and augmentation,
    so an autoencoder reconstructs its input; validation uses its ``validation_step``), else
    ``loss_fn(output, y)``, else cross-entropy for integer ``y`` and MSE for float ``y``.
    ``quantize_input``: fake-quantize the model's (first) input too, as an int8 export whose input is int8 does.
    ``observer``: how activation ranges are estimated, one of :data:`OBSERVERS`.
    ``model.qat_history`` keeps per-epoch val metrics (the val loss is measured under the fake-quant).
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
                         seed, train_loss, val_loss, quantize_input, observer)


def _finetune(model: nn.Module, root: nn.Module, X: np.ndarray, y: np.ndarray, val_arrays: Arrays | None,
              epochs: int, lr: float, batch_size: int, seed: int, train_loss, val_loss,
              quantize_input: bool = False, observer: str = "moving_average") -> nn.Module:
    if observer not in OBSERVERS:
        raise ValueError(f"qat_finetune: observer must be one of {', '.join(OBSERVERS)}, got {observer!r}")
    weighted = quantized_weights(model)
    for m, name in weighted:
        parametrize.register_parametrization(m, name, PerChannelSymmetricFakeQuant())
    targets = activation_points(model)
    fqs = nn.ModuleList(OutputFakeQuant(observer) for _ in targets)
    hooks = [t.register_forward_hook(lambda mod, inp, out, fq=fq: fq(out)) for t, fq in zip(targets, fqs)]
    if quantize_input:
        fqs.append(OutputFakeQuant(observer))
        hooks.append(model.register_forward_pre_hook(
            lambda mod, args, fq=fqs[-1]: (fq(args[0]), *args[1:]) if args else args))
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    try:
        if observer == "minmax":  # calibrate first, as the exporters do: no step runs on a half-seen range
            model.eval()
            with torch.no_grad():
                for s in range(0, len(X), batch_size):
                    model(torch.as_tensor(X[s:s + batch_size]))
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
        for m, name in weighted:  # keep the trained latent float weights; exporters quantize them again
            parametrize.remove_parametrizations(m, name, leave_parametrized=False)
    root.eval()
    model.qat_history = history  # type: ignore[attr-defined]
    return model
