"""Time one fixed-shape, unpadded batch through our models and transformers' on the same weights.

    python scripts/bench_forward.py --models sew-d-mid w2v2-base --batch 4 --seconds 10 --threads 2

The narrow check of the model code alone: ``sew bench speed`` (the paper's protocol: varied
lengths, padded batches) run on ``--batch`` utterances of ``--seconds`` each, so every utterance
fills the tensor. Also prints how far our outputs are from transformers' (max abs difference).
"""

from __future__ import annotations

import argparse
import json
import tempfile

import torch

import sew
from sew.bench.speed import SpeedSetup, run_speed_suite
from sew.runtime import keep_freed_memory


def max_difference(name: str, batch: int, seconds: float) -> float:
    """Our encoder's last hidden state against transformers' on the same weights and input."""
    from transformers import AutoModel

    torch.manual_seed(0)
    ours = sew.build_model(name).eval()
    with tempfile.TemporaryDirectory() as tmp:
        sew.export_hf(ours, tmp)
        theirs = AutoModel.from_pretrained(tmp).eval()
    x = torch.randn(batch, int(seconds * 16000))
    with torch.inference_mode():
        return (ours(x).last_hidden_state - theirs(x).last_hidden_state).abs().max().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["sew-d-mid", "sew-tiny", "w2v2-base"], help="presets to time")
    parser.add_argument("--batch", type=int, default=4, help="utterances per batch (default: 4)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of audio per utterance (default: 10)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first (default: 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the median is reported (default: 5)")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args()
    keep_freed_memory()  # as the sew command does (sew.runtime)
    torch.set_num_threads(args.threads)
    samples = int(args.seconds * 16000)
    setup = SpeedSetup(threads=args.threads, max_tokens=args.batch * samples, repeats=args.repeats,
                       warmup=args.warmup, lengths=[samples] * args.batch)
    run = run_speed_suite(args.models, setup, log=print)
    rows = run.row_dicts()
    for name in args.models:
        print(f"{name}: max |ours - transformers| {max_difference(name, args.batch, args.seconds):.1e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": run.machine, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
