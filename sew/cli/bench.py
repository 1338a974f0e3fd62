"""``sew bench``: inference speed (and, with the fine-tuning code, WER) against wav2vec 2.0."""

from __future__ import annotations

import argparse
import os

import torch

from sew.bench.speed import COMPILE_MODES
from sew.export import BACKENDS

SPEED_MODELS = ["sew-d-micro", "sew-micro", "w2v2-micro"]


def pick_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
    return name


def load_for_bench(spec: str):
    """A model with a CTC head from a preset name, a model directory (ours or Hugging Face) or a Hub id."""
    import sew
    from sew.hub import is_hub_id

    if os.path.isdir(spec) or is_hub_id(spec):
        model = sew.load_model(spec)
        return model if model.ctc_head is not None else sew.build_model(model.config, vocab_size=32)
    torch.manual_seed(0)
    return sew.build_model(spec, vocab_size=32)


def run_speed(args) -> int:
    from sew.bench.report import SPEED_COLUMNS, markdown_table, results_dir, write_results
    from sew.bench.speed import (SpeedSetup, add_ratios, machine_info, matmul_peak_gflops, measure,
                                 set_peak_fractions, utterance_lengths)

    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    device = pick_device(args.device)
    if device == "cuda" and args.dtype == "float32":  # the paper's float32: no TF32 anywhere
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    setup = SpeedSetup(device=device, dtype=args.dtype, threads=threads, max_tokens=args.max_tokens, compile=args.compile, onnx=args.onnx,
                       repeats=args.repeats, warmup=args.warmup,
                       lengths=utterance_lengths(args.utterances, args.seed, args.mean_seconds),
                       grid=[(b, s) for b in args.grid_batch for s in args.grid_seconds] if args.grid else [])
    info = machine_info(torch.device(device), threads)
    peak_dtype = torch.bfloat16 if args.dtype in ("bfloat16", "float16") else torch.float32
    peak_before = matmul_peak_gflops(torch.device(device), peak_dtype)
    print(f"# {info['cpu']}, {threads} threads, {device}, {args.dtype}, torch {info['torch']}; "
          f"{len(setup.lengths)} utterances, {sum(setup.lengths) / 16000:.0f} s of audio; "
          f"matmul peak {peak_before:.0f} GFLOP/s", flush=True)
    rows = []
    for spec in args.models:
        model_rows = measure(spec, load_for_bench(spec), setup, reference=not args.no_reference)
        for r in model_rows:
            print(f"  {r['model']:16s} {r['implementation']:12s} {r['ms_per_utterance']:9.1f} ms/utt "
                  f"{r['audio_s_per_s']:7.1f} audio s/s  {r['achieved_gflops']:6.1f} GFLOP/s", flush=True)
        rows.extend(model_rows)
    set_peak_fractions(rows, info, torch.device(device), peak_dtype, peak_before)
    baseline = args.baseline or next((r["model"] for r in rows if r["family"] == "wav2vec2"), None)
    add_ratios(rows, baseline)
    table = markdown_table(rows, SPEED_COLUMNS)
    print("\n" + table)
    if args.out:
        out = results_dir(args.out)
        write_results(out, {"machine": info, "setup": vars(setup), "baseline": baseline, "speed": rows},
                      f"# Speed\n\n{info}\n\nbaseline: {baseline}\n\n{table}")
        print(f"\nwrote {out}/results.json and results.md")
    return 0


def add_speed_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", nargs="+", default=SPEED_MODELS,
                   help="presets or model directories to time (default: the micro presets)")
    p.add_argument("--baseline", default=None, help="model the speed ratios are against (default: the first wav2vec2)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to run (default: auto)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16", "int8"],
                   help="weights and inputs dtype; int8 = dynamic quantisation of the linear layers, CPU (default: float32)")
    p.add_argument("--compile", nargs="?", const="dynamic", default=None, choices=list(COMPILE_MODES),
                   help="also time torch.compile(model) (rows sew-compiled): "
                        + "; ".join(f"{k}: {v}" for k, v in COMPILE_MODES.items())
                        + " (bare --compile: dynamic; default: not timed)")
    p.add_argument("--onnx", action="store_true",
                   help="also time the model exported to ONNX on ONNX Runtime (rows onnxruntime; CPU, float32)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--utterances", type=int, default=32, help="utterances in the timed set (default: 32)")
    p.add_argument("--mean-seconds", type=float, default=6.5, help="mean utterance length (default: 6.5, as dev-other)")
    p.add_argument("--seed", type=int, default=0, help="seed of the utterance lengths and weights (default: 0)")
    p.add_argument("--max-tokens", type=int, default=1_600_000, help="samples per padded batch (default: 1.6M = 100 s)")
    p.add_argument("--repeats", type=int, default=3, help="timed passes over the set; the median is kept (default: 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed passes first (default: 1)")
    p.add_argument("--no-reference", action="store_true", help="skip the transformers reference rows")
    p.add_argument("--grid", action="store_true", help="also time fixed shapes (latency grid)")
    p.add_argument("--grid-batch", type=int, nargs="+", default=[1, 4], help="grid batch sizes (default: 1 4)")
    p.add_argument("--grid-seconds", type=float, nargs="+", default=[2.0, 10.0], help="grid lengths (default: 2 10)")
    p.add_argument("--out", default=None, help="also write results.json and results.md under OUT/<timestamp>/")


def run_main(args) -> int:
    """The main job: a profile's speed and WER, the result files, and optionally a regression check."""
    import dataclasses

    from sew.bench.profile import PROFILES, compare, run_profile
    from sew.bench.report import load_results

    if args.profile == "paper":
        results = run_paper_profile(args)
        return check_against(results, args, compare, load_results) or (1 if results["failures"] else 0)
    profile = PROFILES[args.profile]
    changes = {k: v for k, v in (("models", args.models), ("budget_minutes", args.budget_minutes),
                                 ("max_updates", args.max_updates)) if v is not None}
    if args.no_reference:
        changes["reference"] = False
    if args.variants is not None:
        changes["variants"] = args.variants
    if args.speed_utterances:
        changes["speed_utterances"] = args.speed_utterances
    profile = dataclasses.replace(profile, **changes)
    device = pick_device(args.device)
    print(f"sew bench: profile {args.profile} ({profile.notes}); models {', '.join(profile.models)}", flush=True)
    _, results = run_profile(profile, args.out, seed=args.seed, repeats=args.repeats, data=args.data, device=device,
                             threads=args.threads, progress=not args.no_progress)
    return check_against(results, args, compare, load_results) or (1 if results["failures"] else 0)


def check_against(results: dict, args, compare, load_results) -> int:
    """With ``--compare``: 1 and the list of regressions against the earlier results, else 0."""
    if not args.compare:
        return 0
    problems = compare(results, load_results(args.compare), args.tolerance)
    if problems:
        print(f"\nworse than {args.compare} by more than {args.tolerance}%:")
        for line in problems:
            print(f"  - {line}")
        return 1
    print(f"\nno regression against {args.compare} (tolerance {args.tolerance}%)")
    return 0


def run_paper_profile(args) -> dict:
    """The paper's Figure 1 from the released checkpoints (``sew.bench.paper``)."""
    from sew.bench.paper import PaperRun, run_paper

    run = PaperRun()
    if args.models:
        run.models = list(args.models)
    if args.speed_utterances is not None:
        run.speed_utterances = args.speed_utterances
    run.reference = not args.no_reference
    run.lm, run.finetune_minutes = args.lm, args.finetune_minutes
    device = pick_device(args.device)
    print(f"sew bench: profile paper (released LibriSpeech-100h checkpoints on {args.data}); "
          f"models {', '.join(run.models)}", flush=True)
    _, results = run_paper(run, args.data, args.out, seed=args.seed, device=device, threads=args.threads,
                           progress=not args.no_progress)
    return results


def run_wer(args) -> int:
    from sew.bench.report import markdown_table, results_dir, write_results
    from sew.bench.wer import summarize_repeats, train_and_score

    if args.threads:
        torch.set_num_threads(args.threads)
    out = results_dir(args.out)
    rows = []
    for name in args.models:
        runs = [train_and_score(name, out / "runs" / f"{name}-seed{args.seed + k}", recipe=args.recipe,
                                budget_minutes=args.budget_minutes, max_updates=args.max_updates, seed=args.seed + k,
                                data=args.data, progress=not args.no_progress, variants=args.variants,
                                pretrain_minutes=args.pretrain_minutes)
                for k in range(args.repeats)]
        rows.append(summarize_repeats(runs))
    columns = [("model", "model"), ("family", "family"), ("pretrain_updates", "pretrain updates"), ("updates", "updates"), ("train_seconds", "train s"),
               ("wer", "WER %"), ("wer_std", "WER sd"), ("cer", "CER %"), ("cer_std", "CER sd"),
               *[(f"{m}_{v}", f"{m.upper()} {v} %") for v in args.variants for m in ("wer", "cer")]]
    table = markdown_table(rows, columns)
    write_results(out, {"wer": rows}, "# WER\n\n" + table)
    print("\n" + table + f"\n\nwrote {out}/results.json and results.md")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="benchmark WER and speed against wav2vec 2.0 (the main job)",
                       description="With no subcommand: run a profile (default: quick) of speed and WER for "
                                   "SEW, SEW-D and wav2vec 2.0 and write results/<timestamp>/results.json, "
                                   "results.md and pareto.png.")
    p.add_argument("--profile", default="quick", choices=["quick", "paper"],
                   help="quick: micro presets on the built-in corpus, < 30 min on 2 CPU cores; paper: the released "
                        "LibriSpeech-100h checkpoints (Hub ids) scored on --data's dev-other / test-other and timed "
                        "under the paper's protocol (default: quick)")
    p.add_argument("--models", nargs="+", default=None,
                   help="replace the profile's models (presets, directories or Hub ids)")
    p.add_argument("--budget-minutes", type=float, default=None, help="training minutes per model (default: the profile's)")
    p.add_argument("--max-updates", type=int, default=None, help="also stop training after this many updates")
    p.add_argument("--seed", type=int, default=0, help="first training seed (default: 0)")
    p.add_argument("--repeats", type=int, default=1, help="training runs per model with seeds seed, seed+1, ... (default: 1)")
    p.add_argument("--data", default=None,
                   help="corpus to train and test on (default: the built-in corpus; paper: LibriSpeech, required)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to run (default: auto)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--speed-utterances", type=int, default=None,
                   help="utterances in the speed set (default: the profile's; paper: 200 of dev-other, 0 for all)")
    p.add_argument("--lm", default=None, metavar="4GRAM",
                   help="paper profile: also decode with beam search and this KenLM model (.arpa / .bin; needs "
                        "pyctcdecode and kenlm) (default: greedy only)")
    p.add_argument("--finetune-minutes", type=float, default=None,
                   help="paper profile: first fine-tune the released pretrained checkpoints with the official 100h "
                        "recipe on --data's train-clean-100 for this long each (default: released fine-tuned ones only)")
    p.add_argument("--no-reference", action="store_true", help="skip the transformers reference rows")
    p.add_argument("--out", default="results", help="results go to OUT/<timestamp>/ (default: results)")
    p.add_argument("--compare", default=None, metavar="BASELINE.json",
                   help="exit non-zero when a speed ratio or WER/CER is worse than this earlier results.json")
    p.add_argument("--tolerance", type=float, default=10.0, help="allowed worsening in percent for --compare (default: 10)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars while training")
    p.add_argument("--variants", nargs="*", default=None, choices=BACKENDS[1:],
                   help="also score the trained models through these backends (default: the profile's; quick: bf16 int8)")
    p.set_defaults(func=run_main)
    bench = p.add_subparsers(dest="bench_command", metavar="BENCH")
    speed = bench.add_parser("speed", help="inference speed: time per utterance, throughput, FLOPs, memory",
                             description="Time forward + greedy CTC decoding over length-sorted padded batches "
                                         "(the paper's protocol), ours and transformers' on the same weights.")
    add_speed_arguments(speed)
    speed.set_defaults(func=run_speed)
    wer = bench.add_parser("wer", help="WER and CER of each model after the same fine-tuning budget",
                           description="Fine-tune each model with the same recipe and budget, then decode the test split.")
    wer.add_argument("--models", nargs="+", default=SPEED_MODELS, help="presets or model directories (default: micro presets)")
    wer.add_argument("--recipe", default="quick", help="fine-tuning preset or YAML (default: quick)")
    wer.add_argument("--budget-minutes", type=float, default=7.5, help="training minutes per model (default: 7.5)")
    wer.add_argument("--max-updates", type=int, default=None, help="also stop after this many updates")
    wer.add_argument("--pretrain-minutes", type=float, default=None,
                     help="pretrain each model (the quick pretraining recipe) this long before fine-tuning "
                          "(default: none, fine-tune from random initialisation)")
    wer.add_argument("--seed", type=int, default=0, help="first seed (default: 0)")
    wer.add_argument("--repeats", type=int, default=1, help="runs per model; mean and spread are reported (default: 1)")
    wer.add_argument("--data", default=None, help="corpus (default: the built-in corpus)")
    wer.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    wer.add_argument("--out", default="results", help="results go to OUT/<timestamp>/ (default: results)")
    wer.add_argument("--no-progress", action="store_true", help="no progress bars while training")
    wer.add_argument("--variants", nargs="*", default=[], choices=BACKENDS[1:],
                     help="also score each trained model in bfloat16, as int8 (dynamic quantisation) and/or through ONNX "
                          "Runtime: the WER change of deployment (default: none)")
    wer.set_defaults(func=run_wer)
