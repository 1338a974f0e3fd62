"""Gumbel-softmax vector quantiser (wav2vec 2.0): features -> one code entry per group, concatenated.

``G`` groups of ``V`` entries each; a feature picks one entry per group through a hard Gumbel
softmax while training (straight-through gradient) and the argmax otherwise. The temperature
follows ``gumbel_temperature`` (2 -> 0.5, x0.999995 per update in the recipe).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


def gumbel_temperature(num_updates: int, start: float = 2.0, end: float = 0.5, decay: float = 0.999995) -> float:
    """``max(start * decay ** num_updates, end)``, fairseq's schedule."""
    return max(start * decay ** int(num_updates), end)


def perplexity(probs: torch.Tensor) -> torch.Tensor:
    """Sum over groups of exp(entropy of the mean distribution): ``probs [N, G, V]`` -> scalar.

    Uses the exact entropy (``xlogy``, as transformers); fairseq adds 1e-7 inside the log, which
    lowers the perplexity by about ``V * 1e-7`` relative (3e-5 for V=320).
    """
    mean = probs.float().mean(dim=0)  # [G, V]
    return torch.exp(-torch.xlogy(mean, mean).sum(-1)).sum()


@dataclass
class QuantizerOutput:
    """``quantized [N, codevector_dim]``; perplexities of the hard codes and the soft probabilities."""

    quantized: torch.Tensor
    code_perplexity: torch.Tensor
    prob_perplexity: torch.Tensor
    codes: torch.Tensor  # [N, G] the entry each group used (Gumbel-sampled in training, else the argmax)


class GumbelVectorQuantizer(nn.Module):
    """``forward(x [N, input_dim]) -> QuantizerOutput``; ``temperature`` is set by the trainer each update."""

    def __init__(self, input_dim: int, groups: int = 2, entries: int = 320, codevector_dim: int = 256):
        super().__init__()
        if codevector_dim % groups:
            raise ValueError(f"codevector_dim {codevector_dim} is not divisible by {groups} groups")
        self.groups, self.entries = groups, entries
        self.weight_proj = nn.Linear(input_dim, groups * entries)
        nn.init.normal_(self.weight_proj.weight, mean=0.0, std=1.0)
        nn.init.zeros_(self.weight_proj.bias)
        # One row per code entry, groups one after the other: [G * V, codevector_dim / G].
        self.codevectors = nn.Parameter(torch.empty(groups * entries, codevector_dim // groups).uniform_())
        self.temperature = 2.0

    @property
    def num_codevectors(self) -> int:
        return self.groups * self.entries

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        n = x.shape[0]
        logits = self.weight_proj(x).view(n * self.groups, self.entries)  # [N*G, V]
        codes = logits.argmax(-1)
        hard = F.one_hot(codes, self.entries).to(logits.dtype)
        code_ppl = perplexity(hard.view(n, self.groups, self.entries))
        prob_ppl = perplexity(torch.softmax(logits.float(), dim=-1).view(n, self.groups, self.entries))
        if self.training:
            onehot = F.gumbel_softmax(logits.float(), tau=self.temperature, hard=True).type_as(logits)
            codes = onehot.detach().argmax(-1)
        else:
            onehot = hard
        onehot = onehot.view(n, self.groups, self.entries)
        book = self.codevectors.view(self.groups, self.entries, -1).to(onehot.dtype)
        quantized = torch.einsum("ngv,gvd->ngd", onehot, book).reshape(n, -1)  # [N, G * d]
        return QuantizerOutput(quantized, code_ppl, prob_ppl, codes.view(n, self.groups))
