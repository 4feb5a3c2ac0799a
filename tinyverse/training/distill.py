"""Knowledge distillation (Hinton, Vinyals & Dean 2015, "Distilling the knowledge in a neural network").

A student is trained on ``alpha · T² · KL(softmax(teacher / T) ‖ softmax(student / T)) + (1 − alpha) · CE(labels)``:
the teacher's tempered class probabilities say which wrong classes look alike, which a tiny student learns from
better than from hard labels alone. The teacher runs on the same (augmented) batch the student sees, frozen.

:class:`Distillation` is handed to a task (``ClassificationTask(..., teacher=Distillation(...))``) and is not an
``nn.Module``: the teacher's weights stay out of the student's checkpoints and state dict.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T² · KL(softmax(teacher/T) ‖ softmax(student/T))``, averaged over the batch. The T² keeps the soft-target
    gradients on the scale of the hard-label ones whatever T is (Hinton et al., section 2)."""
    t = float(temperature)
    return F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                    reduction="batchmean", log_target=True) * (t * t)


class Distillation:
    """A frozen teacher and the weight of its soft targets: ``alpha`` 1 trains on soft targets only, 0 on labels only
    (the teacher is then not run)."""

    def __init__(self, teacher: nn.Module, temperature: float = 4.0, alpha: float = 0.5) -> None:
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.temperature, self.alpha = float(temperature), float(alpha)

    @torch.no_grad()
    def teacher_logits(self, x: torch.Tensor) -> torch.Tensor:
        param = next(self.teacher.parameters(), None)
        if param is not None and param.device != x.device:  # Lightning moves the task, not this object
            self.teacher.to(x.device)
        self.teacher.eval()  # a caller's .train() on the task does not reach the teacher, but be sure
        return self.teacher(x)

    def loss(self, student_logits: torch.Tensor, x: torch.Tensor, hard_loss: torch.Tensor) -> tuple[torch.Tensor,
                                                                                                     torch.Tensor | None]:
        """(the training loss, the KD term or None when alpha is 0) for a batch ``x`` with its hard-label loss."""
        if self.alpha == 0.0:
            return hard_loss, None
        soft = kd_loss(student_logits, self.teacher_logits(x), self.temperature)
        return self.alpha * soft + (1.0 - self.alpha) * hard_loss, soft


__all__ = ["Distillation", "kd_loss"]
