"""CPU inference: the model with inference variants of its modules swapped in, sharing its parameters.

    fast = sew.optimize_for_cpu(model)      # eval mode; the same Parameter objects, no copy
    with torch.inference_mode():
        out = fast(waveforms, lengths)      # the reference's outputs (1e-5), faster

The reference modules of ``sew.models`` hold the math that training, CUDA, ``torch.compile`` and ONNX
export run (with a per-utterance CPU kernel and a batched one, ``sew.models.kernels``). For eager CPU
inference this converter swaps in:

* ``PackedLinear`` for every ``nn.Linear``: oneDNN products on a weight packed once, where
  ``sew.cpu`` says oneDNN is the faster kernel for the dtype (``F.linear`` elsewhere);
* ``ChannelsLastFeatureExtractor``: the reference's per-utterance conv kernel with each product on
  a packed weight and overlapping windows made a block of rows at a time;
* ``PackedTransformerStack`` with ``SegmentAttention`` / ``SegmentDisentangledAttention``: the
  valid frames of all utterances in one sequence, attention utterance by utterance without a mask.

The converted model is for inference only (``train()`` raises): train the original, which the
converted one follows (shared parameters; packed weights are rebuilt when a weight changes).
"""

from __future__ import annotations

import copy

from torch import nn

from sew.cpu import capabilities
from sew.inference.attention import PackedTransformerStack, SegmentAttention, SegmentDisentangledAttention
from sew.inference.features import ChannelsLastFeatureExtractor
from sew.inference.packed import PackedLinear
from sew.models.disentangled import DisentangledAttention
from sew.models.features import ConvFeatureExtractor
from sew.models.transformer import MultiHeadAttention, TransformerStack


def rebuild(module: nn.Module, swap) -> nn.Module:
    """A new module tree holding the same parameters and buffers (no copies): ``swap(module)`` gives a
    replacement or None, top down; other modules are shallow copies with their children rebuilt."""
    replacement = swap(module)
    if replacement is not None:
        return replacement
    new = copy.copy(module)
    new._parameters = dict(module._parameters)
    new._buffers = dict(module._buffers)
    new._modules = {name: None if child is None else rebuild(child, swap) for name, child in module._modules.items()}
    return new


def optimize_for_cpu(model: nn.Module) -> nn.Module:
    """``model`` (a ``SpeechEncoder`` or classifier, possibly with int8 linear layers) for CPU inference: see
    the module. A model with parameters off the CPU comes back as it is (in eval mode), so every caller
    that serves inference converts the same way, whatever the device."""
    if any(p.device.type != "cpu" for p in model.parameters()):
        return model.eval()
    packs = capabilities().onednn

    def linear(m: nn.Module) -> nn.Module:
        # exactly nn.Linear: quantised and other Linear subclasses keep their own kernels
        return PackedLinear(m) if packs and type(m) is nn.Linear else m

    def swap(m: nn.Module):
        if type(m) is nn.Linear:
            return linear(m)
        if isinstance(m, ConvFeatureExtractor):
            return ChannelsLastFeatureExtractor(m)
        if isinstance(m, TransformerStack):
            return PackedTransformerStack(m, rebuild(m.layers, swap))
        if isinstance(m, DisentangledAttention):
            return SegmentDisentangledAttention(m, linear)
        if isinstance(m, MultiHeadAttention):
            return SegmentAttention(m, linear)
        return None

    return rebuild(model.eval(), swap).eval()


__all__ = ["optimize_for_cpu", "rebuild"]
