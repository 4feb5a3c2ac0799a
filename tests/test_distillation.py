"""Distillation (training.teacher): the KD loss, teachers that never ship, a run that trains (or loads) a teacher and
reports teacher, student alone and distilled student side by side, and the config errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from modelmaker.cli import main as cli
from modelmaker.config import ConfigError, load_config
from tinyverse.models import create_model
from tinyverse.models.roles import never_ships
from tinyverse.training import ClassificationTask, TrainConfig, fit, predict
from tinyverse.training.distill import Distillation, kd_loss

L_SEQ = 32


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(0.0, 1.0, (n, 1, L_SEQ, 1)) + np.where(y == 1, 0.5, -0.5)[:, None, None, None]
    return x.astype(np.float32), y.astype(np.int64)


class ConstantTeacher(nn.Module):
    """Says class 1 with the same logits whatever the input (and counts its calls)."""

    def __init__(self) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.tensor([-3.0, 3.0]))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.logits.expand(x.shape[0], 2)


def _student() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(L_SEQ, 8), nn.ReLU(), nn.Linear(8, 2))


def _train(tmp_path: Path, teacher: Distillation | None) -> nn.Module:
    task = ClassificationTask(_student(), num_classes=2, learning_rate=0.02, epochs=3, teacher=teacher)
    fit(task, _data(128, 0), _data(64, 1), tmp_path, TrainConfig(epochs=3, batch_size=32, progress_bar=False,
                                                                 early_stopping_patience=None))
    return task.model


def test_kd_loss_is_zero_for_the_teachers_own_logits_and_grows_with_disagreement():
    t = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.0, 3.0]])
    assert float(kd_loss(t, t, 4.0)) == pytest.approx(0.0, abs=1e-7)
    assert float(kd_loss(torch.zeros_like(t), t, 4.0)) > 0
    # T² scaling: at a high temperature the loss stays on the scale of a hard-label loss, not 1/T² of it
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    assert float(kd_loss(a, b, 1.0)) == pytest.approx(float(nn.functional.kl_div(
        nn.functional.log_softmax(a, 1), nn.functional.log_softmax(b, 1), reduction="batchmean", log_target=True)))


def test_soft_targets_pull_the_student_to_the_teacher_and_alpha_0_ignores_it(tmp_path):
    """alpha=1 with a teacher of constant soft targets (class 1) changes the student: it predicts class 1 far more
    often than the same student trained on the labels (alpha=0, where the teacher is never run)."""
    x_test = _data(200, 2)[0]
    silent = ConstantTeacher()
    plain = _train(tmp_path / "a0", Distillation(silent, temperature=2.0, alpha=0.0))
    assert silent.calls == 0
    loud = ConstantTeacher()
    distilled = _train(tmp_path / "a1", Distillation(loud, temperature=2.0, alpha=1.0))
    assert loud.calls > 0
    share = lambda m: float((predict(m, x_test).argmax(1) == 1).mean())  # noqa: E731
    assert share(distilled) > 0.95 > share(plain) + 0.2
    # the teacher is frozen and stays out of the student's checkpoint
    assert torch.equal(loud.logits, torch.tensor([-3.0, 3.0]))
    state = torch.load(tmp_path / "a1" / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    assert not [k for k in state if "logits" in k]
    assert torch.load(tmp_path / "a1" / "checkpoints" / "best.ckpt", weights_only=True)["hyper_parameters"][
        "distillation"] == {"temperature": 2.0, "alpha": 1.0}


def test_teachers_are_registered_and_marked_never_ships(capsys):
    for name, params in (("TEACHER_FCN", 264_450), ("TEACHER_ResNet", 478_210)):
        model = create_model(name, input_shape=[1, 150], num_classes=2)
        assert model.num_params == params  # Fawaz et al.'s ~270k FCN and ~500k ResNet
        assert model(torch.randn(2, 1, 150, 1)).shape == (2, 2)
        assert never_ships(model) and model.spec.to_dict()["metadata"]["role"] == "teacher"
    assert never_ships(create_model("CLS_4k_NPU", input_shape=[1, 150], num_classes=2)) is None

    assert cli(["models", "--include", "TEACHER_*", "--device", "F28P55"]) == 0
    out = capsys.readouterr().out
    assert out.count("teacher (never ships)") == 3 and "TEACHER_InceptionTime" in out
    assert cli(["models", "--include", "TEACHER_*", "--device", "cortex-m7", "--fits-only"]) == 0
    assert "TEACHER_" not in capsys.readouterr().out.split("model")[1]
    # a device check lists the layers but never says a teacher fits
    assert cli(["check", "TEACHER_FCN", "--device", "cortex-m7", "--input-shape", "1,64"]) == 1
    out = capsys.readouterr().out
    assert "TEACHER_FCN never ships" in out and "fits cortex-m7" not in out


RUN = """common:
  task_type: classification
  run_name: run
  projects_path: {projects}
  target_device: F28P55
  verbose: false
dataset:
  name: ucr
  ucr_name: GunPoint
training:
  model_name: CLS_1k_NPU
  epochs: 2
  batch_size: 16
  learning_rate: 0.005
  teacher: {teacher}
compilation:
  enable: false
"""


def _run(tmp_path: Path, name: str, teacher: str) -> dict:
    path = tmp_path / f"{name}.yaml"
    path.write_text(RUN.format(projects=tmp_path / name, teacher=teacher))
    assert cli(["run", str(path)]) == 0
    return json.loads((tmp_path / name / "run" / "summary.json").read_text())


def test_a_run_trains_the_teacher_then_the_student_and_reports_the_three(tmp_path):
    summary = _run(tmp_path, "first", "{model_name: TEACHER_FCN, model_args: {channels: [16, 32, 16]}, epochs: 2, "
                                      "temperature: 3.0, alpha: 0.7, compare_student_alone: true}")
    d = summary["distillation"]
    assert (d["temperature"], d["alpha"]) == (3.0, 0.7)
    assert [r["role"] for r in d["rows"]] == ["teacher", "student alone", "student (distilled)"]
    teacher, alone, student = d["rows"]
    assert teacher["model"] == "TEACHER_FCN" and teacher["epochs_run"] == 2 and teacher["params"] > 1_000
    assert alone["model"] == student["model"] == "CLS_1k_NPU" and alone["params"] == student["params"]
    assert student["test_accuracy"] == pytest.approx(summary["test"]["accuracy"])
    # the shipped model is the student: its spec, its device check
    assert summary["model"]["name"] == "CLS_1k_NPU" and summary["device"]["fits"]
    run = tmp_path / "first" / "run"
    assert (run / "teacher" / "checkpoints" / "best.ckpt").is_file() and (run / "teacher" / "model_spec.yaml").is_file()
    assert (run / "student_alone" / "checkpoints" / "best.ckpt").is_file()
    assert "train_kd_loss" in (run / "metrics.csv").read_text().splitlines()[0]
    assert "train_kd_loss" not in (run / "student_alone" / "metrics.csv").read_text().splitlines()[0]
    report = (run / "report.md").read_text()
    assert "## Distillation" in report and "| student alone | CLS_1k_NPU |" in report

    # a later run loads that teacher instead of training one: the same weights give the same test accuracy
    ckpt = run / "teacher" / "checkpoints" / "best.ckpt"
    again = _run(tmp_path, "second", f"{{checkpoint: {ckpt}}}")
    loaded = again["distillation"]["rows"][0]
    assert loaded["source"] == str(ckpt) and loaded["test_accuracy"] == teacher["test_accuracy"]
    assert [r["role"] for r in again["distillation"]["rows"]] == ["teacher", "student (distilled)"]
    assert not (tmp_path / "second" / "run" / "teacher" / "checkpoints").exists()


BAD = """common:
  task_type: {task}
  target_device: F28P55
dataset:
  name: ucr
  ucr_name: GunPoint
training:
  model_name: {model}
  epochs: 1
{extra}"""


@pytest.mark.parametrize("task,model,extra,key,message", [
    ("regression", "REGR_1k_NPU", "  teacher: {model_name: TEACHER_FCN}\n", "training.teacher",
     "task 'regression' does not use it (its training step takes no teacher)"),
    ("classification", "CLS_4k_NPU", "  teacher: {model_name: TEACHER_FCN, checkpoint: x.ckpt}\n",
     "training.teacher.model_name", "give either model_name (a teacher to train) or checkpoint (one to load), not both"),
    ("classification", "CLS_4k_NPU", "  teacher: {temperature: 2}\n", "training.teacher",
     "give either model_name (a teacher to train) or checkpoint (one to load), not neither"),
    ("classification", "CLS_4k_NPU", "  teacher: {model_name: TEACHER_FNC}\n", "training.teacher.model_name",
     "unknown model 'TEACHER_FNC'; did you mean 'TEACHER_FCN'?"),
    ("classification", "CLS_4k_NPU", "  teacher: {model_name: TEACHER_FCN, alpha: 1.5}\n", "training.teacher.alpha",
     "must be <= 1.0, got 1.5"),
    ("classification", "CLS_4k_NPU", "  teacher: {model_name: TEACHER_FCN, model_args: {width: 3}}\n",
     "training.teacher.model_args.width", "unknown argument of model 'TEACHER_FCN'"),
    ("classification", "CLS_4k_NPU", "  teacher: {checkpoint: nowhere/best.ckpt}\n", "training.teacher.checkpoint",
     "teacher checkpoint not found: 'nowhere/best.ckpt'"),
    ("classification", "CLS_4k_NPU", "  teacher: {checkpoint: t.ckpt, epochs: 3}\n", "training.teacher.epochs",
     "used only when the teacher is trained (model_name), not loaded"),
    ("classification", "TEACHER_FCN", "", "training.model_name",
     "TEACHER_FCN is a teacher: a float model that never ships"),
    ("classification", "CLS_4k_NPU", "  enable: false\n  teacher: {model_name: TEACHER_FCN}\n", "training.teacher",
     "distillation trains the student, but training.enable is false"),
])
def test_config_errors_name_the_key(tmp_path, task, model, extra, key, message):
    (tmp_path / "t.ckpt").write_bytes(b"")
    path = tmp_path / "run.yaml"
    path.write_text(BAD.format(task=task, model=model, extra=extra))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert e.value.key == key, str(e.value)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_audio_refuses_a_teacher(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump({"common": {"modality": "audio", "task_type": "amp_modelling"},
                                    "dataset": {"name": "nam_capture", "generated_seconds": 6},
                                    "training": {"model_name": "NAM_WaveNet_nano", "epochs": 1,
                                                 "teacher": {"model_name": "TEACHER_FCN"}}}))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert e.value.key == "training.teacher" and "task 'amp_modelling' does not use it" in str(e.value)


def test_a_teacher_checkpoint_of_other_data_is_refused_before_the_run_folder(tmp_path, capsys):
    """A teacher whose input differs from the data: one line naming the key, exit 2, no run folder."""
    teacher = create_model("TEACHER_FCN", input_shape=[1, 64], num_classes=2, channels=[8, 8, 8])
    folder = tmp_path / "old"
    (folder / "checkpoints").mkdir(parents=True)
    teacher.spec.to_yaml(folder / "model_spec.yaml")
    torch.save({"state_dict": {f"model.{k}": v for k, v in teacher.state_dict().items()}},
               folder / "checkpoints" / "best.ckpt")
    path = tmp_path / "run.yaml"
    path.write_text(RUN.format(projects=tmp_path / "p", teacher=f"{{checkpoint: {folder / 'checkpoints' / 'best.ckpt'}}}"))
    assert cli(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("modelmaker: error: training.teacher.checkpoint: the teacher takes input 1x64, the data "
                          "gives 1x150") and "\n" not in err
    assert not (tmp_path / "p").exists()
