"""The modality contract: what an AI module supplies, and the run every modality shares.

A modality supplies its data, its model and its outputs; the order of the stages, the device section, the
verification status and the summary are the same for every modality and live here once:

1. ``load_data(cfg)`` and ``prepare(cfg, data) -> Prepared`` run before the run folder exists (bad data, a model
   that cannot be built or does not fit a strict device fail in seconds, with nothing written);
2. ``describe(ctx)``: what the run is (dataset, model, cost) into ``ctx.summary``;
3. ``train(ctx)``: the trained model into ``ctx.model`` (or the loaded one, compile-only);
4. ``test(ctx)``: the headline metric and the plots of the trained model;
5. ``compile(ctx)``: exports, each verified, into the summary; returns the failed rows (``artifact: why``).

``run`` calls them in this order. ``RunContext`` carries what a stage hands the next; a stage may keep more on it
(e.g. the test outputs the compile stage reuses). ``unused_keys(cfg)`` names config keys the modality would
otherwise ignore (``modelmaker.ai_modules.keys``).
"""
from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelmaker.compilation import Prepared, verification_summary, write_device_check

log = logging.getLogger("modelmaker")


@dataclass
class RunContext:
    """What the stages of one run hand each other."""

    cfg: Any
    run_dir: Path
    data: Any
    prepared: Prepared
    resume: bool = False
    summary: dict[str, Any] = field(default_factory=dict)
    model: Any = None  # the prepared model until train() replaces it with the trained one
    extra: dict[str, Any] = field(default_factory=dict)  # whatever a modality's stages share among themselves


class AIModule(ABC):
    """Base of every modality (``AI_MODULES`` entries). Subclasses set ``name`` and ``tasks`` and implement the
    stages (a subclass missing one cannot be instantiated); ``run`` is the shared plumbing."""

    name: str = ""
    tasks: tuple[str, ...] = ()

    @classmethod
    def unused_keys(cls, cfg) -> list:
        return []

    def auto_threads(self, cores: int) -> int | None:
        """CPU threads for ``training.threads: auto`` on a machine with ``cores`` logical cores; None keeps
        torch's own default (one per physical core)."""
        return None

    def set_threads(self, cfg) -> dict[str, Any]:
        """Apply ``training.threads`` (CPU runs only), log it and return what was chosen and why."""
        import torch

        cores = os.cpu_count() or 1
        setting = cfg.training.threads
        on_gpu = cfg.training.accelerator not in ("cpu", "auto") or (
            cfg.training.accelerator == "auto" and torch.cuda.is_available())
        if setting == "auto":
            chosen = None if on_gpu else self.auto_threads(cores)
            why = "auto: torch's default" if chosen is None else f"auto: the {self.name} default for {cores} cores"
        else:
            chosen, why = int(setting), "training.threads"
        if chosen is not None:
            torch.set_num_threads(chosen)
        threads = torch.get_num_threads()
        log.info("torch CPU threads: %d (%s; %d logical cores)", threads, why, cores)
        return {"threads": threads, "setting": setting, "why": why, "cores": cores}

    @abstractmethod
    def load_data(self, cfg): ...

    @abstractmethod
    def prepare(self, cfg, data) -> Prepared: ...

    @abstractmethod
    def describe(self, ctx: RunContext) -> None: ...

    @abstractmethod
    def train(self, ctx: RunContext) -> None: ...

    @abstractmethod
    def test(self, ctx: RunContext) -> None: ...

    @abstractmethod
    def compile(self, ctx: RunContext) -> list[str]: ...

    def run(self, cfg, run_dir: Path, resume: bool = False, data=None, prepared: Prepared | None = None,
            **_: Any) -> dict[str, Any]:
        """The stages in order; returns the summary (the runner adds the run folder, state and wall time)."""
        self.report_blocks: dict[str, str] = {}
        data = data if data is not None else self.load_data(cfg)
        prepared = prepared if prepared is not None else self.prepare(cfg, data)
        ctx = RunContext(cfg, Path(run_dir), data, prepared, resume, model=prepared.model)
        write_device_check(ctx.run_dir, prepared.device_report)
        ctx.summary["threads"] = self.set_threads(cfg)
        self.describe(ctx)
        self.train(ctx)
        self.test(ctx)
        if cfg.compilation.enable:
            failures = self.compile(ctx)
            ctx.summary["verification"] = verification_summary(not failures, failures, cfg.compilation.tolerances)
        if prepared.device_report is not None and "device" not in ctx.summary:
            ctx.summary["device"] = prepared.device_report.to_dict()  # checked before training
        return ctx.summary


__all__ = ["AIModule", "RunContext"]
