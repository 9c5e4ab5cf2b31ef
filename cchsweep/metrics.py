"""Classification metrics from logits (scikit-learn does the arithmetic)."""

from __future__ import annotations

import numpy as np
import torch


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Accuracy, weighted and macro F1, and one-vs-rest AUC (omitted where undefined)."""
    from sklearn.metrics import f1_score, roc_auc_score  # here: importing sklearn costs every CLI call 0.8 s

    y = labels.cpu().numpy()
    probs = torch.softmax(logits.float(), dim=-1).cpu().numpy().astype(np.float64)
    pred = probs.argmax(axis=1)
    out = {
        "acc": float((pred == y).mean()),
        "f1_weighted": float(f1_score(y, pred, average="weighted", zero_division=0)),
        "f1_macro": float(f1_score(y, pred, average="macro", zero_division=0)),
    }
    n_classes = probs.shape[1]
    if len(np.unique(y)) == n_classes:  # AUC needs every class among the labels
        probs /= probs.sum(axis=1, keepdims=True)
        out["auc"] = float(roc_auc_score(y, probs[:, 1] if n_classes == 2 else probs, multi_class="ovr"))
    return out
