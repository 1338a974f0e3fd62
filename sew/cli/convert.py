"""``sew convert``: between our model format and the Hugging Face format."""

from __future__ import annotations

import shutil
from pathlib import Path

from sew.checkpoint import CONFIG_NAME, save_model


def run(args) -> int:
    from sew.checkpoint import load_model
    from sew.hub import resolve_model_dir
    from sew.interop import export_hf

    source = resolve_model_dir(args.source)
    model = load_model(source)
    source_is_ours = (source / CONFIG_NAME).is_file()
    target = args.to or ("hf" if source_is_ours else "sew")
    vocab = source / "vocab.json" if (source / "vocab.json").is_file() else None
    if target == "hf":
        export_hf(model, args.output, vocab=vocab)  # with the tokenizer files when there is a vocabulary
    else:
        save_model(model, args.output)
        if vocab is not None:
            shutil.copyfile(vocab, Path(args.output) / "vocab.json")
    cfg = model.config
    head = f", CTC head over {cfg.vocab_size} symbols" if cfg.vocab_size else ""
    print(f"wrote {args.output} ({target} format): {cfg.family}, {model.num_parameters() / 1e6:.2f}M parameters{head}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("convert", help="convert a model between our format and the Hugging Face format",
                       description="Convert a model directory: ours (sew_config.json) <-> Hugging Face (config.json).")
    p.add_argument("source", help="model directory to read (ours or Hugging Face SEW / SEW-D / wav2vec2) or Hub id")
    p.add_argument("output", help="directory to write")
    p.add_argument("--to", choices=["sew", "hf"], default=None,
                   help="target format (default: the other one than the source's)")
    p.set_defaults(func=run)
