"""``sew transcribe``: print transcripts of audio files of any length."""

from __future__ import annotations

import sys


def run(args) -> int:
    from sew.asr.transcribe import transcribe_files
    from sew.asr.model import load_ctc_model
    from sew.asr.evaluate import make_decoder_or_explain

    model, vocab, device = load_ctc_model(args.model, args.vocab, args.device, args.backend, args.onnx_file)
    decoder = make_decoder_or_explain(vocab, args)
    failed = 0
    for t in transcribe_files(model, decoder, args.files, chunk_seconds=args.chunk_seconds,
                              context_seconds=args.context_seconds, device=device):
        if t.message:
            print(f"{'warning' if t.text is not None else 'error'}: {t.path}: {t.message}", file=sys.stderr)
        if t.text is None:
            failed += 1
            continue
        print(f"{t.path}\t{t.text}" if not args.text_only else t.text, flush=True)
    if failed:
        print(f"{failed} of {len(args.files)} file(s) could not be transcribed", file=sys.stderr)
    return 1 if failed else 0


def add_parser(sub) -> None:
    from sew.cli.options import add_decoder_options, add_device

    p = sub.add_parser("transcribe", help="transcribe audio files with a CTC model",
                       description="Print 'FILE<TAB>transcript' per file. Long files are cut into overlapping chunks "
                                   "whose logits are stitched, so memory does not grow with the file length. A file "
                                   "that cannot be used gets one error line and the others are still transcribed.")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files (WAV, FLAC, OGG; any rate, mono or stereo)")
    p.add_argument("--model", required=True, help="model directory or Hugging Face Hub id (ORG/NAME[@REVISION]) with a "
                                                  "CTC head and vocab.json")
    p.add_argument("--chunk-seconds", type=float, default=30.0,
                   help="longest piece of audio the model sees at once (default: 30)")
    p.add_argument("--context-seconds", type=float, default=5.0,
                   help="audio each chunk overlaps its neighbours by on each side (default: 5)")
    p.add_argument("--text-only", action="store_true", help="print only the transcripts, one per line")
    add_decoder_options(p)
    add_device(p)
    p.set_defaults(func=run)
