"""``sew bench``: inference speed and WER against wav2vec 2.0 (the main job), and its parts."""

from __future__ import annotations

import argparse
import dataclasses
import shutil
from pathlib import Path

from sew.cli.options import add_data, add_device, add_no_progress, add_threads, pick_device
from sew.export import BACKENDS

SPEED_MODELS = ["sew-d-micro", "sew-micro", "w2v2-micro"]
VARIANTS = BACKENDS[1:]  # the deployment backends a trained model can also be scored through


def set_threads(threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)


def run_speed(args) -> int:
    import torch

    from sew.bench.report import SPEED_COLUMNS, markdown_table, results_dir, write_results
    from sew.bench.speed import SpeedSetup, run_speed_suite
    from sew.bench.timing import utterance_lengths

    set_threads(args.threads)
    device = pick_device(args.device)
    if device == "cuda" and args.dtype == "float32":  # the paper's float32: no TF32 anywhere
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    setup = SpeedSetup(device=device, dtype=args.dtype, threads=torch.get_num_threads(), max_tokens=args.max_tokens,
                       compile=args.compile, onnx=args.onnx, repeats=args.repeats, warmup=args.warmup,
                       lengths=utterance_lengths(args.utterances, args.seed, args.mean_seconds),
                       grid=[(b, s) for b in args.grid_batch for s in args.grid_seconds] if args.grid else [])
    run = run_speed_suite(args.models, setup, reference=not args.no_reference, baseline=args.baseline,
                          log=lambda line: print(line, flush=True))
    table = markdown_table(run.row_dicts(), SPEED_COLUMNS)
    print("\n" + table)
    if args.out:
        out = results_dir(args.out)
        write_results(out, {"machine": run.machine, "setup": vars(setup), "baseline": run.baseline,
                            "speed": run.row_dicts(), "failures": run.failures},
                      "Speed", f"baseline: {run.baseline}\n\n{table}")
        print(f"\nwrote {out}/results.json and results.md")
    return 1 if run.failures else 0


def run_train_speed_command(args) -> int:
    import torch

    from sew.bench.report import markdown_table, results_dir, write_results
    from sew.bench.train_speed import TRAIN_SPEED_COLUMNS, TrainSpeedSetup, breakdown_table, run_train_speed

    set_threads(args.threads)
    device = pick_device(args.device)
    if device == "cuda" and args.dtype == "float32":  # float32 as the paper: no TF32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    setup = TrainSpeedSetup(device=device, dtype=args.dtype, threads=torch.get_num_threads(), repeats=args.repeats,
                            warmup=args.warmup, steps=tuple(args.steps), plain=not args.no_plain,
                            reference=not args.no_reference, breakdown=not args.no_breakdown, compile=args.compile,
                            seconds=tuple(args.seconds) if args.seconds else None)
    run = run_train_speed(args.models, setup, log=lambda line: print(line, flush=True))
    rows = run.row_dicts()
    table, parts = markdown_table(rows, TRAIN_SPEED_COLUMNS), breakdown_table(rows)
    print(f"\n{table}\n\n{parts}")
    if args.out:
        out = results_dir(args.out)
        results = {"machine": run.machine, "setup": vars(setup), "train_speed": rows, "failures": run.failures}
        write_results(out, results, "Training speed", f"{table}\n\nWhere the time goes (ours):\n\n{parts}")
        print(f"\nwrote {out}/results.json and results.md")
    return 1 if run.failures else 0


def add_train_speed_arguments(p: argparse.ArgumentParser) -> None:
    from sew.bench.train_speed import DEFAULT_MODELS, STEPS

    p.add_argument("--models", nargs="+", default=DEFAULT_MODELS,
                   help=f"presets, model directories or Hub ids (default: {' '.join(DEFAULT_MODELS)})")
    p.add_argument("--steps", nargs="+", default=list(STEPS), choices=list(STEPS),
                   help="finetune: CTC update, extractor trained; frozen: extractor frozen; pretrain: the "
                        "contrastive objective (default: all three)")
    add_device(p)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                   help="float32, or bfloat16 autocast (labelled native or emulated on a CPU) (default: float32)")
    add_threads(p)
    p.add_argument("--repeats", type=int, default=None,
                   help="timed updates per implementation, taking turns; the median is kept (default: 3 for base "
                        "sizes, 7 for the micro presets' short updates)")
    p.add_argument("--warmup", type=int, default=1, help="untimed updates first, where peak memory is read (default: 1)")
    p.add_argument("--no-reference", action="store_true", help="skip the transformers rows")
    p.add_argument("--no-plain", action="store_true", help="skip the sew-plain rows (the batched kernels; finetune and pretrain steps)")
    p.add_argument("--no-breakdown", action="store_true", help="skip the profiled update that splits our time by kind")
    p.add_argument("--compile", action="store_true", help="also time torch.compile(model) (rows sew-compiled)")
    p.add_argument("--seconds", type=float, nargs="+", default=None,
                   help="utterance lengths of the batch in seconds (default: 10 8.5 7 5.5 for base sizes, "
                        "3.6 to 2.2 in eight for the micro presets)")
    p.add_argument("--out", default=None, help="also write results.json and results.md under OUT/<timestamp>/")


def add_speed_arguments(p: argparse.ArgumentParser) -> None:
    from sew.bench.speed import COMPILE_MODES

    p.add_argument("--models", nargs="+", default=SPEED_MODELS,
                   help="presets, model directories or Hub ids to time (default: the micro presets)")
    p.add_argument("--baseline", default=None, help="model the speed ratios are against (default: the first wav2vec2)")
    add_device(p)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16", "int8"],
                   help="weights and inputs dtype; int8 = dynamic quantisation of the linear layers, CPU (default: float32)")
    p.add_argument("--compile", nargs="?", const="dynamic", default=None, choices=list(COMPILE_MODES),
                   help="also time torch.compile(model) (rows sew-compiled): "
                        + "; ".join(f"{k}: {v}" for k, v in COMPILE_MODES.items())
                        + " (bare --compile: dynamic; default: not timed)")
    p.add_argument("--onnx", action="store_true",
                   help="also time the model exported to ONNX on ONNX Runtime (rows onnxruntime; CPU, float32)")
    add_threads(p)
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
    from sew.bench.profile import PROFILES, compare, run_profile
    from sew.bench.report import load_results, update_results_page

    set_threads(args.threads)
    device = pick_device(args.device)
    refused: dict[tuple[str, ...], list[str]] = {}  # the profiles that take them -> flags given to another
    for dest, (flag, profiles) in PROFILE_ONLY.items():
        if getattr(args, dest, None) not in (None, False, []) and args.profile not in profiles:
            refused.setdefault(profiles, []).append(flag)
    for (first, *others), flags in refused.items():
        also = f" (and of --profile {', '.join(others)})" if others else ""
        raise ValueError(f"{', '.join(flags)}: options of --profile {first} only{also}")
    if args.profile == "paper":
        from sew.bench.paper import run_from_args

        results = run_from_args(args, device)
    elif args.profile == "low-resource":
        from sew.bench.low_resource import run_from_args

        results = run_from_args(args, device)
    elif args.profile == "downstream":
        from sew.bench.downstream import run_from_args

        results = run_from_args(args, device)
    elif args.profile == "real":
        from sew.bench.real import run_from_args

        results = run_from_args(args, device)
    else:
        profile = PROFILES[args.profile]
        changes = {k: v for k, v in (("models", args.models), ("budget_minutes", args.max_minutes),
                                     ("max_updates", args.max_update), ("variants", args.variants),
                                     ("speed_utterances", args.speed_utterances)) if v is not None}
        if args.no_reference:
            changes["reference"] = False
        profile = dataclasses.replace(profile, **changes)
        print(f"sew bench: profile {args.profile} ({profile.notes}); models {', '.join(profile.models)}", flush=True)
        _, results = run_profile(profile, args.out, seed=args.seed, repeats=args.repeats, data=args.data,
                                 device=device, progress=not args.no_progress, resume=args.resume)
    if args.results_page:
        update_results_page(args.results_page, results, " ".join(["sew", *args.argv]))
        for name, figure in results.get("figures", {}).items():  # the page's images, beside it in img/
            if Path(figure).is_file():
                (Path(args.results_page).parent / "img").mkdir(parents=True, exist_ok=True)
                shutil.copyfile(figure, Path(args.results_page).parent / "img" / name)
        print(f"updated {args.results_page}")
    regressed = 0
    if args.compare:
        from sew.bench.downstream import compare_downstream
        from sew.bench.low_resource import compare_low_resource

        check = {"downstream": compare_downstream, "low-resource": compare_low_resource}.get(
            results.get("profile_name"), compare)
        problems = check(results, load_results(args.compare), args.tolerance)
        if problems:
            print(f"\nworse than {args.compare} by more than {args.tolerance}%:")
            print("\n".join(f"  - {line}" for line in problems))
        else:
            print(f"\nno regression against {args.compare} (tolerance {args.tolerance}%)")
        regressed = 1 if problems else 0
    return regressed or (1 if results["failures"] else 0)


# Options that only some profiles take (argparse dest -> flag, those profiles).
_LOW = ("low-resource",)
PROFILE_ONLY = {"seeds": ("--seeds", ("low-resource", "real")), "pretrain_presets": ("--pretrain-preset", _LOW),
                "labeled_minutes": ("--labeled-minutes", _LOW), "pool_minutes": ("--pool-minutes", _LOW),
                "clean": ("--clean", _LOW), "smoke": ("--smoke", _LOW), "pretrain_set": ("--pretrain-set", _LOW),
                "finetune_set": ("--finetune-set", _LOW), "languages": ("--languages", ("real",)),
                "classify_minutes": ("--classify-minutes", ("real",))}


def run_wer(args) -> int:
    from sew.bench.wer import run_wer_command

    set_threads(args.threads)
    return run_wer_command(args, pick_device(args.device))


def add_common(p: argparse.ArgumentParser, models_default: str) -> None:
    """What the profile and ``bench wer`` share: models, training budget, seeds, data, device, output."""
    p.add_argument("--models", nargs="+", default=None if models_default == "profile" else SPEED_MODELS,
                   help=f"presets, model directories or Hub ids (default: {models_default})")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="training minutes per model (default: the profile's; quick and bench wer: 7.5; real: each "
                        "from-scratch CTC run, 8)")
    p.add_argument("--max-update", type=int, default=None,
                   help="also stop training after this many updates (low-resource profile: the reference run's, so "
                        "every fine-tuning run's)")
    p.add_argument("--seed", type=int, default=0, help="first seed (default: 0)")
    p.add_argument("--repeats", type=int, default=1, help="training runs per model, seeds seed, seed+1, ... (default: 1)")
    add_data(p, "corpus to train and test on (default: the built-in corpus; the paper profile: LibriSpeech, required)")
    add_device(p)
    add_threads(p)
    p.add_argument("--out", default="results", help="results go to OUT/<timestamp>/ (default: results)")
    p.add_argument("--resume", default=None, metavar="RESULTS_DIR",
                   help="continue the run whose results directory is RESULTS_DIR, with the same options (low-resource: "
                        "models, seeds and presets may change; real: languages, seeds after the first, tasks, models "
                        "and runs): finished phases are kept, interrupted training "
                        "continues from its last checkpoint (default: a new results directory)")
    add_no_progress(p)


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="benchmark WER and speed against wav2vec 2.0 (the main job)",
                       description="With no subcommand: run a profile (default: quick) of speed and WER for "
                                   "SEW, SEW-D and wav2vec 2.0 and write results/<timestamp>/results.json, "
                                   "results.md and pareto.png. Exit code 1 when a part failed (recorded in the "
                                   "results) or --compare finds a regression.")
    p.add_argument("--profile", default="quick", choices=["quick", "paper", "downstream", "low-resource", "real"],
                   help="quick: micro presets on the built-in corpus, < 30 min on 2 CPU cores; paper: the released "
                        "LibriSpeech-100h checkpoints (Hub ids) scored on --data's dev-other / test-other and timed "
                        "under the paper's protocol; downstream: keyword spotting and speaker identification, "
                        "fine-tuned and probed, < 45 min on 2 CPU cores; low-resource: pretraining on an unlabeled "
                        "pool, then CTC fine-tuning on 10 labeled minutes from scratch and from the encoders at P/4, "
                        "P/2 and P, at equal updates (about 70 min per model and seed for SEW-D micro, 80 for wav2vec 2.0 "
                        "micro; the default 2 models x 2 seeds: about 5 h on 2 CPU cores); real: recordings of people "
                        "(--data DIR from make-real-corpora): pretraining on their unlabelled training audio, CTC on "
                        "Tux Paint French, Spanish and Russian from scratch and pretrained, language, speaker and "
                        "phrase classification fine-tuned and probed, about 2 h on 2 CPU cores "
                        "(default: quick)")
    p.add_argument("--tasks", nargs="+", default=None,
                   choices=["kws", "speaker-id", "tuxpaint-lid", "hedgewars-speaker", "hedgewars-phrase"],
                   help="downstream profile: built-in tasks to run (default: kws speaker-id); real profile: corpora "
                        "under --data (default: tuxpaint-lid hedgewars-speaker hedgewars-phrase)")
    p.add_argument("--modes", nargs="+", default=None,
                   choices=["finetune", "finetune-pretrained", "probe", "probe-random", "logmel"],
                   help="downstream profile: kinds of run (default: all but finetune-pretrained); real profile: "
                        "finetune-pretrained too (default: all five)")
    p.add_argument("--languages", nargs="+", default=None, metavar="LANG",
                   help="real profile: Tux Paint languages of the CTC comparison, tuxpaint-LANG under --data "
                        "(default: fr es ru)")
    p.add_argument("--classify-minutes", type=float, default=None,
                   help="real profile: training minutes of each classification run (default: 1.25)")
    p.add_argument("--pretrain-minutes", type=float, default=None,
                   help="downstream profile: quick pretraining budget of the probed encoders, cached outside the "
                        "profile's time (default: 10); low-resource profile: P, each pretraining run's budget, with "
                        "the encoder also saved at P/4 and P/2 (default: 30); real profile: pretraining on the pool of real "
                        "audio, inside the profile's time (default: 20)")
    p.add_argument("--seeds", nargs="+", default=None, metavar="SEED",
                   help="low-resource and real profiles: run seeds, as 0,1 or 0 1 (default: 0,1; real: 0, the CTC "
                        "fine-tuning seeds, the first also seeding the pretraining and the classifiers)")
    p.add_argument("--pretrain-preset", "--objectives", dest="pretrain_presets", nargs="+", default=None, metavar="PRESET",
                   help="low-resource profile: pretraining presets of configs/pretrain, several to compare objectives, "
                        "e.g. quick,quick-contrastive (BEST-RQ's fixed targets, wav2vec 2.0's contrastive task) (default: quick)")
    p.add_argument("--labeled-minutes", type=float, default=None,
                   help="low-resource profile: minutes of transcribed audio to fine-tune on (default: 10; or 60)")
    p.add_argument("--pool-minutes", type=float, default=None,
                   help="low-resource profile: minutes of the built-in unlabeled pool (default: 300; not with --data)")
    p.add_argument("--clean", action="store_true",
                   help="low-resource profile: the built-in corpora without degradation (default: realistic)")
    p.add_argument("--smoke", action="store_true",
                   help="low-resource profile: let budgets under the minimum through (--finetune-minutes below 10), "
                        "to test the machinery; the results say they are a smoke test and measure nothing")
    p.add_argument("--pretrain-set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="low-resource profile: override a field of every pretraining run's preset, e.g. "
                        "model_overrides.num_layers=2 (repeatable; model, seed and budget stay the profile's)")
    p.add_argument("--finetune-set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="low-resource profile: override a field of every fine-tuning run's recipe (repeatable; model, "
                        "seed and budget stay the profile's)")
    add_common(p, "profile")
    p.add_argument("--speed-utterances", type=int, default=None,
                   help="utterances in the speed set (default: the profile's; paper: 200 of dev-other, 0 for all)")
    p.add_argument("--no-reference", action="store_true", help="skip the transformers reference rows")
    p.add_argument("--variants", nargs="*", default=None, choices=VARIANTS,
                   help="also score the trained models through these backends (default: the profile's; quick: bf16 int8)")
    p.add_argument("--lm", default=None, metavar="4GRAM",
                   help="paper profile: also decode with beam search and this KenLM model (an ARPA file, whose "
                        "words are the lexicon; needs the lm extra: pip install -e \".[lm]\") (default: greedy only)")
    p.add_argument("--finetune-minutes", type=float, default=None,
                   help="paper profile: first fine-tune the released pretrained checkpoints with the official 100h "
                        "recipe on --data's train-clean-100 for this long each (default: released fine-tuned ones "
                        "only); low-resource profile: the reference run's budget (the first model's first from-scratch "
                        "run; every other fine-tuning gets its number of updates), at least 10 without --smoke "
                        "(default: 10)")
    p.add_argument("--compare", default=None, metavar="BASELINE.json",
                   help="exit 1 when a speed ratio or an error rate is worse than in this earlier results.json")
    p.add_argument("--tolerance", type=float, default=10.0, help="allowed worsening in percent for --compare (default: 10)")
    p.add_argument("--results-page", default=None, metavar="PAGE.md",
                   help="also write this run's table, command, machine, date and commit into the results page "
                        "(e.g. docs/results.md), replacing the previous run of the same profile")
    p.set_defaults(func=run_main, trains=True)  # the profiles train; they time in a fresh process
    bench = p.add_subparsers(dest="bench_command", metavar="BENCH")
    speed = bench.add_parser("speed", help="inference speed: time per utterance, throughput, FLOPs, memory",
                             description="Time forward + greedy CTC decoding over length-sorted padded batches "
                                         "(the paper's protocol), ours and transformers' on the same weights.")
    add_speed_arguments(speed)
    speed.set_defaults(func=run_speed, trains=False)
    train_speed = bench.add_parser("train-speed", help="training speed: one update, ours against transformers",
                                   description="Time a plain training update (forward with lengths, summed CTC or "
                                               "the contrastive objective, backward, Adam) of ours and of "
                                               "transformers' twin on the same weights and fixed batches.")
    add_train_speed_arguments(train_speed)
    train_speed.set_defaults(func=run_train_speed_command, trains=False)  # fixed shapes, timed: kernels reused
    wer = bench.add_parser("wer", help="WER and CER of each model after the same fine-tuning budget",
                           description="Fine-tune each model with the same recipe and budget, then decode the test split.")
    add_common(wer, "the micro presets")
    wer.add_argument("--preset", default="quick", help="fine-tuning preset or YAML (default: quick)")
    wer.add_argument("--pretrain-minutes", type=float, default=None,
                     help="pretrain each model (the quick pretraining recipe) this long before fine-tuning "
                          "(default: none, fine-tune from random initialisation)")
    wer.add_argument("--variants", nargs="*", default=[], choices=VARIANTS,
                     help="also score each trained model in bfloat16, as int8 (dynamic quantisation) and/or through ONNX "
                          "Runtime: the WER change of deployment (default: none)")
    wer.set_defaults(func=run_wer, max_minutes=7.5)

