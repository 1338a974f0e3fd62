"""``sew eval``: WER / CER of a CTC model on a corpus split (greedy, or beam search with a KenLM model)."""

from __future__ import annotations

import json
from pathlib import Path

from sew.asr.evaluate import evaluate_model, make_decoder_or_explain  # noqa: F401 (sew eval's API)
from sew.cli.options import add_data, add_decoder_options, add_device, add_strict


def run(args) -> int:
    from sew.classify.predict import evaluate_classifier_model, is_classifier

    if is_classifier(args.model):
        summary = evaluate_classifier_model(args.model, args.data, args.split, args.out, device=args.device,
                                            max_tokens=int(args.batch_seconds * 16000), strict=args.strict)
        if args.json:
            print(json.dumps({k: v for k, v in summary.items() if k != "per_class"}, indent=2))
        return 0
    summary = evaluate_model(args.model, args.data, args.split, args.out, vocab_path=args.vocab, decoder_args=args,
                             device=args.device, max_tokens=int(args.batch_seconds * 16000), strict=args.strict,
                             backend=args.backend, onnx_file=args.onnx_file)
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="error rates of a CTC model, or accuracy of a classifier, on a corpus",
                       description="Decode a corpus split in length-sorted padded batches (greedy CTC, or beam search "
                                   "with an optional KenLM model) and report WER and CER (jiwer); writes "
                                   "OUT/metrics.json and OUT/utterances.tsv (reference, hypothesis, errors). A "
                                   "classification model reports accuracy and macro-F1 and also writes OUT/confusion.png "
                                   "(its default --data is the built-in keyword-spotting task).")
    p.add_argument("--model", required=True, help="model directory or Hugging Face Hub id (ORG/NAME[@REVISION]) with a "
                                                  "CTC head and vocab.json, or a classification head")
    add_data(p)
    p.add_argument("--split", default="test", help="split to evaluate (default: test)")
    p.add_argument("--out", default=None, help="directory for metrics.json and utterances.tsv (default: MODEL/eval-SPLIT; "
                                            "runs/eval-ORG--NAME-SPLIT for a Hub id)")
    p.add_argument("--batch-seconds", type=float, default=100.0,
                   help="padded audio per batch in seconds (default: 100)")
    p.add_argument("--json", action="store_true", help="also print the metrics as JSON")
    add_strict(p)
    add_decoder_options(p)
    add_device(p)
    p.set_defaults(func=lambda args: run(_default_out(args)))


def _default_out(args):
    from sew.hub import is_hub_id

    if args.out is None:  # beside a local model; a Hub model's cache is not ours to write into
        local = not is_hub_id(args.model)
        args.out = str(Path(args.model) / f"eval-{args.split}" if local else
                       Path("runs") / f"eval-{args.model.replace('/', '--')}-{args.split}")
    return args
