"""Knowledge-distillation objectives.

Eq. (2), classification: (1 - lam) CE(student, y) + lam T^2 KL(p_teacher^T || p_student^T).
Eq. (4), regression:     MSE(student, y) + lam MSE(student, teacher)   (lam = 0 is no KD).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_target_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 KL(softmax(teacher/T) || softmax(student/T)), averaged over the batch.

    The T^2 factor keeps the soft-target gradients on the scale of the hard-label term
    (Hinton et al., 2015).
    """
    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits / temperature, dim=-1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return temperature**2 * kl


def classification_kd_loss(
    student_logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor, temperature: float, lam: float
) -> torch.Tensor:
    ce = F.cross_entropy(student_logits, labels)
    if lam == 0.0:
        return ce
    return (1.0 - lam) * ce + lam * soft_target_kl(student_logits, teacher_logits, temperature)


def regression_kd_loss(
    student_pred: torch.Tensor, target: torch.Tensor, teacher_pred: torch.Tensor, lam: float
) -> torch.Tensor:
    loss = F.mse_loss(student_pred, target)
    if lam == 0.0:
        return loss
    return loss + lam * F.mse_loss(student_pred, teacher_pred)
