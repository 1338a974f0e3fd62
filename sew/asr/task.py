"""The CTC fine-tuning task plugged into ``sew.train.loop.Trainer``.

``CTCTask.loss`` draws SpecAugment-style masks (never on padding), runs the encoder (under
``no_grad`` for the first ``freeze_finetune_updates`` updates, when only the CTC head
trains) and returns the float32 CTC loss. ``validate`` decodes the dev set greedily and
returns WER / CER; ``save_model`` writes the model with its ``vocab.json``.
"""

from __future__ import annotations

import torch

from sew.asr.ctc import ctc_loss
from sew.checkpoint import save_model
from sew.asr.decode import GreedyDecoder
from sew.asr.evaluate import evaluate
from sew.data.text import Vocabulary
from sew.inference import optimize_for_cpu
from sew.train.loop import StepOutput, unwrap
from sew.train.masking import MaskingConfig, compute_masks


class CTCTask:
    """CTC over ``vocab`` with masking; ``valid`` is ``(dataset, references)`` or None."""

    def __init__(self, vocab: Vocabulary, masking: MaskingConfig | None = None, *, freeze_finetune_updates: int = 0,
                 valid=None, valid_max_tokens: int = 1_600_000, config: dict | None = None) -> None:
        self.vocab, self.masking = vocab, masking or MaskingConfig()
        self.freeze_finetune_updates = freeze_finetune_updates
        self.valid, self.valid_max_tokens = valid, valid_max_tokens
        self.config = config or {}
        if valid is None:
            self.validate = None  # the trainer skips validation

    def loss(self, model, batch, update: int, generator: torch.Generator) -> StepOutput:
        encoder = unwrap(model)
        frames = int(encoder.output_lengths(torch.tensor([batch.waveforms.shape[1]]))[0])
        frame_lengths = encoder.output_lengths(batch.lengths)
        time_mask, channel_mask = compute_masks(self.masking, frame_lengths, frames, encoder.config.hidden_size, generator)
        if update < self.freeze_finetune_updates:
            # Only the head trains: the encoder runs without building a graph.
            with torch.no_grad():
                out = model(batch.waveforms, batch.lengths, time_mask=time_mask, channel_mask=channel_mask)
            logits = encoder.ctc_head(out.last_hidden_state.detach())
        else:
            out = model(batch.waveforms, batch.lengths, time_mask=time_mask, channel_mask=channel_mask)
            logits = out.logits
        loss = ctc_loss(logits, out.lengths, batch.targets, batch.target_lengths, blank=self.vocab.blank_id)
        return StepOutput(loss, {"loss": float(loss.detach())})

    def validate(self, model) -> dict[str, float]:
        dataset, references = self.valid
        device = next(model.parameters()).device
        if device.type == "cpu":  # the CPU inference modules, on the training model's own parameters
            model = optimize_for_cpu(model)
        result = evaluate(model, dataset, references, GreedyDecoder(self.vocab), max_tokens=self.valid_max_tokens,
                          device=device, rows=False)
        return {"wer": result.summary["wer"], "cer": result.summary["cer"]}

    def save_model(self, model, directory, **meta) -> None:
        save_model(model, directory, finetune=self.config, **meta)
        self.vocab.save(directory)

    def checkpoint_files(self) -> dict:
        return {"vocab.json": self.vocab.index, "finetune_config.json": self.config}

