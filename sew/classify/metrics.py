"""Classification scores: accuracy, macro-F1 and the confusion matrix, and its plot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def confusion_matrix(truth: Sequence[int], predicted: Sequence[int], num_classes: int) -> np.ndarray:
    """``[true class, predicted class]`` counts."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(truth, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def scores(matrix: np.ndarray, labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1 over the classes present in the reference (a class never seen nor predicted
    would count as F1 0 otherwise), and per-class precision, recall and F1."""
    total = int(matrix.sum())
    correct = int(np.trace(matrix))
    per_class, f1s = {}, []
    for k, name in enumerate(labels):
        tp, support, predicted = int(matrix[k, k]), int(matrix[k].sum()), int(matrix[:, k].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
                           "support": support}
        if support:
            f1s.append(f1)
    return {"accuracy": correct / total if total else 0.0, "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
            "utterances": total, "correct": correct, "per_class": per_class}


def confusion_plot(matrix: np.ndarray, labels: Sequence[str], path: str | Path, title: str = "") -> Path:
    """The confusion matrix as an image, rows normalised to recall, counts written in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(labels)
    rows = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 40:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=6,
                            color="white" if rows[i, j] > 0.5 else "black")
    ax.set_title(title or "confusion matrix (rows: recall)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
