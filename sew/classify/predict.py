"""Load a classifier and classify files of any length in bounded memory.

A file longer than ``chunk_seconds`` is cut into consecutive windows (start = a multiple of the
model's frame unit); each window's pooled vector and frame count are kept, and the file's pooled
vector combines them by frame count (``merge_pooled``): the pooling over the whole file, with each
frame seen through its own window's context. Memory is bounded by one window.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from sew.data.audio import load_input
from sew.models.classifier import merge_pooled


def load_classifier(model_dir, device: str | None = None):
    """``(model, device)`` for a classifier directory (ours or Hugging Face) or Hub id, on the CPU path when on a CPU."""
    import sew
    from sew.hub import resolve_model_dir
    from sew.models.classifier import SequenceClassifier
    from sew.runtime import resolve_device

    directory = resolve_model_dir(model_dir)
    model = sew.load_model(directory)
    if not isinstance(model, SequenceClassifier):
        raise ValueError(f"{model_dir}: this model has no classification head (it is "
                         f"{'a CTC model' if model.ctc_head is not None else 'an encoder'}); train one with "
                         f"sew finetune --task classify --model {model_dir}")
    device = resolve_device(device or "auto")
    return sew.optimize_for_cpu(model.to(device)), device


def is_classifier(model_dir) -> bool:
    """Whether ``model_dir`` holds a classification model (read from its config, weights untouched)."""
    from sew.checkpoint import CONFIG_NAME, read_model_json
    from sew.hub import resolve_model_dir

    directory = resolve_model_dir(model_dir)
    if (directory / CONFIG_NAME).is_file():
        return "classifier" in read_model_json(directory)
    if (directory / "config.json").is_file():
        return any("ForSequenceClassification" in a for a in read_model_json(directory, "config.json").get(
            "architectures") or [])
    return False


@torch.no_grad()
def pooled_logits(model, waveform: torch.Tensor, *, chunk_seconds: float = 30.0,
                  device: str | torch.device = "cpu") -> torch.Tensor:
    """Class logits ``[labels]`` of one waveform ``[samples]``, in windows of ``chunk_seconds`` when long."""
    cfg = model.config
    samples = int(waveform.shape[-1])
    unit = cfg.frame_stride * (cfg.squeeze_factor if cfg.squeezes else 1)
    chunk = max(int(chunk_seconds * 16000) // unit * unit, unit)
    if samples <= chunk:
        return model(waveform[None].to(device)).logits[0].float().cpu()
    parts = []
    for start in range(0, samples, chunk):
        piece = waveform[start:start + chunk]
        if piece.shape[0] < cfg.receptive_field:  # a tail shorter than one frame adds nothing
            break
        out = model(piece[None].to(device))
        parts.append((out.pooled[0].float().cpu(), int(out.lengths[0])))
    pooled = merge_pooled(parts, model.head_config.pooling)
    return model.classifier(pooled.to(device).to(model.classifier.weight.dtype)).float().cpu()


@dataclass
class Prediction:
    """One file's result: the top labels with probabilities, or ``None`` and the reason."""

    path: str
    top: list[tuple[str, float]] | None
    seconds: float = 0.0
    message: str | None = None
    probabilities: list[float] = field(default_factory=list, repr=False)


def classify_files(model, paths: Iterable[str], *, top: int = 3, chunk_seconds: float = 30.0,
                   device: str | torch.device = "cpu") -> Iterator[Prediction]:
    """Classify each file; a bad file yields a ``Prediction`` with ``top=None`` and the reason, never raises."""
    labels = model.labels
    for path in paths:
        wave, seconds, message = load_input(path, model.config.receptive_field)
        if wave is None:
            yield Prediction(path, None, seconds, message)
            continue
        if message:
            message += "; the labels are a guess"
        logits = pooled_logits(model, torch.from_numpy(np.ascontiguousarray(wave)), chunk_seconds=chunk_seconds,
                               device=device)
        probs = logits.softmax(-1)
        order = probs.argsort(descending=True)[:top].tolist()
        yield Prediction(path, [(labels[k], float(probs[k])) for k in order], seconds, message, probs.tolist())


def evaluate_classifier_model(model_dir, data, split: str, out_dir, *, device=None, max_tokens: int = 1_600_000,
                              strict: bool = False) -> dict:
    """Score ``model_dir`` on ``split`` of ``data`` (None: the built-in keyword-spotting task); write
    ``out_dir/metrics.json``, ``utterances.tsv`` and ``confusion.png``; print a table."""
    from sew.classify.data import LabelDataset
    from sew.classify.evaluate import evaluate_classifier
    from sew.data.corpus import read_corpus
    from sew.data.rejects import RejectLog

    model, device = load_classifier(model_dir, device)
    if data is None:
        from sew.data.tasks import default_task

        data = default_task("kws")
    log = RejectLog(strict=strict)
    dataset = LabelDataset(read_corpus(data, split=split, rejects_log=log), model.labels, rejects_log=log)
    if not len(dataset):
        raise ValueError(f"{data} (split {split}): no utterance with one of the model's labels to evaluate")
    result = evaluate_classifier(model, dataset, model.labels, max_tokens=max_tokens, device=device)
    s = result.summary
    s.update(model=str(model_dir), data=str(data), split=split)
    print(f"{'split':<10} {'utts':>6} {'accuracy %':>11} {'macro-F1 %':>11}")
    print(f"{split:<10} {s['utterances']:>6} {100 * s['accuracy']:>11.2f} {100 * s['macro_f1']:>11.2f}")
    if out_dir is not None:
        files = result.write(out_dir)
        if len(log):
            log.write(out_dir)
        print("wrote " + ", ".join(str(f) for f in files))
    if len(log):
        print(f"skipped {len(log)} item(s): {log.summary()}", file=sys.stderr)
    return s


def write_predictions(predictions: Iterable[Prediction], out=None) -> int:
    """Print ``FILE<TAB>label:prob ...`` per file (to ``out``, default stdout) and errors on stderr; returns
    how many failed."""
    out = out or sys.stdout  # looked up now: the stream may have been replaced since import
    failed = 0
    for p in predictions:
        if p.message:
            print(f"{'warning' if p.top is not None else 'error'}: {p.path}: {p.message}", file=sys.stderr)
        if p.top is None:
            failed += 1
            continue
        print(f"{p.path}\t" + " ".join(f"{label}:{prob:.3f}" for label, prob in p.top), file=out, flush=True)
    return failed


__all__ = ["Prediction", "classify_files", "evaluate_classifier_model", "is_classifier", "load_classifier",
           "pooled_logits", "write_predictions"]
