"""``modelmaker run config.yaml``: validate the config, open a run folder, hand over to the modality."""
from __future__ import annotations

import errno
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from modelmaker.ai_modules import AI_MODULES
from modelmaker.compilation import fail_if_unverified
from modelmaker.report import write_report
from modelmaker.run_folder import (RunFolderError, RunInterrupted, RunStatus, check_resume_config, create_run_folder,
                                   expand_run_name, open_run_folder_for_resume, resumed_names, write_json)

log = logging.getLogger("modelmaker")
# OSErrors that mean "this disk or folder cannot take the run's files": one line and a failed folder, not a traceback.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM})


class _RunLog(logging.FileHandler):
    """run.log; on a full disk it goes quiet instead of printing a logging traceback for every later line (the run
    itself reports the failure in one line)."""

    broken = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.broken:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        self.broken = True


def _attach_log_file(run_dir: Path) -> logging.Handler:
    handler = _RunLog(run_dir / "run.log")
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
         f"run as a success; the run folder is complete: {run_dir / summary.get('report', 'report.md')}):"]
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
    resolved = dump_resolved(cfg)
    if resume:
        run_dir = open_run_folder_for_resume(resume)
        model = getattr(prepared, "model", None)
        check_resume_config(run_dir, yaml.safe_load(resolved).get("training") or {}, str(config_path),
                            {k: tuple(v.shape) for k, v in model.state_dict().items()} if model is not None else None)
        config_name, report_name = resumed_names(run_dir)
    else:
        name = expand_run_name(cfg.common.run_name,
                               model_name=cfg.training.model_name or getattr(prepared, "model_name", None) or "model",
                               dataset=getattr(data, "name", "") or cfg.dataset.name, task_type=cfg.common.task_type)
        # Time-stamped names may meet another run started in the same second: that one gets "<name>-2".
        run_dir = create_run_folder(cfg.common.projects_path, name, unique="{time}" in cfg.common.run_name)
        config_name, report_name = "config.yaml", "report.md"
    status = RunStatus(run_dir, config=str(config_path), resume_command=run_command(config_path, overrides, run_dir))
    handler, summary = None, None
    try:
        status.start()  # first: from here on the folder says what happened to it
        handler = _attach_log_file(run_dir)
        (run_dir / config_name).write_text(resolved)
        log.info("run folder %s", run_dir)
        summary = module.run(cfg, run_dir, resume=bool(resume), data=data,
                             **({"prepared": prepared} if prepared is not None else {}))
        summary = {"run_dir": str(run_dir), "config": str(config_path),
                   **({"overrides": dict(overrides)} if overrides else {}), **summary,
                   "wall_time_s": round(time.time() - started, 1), "state": "running", "report": report_name}
        write_json(run_dir / "summary.json", summary)
        write_report(run_dir, summary, getattr(module, "report_blocks", None), report_name)  # .md and .html
        log.info("done in %.1f s: %s", summary["wall_time_s"], run_dir / "summary.json")
        _fail_if_measured_over_budget(cfg, summary, run_dir)
        fail_if_unverified(cfg, summary, run_dir)  # a FAIL row: exit 2, after the report
        summary["state"] = "complete"
        write_json(run_dir / "summary.json", summary)
        problem = status.finish("complete", report=report_name)
        if problem:
            log.warning("the run is complete, but %s", problem)
        return summary
    except BaseException as err:
        replacement = _record_failure(err, status, run_dir, summary, config_path)
        if replacement is err:
            raise
        raise replacement from err
    finally:
        if handler is not None:
            _detach(handler)


def run_command(config_path: str | Path, overrides: dict | None, run_dir: Path) -> str:
    """``modelmaker run CONFIG [--set KEY=VALUE ...] --resume FOLDER``: the exact command that resumes this run."""
    words = ["modelmaker", "run", str(config_path)]
    for key, value in _dotted(overrides or {}).items():
        text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
        words += ["--set", f"{key}={text.removesuffix('...').strip()}"]
    return shlex.join([*words, "--resume", str(run_dir)])


def _dotted(overrides: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        if isinstance(value, dict) and value:
            out.update(_dotted(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _record_failure(err: BaseException, status: RunStatus, run_dir: Path, summary: dict[str, Any] | None,
                    config_path: str | Path) -> BaseException:
    """Mark the run folder interrupted or failed (status.json, and summary.json when this attempt wrote one);
    returns the exception to raise: a one-line ``RunInterrupted`` for Ctrl-C, a one-line ``RunFolderError`` for a
    full disk or an unwritable file, otherwise ``err`` itself (user errors stay exit 2, bugs keep their traceback).
    """
    resumable = (run_dir / "checkpoints" / "last.ckpt").is_file()
    again = f"resume with {status.resume_command}" if resumable else \
        f"start again with {shlex.join(['modelmaker', 'run', str(config_path)])}"
    disk = isinstance(err, OSError) and err.errno in DISK_ERRNOS
    epoch = getattr(err, "epoch", None) if isinstance(err, KeyboardInterrupt) else None
    if isinstance(err, KeyboardInterrupt):
        state, line = "interrupted", "interrupted" if epoch is None else f"interrupted at epoch {epoch}"
        if epoch is not None and not resumable:
            line += ", before the first checkpoint"
    elif disk:
        state, line = "failed", f"{err.filename or 'a file'}: {err.strerror or err}"
    else:
        state, line = "failed", one_line_error(err)
    problem = status.finish(state, error=line, epoch=epoch, resumable=resumable,
                            report=summary.get("report") if summary else None)
    if summary is not None and problem is None:
        try:
            write_json(run_dir / "summary.json", {**summary, "state": state, "error": line})
        except OSError as write_err:
            problem = f"{run_dir / 'summary.json'} could not be updated: {write_err.strerror or write_err}"
    told = f" ({problem})" if problem else ""
    if state == "interrupted":
        return RunInterrupted(f"{line}; {again}{told}")
    if disk:
        fix = "free some disk space" if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else \
            "make the folder writable"
        marked = "" if problem else f" and {run_dir} is marked failed"
        return RunFolderError(f"cannot write {line}; the run stopped{marked}: {fix}, then {again}{told}")
    if problem:
        print(f"modelmaker: warning: {problem}", file=sys.stderr)
    return err


def one_line_error(err: BaseException) -> str:
    """An error's first line as status.json records it: our errors' own message (it names the key and the fix),
    ``Type: message`` for Python's and other libraries' errors."""
    lines = str(err).strip().splitlines()
    first = lines[0].strip() if lines else ""
    if first and type(err).__module__.split(".")[0] in ("modelmaker", "tinyverse"):
        return first
    return f"{type(err).__name__}: {first}" if first else type(err).__name__
