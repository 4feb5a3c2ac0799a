"""``modelmaker run config.yaml``: validate the config, open a run folder, hand over to the modality."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from modelmaker.ai_modules import AI_MODULES
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


def run(config_path: str | Path, resume: str | Path | None = None, overrides: dict | None = None) -> dict[str, Any]:
    """Run a config end to end; returns the summary also written to ``summary.json``."""
    from modelmaker.config import dump_resolved, load_config

    cfg = load_config(config_path, overrides=overrides)
    module = AI_MODULES.get(cfg.common.modality)()
    started = time.time()
    # Data errors (missing folder, bad files) surface before a run folder exists.
    data = module.load_data(cfg) if cfg.dataset.enable else None
    if resume:
        run_dir = open_run_folder_for_resume(resume)
    else:
        name = expand_run_name(cfg.common.run_name, model_name=cfg.training.model_name or "model",
                               dataset=getattr(data, "name", "") or cfg.dataset.name, task_type=cfg.common.task_type)
        run_dir = create_run_folder(cfg.common.projects_path, name)
    handler = _attach_log_file(run_dir)
    try:
        (run_dir / ("config_resumed.yaml" if resume else "config.yaml")).write_text(dump_resolved(cfg))
        log.info("run folder %s", run_dir)
        summary = module.run(cfg, run_dir, resume=bool(resume), data=data)
        summary = {"run_dir": str(run_dir), "config": str(config_path), **summary,
                   "wall_time_s": round(time.time() - started, 1)}
        write_json(run_dir / "summary.json", summary)
        log.info("done in %.1f s: %s", summary["wall_time_s"], run_dir / "summary.json")
        return summary
    finally:
        _detach(handler)
