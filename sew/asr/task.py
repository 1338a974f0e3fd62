"""The CTC fine-tuning task plugged into ``sew.train.loop.Trainer``.

``CTCTask.loss`` draws SpecAugment-style masks (never on padding), runs the encoder (under
``no_grad`` for the first ``freeze_finetune_updates`` updates, when only the CTC head
trains) and returns the float32 CTC loss summed over utterances (each divided by its target
length: fairseq's ``sentence_avg``). ``validate`` decodes the dev set greedily and returns WER /
CER; ``save_model`` writes the model with its ``vocab.json``.
"""

from __future__ import annotations

import torch
from accelerate.utils import extract_model_from_parallel

from sew.asr.ctc import ctc_loss
from sew.asr.decode import GreedyDecoder
from sew.asr.evaluate import evaluate
from sew.checkpoint import save_model
from sew.data.text import Vocabulary
from sew.inference import optimize_for_cpu
from sew.models.lengths import lengths_to_mask
from sew.train.masking import MaskingConfig, batch_masks
from sew.train.task import LossSums, TrainingTask


def empty_paths(logits: torch.Tensor, lengths: torch.Tensor, blank: int) -> float:
    """Utterances whose greedy path over their valid frames is all blank (an empty hypothesis)."""
    path = logits.argmax(-1)  # [B, T]
    valid = lengths_to_mask(lengths.to(path.device), path.shape[1])
    return float((~((path != blank) & valid).any(1)).sum())


class CTCTask(TrainingTask):
    """CTC over ``vocab`` with masking; ``valid`` is ``(dataset, references)`` or None."""

    def __init__(self, vocab: Vocabulary, masking: MaskingConfig | None = None, *, freeze_finetune_updates: int = 0,
                 valid=None, valid_max_tokens: int = 1_600_000, config: dict | None = None) -> None:
        self.vocab, self.masking = vocab, masking or MaskingConfig()
        self.freeze_finetune_updates = freeze_finetune_updates
        self.valid, self.valid_max_tokens = valid, valid_max_tokens
        self.config = config or {}

    def loss(self, model, batch, update: int, micro: int, generator: torch.Generator) -> LossSums:
        """The utterances' CTC losses, each divided by its target length, summed (count: utterances)."""
        encoder = extract_model_from_parallel(model)
        time_mask, channel_mask = batch_masks(self.masking, encoder, batch, generator, update)
        if update < self.freeze_finetune_updates:
            # Only the head trains: the encoder runs without building a graph.
            with torch.no_grad():
                out = model(batch.waveforms, batch.lengths, time_mask=time_mask, channel_mask=channel_mask)
            logits = encoder.ctc_head(out.last_hidden_state.detach())
        else:
            out = model(batch.waveforms, batch.lengths, time_mask=time_mask, channel_mask=channel_mask)
            logits = out.logits
        utterances = len(batch.lengths)
        mean = ctc_loss(logits, out.lengths, batch.targets, batch.target_lengths, blank=self.vocab.blank_id)
        return LossSums(loss=mean * utterances, count=utterances,
                        sums={"empty": empty_paths(logits.detach(), out.lengths, self.vocab.blank_id)})

    def health_monitor(self, cfg):
        """The blank plateau and divergence (``sew.train.health``)."""
        from sew.config import to_mapping
        from sew.train.health import ctc_monitor

        return ctc_monitor(to_mapping(cfg), to_mapping(self.masking))

    def validate(self, model) -> dict[str, float] | None:
        if self.valid is None:
            return None
        dataset, references = self.valid
        device = next(model.parameters()).device
        model = optimize_for_cpu(model)  # on a CPU its inference modules, on the training model's own parameters
        result = evaluate(model, dataset, references, GreedyDecoder(self.vocab), max_tokens=self.valid_max_tokens,
                          device=device, rows=False)
        s = result.summary
        return {"wer": s["wer"], "cer": s["cer"], "empty": s["empty_hypotheses"] / max(s["utterances"], 1)}

    def save_model(self, model, directory, **meta) -> None:
        save_model(model, directory, finetune=self.config, **meta)
        self.vocab.save(directory)

    def checkpoint_files(self) -> dict:
        return {"vocab.json": self.vocab.index, "finetune_config.json": self.config}
