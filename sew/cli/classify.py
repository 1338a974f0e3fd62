"""``sew classify``: the top labels of audio files, with probabilities."""

from __future__ import annotations

import sys


def run(args) -> int:
    from sew.classify.predict import classify_files, load_classifier, write_predictions

    if args.top < 1:
        raise ValueError(f"--top must be at least 1, got {args.top}")
    model, device = load_classifier(args.model, args.device)
    failed = write_predictions(classify_files(model, args.files, top=args.top, chunk_seconds=args.chunk_seconds,
                                              device=device))
    if failed:
        print(f"{failed} of {len(args.files)} file(s) could not be classified", file=sys.stderr)
    return 1 if failed else 0


def add_parser(sub) -> None:
    from sew.cli.options import add_device

    p = sub.add_parser("classify", help="classify audio files (keywords, speakers, ...) with a classification model",
                       description="Print 'FILE<TAB>label:probability ...' per file, the most likely labels first. "
                                   "Long files are pooled over consecutive windows, so memory does not grow with the "
                                   "file length. A file that cannot be used gets one error line and the others are "
                                   "still classified.")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files (WAV, FLAC, OGG; any rate, mono or stereo)")
    p.add_argument("--model", required=True, help="classification model directory (sew finetune --task classify, or a "
                                                  "Hugging Face *ForSequenceClassification) or Hub id")
    p.add_argument("--top", type=int, default=3, help="labels printed per file (default: 3)")
    p.add_argument("--chunk-seconds", type=float, default=30.0,
                   help="longest piece of audio the model sees at once; longer files are pooled over windows "
                        "(default: 30)")
    add_device(p)
    p.set_defaults(func=run)
