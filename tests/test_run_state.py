"""Interrupted and failed runs say so: Ctrl-C (one line, exit 130, how to resume), status.json in every run folder,
--resume refusing a complete run / another model / another schedule, a full disk, a failure after the report,
the resumed learning-rate schedule, and run folders that never collide."""
from __future__ import annotations

import contextlib
import datetime as dt
import errno
import io
import json
import math
import multiprocessing
import os
import signal
from pathlib import Path

import pytest
import yaml
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

import modelmaker.run_folder as run_folder
import modelmaker.runner as runner
from modelmaker.cli import main
from modelmaker.compilation import DeviceCheckError
from modelmaker.run_folder import RunFolderError, create_run_folder, expand_run_name
from tinyverse.training import load_checkpoint
from tinyverse.training.tasks import TaskModule

EPOCHS, LR, STOP_AT = 5, 0.01, 2


def write_config(path: Path, projects: Path, run_name: str = "run", **training) -> Path:
    cfg = {
        "common": {"task_type": "classification", "modality": "timeseries", "run_name": run_name,
                   "projects_path": str(projects), "seed": 0, "verbose": False},
        "dataset": {"name": "ucr", "ucr_name": training.pop("ucr_name", "ItalyPowerDemand"), "val_fraction": 0.2},
        "training": {"model_name": "CLS_500_NPU", "epochs": EPOCHS, "batch_size": 16, "learning_rate": LR,
                     "lr_scheduler": "cosine", "accelerator": "cpu", "devices": 1, **training},
        "testing": {"enable": False},
        "compilation": {"enable": False},
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def ctrl_c_at_epoch(monkeypatch, epoch: int) -> None:
    """A real SIGINT (what Ctrl-C sends) delivered to this process at the first batch of ``epoch``."""
    def on_train_batch_start(self, batch, batch_idx):
        if self.current_epoch == epoch and batch_idx == 0:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(TaskModule, "on_train_batch_start", on_train_batch_start, raising=False)


def status_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


def interrupt_a_run(tmp: Path) -> tuple[Path, Path, int, str]:
    """A run stopped by Ctrl-C in epoch STOP_AT: (config, run folder, exit code, stderr)."""
    cfg = write_config(tmp / "tiny.yaml", tmp / "projects")
    err = io.StringIO()
    # A terminal's process turns SIGINT into KeyboardInterrupt; pytest-xdist workers ignore SIGINT, so set it here.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(err):
            ctrl_c_at_epoch(mp, STOP_AT)
            code = main(["run", str(cfg)])
    finally:
        restored = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, previous)
    assert restored is signal.default_int_handler  # Lightning ignores SIGINT while it shuts down; fit restores it
    return cfg, tmp / "projects" / "run", code, err.getvalue()


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """One interrupted run for the tests that only read it (or must leave it untouched)."""
    return interrupt_a_run(tmp_path_factory.mktemp("interrupted"))


def test_ctrl_c_says_where_it_stopped_and_how_to_resume(interrupted):
    cfg, run_dir, code, err = interrupted
    resume = f"modelmaker run {cfg} --resume {run_dir}"
    assert code == 130
    assert err.strip() == f"modelmaker: interrupted at epoch {STOP_AT}; resume with {resume}"
    status = status_of(run_dir)
    assert status["state"] == "interrupted" and status["epoch"] == STOP_AT and status["resume"] == resume
    assert status["error"] == f"interrupted at epoch {STOP_AT}" and status["pid"] == os.getpid()
    # the epochs before the interrupted one are in last.ckpt; nothing claims the run finished
    assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["epoch"] == STOP_AT - 1
    assert not (run_dir / "summary.json").exists() and not (run_dir / "report.md").exists()
    # (interrupt_a_run checked that Ctrl-C works again afterwards: Lightning ignores SIGINT while it shuts down)


def test_resume_continues_the_learning_rate_schedule_and_keeps_history(tmp_path):
    cfg, run_dir, code, _ = interrupt_a_run(tmp_path)
    assert code == 130
    assert main(["run", str(cfg), "--resume", str(run_dir)]) == 0

    rows = [r for r in (run_dir / "metrics.csv").read_text().splitlines()[1:]]
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    lr = {int(r.split(",")[0]): float(r.split(",")[header.index("lr")]) for r in rows}
    assert sorted(lr) == list(range(EPOCHS))
    # CosineAnnealingLR(T_max=epochs) at the start of each epoch; a scheduler restarted on resume would give LR
    # again at epoch STOP_AT
    for epoch, value in lr.items():
        assert value == pytest.approx(LR * (1 + math.cos(math.pi * epoch / EPOCHS)) / 2, rel=1e-5), epoch
    assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["epoch"] == EPOCHS - 1

    status = status_of(run_dir)
    assert status["state"] == "complete" and status["error"] is None and status["resume"] is None
    assert [a["state"] for a in status["attempts"]] == ["interrupted"]
    assert status["attempts"][0]["epoch"] == STOP_AT
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["state"] == "complete" and summary["training"]["epochs_run"] == EPOCHS
    # no earlier attempt wrote a report, so this one is the folder's report.md
    assert summary["report"] == status["report"] == "report.md" and (run_dir / "report.md").is_file()
    assert (run_dir / "config.yaml").is_file() and (run_dir / "config_resumed.yaml").is_file()


def test_resume_refuses_a_complete_run(tmp_path, capsys):
    cfg = write_config(tmp_path / "tiny.yaml", tmp_path / "projects", epochs=1)
    assert main(["run", str(cfg)]) == 0
    run_dir = tmp_path / "projects" / "run"
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    capsys.readouterr()
    assert main(["run", str(cfg), "--resume", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"modelmaker: error: --resume {run_dir}: the run is complete (status.json); a finished run is "
                   f"never changed: start a new run instead")
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("change, expected", [
    ({"model_name": "CLS_1k_NPU"}, "its checkpoint is from model CLS_500_NPU, but {cfg} trains CLS_1k_NPU; "
                                   "resume with the run's own config or start a new run"),
    ({"model_args": {"channels": [8, 8, 16]}}, "its checkpoint is from model CLS_500_NPU, but {cfg} trains "
                                               "CLS_500_NPU {channels: [8, 8, 16]}"),
    # same name and arguments, another dataset: the checkpoint's weights do not fit the model this config builds
    ({"ucr_name": "GunPoint"}, "its checkpoint is from model CLS_500_NPU with layers.fc.weight 2x24, but {cfg} "
                               "builds CLS_500_NPU with layers.fc.weight 2x"),
    ({"epochs": 9}, "{cfg} sets training.epochs: 9, the run was started with 5; a resumed run continues its own "
                    "schedule"),
    ({"learning_rate": 0.1}, "{cfg} sets training.learning_rate: 0.1, the run was started with 0.01"),
])
def test_resume_refuses_another_model_or_schedule(interrupted, tmp_path, capsys, change, expected):
    _, run_dir, _, _ = interrupted
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    cfg = write_config(tmp_path / "other.yaml", tmp_path / "projects", **change)
    assert main(["run", str(cfg), "--resume", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"modelmaker: error: --resume {run_dir}: ") and expected.replace("{cfg}", str(cfg)) in err, err
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before  # untouched
    assert not (tmp_path / "projects").exists()


def test_failure_after_the_report_is_recorded_and_a_resume_keeps_the_report(tmp_path, monkeypatch, capsys):
    """An error raised once summary.json and report.md exist (a verification or device check of the exported
    artifacts): exit 2 as before, the folder says failed with that line, and --resume writes a new report."""
    def fails(cfg, summary, run_dir):
        raise DeviceCheckError("2 exported artifact(s) failed verification (see the report):\n  - tflite_int8: ...")

    monkeypatch.setattr(runner, "fail_if_unverified", fails)
    cfg = write_config(tmp_path / "tiny.yaml", tmp_path / "projects", epochs=2)
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "modelmaker: error: 2 exported artifact(s) failed verification (see the report):"
    run_dir = tmp_path / "projects" / "run"
    status = status_of(run_dir)
    line = "2 exported artifact(s) failed verification (see the report):"
    assert status["state"] == "failed" and status["error"] == line and status["report"] == "report.md"
    assert status["resume"] == f"modelmaker run {cfg} --resume {run_dir}"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["state"] == "failed" and summary["error"] == line
    report = (run_dir / "report.md").read_bytes()

    monkeypatch.undo()
    assert main(["run", str(cfg), "--resume", str(run_dir)]) == 0
    assert (run_dir / "report.md").read_bytes() == report  # the earlier report stays as it was
    assert (run_dir / "report_resumed.md").is_file() and (run_dir / "config_resumed.yaml").is_file()
    status = status_of(run_dir)
    assert status["state"] == "complete" and status["report"] == "report_resumed.md"
    assert [(a["state"], a["error"]) for a in status["attempts"]] == [("failed", line)]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["state"] == "complete" and summary["report"] == "report_resumed.md"


@pytest.mark.parametrize("code, fix", [(errno.ENOSPC, "free some disk space"),
                                       (errno.EACCES, "make the folder writable")])
@pytest.mark.parametrize("status_writable", [True, False])
def test_full_disk_or_unwritable_folder_mid_run(tmp_path, monkeypatch, capsys, code, fix, status_writable):
    """The third checkpoint write (epoch 1) fails as a full disk or a read-only folder would make it fail."""
    calls = []
    save = TorchCheckpointIO.save_checkpoint

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(code, os.strerror(code), str(path))
        return save(self, checkpoint, path, storage_options)

    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", save_checkpoint)
    if not status_writable:  # the disk is full for status.json too, once the run has started
        write = run_folder.write_json

        def write_json(path, data):
            if Path(path).name == "status.json" and data.get("state") != "running":
                raise OSError(code, os.strerror(code), str(path))
            return write(path, data)

        monkeypatch.setattr(run_folder, "write_json", write_json)
    cfg = write_config(tmp_path / "tiny.yaml", tmp_path / "projects", epochs=3)
    assert main(["run", str(cfg)]) == 2
    run_dir = tmp_path / "projects" / "run"
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    resume = f"resume with modelmaker run {cfg} --resume {run_dir}"
    status = status_of(run_dir)
    if status_writable:
        assert err == (f"modelmaker: error: cannot write {calls[-1]}: {os.strerror(code)}; the run stopped and "
                       f"{run_dir} is marked failed: {fix}, then {resume}")
        assert status["state"] == "failed" and status["error"] == f"{calls[-1]}: {os.strerror(code)}"
        assert status["resume"] == resume.removeprefix("resume with ")
    else:  # the folder still says running (the disk took nothing more): the user is told so
        assert status["state"] == "running"
        assert err == (f"modelmaker: error: cannot write {calls[-1]}: {os.strerror(code)}; the run stopped: {fix}, "
                       f"then {resume} ({run_dir / 'status.json'} could not be updated: {os.strerror(code)})")


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path):
    now = dt.datetime(2026, 11, 30, 12, 0, 0)
    name = expand_run_name("{date}-{time}_{model_name}", now=now, model_name="CLS_1k_NPU")
    assert name == "20261130-120000_CLS_1k_NPU"
    ctx = multiprocessing.get_context("fork")
    barrier, queue = ctx.Barrier(6), ctx.Queue()

    def start():
        barrier.wait()  # all six create their folder at the same moment
        queue.put(str(create_run_folder(tmp_path / "projects", name, unique=True)))

    procs = [ctx.Process(target=start) for _ in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    folders = sorted(Path(queue.get(timeout=10)).name for _ in procs)
    assert folders == sorted([name] + [f"{name}-{n}" for n in range(2, 7)])
    assert sorted(p.name for p in (tmp_path / "projects").iterdir()) == folders
    # a fixed run name is the user's choice: taken is an error, never a silent "-2"
    create_run_folder(tmp_path / "projects", "fixed")
    with pytest.raises(RunFolderError, match="already exists"):
        create_run_folder(tmp_path / "projects", "fixed")


def test_the_pipeline_gives_a_same_second_run_its_own_folder(tmp_path, monkeypatch):
    now = dt.datetime(2026, 11, 30, 12, 0, 0)
    monkeypatch.setattr(runner, "expand_run_name", lambda template, **values: expand_run_name(template, now=now,
                                                                                              **values))
    cfg = write_config(tmp_path / "tiny.yaml", tmp_path / "projects", run_name="{date}-{time}_{model_name}",
                       epochs=1)
    assert main(["run", str(cfg)]) == 0 and main(["run", str(cfg)]) == 0
    names = sorted(p.name for p in (tmp_path / "projects").iterdir())
    assert names == ["20261130-120000_CLS_500_NPU", "20261130-120000_CLS_500_NPU-2"]
    for name in names:
        assert status_of(tmp_path / "projects" / name)["state"] == "complete"
