"""Time our forward pass against transformers' implementation of the same architecture and weights.

    python scripts/bench_forward.py --models sew-d-mid w2v2-base --batch 4 --seconds 10 --threads 2

Forward pass only, one fixed-shape unpadded batch (``sew bench speed`` times the paper's protocol:
varied lengths, padded batches, decoding included). For each preset: random weights, exported with ``sew.export_hf`` and loaded by ``transformers``
(so both sides hold identical weights), one fixed input batch, ``--warmup`` untimed runs, then the
median of ``--repeats`` timed forward passes under ``torch.inference_mode``, the two implementations
taking turns run by run so that background load hits both alike. Prints the outputs'
max abs difference, seconds of audio per second, and the transformers/ours time ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile

import torch

import sew
from sew.bench.speed import SpeedSetup, time_alternating
from sew.runtime import keep_freed_memory, malloc_tuned


def bench_one(name: str, batch: int, seconds: float, warmup: int, repeats: int) -> dict:
    from transformers import AutoModel

    torch.manual_seed(0)
    ours = sew.build_model(name).eval()
    with tempfile.TemporaryDirectory() as tmp:
        sew.export_hf(ours, tmp)
        theirs = AutoModel.from_pretrained(tmp).eval()
    x = torch.randn(batch, int(seconds * 16000))
    with torch.inference_mode():
        diff = (ours(x).last_hidden_state - theirs(x).last_hidden_state).abs().max().item()
        inputs = [(x, None)]
        t_ours, t_hf = time_alternating([lambda x, n: ours(x), lambda x, n: theirs(x)], inputs, torch.device("cpu"),
                                        SpeedSetup(repeats=repeats, warmup=warmup))
    audio = batch * seconds
    return {
        "model": name, "params_m": round(ours.num_parameters() / 1e6, 2), "max_abs_diff": diff,
        "ours_s": round(t_ours, 4), "transformers_s": round(t_hf, 4),
        "ours_audio_per_s": round(audio / t_ours, 2), "transformers_audio_per_s": round(audio / t_hf, 2),
        "speedup_vs_transformers": round(t_hf / t_ours, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["sew-d-mid", "sew-tiny", "w2v2-base"], help="presets to time")
    parser.add_argument("--batch", type=int, default=4, help="utterances per batch")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of audio per utterance")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the median is reported")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc malloc at its defaults (by default freed memory is kept, as `sew` does: sew.runtime)")
    args = parser.parse_args()
    if not args.default_malloc:
        keep_freed_memory()
    malloc = "heap kept" if malloc_tuned() else "default"

    torch.set_num_threads(args.threads)
    machine = (f"{platform.processor() or platform.machine()}, {args.threads} threads, torch {torch.__version__}, "
               f"malloc {malloc}")
    print(f"# {machine}; batch {args.batch} x {args.seconds:g} s; median of {args.repeats}")
    rows = []
    for name in args.models:
        row = bench_one(name, args.batch, args.seconds, args.warmup, args.repeats)
        rows.append(row)
        print(f"{name:16s} {row['params_m']:7.1f}M  ours {row['ours_s']:.3f}s ({row['ours_audio_per_s']:.1f} s/s)  "
              f"transformers {row['transformers_s']:.3f}s ({row['transformers_audio_per_s']:.1f} s/s)  "
              f"speedup {row['speedup_vs_transformers']:.2f}x  max|diff| {row['max_abs_diff']:.1e}", flush=True)
    base = next((r for r in rows if r["model"] == "w2v2-base"), None)
    if base:
        for r in rows:
            if r is not base:
                print(f"{r['model']} vs w2v2-base (ours): {base['ours_s'] / r['ours_s']:.2f}x faster")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "cpu_count": os.cpu_count(), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
