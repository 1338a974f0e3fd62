"""A fine-tuned CTC model ready to decode: the model, its vocabulary and the inference backend."""

from __future__ import annotations

import sys
from pathlib import Path

from sew.checkpoint import load_model
from sew.data.text import VOCAB_FILE, Vocabulary
from sew.export import inference_backend
from sew.hub import resolve_model_dir
from sew.runtime import resolve_device


def load_ctc_model(model_dir, vocab_path=None, device: str | None = None, backend: str = "torch",
                   onnx_file=None):
    """``(model, vocab, device)`` from a model directory (ours or Hugging Face) or Hub id with a CTC head and
    its vocab.json; ``device``: ``cpu``, ``cuda`` or ``auto`` / None (the GPU when there is one).

    ``backend``: ``torch`` (the model as is), ``bf16`` (weights and activations in bfloat16), ``int8`` (dynamic int8 quantisation of the linear layers,
    CPU) or ``onnx`` (ONNX Runtime on ``onnx_file``, default ``MODEL/model.onnx``, exported when missing)."""
    model_dir = resolve_model_dir(model_dir)
    model = load_model(model_dir)
    if model.ctc_head is None:
        raise ValueError(f"{model_dir}: this model has no CTC head; fine-tune it first (sew finetune --model {model_dir})")
    source = Path(vocab_path) if vocab_path else Path(model_dir) / VOCAB_FILE
    if not (source.is_file() or (source / VOCAB_FILE).is_file()):
        raise ValueError(f"{model_dir}: no {VOCAB_FILE} next to the model; pass --vocab FILE (the vocabulary "
                         "the model was fine-tuned with)")
    vocab = Vocabulary.load(source)
    if len(vocab) != model.config.vocab_size:
        raise ValueError(f"{source}: {len(vocab)} symbols but the model's CTC head has {model.config.vocab_size}; "
                         "pass the vocabulary the model was fine-tuned with")
    if backend in ("int8", "onnx"):
        if device not in (None, "auto", "cpu"):
            raise ValueError(f"--backend {backend} runs on the CPU; drop --device {device} or use --backend torch")
        device = "cpu"
    device = resolve_device(device or "auto")
    model = inference_backend(model.to(device), backend, model_dir, onnx_file=onnx_file,
                              log=lambda m: print(m, file=sys.stderr))
    return model, vocab, device
