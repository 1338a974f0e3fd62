"""Where a run executes: ``accelerate`` for devices, processes and precision; the optimizer.

* ``make_accelerator(mixed_precision=...)``: CPU, one GPU, or every process of
  ``accelerate launch``; ``"bf16"`` / ``"fp16"`` autocast (fp16 with accelerate's dynamic loss
  scaler). ``sew.train.loop`` accumulates ``update_freq`` micro-batches with
  ``accelerator.accumulate`` and clips with ``accelerator.clip_grad_norm_``.
* ``configure_threads(n)``: intra-op threads on CPU (the loop is the only heavy thread).
* ``build_optimizer(model, ...)``: Adam(W) over the parameters that require grad; weight decay
  only on matrices (not biases, norms, the mask embedding).
"""

from __future__ import annotations

import os

import torch
from torch import nn

PRECISIONS = ("no", "bf16", "fp16")


def configure_threads(num_threads: int | None = None) -> int:
    """Set torch's intra-op threads (default: the CPUs this process may use); returns the count."""
    if num_threads is None or num_threads <= 0:
        try:
            num_threads = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            num_threads = os.cpu_count() or 1
    torch.set_num_threads(int(num_threads))
    return int(num_threads)


def make_accelerator(mixed_precision: str = "no", *, cpu: bool = False, find_unused_parameters: bool = False,
                     fp16_init_scale: float = 2.0 ** 7):
    """An ``accelerate.Accelerator`` for this process.

    ``mixed_precision``: ``"no"`` (float32), ``"bf16"`` or ``"fp16"`` (loss scaling by
    accelerate's ``GradScaler``, initial scale ``fp16_init_scale`` as fairseq's 128).
    ``find_unused_parameters`` is needed under DDP when some parameters get no gradient in
    a step (LayerDrop, a frozen encoder during the first fine-tuning updates).
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, is_initialized
    from accelerate.utils import DistributedDataParallelKwargs, GradScalerKwargs

    if mixed_precision not in PRECISIONS:
        raise ValueError(f"mixed_precision must be one of {', '.join(PRECISIONS)}, got {mixed_precision!r}")
    if mixed_precision == "fp16" and (cpu or not torch.cuda.is_available()):
        raise ValueError("mixed_precision 'fp16' needs a GPU; on CPU use 'bf16' or 'no'")
    if is_initialized():
        state = AcceleratorState()
        if state.mixed_precision != mixed_precision and state.num_processes == 1:
            # A second run in one single process (benchmark profiles, notebooks) with another precision:
            # accelerate fixes the precision per process and has no public way to change it; this is
            # the one call into its internals, the reset its own test scripts use.
            AcceleratorState._reset_state(reset_partial_state=True)
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters)]
    if mixed_precision == "fp16":
        handlers.append(GradScalerKwargs(init_scale=fp16_init_scale))
    return Accelerator(mixed_precision=mixed_precision, cpu=cpu, kwargs_handlers=handlers)


def run_facts(accelerator) -> dict:
    """What a run records about where and how it computes: device, processes and the precision in
    force (bfloat16 on a CPU says whether it is native or emulated through float32)."""
    from sew.cpu import capabilities

    precision = {"no": "float32", "bf16": "bfloat16", "fp16": "float16"}[accelerator.mixed_precision]
    if precision == "bfloat16" and accelerator.device.type == "cpu":
        precision += f" ({capabilities().bf16_kind})"
    facts = {"precision": precision, "device": str(accelerator.device), "processes": accelerator.num_processes}
    if accelerator.device.type == "cpu":
        facts["cpu"] = capabilities().describe()
    return facts


def build_optimizer(model: nn.Module, lr: float, *, betas: tuple[float, float] = (0.9, 0.98), eps: float = 1e-8,
                    weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters of ``model``: decay on matrices only (two groups)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (decay if param.dim() >= 2 and weight_decay > 0 else no_decay).append(param)
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameters (everything is frozen)")
    groups = [g for g in ({"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0})
              if g["params"]]
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps)


def freeze(module: nn.Module) -> None:
    """Stop gradients into ``module`` (its parameters keep their values; the optimizer skips them)."""
    for param in module.parameters():
        param.requires_grad_(False)
