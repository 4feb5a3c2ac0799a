"""``modelmaker run config.yaml``: validate the config, open a run folder, hand over to the modality."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from modelmaker.ai_modules import AI_MODULES
from modelmaker.report import write_report
from modelmaker.run_folder import (create_run_folder, expand_run_name, open_run_folder_for_resume, write_json)

log = logging.getLogger("modelmaker")


def _attach_log_file(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / "run.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("modelmaker", "tinyverse", "lightning.pytorch"):
        logging.getLogger(name).addHandler(handler)
    return handler


def _detach(handler: logging.Handler) -> None:
    for name in ("modelmaker", "tinyverse", "lightning.pytorch"):
        logging.getLogger(name).removeHandler(handler)
    handler.close()


def seed_everything(seed: int) -> None:
    """Python, NumPy and torch generators (what Lightning's seed_everything seeds, without its log line)."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _fail_if_measured_over_budget(cfg, summary: dict[str, Any], run_dir: Path) -> None:
    """The spec fitted before training, but what was compiled (file size, TFLM arena, ops) did not.

    With ``compilation.strict`` that is a failed run (exit code 2), after the run folder and its report are
    complete, so the user can read why; ``strict: false`` keeps it a warning in the report.
    """
    device = summary.get("device") or {}
    if "compilation" not in summary or device.get("fits", True) or not cfg.compilation.strict:
        return
    from modelmaker.compilation import DeviceCheckError

    raise DeviceCheckError("\n".join(
        [f"the compiled model does not fit {device.get('device')} (set compilation.strict: false to keep such a "
         f"run as a success; the run folder is complete: {run_dir / 'report.md'}):"]
        + [f"  - {v}" for v in device.get("violations", [])]))


def load_run_config(config_path: str | Path, overrides: dict | None = None, *, strict_extensions: bool = False):
    """Load extensions (entry points, ``~/.tinyverse/extensions``, ``TINYVERSE_EXTENSIONS``, then the config's
    ``extensions:`` list) and validate the config, whose names may come from them."""
    from modelmaker.config import load_config
    from tinyverse import extensions

    extensions.load_defaults(strict=strict_extensions)
    return load_config(config_path, overrides=overrides,
                       extension_loader=lambda paths: extensions.load_extensions(paths, strict=strict_extensions))


def run(config_path: str | Path, resume: str | Path | None = None, overrides: dict | None = None,
        strict_extensions: bool = False) -> dict[str, Any]:
    """Run a config end to end; returns the summary also written to ``summary.json``.

    ``strict_extensions``: an extension that fails to import stops the run (one-line ExtensionError) instead of
    being reported and skipped."""
    from modelmaker.config import dump_resolved

    cfg = load_run_config(config_path, overrides, strict_extensions=strict_extensions)
    module = AI_MODULES.get(cfg.common.modality)()
    started = time.time()
    # Seed before anything draws random numbers: the model's initial weights are drawn in prepare(), before the
    # trainer seeds itself, and a run must be the same run in every process.
    seed_everything(cfg.common.seed)
    # Data errors (missing folder, bad files) surface before a run folder exists.
    data = module.load_data(cfg) if cfg.dataset.enable else None
    # So do model errors and device checks (compilation.strict): a model that cannot fit fails in seconds.
    prepared = module.prepare(cfg, data) if hasattr(module, "prepare") else None
    if resume:
        run_dir = open_run_folder_for_resume(resume)
    else:
        name = expand_run_name(cfg.common.run_name,
                               model_name=cfg.training.model_name or getattr(prepared, "model_name", None) or "model",
                               dataset=getattr(data, "name", "") or cfg.dataset.name, task_type=cfg.common.task_type)
        run_dir = create_run_folder(cfg.common.projects_path, name)
    handler = _attach_log_file(run_dir)
    try:
        (run_dir / ("config_resumed.yaml" if resume else "config.yaml")).write_text(dump_resolved(cfg))
        log.info("run folder %s", run_dir)
        summary = module.run(cfg, run_dir, resume=bool(resume), data=data,
                             **({"prepared": prepared} if prepared is not None else {}))
        summary = {"run_dir": str(run_dir), "config": str(config_path),
                   **({"overrides": dict(overrides)} if overrides else {}), **summary,
                   "wall_time_s": round(time.time() - started, 1)}
        write_json(run_dir / "summary.json", summary)
        write_report(run_dir, summary, getattr(module, "report_blocks", None))
        log.info("done in %.1f s: %s", summary["wall_time_s"], run_dir / "summary.json")
        _fail_if_measured_over_budget(cfg, summary, run_dir)
        return summary
    finally:
        _detach(handler)
