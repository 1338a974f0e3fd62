"""BEST-RQ: masked prediction of fixed targets from a frozen random-projection quantiser.

BERT-based Speech pre-Training with Random-projection Quantizer (Chiu et al., 2022; an open
re-implementation and study: arXiv 2405.04296), on the same encoders, masks and trainer as the
contrastive objective (``sew.pretrain.objective``). Nothing in the target path is learned, so the
targets cannot collapse the way the Gumbel codebook does at small scale.

Targets, per utterance and over its valid samples only (a padded batch gives every utterance the
targets it has alone), in float32 outside autocast, without gradient:

    waveform [L] -> log-mel [M, mel_bins]   (25 ms Hann windows every 10 ms, no centre padding,
                                             HTK filters of ``sew.classify.logmel``, log(power + 1e-6))
      -> stack k = frame_stride / 160 consecutive frames -> [T, k * mel_bins]  (T = encoder frames)
      -> mean / variance normalisation per dimension over the utterance's T frames
      -> x P_g (frozen Xavier-normal [k * mel_bins, code_dim]) -> l2-normalise
      -> id of the nearest entry of the frozen l2-normalised codebook C_g [entries, code_dim]
         (for unit vectors the nearest in Euclidean distance is the one of largest cosine)

Frame alignment: encoder frame t covers samples [320 t, 320 t + 400) (receptive field 400, stride
320 for every preset); log-mel frame j covers [160 j, 160 j + 400). Target t stacks log-mel frames
2t (the encoder frame's own window) and 2t + 1 (the same window 10 ms later), so it describes
[320 t, 320 t + 560). An utterance of L samples has floor((L - 400) / 160) + 1 log-mel frames and
floor((L - 400) / 320) + 1 encoder frames; when the last encoder frame's second log-mel frame would
run past the end (L - 400 = 320 a + r with r < 160) the last log-mel frame is repeated, so there is
exactly one target per encoder output frame (``encoder.output_lengths``).

Normalisation is per utterance (BEST-RQ reports that normalising the quantiser's input is what
keeps the targets from collapsing onto a few codes). The projections and codebooks are persistent
buffers drawn from ``bestrq_seed`` with their own generator, so they do not depend on the global
RNG, are saved in training checkpoints and come back exactly on resume.

Prediction: the encoder input is masked as for the contrastive objective (spans of the learned mask
embedding); a Linear head (one softmax of ``entries`` per codebook) on the context output at the
N masked frames; loss = sum over masked frames of the cross-entropy, averaged over codebooks, plus
``feature_penalty_weight * N * feature_penalty`` as the contrastive objective.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from sew.checkpoint import save_model
from sew.data.mel import mel_filters
from sew.models.encoder import SpeechEncoder
from sew.pretrain.config import ObjectiveConfig
from sew.pretrain.objective import PretrainingConfig, PretrainOutput, masked_context, time_varying_share

SAMPLE_RATE = 16000
MEL_WINDOW = 400  # 25 ms
MEL_HOP = 160  # 10 ms
LOG_FLOOR = 1e-6
NORM_EPS = 1e-5


def draw_quantizer(seed: int, codebooks: int, input_dim: int, code_dim: int,
                   entries: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen projections ``[G, input_dim, code_dim]`` (Xavier-normal) and l2-normalised codebooks
    ``[G, entries, code_dim]`` (standard normal directions), float32 on the CPU, from ``seed`` alone."""
    g = torch.Generator().manual_seed(int(seed))
    std = math.sqrt(2.0 / (input_dim + code_dim))
    projections, books = [], []
    for _ in range(codebooks):
        projections.append(torch.randn(input_dim, code_dim, generator=g) * std)
        books.append(F.normalize(torch.randn(entries, code_dim, generator=g), dim=-1))
    return torch.stack(projections), torch.stack(books)


def log_mel(wave: torch.Tensor, filters: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """``[L]`` float32 -> ``[frames, mel_bins]``: 25 ms Hann windows every 10 ms, no centre padding (a
    waveform shorter than one window is zero-padded to one)."""
    if wave.shape[0] < MEL_WINDOW:
        wave = F.pad(wave, (0, MEL_WINDOW - wave.shape[0]))
    frames = wave.unfold(0, MEL_WINDOW, MEL_HOP) * window
    power = torch.fft.rfft(frames, dim=-1).abs() ** 2
    return torch.log(power @ filters + LOG_FLOOR)


def stack_frames(mel: torch.Tensor, stack: int, frames: int) -> torch.Tensor:
    """``[M, bins]`` -> ``[frames, stack * bins]``: row t concatenates mel rows ``stack t ... stack t + stack - 1``;
    missing rows at the end repeat the last one, extra rows are dropped."""
    need = stack * frames
    if mel.shape[0] < need:
        mel = torch.cat([mel, mel[-1:].expand(need - mel.shape[0], -1)])
    return mel[:need].reshape(frames, stack * mel.shape[1])


def normalize_frames(x: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance per dimension over the frames ``[T, D]`` of one utterance."""
    mean = x.mean(0, keepdim=True)
    var = (x - mean).pow(2).mean(0, keepdim=True)
    return (x - mean) / torch.sqrt(var + NORM_EPS)


class BestRQModel(nn.Module):
    """A ``SpeechEncoder`` plus BEST-RQ's frozen quantiser (buffers) and a Linear prediction head.

    The interface of ``PretrainingModel`` (so ``PretrainTask`` and the trainer run it unchanged):
    ``forward(waveforms [B, S], lengths [B], time_mask [B, T] bool, negatives=None, generator=None)
    -> PretrainOutput``, ``frame_lengths``, ``set_num_updates`` (nothing to anneal), ``save_encoder``,
    ``encoder``, ``config`` (a ``PretrainingConfig``). ``targets(waveforms, lengths)`` gives the target
    ids ``[B, T, codebooks]`` (-1 on padding).

    ``PretrainOutput`` fields: ``contrastive`` holds the cross-entropy summed over the masked frames
    (averaged over codebooks; the logs' main loss), ``diversity`` is 0, ``correct`` counts masked frames
    whose argmax is the target (averaged over codebooks), ``code_perplexity`` is the perplexity of the
    batch's target ids and ``prob_perplexity`` that of the batch-mean predicted distribution (both
    averaged over codebooks), ``temperature`` 0.0 (no Gumbel softmax), ``logits`` ``[N, entries]`` of
    the first codebook and ``chance`` = N ln(entries), the cross-entropy of a uniform guess.
    """

    def __init__(self, encoder: SpeechEncoder, config: ObjectiveConfig | None = None):
        super().__init__()
        cfg = config or ObjectiveConfig(kind="bestrq")
        if cfg.kind != "bestrq":
            raise ValueError(f"objective config field 'kind': BestRQModel needs 'bestrq', got {cfg.kind!r}; "
                             "build the model with sew.pretrain.make_pretraining_model")
        enc = encoder.config
        if enc.frame_stride % MEL_HOP:
            raise ValueError(f"BEST-RQ stacks 10 ms log-mel frames to the encoder's frame rate; this encoder's "
                             f"frame stride of {enc.frame_stride} samples is not a multiple of {MEL_HOP}")
        self.encoder = encoder
        self.config = PretrainingConfig(enc, cfg)
        self.stack = enc.frame_stride // MEL_HOP  # 2 for every preset (20 ms frames)
        input_dim = self.stack * cfg.bestrq_mel_bins
        self.register_buffer("filters", mel_filters(cfg.bestrq_mel_bins, MEL_WINDOW, SAMPLE_RATE), persistent=False)
        self.register_buffer("window", torch.hann_window(MEL_WINDOW), persistent=False)
        projections, codebooks = draw_quantizer(cfg.bestrq_seed, cfg.bestrq_codebooks, input_dim,
                                                cfg.bestrq_code_dim, cfg.bestrq_entries)
        self.register_buffer("projections", projections)  # persistent: saved in training checkpoints
        self.register_buffer("codebooks", codebooks)
        self.head = nn.Linear(enc.hidden_size, cfg.bestrq_codebooks * cfg.bestrq_entries)
        nn.init.normal_(self.head.weight, std=0.02)  # near-uniform predictions at the start: loss ~ ln(entries)
        nn.init.zeros_(self.head.bias)
        self.num_updates = 0

    def set_num_updates(self, num_updates: int) -> None:
        """Nothing is annealed; kept for the trainer's interface."""
        self.num_updates = int(num_updates)

    def frame_lengths(self, lengths: torch.Tensor, samples: int) -> tuple[torch.Tensor, int]:
        """Valid feature frames per utterance ``[B]`` and the padded frame count, for building time masks."""
        frames = int(self.encoder.output_lengths(torch.tensor([samples]))[0])
        return self.encoder.output_lengths(lengths), frames

    @torch.no_grad()
    def targets(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None,
                frame_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Target ids ``[B, T, codebooks]`` (int64, -1 beyond each utterance's frames), T the encoder's frames.

        Each utterance is quantised on its own valid samples, so batching and padding change nothing.
        """
        lengths = self.encoder.check_inputs(waveforms, lengths)
        if frame_lengths is None:
            frame_lengths = self.encoder.output_lengths(lengths)
        total = int(self.encoder.output_lengths(torch.tensor([waveforms.shape[1]]))[0])
        cfg = self.config.objective
        out = torch.full((waveforms.shape[0], total, cfg.bestrq_codebooks), -1, dtype=torch.long,
                         device=waveforms.device)
        filters, window = self.filters.float(), self.window.float()
        projections, codebooks = self.projections.float(), self.codebooks.float()
        with torch.autocast(waveforms.device.type, enabled=False):
            for b, (length, frames) in enumerate(zip(lengths.tolist(), frame_lengths.tolist())):
                if frames <= 0:
                    continue
                mel = log_mel(waveforms[b, :length].float(), filters, window)
                x = normalize_frames(stack_frames(mel, self.stack, frames))  # [T_b, stack * bins]
                z = F.normalize(torch.einsum("ti,gid->gtd", x, projections), dim=-1)  # [G, T_b, d]
                similarity = torch.einsum("gtd,gvd->gtv", z, codebooks)  # cosine to every entry
                out[b, :frames] = similarity.argmax(-1).t()
        return out

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor | None, time_mask: torch.Tensor,
                negatives: torch.Tensor | None = None, generator: torch.Generator | None = None) -> PretrainOutput:
        """``negatives`` and ``generator`` are accepted for ``PretrainingModel``'s interface and unused
        (dropout and LayerDrop draw from the global RNG, which the task seeds)."""
        cfg = self.config.objective
        groups, entries = cfg.bestrq_codebooks, cfg.bestrq_entries
        m = masked_context(self.encoder, waveforms, lengths, time_mask, cfg.feature_grad_mult)
        target = self.targets(waveforms, m.lengths, m.frame_lengths)[m.time_mask]  # [N, G]
        n = target.shape[0]
        logits = self.head(m.context[m.time_mask]).float().view(n, groups, entries)  # [N, G, V]
        ce = F.cross_entropy(logits.reshape(n * groups, entries), target.reshape(-1), reduction="sum")
        cross_entropy = ce / groups
        loss = cross_entropy + n * cfg.feature_penalty_weight * m.penalty
        with torch.no_grad():
            correct = (logits.argmax(-1) == target).sum(0).double().mean()
            counts = torch.stack([torch.bincount(target[:, g], minlength=entries) for g in range(groups)])
            code_ppl = _perplexity(counts.float() / max(n, 1))
            prob_ppl = _perplexity(torch.softmax(logits, dim=-1).mean(0))
            chance = torch.tensor(n * math.log(entries), dtype=torch.float64, device=logits.device)
            share = time_varying_share(m.context.detach(), m.valid)
        return PretrainOutput(
            loss=loss, contrastive=cross_entropy, diversity=logits.new_zeros(()), feature_penalty=m.penalty,
            sample_size=torch.tensor(n, device=logits.device), correct=correct,
            code_perplexity=code_ppl, prob_perplexity=prob_ppl, temperature=0.0, logits=logits[:, 0].detach(),
            chance=chance, time_share=share,
        )

    def save_encoder(self, path: str | Path, **extra) -> None:
        """Write the encoder alone (quantiser and head removed) for fine-tuning: ``sew.load_model(path)``."""
        save_model(self.encoder, path, objective=self.config.objective.to_dict(), **extra)


def _perplexity(distributions: torch.Tensor) -> torch.Tensor:
    """Mean over rows of exp(entropy) of ``[G, V]`` distributions (exact entropy, ``xlogy``)."""
    return torch.exp(-torch.xlogy(distributions, distributions).sum(-1)).mean()
