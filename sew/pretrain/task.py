"""The pretraining task for ``sew.train.loop.Trainer``: masks, crops, the objective, normalisation, validation.

Randomness. Every micro-batch draws everything (crop offsets, time masks, negatives, and, through
a forked torch RNG, dropout, LayerDrop and the Gumbel noise) from one seed derived from
``(seed, update, global micro-batch index)``, where the index of micro-step ``i`` on process
``r`` of ``W`` is ``i * W + r`` (as fairseq seeds each step from ``seed + update``). So a run
resumed at any update replays the same numbers, and ``W`` processes with ``update_freq`` 1 draw
what one process with ``update_freq`` ``W`` draws for the same batches.

Normalisation. The objective returns sums over the masked frames (targets) and their count; the
trainer divides the update's gradient by the targets of all its micro-batches on all processes:
``sum(loss) / sum(targets)``, fairseq's ``sample_size`` normalisation.
"""

from __future__ import annotations

import torch
from accelerate.utils import extract_model_from_parallel

from sew.data.dataset import Batch
from sew.pretrain.config import ObjectiveConfig
from sew.pretrain.objective import PretrainingModel, PretrainOutput
from sew.train.task import LossSums, TrainingTask
from sew.train.masking import compute_time_mask

_STAT_KEYS = ("sample_size", "loss", "contrastive", "correct", "diversity", "feature_penalty",
              "code_perplexity", "prob_perplexity", "chance", "time_share")


def micro_seed(seed: int, update: int, index: int) -> int:
    """The seed of one micro-batch: a function of (run seed, update, global micro-batch index) only."""
    return ((int(seed) * 1_000_003 + int(update)) * 8191 + int(index)) % (2 ** 63 - 1)


def crop_to_shortest(waveforms: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator):
    """fairseq's unpadded pretraining batches: every utterance cropped at a random offset to the shortest one.

    ``[B, S]``, ``[B]`` -> ``[B, min(lengths)]``, lengths all equal to it.
    """
    shortest = int(lengths.min())
    spare = (lengths - shortest).cpu()
    offsets = (torch.rand(len(spare), generator=generator, dtype=torch.float64) * (spare + 1)).floor().long()
    offsets = torch.minimum(offsets, spare)
    index = offsets[:, None] + torch.arange(shortest)[None, :]
    cropped = torch.gather(waveforms, 1, index.to(waveforms.device))
    return cropped, torch.full_like(lengths, shortest)


def distributed_info() -> tuple[int, int]:
    """(number of processes, this process's index) from accelerate's shared state (1, 0 when alone)."""
    from accelerate import PartialState

    state = PartialState()
    return state.num_processes, state.process_index


def summary(out: PretrainOutput) -> torch.Tensor:
    """The objective's numbers as one float64 vector (sums over targets, or values x targets)."""
    n = out.sample_size.double()
    return torch.stack([
        n, out.loss.detach().double(), out.contrastive.detach().double(), out.correct.double(),
        out.diversity.detach().double() * n, out.feature_penalty.detach().double() * n,
        out.code_perplexity.detach().double() * n, out.prob_perplexity.detach().double() * n,
        out.chance.double(), out.time_share.double() * n,
    ])


def stats_from_summary(total: torch.Tensor) -> dict[str, float]:
    """Per-target values to log from a (possibly all-reduced) ``summary`` vector."""
    values = dict(zip(_STAT_KEYS, total.tolist()))
    n = max(values.pop("sample_size"), 1.0)
    out = {k: v / n for k, v in values.items() if k != "correct"}
    out["accuracy"] = values["correct"] / n
    out["sample_size"] = n
    return out


class PretrainTask(TrainingTask):
    """``loss(model, batch, update, generator)`` for the shared ``Trainer``; ``validate`` on a dev set."""

    def __init__(self, objective: ObjectiveConfig, *, seed: int = 1, crop: bool = True, valid_dataset=None,
                 valid_max_tokens: int = 1_400_000) -> None:
        self.objective, self.seed, self.crop = objective, int(seed), crop
        self.valid_dataset, self.valid_max_tokens = valid_dataset, int(valid_max_tokens)
        self.update = 0  # the latest training update: validation masks as training does now

    # -- one micro-batch ----------------------------------------------------------------------
    def forward(self, model, batch: Batch, update: int, seed: int) -> PretrainOutput:
        """Crop, mask and run the objective on ``batch`` with every random number drawn from ``seed``."""
        core: PretrainingModel = extract_model_from_parallel(model)
        core.set_num_updates(update)
        g = torch.Generator().manual_seed(seed)
        waves, lengths = batch.waveforms, batch.lengths
        if self.crop:
            waves, lengths = crop_to_shortest(waves, lengths, g)
        frame_lengths, frames = core.frame_lengths(lengths, waves.shape[1])
        time_mask = self.time_mask(frame_lengths, frames, g, update)
        device = waves.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # dropout, LayerDrop, Gumbel
            torch.manual_seed(seed)
            return model(waves, lengths, time_mask, generator=g)

    def time_mask(self, frame_lengths: torch.Tensor, frames: int, generator: torch.Generator,
                  update: int) -> torch.Tensor:
        """``[B, frames]`` bool spans inside each utterance (``sew.train.masking``), at least ``min_masks``
        per utterance; single frames before ``objective.single_frame_updates``."""
        prob, length = self.objective.masks_at(update)
        return compute_time_mask(frame_lengths, frames, prob, length, self.objective.min_masks, generator)

    def loss(self, model, batch: Batch, update: int, micro: int, generator: torch.Generator) -> LossSums:
        """The micro-batch's objective summed over its masked frames (the count); random numbers drawn
        from (seed, update, global micro-batch index) only (module docstring)."""
        world, rank = distributed_info()
        self.update = int(update)
        out = self.forward(model, batch, update, micro_seed(self.seed, update, micro * world + rank))
        sums = dict(zip(_STAT_KEYS, summary(out).tolist()))
        count = sums.pop("sample_size")
        sums.pop("loss")  # the loop sums the loss itself
        sums["accuracy"] = sums.pop("correct")
        values = {"temperature": out.temperature, "mask_length": self.objective.masks_at(update)[1]}
        return LossSums(loss=out.loss, count=count, sums=sums, values=values)

    # -- validation, saving -------------------------------------------------------------------
    def validate(self, model) -> dict[str, float] | None:
        """Loss and accuracy on the dev set (eval mode: argmax codes, BatchNorm running statistics)."""
        if self.valid_dataset is None:
            return None
        from sew.data.dataset import make_dataloader

        sampler = self.valid_dataset.sampler(max_tokens=self.valid_max_tokens, shuffle=False, seed=self.seed)
        device = next(model.parameters()).device
        total = torch.zeros(len(_STAT_KEYS), dtype=torch.float64)
        for i, batch in enumerate(make_dataloader(self.valid_dataset, sampler)):
            if not len(batch):
                continue
            total += summary(self.forward(model, batch.to(device), self.update, micro_seed(self.seed, -1, i))).cpu()
        if total[0] == 0:
            return {}
        return {k: v for k, v in stats_from_summary(total).items()}

    def save_model(self, model, directory, **meta) -> None:
        """``RUN/final`` and ``RUN/best`` hold the encoder alone: the heads are removed for fine-tuning."""
        extract_model_from_parallel(model).save_encoder(directory, **meta)

    def health_monitor(self, cfg):
        """Chance level, codebook, trivial solution, representation collapse, divergence (``sew.train.health``)."""
        from sew.config import to_mapping
        from sew.train.health import pretrain_monitor

        return pretrain_monitor(self.objective.to_dict(), to_mapping(cfg))

    def checkpoint_files(self) -> dict:
        return {"pretrain_task.json": {"seed": self.seed, "crop": self.crop, "objective": self.objective.to_dict()}}
