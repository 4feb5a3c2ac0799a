"""Train, evaluate and predict with Lightning, from numpy arrays.

``fit`` gives every run the same layout under ``out_dir``::

    checkpoints/best.ckpt   best epoch by ``cfg.monitor``
    checkpoints/last.ckpt   last epoch (pass it as ``resume_from`` to continue)
    logs/version_N/         Lightning's CSVLogger output, one version per (resumed) fit call
    metrics.csv             one row per epoch, train and val columns side by side, merged over versions

Lightning's Trainer gives progress bars, checkpoints, early stopping, resume and DDP
(``accelerator``/``devices``/``num_nodes``/``strategy`` pass straight through, except that DDP ranks are started
from this process and run only training: see :func:`worker_strategy`).

Ctrl-C during ``fit`` raises :class:`TrainingInterrupted` (a ``KeyboardInterrupt`` carrying the epoch) once
Lightning has shut the trainer down; ``last.ckpt`` then holds every finished epoch.
"""
from __future__ import annotations

import contextlib
import csv
import logging
import math
import multiprocessing
import re
import signal
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.strategies import DDPStrategy, StrategyRegistry
# Lightning's own launcher classes (private names, public objects: `trainer.strategy.launcher`): which one a
# strategy got tells whether DDP would re-run the program or start workers from this process.
from lightning.pytorch.strategies.launchers import _MultiProcessingLauncher, _SubprocessScriptLauncher
from torch import nn
from torch.utils.data import DataLoader, Sampler, TensorDataset

log = logging.getLogger(__name__)

ArrayPair = tuple[np.ndarray, np.ndarray]

# Lightning loggers whose INFO lines are noise for our users ("GPU available: ...", "💡 Tip: ... litlogger",
# "LOCAL_RANK: 0 - CUDA_VISIBLE_DEVICES", "Seed set to ..."). Warnings from them still show.
_NOISY_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.pytorch.accelerators.cuda",
    "lightning.fabric.utilities.seed",
    "lightning.fabric.utilities.distributed",  # "Initializing distributed: GLOBAL_RANK: ..."
)
# Lightning warnings that are expected in this toolchain and carry no advice a user can act on here.
_EXPECTED_WARNINGS = (
    r".*does not have many workers.*",  # num_workers=0 is deliberate for tiny in-memory arrays
    r".*Checkpoint directory .* exists and is not empty.*",  # expected when resuming into the same run
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",  # Lightning 2.6 vs torch >= 2.10 internals
    r".*You defined a `validation_step` but have no `val_dataloader`.*",  # fit(val=None) is supported
    r".*The number of training batches \(\d+\) is smaller than the logging interval.*",
    r".*self\.log\('lr', \.\.\., sync_dist=True\).*",  # DDP: the learning rate is the same on every rank
)


@dataclass
class TrainConfig:
    """How to run the Trainer (what to optimise lives on the task)."""

    epochs: int = 100
    batch_size: int = 32
    seed: int = 42
    accelerator: str = "cpu"
    devices: int | str | list[int] = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    early_stopping_patience: int | None = 30
    monitor: str = "val_acc"
    monitor_mode: str = "max"
    num_workers: int = 0
    progress_bar: bool = True
    deterministic: bool = True
    gradient_clip_val: float | None = None
    log_every_n_steps: int = 1


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped :func:`fit` after Lightning shut the trainer down.

    ``epoch``: the epoch that was running, 0-based as in the progress bar and ``metrics.csv``; the epochs before
    it are in ``last_checkpoint`` (None if the first epoch had not ended), which ``fit(resume_from=...)`` continues.
    """

    def __init__(self, epoch: int, last_checkpoint: Path | None) -> None:
        super().__init__(f"interrupted at epoch {epoch}")
        self.epoch, self.last_checkpoint = epoch, last_checkpoint


@dataclass
class FitResult:
    best_checkpoint: Path
    last_checkpoint: Path
    metrics_csv: Path
    epochs_run: int  # epochs completed in total, counting those before a resume
    best_score: float
    monitor: str = ""  # the metric best_checkpoint was chosen by (a training twin, e.g. train_loss, without validation)

    def checkpoint(self, which: str) -> Path:
        """The checkpoint a run keeps: "best" (by the monitored metric) or "last" (the final epoch)."""
        if which not in ("best", "last"):
            raise ValueError(f"which checkpoint: expected 'best' or 'last', got {which!r}")
        return self.best_checkpoint if which == "best" else self.last_checkpoint


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Hide Lightning's informational chatter and expected warnings for the duration of the block."""
    saved = {}
    for name in _NOISY_LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = logger.level
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for pattern in _EXPECTED_WARNINGS:
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def _restore_determinism() -> Iterator[None]:
    """``Trainer(deterministic=True)`` flips process-wide torch flags; put them back after the run."""
    algorithms = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn_det, cudnn_bench = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(algorithms, warn_only=warn_only)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn_det, cudnn_bench


def _tensor(a: np.ndarray) -> torch.Tensor:
    a = np.asarray(a)
    if a.dtype.kind in "iub":  # class indices: cross-entropy wants int64
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


class EpochShuffleSampler(Sampler[int]):
    """Random order drawn from ``seed + epoch``: the order depends only on the epoch, not on history.

    Lightning calls ``set_epoch`` before every epoch, so a run resumed at epoch 2 sees exactly the batches
    an uninterrupted run would have seen (a plain seeded generator would restart its stream on resume).
    """

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.n, generator=generator).tolist())

    def __len__(self) -> int:
        return self.n


def make_loader(data: ArrayPair, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                num_workers: int = 0, epoch_seeded: bool = True) -> DataLoader:
    """A DataLoader over in-memory arrays: ``(x, y)``, or ``(x1, x2, ..., y)`` for a model with more than one input
    (batches then hold every array in that order, e.g. a knob model's ``(x, params, y)``).

    Shuffled loaders use :class:`EpochShuffleSampler` (``epoch_seeded``) or else a plain seeded shuffle, the
    form Lightning knows how to distribute.
    """
    *inputs, y = data
    for x in inputs:
        if len(x) != len(y):
            raise ValueError(f"inputs and labels differ in length: {len(x)} vs {len(y)}")
    dataset = TensorDataset(*(_tensor(x) for x in inputs), _tensor(y))
    common: dict[str, Any] = dict(batch_size=batch_size, num_workers=num_workers,
                                  persistent_workers=num_workers > 0)
    if shuffle and epoch_seeded:
        return DataLoader(dataset, sampler=EpochShuffleSampler(len(dataset), seed), **common)
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(dataset, shuffle=shuffle, generator=generator, **common)


def _train_monitor(monitor: str) -> str:
    """Without a validation split, watch the training twin of the metric (val_acc -> train_acc)."""
    return "train_" + monitor[len("val_"):] if monitor.startswith("val_") else monitor


def _trainer(cfg: TrainConfig, **kwargs: Any) -> L.Trainer:
    kwargs.setdefault("accelerator", cfg.accelerator)
    kwargs.setdefault("devices", cfg.devices)
    kwargs.setdefault("num_nodes", cfg.num_nodes)
    kwargs.setdefault("strategy", cfg.strategy)
    return L.Trainer(precision=cfg.precision, enable_progress_bar=cfg.progress_bar, enable_model_summary=False,
                     deterministic=cfg.deterministic, **kwargs)


def worker_strategy(trainer: L.Trainer, requested: Any) -> DDPStrategy | None:
    """A DDP strategy that starts the other ranks from this process, or None if ``trainer``'s is fine.

    Lightning's ``ddp`` (and what ``auto`` picks for several devices) starts rank 1.. by re-running the command
    line: every rank runs the caller's whole program again (in modelmaker: load the data, open a second run
    folder, export...). Workers started from this process run only the training and hand the weights back:
    forked while CUDA is untouched in this process (no pickling, the data is shared, starts in a second), spawned
    once CUDA is initialised (a forked CUDA context is unusable; spawn needs a picklable model and data).
    Ranks started by a cluster launcher (torchrun, SLURM) already run the program each and are left alone.
    """
    strategy = trainer.strategy
    if (type(strategy) is not DDPStrategy or not isinstance(strategy.launcher, _SubprocessScriptLauncher)
            or strategy.cluster_environment.creates_processes_externally or trainer.num_nodes != 1):
        return None
    options: dict[str, Any] = {}
    if isinstance(requested, str) and requested in StrategyRegistry:  # keep e.g. find_unused_parameters
        options = {k: v for k, v in StrategyRegistry[requested]["init_params"].items() if k != "start_method"}
    fork = "fork" in multiprocessing.get_all_start_methods() and not torch.cuda.is_initialized()
    return DDPStrategy(start_method="fork" if fork else "spawn", **options)


def _stop_workers(trainer: L.Trainer) -> None:
    """Ctrl-C reached this process: Lightning leaves forked/spawned workers running, and Python would wait for them."""
    launcher = trainer.strategy.launcher
    if isinstance(launcher, _MultiProcessingLauncher):
        launcher.kill(getattr(signal, "SIGKILL", signal.SIGTERM))  # checkpoints are written atomically
        for proc in launcher.procs:
            proc.join(timeout=30)


def fit(task: L.LightningModule, train: ArrayPair, val: ArrayPair | None, out_dir: Path, cfg: TrainConfig,
        resume_from: Path | None = None, callbacks: list[Callback] | None = None) -> FitResult:
    """Train ``task`` on numpy arrays; write checkpoints and a flat per-epoch ``metrics.csv`` under ``out_dir``.

    ``resume_from`` is a checkpoint (usually ``<run>/checkpoints/last.ckpt``); training continues from its
    epoch, optimizer and scheduler state up to ``cfg.epochs`` epochs in total.
    """
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    monitor = cfg.monitor if val is not None else _train_monitor(cfg.monitor)
    if resume_from is not None and not Path(resume_from).is_file():
        raise FileNotFoundError(f"cannot resume: checkpoint {resume_from} does not exist")

    with quiet_lightning(), _restore_determinism():
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        # Fixed names, overwritten in place (no "-v1" copies when resuming into the same folder).
        checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor, mode=cfg.monitor_mode,
                                     save_top_k=1, auto_insert_metric_name=False, enable_version_counter=False)
        # Not ``save_last=True``: Lightning 2.6 refreshes last.ckpt only on epochs that also improved the
        # monitored metric, so resuming would silently re-train from an older epoch. A monitor-less
        # checkpoint saves every epoch.
        last = ModelCheckpoint(dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1,
                               auto_insert_metric_name=False, enable_version_counter=False)
        cbs: list[Callback] = [checkpoint, last]
        if cfg.early_stopping_patience is not None:
            cbs.append(EarlyStopping(monitor=monitor, mode=cfg.monitor_mode, patience=cfg.early_stopping_patience))
        cbs.extend(callbacks or [])
        logger = CSVLogger(save_dir=out_dir, name="logs")

        options = dict(max_epochs=cfg.epochs, callbacks=cbs, logger=logger, default_root_dir=out_dir,
                       gradient_clip_val=cfg.gradient_clip_val, log_every_n_steps=cfg.log_every_n_steps)
        trainer = _trainer(cfg, **options)
        workers = worker_strategy(trainer, cfg.strategy)
        if workers is not None:
            trainer = _trainer(cfg, strategy=workers, **options)
        # Under DDP, Lightning swaps a plain shuffling sampler for a DistributedSampler (epoch-seeded too);
        # it would wrap a custom sampler instead and never forward set_epoch to it.
        distributed = trainer.world_size > 1
        train_dl = make_loader(train, cfg.batch_size, shuffle=True, seed=cfg.seed, num_workers=cfg.num_workers,
                               epoch_seeded=not distributed)
        val_dl = make_loader(val, cfg.batch_size, num_workers=cfg.num_workers) if val is not None else None
        if resume_from is not None:
            log.info("resuming from %s", resume_from)
        sigint = signal.getsignal(signal.SIGINT)
        interrupted = False
        try:
            # weights_only=True: resuming never unpickles arbitrary objects.
            trainer.fit(task, train_dl, val_dl, ckpt_path=str(resume_from) if resume_from else None,
                        weights_only=True)
        except SystemExit as exit_:
            # Lightning answers Ctrl-C with a clean shutdown and sys.exit(1): no caller could tell it from a crash.
            if not isinstance(exit_.__context__, KeyboardInterrupt):
                raise
            interrupted = True
        finally:
            # Lightning ignores SIGINT while it shuts down and never restores it: a second Ctrl-C would be lost.
            if sigint is not None and threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, sigint)
        in_workers = isinstance(trainer.strategy.launcher, _MultiProcessingLauncher)
        if interrupted or trainer.interrupted:
            _stop_workers(trainer)
            last_ckpt = ckpt_dir / "last.ckpt"
            epoch = _epochs_in(last_ckpt) if in_workers else int(trainer.current_epoch)
            raise TrainingInterrupted(epoch, last_ckpt if last_ckpt.is_file() else None) from None

    metrics_csv = out_dir / "metrics.csv"
    if trainer.is_global_zero:
        merge_metrics(out_dir / "logs", metrics_csv)
    epochs, score, best_path = int(trainer.current_epoch), checkpoint.best_model_score, checkpoint.best_model_path
    if in_workers and (ckpt_dir / "last.ckpt").is_file():
        # The workers sent back the final weights and best_model_path, not the epoch count nor the best score:
        # the last checkpoint holds both.
        epochs = _epochs_in(ckpt_dir / "last.ckpt")
        state = load_checkpoint(ckpt_dir / "last.ckpt")["callbacks"].get(checkpoint.state_key, {})
        score, best_path = state.get("best_model_score", score), state.get("best_model_path") or best_path
    result = FitResult(
        best_checkpoint=Path(best_path) if best_path else ckpt_dir / "best.ckpt",
        last_checkpoint=ckpt_dir / "last.ckpt",
        metrics_csv=metrics_csv,
        epochs_run=epochs,
        best_score=float(score) if score is not None else math.nan,
        monitor=monitor,
    )
    log.info("trained %d epochs; best %s=%.4f (%s)", result.epochs_run, monitor, result.best_score,
             result.best_checkpoint)
    return result


def _epochs_in(checkpoint: Path) -> int:
    """Epochs a Lightning checkpoint has finished (0 if there is none yet); its "epoch" is the 0-based last one."""
    return int(load_checkpoint(checkpoint)["epoch"]) + 1 if Path(checkpoint).is_file() else 0


def merge_metrics(logs_dir: Path, out_csv: Path) -> Path:
    """Fold Lightning's CSV logs (train and val on separate rows, one folder per resume) into one row per epoch.

    Later versions win where epochs overlap, so a resumed run replaces what it re-trained.
    """
    def version(p: Path) -> int:
        m = re.search(r"version_(\d+)$", p.parent.name)
        return int(m.group(1)) if m else -1

    rows: dict[int, dict[str, str]] = {}
    columns: list[str] = []
    for path in sorted(Path(logs_dir).glob("version_*/metrics.csv"), key=version):
        pending: list[dict[str, str]] = []
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                if not row.get("epoch"):
                    # Loggers called outside self.log (LearningRateMonitor) write rows without an epoch; they
                    # are logged at epoch start, so they belong to the next epoch row.
                    pending.append(row)
                    continue
                epoch = int(float(row["epoch"]))
                merged = rows.setdefault(epoch, {})
                for source in (*pending, row):
                    for key, value in source.items():
                        if key in ("epoch", "step") or value in ("", None):
                            continue
                        merged[key] = value
                        if key not in columns:
                            columns.append(key)
                pending = []
                if row.get("step"):  # the last step seen in the epoch
                    merged["step"] = row["step"]

    def order(col: str) -> tuple[int, str]:
        for i, prefix in enumerate(("train_", "val_", "test_", "lr")):
            if col.startswith(prefix):
                return i, col
        return 4, col

    header = ["epoch", *sorted(columns, key=order), "step"]
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with out_csv.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header, restval="")
        writer.writeheader()
        for epoch in sorted(rows):
            writer.writerow({"epoch": epoch, **rows[epoch]})
    return out_csv


def evaluate(task: L.LightningModule, data: ArrayPair, cfg: TrainConfig) -> dict[str, float]:
    """Run the task's ``test_step`` over ``data``; returns the logged metrics (``test_loss``, ``test_acc``...).

    Runs on a single device: a distributed sampler would pad the split and skew exact metrics.
    """
    with quiet_lightning(), _restore_determinism():
        loader = make_loader(data, cfg.batch_size, num_workers=cfg.num_workers)
        trainer = _trainer(cfg, devices=1, num_nodes=1, strategy="auto", logger=False, enable_checkpointing=False)
        results = trainer.test(task, dataloaders=loader, verbose=False)
    return {k: float(v) for k, v in (results[0] if results else {}).items()}


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Model outputs for ``x`` as a numpy array, in eval mode, on the model's own device."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        inputs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        outs = [model(inputs[i:i + batch_size].to(device)).cpu() for i in range(0, len(inputs), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(outs).numpy() if outs else np.empty((0,), dtype=np.float32)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a Lightning checkpoint safely (tensors and plain containers only)."""
    return torch.load(Path(path), map_location="cpu", weights_only=True)


def load_task_weights(task: nn.Module, ckpt_path: Path) -> nn.Module:
    """Load the weights of a Lightning checkpoint into ``task`` (a task or its plain model); returns it."""
    state = load_checkpoint(ckpt_path)["state_dict"]
    if not isinstance(task, L.LightningModule):
        # A bare model: its keys sit under "model." in the task's state dict.
        state = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    task.load_state_dict(state)
    return task
