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


# --- stacked: K models at once (cchsweep.stack); every argument has a leading member axis K --------------


def stacked_classification_kd_losses(
    logits: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor, temperature: torch.Tensor, lam: torch.Tensor
) -> torch.Tensor:
    """Eq. (2) per member: logits/teacher [K, B, C], labels [K, B], temperature/lam [K] -> [K].

    Each entry equals classification_kd_loss on that member's slice (lam = 0 gives plain CE).
    """
    ce = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none").mean(1)
    t = temperature[:, None, None]
    log_p_student = F.log_softmax(logits / t, dim=-1)
    log_p_teacher = F.log_softmax(teacher / t, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1).mean(1)
    return (1.0 - lam) * ce + lam * temperature**2 * kl


def stacked_regression_kd_losses(
    pred: torch.Tensor, target: torch.Tensor, teacher: torch.Tensor, lam: torch.Tensor
) -> torch.Tensor:
    """Eq. (4) per member: pred/target/teacher [K, B, o], lam [K] -> [K]."""
    mse = ((pred - target) ** 2).mean(dim=(1, 2))
    return mse + lam * ((pred - teacher) ** 2).mean(dim=(1, 2))
