"""Score a classifier on labelled utterances: padded, length-sorted batches, exact (a padded
utterance gets the same logits as alone), accuracy, macro-F1, the confusion matrix."""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sew.classify.data import LabelDataset
from sew.classify.metrics import confusion_matrix, confusion_plot, scores
from sew.data.dataset import make_dataloader


@dataclass
class ClassifyResult:
    """``summary`` (accuracy, macro_f1, per class, timing), ``rows`` per utterance and the ``confusion`` matrix."""

    summary: dict
    labels: list[str]
    confusion: np.ndarray
    rows: list[dict] = field(default_factory=list)

    def write(self, out_dir: str | Path) -> list[Path]:
        """``OUT/metrics.json``, ``OUT/utterances.tsv`` and ``OUT/confusion.png``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        metrics = out / "metrics.json"
        metrics.write_text(json.dumps({**self.summary, "labels": self.labels,
                                       "confusion": self.confusion.tolist()}, indent=2) + "\n")
        with open(out / "utterances.tsv", "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["id", "label", "predicted", "probability"], delimiter="\t")
            writer.writeheader()
            writer.writerows(self.rows)
        plot = confusion_plot(self.confusion, self.labels, out / "confusion.png",
                              f"accuracy {100 * self.summary['accuracy']:.1f}%, macro-F1 "
                              f"{100 * self.summary['macro_f1']:.1f}%")
        return [metrics, out / "utterances.tsv", plot]


@torch.no_grad()
def evaluate_classifier(model, dataset: LabelDataset, labels: list[str], *, max_tokens: int = 1_600_000,
                        device: str | torch.device = "cpu") -> ClassifyResult:
    """Classify every utterance of ``dataset`` and score against its labels."""
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    tokens = max(max_tokens, max(dataset.lengths))  # a long utterance gets a batch of its own
    sampler = dataset.sampler(max_tokens=tokens, shuffle=False, max_length=tokens)
    truth, predicted, rows, audio = [], [], [], 0.0
    for batch in make_dataloader(dataset, sampler):
        if not len(batch):
            continue
        logits = model(batch.waveforms.to(device), batch.lengths.to(device)).logits.float().cpu()
        probs = logits.softmax(-1)
        best = probs.argmax(-1)
        for uid, target, k, p in zip(batch.ids, batch.targets[:, 0].tolist(), best.tolist(), probs):
            truth.append(target)
            predicted.append(k)
            rows.append({"id": uid, "label": labels[target], "predicted": labels[k], "probability": round(float(p[k]), 4)})
        audio += float(batch.lengths.sum()) / 16000.0
    model.train(was_training)
    if not rows:
        raise ValueError("no utterance could be classified (see the warnings above)")
    matrix = confusion_matrix(truth, predicted, len(labels))
    summary = scores(matrix, labels)
    summary.update(audio_seconds=round(audio, 2), seconds=round(time.perf_counter() - start, 2),
                   skipped=len(dataset.ids) - len(rows))
    return ClassifyResult(summary, list(labels), matrix, rows)
