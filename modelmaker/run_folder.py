"""Run folders: ``<projects_path>/<run_name>/``, created exclusively so an earlier run is never overwritten, and
their ``status.json`` (running / complete / failed / interrupted), written first and updated last."""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
import socket
from pathlib import Path
from typing import Any

import yaml

PLACEHOLDERS = ("date", "time", "model_name", "dataset", "task_type")
STATUS_FILE = "status.json"
STATES = ("running", "complete", "failed", "interrupted")
# How many same-named folders ("name", "name-2", ...) a time-stamped run name may take before giving up.
MAX_SAME_NAME = 1000
# Training settings a resumed run must share with the run it continues: the checkpoint holds the optimizer and the
# learning-rate schedule they built, so a changed value would be silently ignored or bend the schedule.
RESUME_MUST_MATCH = ("epochs", "batch_size", "optimizer", "learning_rate", "weight_decay", "lr_scheduler")


class RunFolderError(RuntimeError):
    """A run folder that cannot be created or resumed; ``str()`` is one line with the fix."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run; ``str()`` is the one line for the user (where it stopped, how to resume)."""


def expand_run_name(template: str, now: _dt.datetime | None = None, **values: str) -> str:
    now = now or _dt.datetime.now()
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


def create_run_folder(projects_path: str | Path, run_name: str, *, unique: bool = False) -> Path:
    """Make a new, empty run folder; refuse to reuse one that exists.

    ``unique`` (a time-stamped run name): two runs started in the same second get ``name`` and ``name-2`` instead
    of colliding. ``mkdir`` is atomic, so concurrent runs never share a folder.
    """
    root = Path(projects_path).expanduser()
    path = root / run_name
    try:
        root.mkdir(parents=True, exist_ok=True)
        for n in range(1, MAX_SAME_NAME + 1):
            path = root / (run_name if n == 1 else f"{run_name}-{n}")
            try:
                path.mkdir(parents=False, exist_ok=False)
                return path
            except FileExistsError:
                if not unique:
                    raise
    except FileExistsError:
        raise RunFolderError(f"run folder {path} already exists; choose another common.run_name "
                             f"(e.g. add {{date}}-{{time}}) or resume it with --resume {path}") from None
    except OSError as err:
        raise RunFolderError(f"common.projects_path: cannot create {path}: {err.strerror}") from None
    raise RunFolderError(f"common.projects_path: {MAX_SAME_NAME} run folders named {run_name}[-N] exist in {root}; "
                         f"choose another common.run_name")


def open_run_folder_for_resume(path: str | Path) -> Path:
    """The folder to resume: it has ``checkpoints/last.ckpt``, is not complete and no live process is running it."""
    path = Path(path).expanduser()
    last = path / "checkpoints" / "last.ckpt"
    if not path.is_dir():
        raise RunFolderError(f"--resume {path}: no such run folder")
    status = read_status(path)
    state = status.get("state")
    if state == "complete":
        raise RunFolderError(f"--resume {path}: the run is complete ({STATUS_FILE}); a finished run is never "
                             f"changed: start a new run instead")
    if state == "running" and process_alive(status):
        raise RunFolderError(f"--resume {path}: the run is still running (pid {status.get('pid')} on "
                             f"{status.get('host')}); wait for it or stop it first")
    if not last.is_file():
        raise RunFolderError(f"--resume {path}: no checkpoints/last.ckpt to resume from (the run stopped before its "
                             f"first epoch ended); start a new run instead")
    return path


def check_resume_config(run_dir: Path, training: dict[str, Any], config: str,
                        model_shapes: dict[str, tuple[int, ...]] | None = None) -> None:
    """Refuse to resume ``run_dir`` with a config that trains another model (one line naming both) or changes
    the optimisation the checkpoint carries on (``RESUME_MUST_MATCH``).

    ``training``: the config's resolved ``training`` section (as ``config.yaml`` holds it); ``model_shapes``: the
    parameter shapes of the model the config builds, checked against the checkpoint's (a changed dataset changes
    the input shape or class count without changing the model's name).
    """
    started = _read_yaml(run_dir / "config.yaml").get("training") or {}
    then, now = _model_text(started), _model_text(training)
    if started and (started.get("model_name") != training.get("model_name")
                    or (started.get("model_args") or {}) != (training.get("model_args") or {})):
        raise RunFolderError(f"--resume {run_dir}: its checkpoint is from model {then}, but {config} trains {now}; "
                             f"resume with the run's own config or start a new run")
    for key in RESUME_MUST_MATCH:
        if key in started and key in training and started[key] != training[key]:
            raise RunFolderError(f"--resume {run_dir}: {config} sets training.{key}: {training[key]}, the run was "
                                 f"started with {started[key]}; a resumed run continues its own schedule (set it "
                                 f"back or start a new run)")
    if model_shapes is None:
        return
    from tinyverse.training import load_checkpoint

    saved = {k[len("model."):]: tuple(v.shape) for k, v in load_checkpoint(
        run_dir / "checkpoints" / "last.ckpt")["state_dict"].items() if k.startswith("model.")}
    for key in sorted(set(saved) | set(model_shapes)):
        if saved.get(key) != model_shapes.get(key):
            raise RunFolderError(
                f"--resume {run_dir}: its checkpoint is from model {then} with {key} {_shape(saved.get(key))}, but "
                f"{config} builds {now} with {key} {_shape(model_shapes.get(key))} (another dataset or model "
                f"config?); resume with the run's own config or start a new run")


def _model_text(training: dict[str, Any]) -> str:
    args = training.get("model_args") or {}
    text = str(training.get("model_name") or "?")
    if args:
        text += " " + yaml.safe_dump(args, default_flow_style=True, width=10**6, sort_keys=True).strip()
    return text


def _shape(shape: tuple[int, ...] | None) -> str:
    return "(absent)" if shape is None else "x".join(map(str, shape)) or "scalar"


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def resumed_names(run_dir: Path) -> tuple[str, str]:
    """``(config, report)`` file names for the next resume of ``run_dir``: earlier ones are kept, never rewritten.

    The config: ``config_resumed.yaml``, then ``config_resumed_2.yaml``...; the report: ``report.md`` if no attempt
    wrote one yet, else ``report_resumed.md``, ``report_resumed_2.md``... (same number as the config).
    """
    for n in range(1, MAX_SAME_NAME + 1):
        tail = "" if n == 1 else f"_{n}"
        config, report = f"config_resumed{tail}.yaml", f"report_resumed{tail}.md"
        if not (run_dir / config).exists() and not (run_dir / report).exists():
            return config, report if (run_dir / "report.md").exists() else "report.md"
    raise RunFolderError(f"--resume {run_dir}: resumed {MAX_SAME_NAME} times already; start a new run")


# -- status.json ---------------------------------------------------------------------------------------------
def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def read_status(run_dir: str | Path) -> dict[str, Any]:
    """``status.json`` of a run folder, ``{}`` if it has none. Folders from before status files existed: one with a
    ``summary.json`` finished, so it reads as complete."""
    run_dir = Path(run_dir)
    try:
        data = json.loads((run_dir / STATUS_FILE).read_text())
        return data if isinstance(data, dict) else {}
    except FileNotFoundError:
        return {"state": "complete"} if (run_dir / "summary.json").is_file() else {}
    except (OSError, ValueError):
        return {}


def process_alive(status: dict[str, Any]) -> bool:
    """Whether the process a ``running`` status names still runs (on this host; another host's is assumed alive)."""
    pid = status.get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    if status.get("host") not in (None, socket.gethostname()):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


class RunStatus:
    """A run folder's ``status.json``: written atomically when the run starts and on every transition::

        {"state": "running" | "complete" | "failed" | "interrupted",
         "started": ISO time, "updated": ISO time, "pid": int, "host": str, "config": path,
         "error": one line or null, "epoch": the epoch an interrupt stopped (0-based) or null,
         "resume": "modelmaker run CONFIG --resume FOLDER" or null (set when the run can be resumed),
         "report": report file of this attempt or null,
         "attempts": [earlier attempts of this folder (resumes), oldest first, without their own attempts]}

    A ``running`` status whose process is gone means the process was killed (SIGKILL, out of memory, power loss).
    """

    def __init__(self, run_dir: Path, *, config: str, resume_command: str) -> None:
        self.path = Path(run_dir) / STATUS_FILE
        self.record: dict[str, Any] = {}
        self.config, self.resume_command = config, resume_command

    def start(self) -> None:
        """Mark the folder running (this process); an earlier attempt (a resumed run) moves to ``attempts``."""
        previous = read_status(self.path.parent)
        attempts = list(previous.pop("attempts", []) or [])
        if previous.get("state") == "running":  # its process died without a word
            previous.update(state="failed", error=previous.get("error") or
                            f"process {previous.get('pid')} ended without updating {STATUS_FILE} (killed?)")
        if previous:
            attempts.append(previous)
        now = _now()
        self.record = {"state": "running", "started": now, "updated": now, "pid": os.getpid(),
                       "host": socket.gethostname(), "config": self.config, "error": None, "epoch": None,
                       "resume": None, "report": None, "attempts": attempts}
        self._write()

    def finish(self, state: str, *, error: str | None = None, epoch: int | None = None,
               resumable: bool = False, report: str | None = None) -> str | None:
        """Record the final state; returns None, or why ``status.json`` could not be written (never raises: the
        caller is already reporting the run's own outcome)."""
        if state not in STATES:
            raise ValueError(f"unknown run state {state!r}")
        self.record.update(state=state, updated=_now(), error=error, epoch=epoch,
                           resume=self.resume_command if resumable else None, report=report)
        try:
            self._write()
        except OSError as err:
            return f"{self.path} could not be updated: {err.strerror or err}"
        return None

    def _write(self) -> None:
        write_json(self.path, self.record)


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as JSON atomically (a temporary file, then ``os.replace``): a reader never sees half a file,
    and a full disk leaves the previous version in place."""
    text = json.dumps(data, indent=2, default=_json_default) + "\n"
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise
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
