"""The classification task plugged into ``sew.train.loop.Trainer``: cross-entropy over utterances.

With a frozen encoder (the SUPERB probing protocol) the encoder's parameters take no gradient and
it runs in eval mode (no dropout, no masks), so only the layer weights and the head learn.
Validation reports ``error`` (1 - accuracy, minimised for ``RUN/best``), ``accuracy`` and ``macro_f1``.
"""

from __future__ import annotations

import torch
from accelerate.utils import extract_model_from_parallel
from torch.nn import functional as F

from sew.classify.evaluate import evaluate_classifier
from sew.train.masking import MaskingConfig, batch_masks
from sew.train.task import LossSums, TrainingTask


class ClassificationTask(TrainingTask):
    """Cross-entropy over ``labels``; ``valid`` is a ``LabelDataset`` or None."""

    def __init__(self, labels: list[str], masking: MaskingConfig | None = None, *, frozen_encoder: bool = False,
                 valid=None, valid_max_tokens: int = 1_600_000, config: dict | None = None) -> None:
        self.labels, self.masking, self.frozen_encoder = list(labels), masking or MaskingConfig(), frozen_encoder
        self.valid, self.valid_max_tokens = valid, valid_max_tokens
        self.config = config or {}

    def loss(self, model, batch, update: int, micro: int, generator: torch.Generator) -> LossSums:
        """Summed cross-entropy of the batch's utterances (count: utterances); accuracy logged."""
        encoder = getattr(extract_model_from_parallel(model), "encoder", None)  # None: the log-mel baseline
        masks = {}
        if encoder is not None and self.frozen_encoder:
            encoder.eval()  # features as the pretrained encoder computes them: no dropout
        elif encoder is not None:
            time_mask, channel_mask = batch_masks(self.masking, encoder, batch, generator, update)
            masks = {"time_mask": time_mask, "channel_mask": channel_mask}
        logits = model(batch.waveforms, batch.lengths, **masks).logits.float()
        targets = batch.targets[:, 0]
        loss = F.cross_entropy(logits, targets, reduction="sum")
        correct = float((logits.argmax(-1) == targets).sum())
        return LossSums(loss=loss, count=len(targets), sums={"accuracy": correct})

    def validate(self, model) -> dict[str, float] | None:
        if self.valid is None:
            return None
        from sew.inference import optimize_for_cpu

        device = next(model.parameters()).device
        model = optimize_for_cpu(model)  # on a CPU its inference modules, as fine-tuning validates
        result = evaluate_classifier(model, self.valid, self.labels, max_tokens=self.valid_max_tokens, device=device)
        s = result.summary
        return {"error": 1.0 - s["accuracy"], "accuracy": s["accuracy"], "macro_f1": s["macro_f1"]}

    def save_model(self, model, directory, **meta) -> None:
        from sew.classify.logmel import LogMelClassifier, save_logmel
        from sew.checkpoint import save_model

        if isinstance(model, LogMelClassifier):
            save_logmel(model, directory, finetune=self.config, **meta)
        else:
            save_model(model, directory, finetune=self.config, **meta)

    def checkpoint_files(self) -> dict:
        return {"classify_config.json": self.config}
