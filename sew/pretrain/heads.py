"""Prediction heads: SEW's MLP (Linear -> fp32 BatchNorm -> ReLU -> Linear) or wav2vec 2.0's Linear.

The official ``MLPv3`` is written with 1x1 convolutions over ``[batch, channels, time]``; on the
masked frames flattened to ``[N, channels]`` that is a Linear, and the BatchNorm statistics are
taken over the same N frames.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class FP32BatchNorm1d(nn.BatchNorm1d):
    """BatchNorm computed in float32 whatever the input dtype; the output keeps the input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        if self.training and x.shape[0] < 2:
            raise ValueError(f"the MLP head's BatchNorm needs at least 2 masked frames, found {x.shape[0]}")
        y = F.batch_norm(
            x.float(), self.running_mean, self.running_var, self.weight.float(), self.bias.float(),
            self.training, self.momentum, self.eps,
        )
        if self.training:
            self.num_batches_tracked.add_(1)
        return y.to(dtype)


class MLPHead(nn.Module):
    """``[N, in] -> [N, out]``: Linear(no bias) -> FP32BatchNorm -> ReLU -> Linear, Xavier-normal init."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 4096):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden, bias=False)  # no bias: the norm follows
        self.norm = FP32BatchNorm1d(hidden)
        self.fc2 = nn.Linear(hidden, out_dim)
        for fc in (self.fc1, self.fc2):
            nn.init.xavier_normal_(fc.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.norm(self.fc1(x))))


def build_head(in_dim: int, out_dim: int, mlp: bool, hidden: int = 4096) -> nn.Module:
    """The MLP head (SEW) or a plain Linear with bias (wav2vec 2.0's ``final_proj`` / ``project_q``)."""
    return MLPHead(in_dim, out_dim, hidden) if mlp else nn.Linear(in_dim, out_dim)
