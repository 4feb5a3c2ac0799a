"""Run folders: ``<projects_path>/<run_name>/``, created exclusively so an earlier run is never overwritten."""
from __future__ import annotations

import datetime as _dt
import json
import re
from pathlib import Path
from typing import Any

PLACEHOLDERS = ("date", "time", "model_name", "dataset", "task_type")


class RunFolderError(RuntimeError):
    """A run folder that cannot be created or resumed; ``str()`` is one line with the fix."""


def expand_run_name(template: str, **values: str) -> str:
    now = _dt.datetime.now()
    fill = {"date": now.strftime("%Y%m%d"), "time": now.strftime("%H%M%S"), **values}
    try:
        name = template.format(**fill)
    except KeyError as err:
        raise RunFolderError(f"common.run_name: unknown placeholder {{{err.args[0]}}}; "
                             f"use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}") from None
    name = re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("_")
    if not name:
        raise RunFolderError("common.run_name: expands to an empty name")
    return name


def create_run_folder(projects_path: str | Path, run_name: str) -> Path:
    """Make a new, empty run folder; refuse to reuse one that exists."""
    root = Path(projects_path).expanduser()
    path = root / run_name
    try:
        root.mkdir(parents=True, exist_ok=True)
        path.mkdir(parents=False, exist_ok=False)
    except FileExistsError:
        raise RunFolderError(f"run folder {path} already exists; choose another common.run_name "
                             f"(e.g. add {{date}}-{{time}}) or resume it with --resume {path}") from None
    except OSError as err:
        raise RunFolderError(f"common.projects_path: cannot create {path}: {err.strerror}") from None
    return path


def open_run_folder_for_resume(path: str | Path) -> Path:
    path = Path(path).expanduser()
    last = path / "checkpoints" / "last.ckpt"
    if not path.is_dir():
        raise RunFolderError(f"--resume {path}: no such run folder")
    if not last.is_file():
        raise RunFolderError(f"--resume {path}: no checkpoints/last.ckpt to resume from")
    return path


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    return path


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")
