"""``sew features``: every layer's hidden states per utterance, as safetensors, for downstream toolkits."""

from __future__ import annotations

import sys


def run(args) -> int:
    import sew
    from sew.classify.features import audio_inputs, extract_features
    from sew.runtime import resolve_device

    paths = audio_inputs(args.inputs)
    if args.data is not None:
        from sew.data.corpus import read_corpus
        from pathlib import Path

        paths += [Path(u.path) for u in read_corpus(args.data, split=args.split)]
    if not paths:
        raise ValueError("no audio files found in the inputs; pass files, directories of audio, or --data CORPUS")
    model = sew.load_model(args.model).to(resolve_device(args.device))
    failed = 0
    for path, error in extract_features(model, paths, args.out, layers=args.layers, rate=args.rate):
        if error:
            failed += 1
            print(f"error: {path}: {error}", file=sys.stderr)
    print(f"wrote the states of {len(paths) - failed} file(s) to {args.out} (index.tsv, features.json)")
    if failed:
        print(f"{failed} of {len(paths)} file(s) failed", file=sys.stderr)
    return 1 if failed else 0


def add_parser(sub) -> None:
    from sew.cli.options import add_data, add_device

    p = sub.add_parser("features", help="write every layer's hidden states per utterance (safetensors)",
                       description="Hidden states of the chosen layers (0 = the input of the first transformer layer, "
                                   "N = the output of layer N), at 50 Hz for every family (SEW / SEW-D states repeated "
                                   "from 25 Hz; --rate 25 keeps them), cut to each utterance's valid frames: "
                                   "OUT/NAME.safetensors with layer_K tensors [frames, dim], OUT/index.tsv and "
                                   "OUT/features.json.")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="audio files or directories of audio files")
    p.add_argument("--model", required=True, help="any model directory (encoder, CTC or classifier) or Hub id")
    p.add_argument("--layers", default="all", help="all, or comma-separated state numbers, e.g. 0,6,12 or -1 (default: all)")
    p.add_argument("--rate", type=int, default=50, choices=[50, 25],
                   help="frame rate of the states in Hz; 25 only for SEW / SEW-D (default: 50)")
    p.add_argument("--out", required=True, help="output directory")
    add_data(p, "also every utterance of this corpus split (any supported format; default: none)")
    p.add_argument("--split", default="test", help="split of --data (default: test)")
    add_device(p)
    p.set_defaults(func=run)
