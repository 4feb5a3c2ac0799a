"""Worked example (a): a knob-conditioned amp/pedal model as an extension.

Registers, all through the ordinary registries:

- ``KnobNet`` (MODEL_REGISTRY): a plain ``nn.Module`` taking ``audio`` (B, 1, T) and ``params`` (B, 2, T) — the
  per-sample ``gain`` and ``tone`` knob values — and returning audio (B, 1, T). A causal dilated conv stack; it
  declares ``receptive_field`` (samples of history one output sample sees).
- ``KnobWavPair`` (DATASETS): an input WAV, the device's output WAV and a CSV of time-aligned knob values
  (columns ``time_s,gain,tone``; linearly interpolated to every sample), cut into training segments.
- ``knob_esr`` (TASKS): a TaskModule subclass whose loss is the error-to-signal ratio (a custom loss).
- ``knob_audio`` (AI_MODULES): the small modality that ties them together: load → train → test ESR against the
  bypass baseline (output = input) → ONNX export checked against PyTorch.

Use it from a config with ``extensions: [knob_audio.py]`` and ``common.modality: knob_audio`` (see knob.yaml).
"""
from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from modelmaker.ai_modules import AI_MODULES
from modelmaker.run_folder import write_json
from tinyverse.timeseries.data import DatasetError
from tinyverse.registry import DATASETS, MODEL_REGISTRY, TASKS
from tinyverse.training.tasks import TaskModule

log = logging.getLogger("modelmaker")
KNOBS = ("gain", "tone")


# -- model ------------------------------------------------------------------------------------------------------
@MODEL_REGISTRY.register("KnobNet", task="audio")
class KnobNet(nn.Module):
    """Causal dilated convs over [audio, gain, tone]; output = scaled input + learned residual."""

    input_names = ["audio", "params"]
    output_names = ["output"]

    def __init__(self, channels: int = 12, dilations: tuple[int, ...] | list[int] = (1, 2, 4, 8, 16),
                 kernel_size: int = 3) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.dilations = list(dilations)
        self.inp = nn.Conv1d(1 + len(KNOBS), channels, 1)
        self.convs = nn.ModuleList(nn.Conv1d(channels, channels, kernel_size, dilation=d) for d in self.dilations)
        self.mix = nn.Conv1d(channels * len(self.dilations), 1, 1)
        self.direct = nn.Conv1d(1, 1, 1, bias=False)  # starts as bypass (output = input); training improves on it
        nn.init.ones_(self.direct.weight)
        nn.init.zeros_(self.mix.weight)
        self.receptive_field = 1 + (kernel_size - 1) * sum(self.dilations)

    def forward(self, audio: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        h = self.inp(torch.cat([audio, params], dim=1))
        skips = []
        for conv in self.convs:
            pad = (self.kernel_size - 1) * conv.dilation[0]
            h = h + torch.tanh(conv(F.pad(h, (pad, 0))))  # causal: pad the past only
            skips.append(h)
        return self.direct(audio) + self.mix(torch.cat(skips, dim=1))


# -- data -------------------------------------------------------------------------------------------------------
@dataclass
class KnobAudioData:
    """Segments shaped (N, 3, T): channel 0 the input audio, 1..2 gain and tone; targets (N, 1, T)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    sample_rate: int
    name: str = "knob_wav_pair"
    info: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {"name": self.name, "sample_rate": self.sample_rate, "segment": int(self.X_train.shape[-1]),
                "train_segments": int(len(self.X_train)), "val_segments": int(len(self.X_val)), **self.info}


def _read_knobs(path: Path, n: int, sample_rate: int) -> np.ndarray:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"time_s", *KNOBS} <= set(rows[0]):
        raise DatasetError(f"{path}: knob CSV needs the columns time_s,{','.join(KNOBS)}")
    t = np.array([float(r["time_s"]) for r in rows])
    if np.any(np.diff(t) <= 0):
        raise DatasetError(f"{path}: time_s must increase row by row")
    grid = np.arange(n) / sample_rate
    return np.stack([np.interp(grid, t, [float(r[k]) for r in rows]) for k in KNOBS]).astype(np.float32)


@DATASETS.register("KnobWavPair", modality="knob_audio")
class KnobWavPair:
    """Input/output WAV pair + knob CSV. The last ``val_fraction`` of the recording is the validation split."""

    def __init__(self, input_wav: str, output_wav: str, knobs_csv: str, segment: int = 2048,
                 val_fraction: float = 0.2) -> None:
        self.paths = {"input_wav": Path(input_wav), "output_wav": Path(output_wav), "knobs_csv": Path(knobs_csv)}
        self.segment, self.val_fraction = int(segment), float(val_fraction)

    def load(self) -> KnobAudioData:
        import soundfile as sf

        for key, path in self.paths.items():
            if not path.is_file():
                raise DatasetError(f"dataset.{key}: file not found: {path}")
        x, sr = sf.read(self.paths["input_wav"], dtype="float32", always_2d=True)
        y, sr_out = sf.read(self.paths["output_wav"], dtype="float32", always_2d=True)
        if sr != sr_out or len(x) != len(y):
            raise DatasetError(f"dataset: input and output WAVs differ ({sr} Hz x {len(x)} vs {sr_out} Hz x {len(y)})"
                               "; they must be sample-aligned recordings of the same length")
        knobs = _read_knobs(self.paths["knobs_csv"], len(x), sr)
        signal = np.concatenate([x[:, :1].T, knobs])  # (3, n)
        target = y[:, :1].T  # (1, n)
        n_val = int(signal.shape[1] * self.val_fraction)
        cut = signal.shape[1] - n_val

        def segments(a: np.ndarray, start: int, stop: int) -> np.ndarray:
            count = (stop - start) // self.segment
            if count < 1:
                raise DatasetError(f"dataset.segment: {self.segment} samples is longer than a split "
                                   f"({stop - start} samples)")
            return np.stack([a[:, start + i * self.segment: start + (i + 1) * self.segment] for i in range(count)])

        return KnobAudioData(segments(signal, 0, cut), segments(target, 0, cut), segments(signal, cut, signal.shape[1]),
                             segments(target, cut, signal.shape[1]), int(sr),
                             info={"files": {k: str(v) for k, v in self.paths.items()}})


# -- training recipe: a custom loss on the stock TaskModule -----------------------------------------------------
def esr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Error-to-signal ratio, the usual amp-modelling loss (0 is perfect, 1 is as bad as silence)."""
    return ((target - pred) ** 2).sum() / (target ** 2).sum().clamp_min(1e-8)


@TASKS.register("knob_esr")
class KnobESRTask(TaskModule):
    def __init__(self, model: nn.Module, *, optimizer: str = "adam", learning_rate: float = 1e-3,
                 weight_decay: float = 0.0, lr_scheduler: str = "cosine", epochs: int = 100) -> None:
        super().__init__(model, optimizer=optimizer, learning_rate=learning_rate, weight_decay=weight_decay,
                         lr_scheduler=lr_scheduler, epochs=epochs)
        self.save_hyperparameters(ignore=["model"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x packs [audio, gain, tone] on channels
        return self.model(x[:, :1], x[:, 1:])

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        loss = esr(self(x), y)
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=x.shape[0])
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val")


# -- the modality -----------------------------------------------------------------------------------------------
@AI_MODULES.register("knob_audio", tasks=("knob_esr",))
class KnobAudioModule:
    name = "knob_audio"
    tasks = ("knob_esr",)

    def load_data(self, cfg) -> KnobAudioData:
        from tinyverse.timeseries.data import load_registered

        return load_registered(cfg.dataset.name, cfg.dataset.params, KnobAudioData, "the knob_audio modality")

    def run(self, cfg, run_dir: Path, resume: bool = False, data: KnobAudioData | None = None) -> dict:
        from tinyverse.export import export_onnx, run_onnx, torch_outputs
        from tinyverse.models import create_model
        from tinyverse.training import TrainConfig, fit, load_task_weights
        from tinyverse.training.tasks import build_task

        data = data if data is not None else self.load_data(cfg)
        t = cfg.training
        model = create_model(t.model_name, **t.model_args)
        task = build_task(cfg.common.task_type, model, optimizer=t.optimizer, learning_rate=t.learning_rate,
                          weight_decay=t.weight_decay, lr_scheduler=t.lr_scheduler, epochs=t.epochs)
        train_cfg = TrainConfig(epochs=t.epochs, batch_size=t.batch_size, seed=cfg.common.seed,
                                accelerator=t.accelerator, early_stopping_patience=t.early_stopping_patience,
                                monitor="val_loss", monitor_mode="min", progress_bar=cfg.common.verbose)
        result = fit(task, (data.X_train, data.y_train), (data.X_val, data.y_val), run_dir, train_cfg,
                     resume_from=run_dir / "checkpoints" / "last.ckpt" if resume else None)
        load_task_weights(task, result.best_checkpoint)
        model = task.model.eval()

        audio, params, target = data.X_val[:, :1], data.X_val[:, 1:], data.y_val
        pred = torch_outputs(model, [audio, params])
        as_t = torch.as_tensor
        scores = {"esr": float(esr(as_t(pred), as_t(target))),
                  "bypass_esr": float(esr(as_t(audio), as_t(target))),  # trivial baseline: output = input
                  "silence_esr": 1.0}
        onnx_path = export_onnx(model, run_dir / "model.onnx", (as_t(audio[:2]), as_t(params[:2])))
        onnx_pred = run_onnx(onnx_path, [audio, params])
        diff = float(np.abs(onnx_pred - pred).max())
        log.info("val ESR %.4f (bypass %.4f); ONNX max |diff| %.1e", scores["esr"], scores["bypass_esr"], diff)
        summary = {"modality": self.name, "task_type": cfg.common.task_type, "dataset": data.summary(),
                   "model": {"name": t.model_name, "args": t.model_args,
                             "params": sum(p.numel() for p in model.parameters()),
                             "receptive_field": int(model.receptive_field)},
                   "training": {"epochs_run": result.epochs_run, "best_checkpoint": str(result.best_checkpoint)},
                   "test": scores, "onnx": {"path": onnx_path.name, "max_abs_diff": diff, "parity": diff < 1e-4}}
        write_json(run_dir / "knob_scores.json", scores)
        return summary
