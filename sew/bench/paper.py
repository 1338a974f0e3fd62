"""``sew bench --profile paper``: the paper's Figure 1 from the released checkpoints.

Each released LibriSpeech-100h CTC checkpoint (SEW, SEW-D and wav2vec 2.0, by Hub id) is scored on
the user's LibriSpeech (dev-other and test-other; greedy, and with a 4-gram through KenLM when
``lm`` is given) and timed under the paper's protocol (length-sorted padded batches of at most 4M
samples of real dev-other lengths, forward + greedy decoding, float32, TF32 off on CUDA), next to
transformers' implementation of the same weights. Result: WER against time per utterance, with
the WERs the model cards publish beside ours. With ``finetune_minutes`` the released pretrained
checkpoints are first fine-tuned with the official 100h recipe on the corpus's train split.
"""

from __future__ import annotations

import functools
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sew.bench.failures import FailureLog


@dataclass(frozen=True)
class Released:
    """A published checkpoint and the WERs its model card gives (greedy, no LM), per LibriSpeech split."""

    hub_id: str
    card: dict[str, float] = field(default_factory=dict)


# Model-card WERs: ../shared/reference (Hub model cards of asapp/*-ft-ls100h, greedy CTC, no LM).
FINETUNED_100H = [
    Released("asapp/sew-tiny-100k-ft-ls100h", {"test-clean": 10.61, "test-other": 23.74}),
    Released("asapp/sew-d-tiny-100k-ft-ls100h", {"test-clean": 10.47, "test-other": 22.73}),
    Released("asapp/sew-d-mid-400k-ft-ls100h", {"test-clean": 4.94, "test-other": 11.51}),
    Released("asapp/sew-d-mid-k127-400k-ft-ls100h", {"test-clean": 4.99, "test-other": 10.95}),
    Released("asapp/sew-d-base-plus-400k-ft-ls100h", {"test-clean": 4.34, "test-other": 9.45}),
    Released("facebook/wav2vec2-base-100h"),  # no 100h wav2vec 2.0 large CTC checkpoint is on the Hub
]
PRETRAINED = ["asapp/sew-tiny-100k", "asapp/sew-d-tiny-100k", "asapp/sew-d-mid-400k", "asapp/sew-d-base-plus-400k",
              "facebook/wav2vec2-base"]
SPLITS = ("dev-other", "test-other")
PAPER_MAX_TOKENS = 4_000_000  # samples per batch in the official timing (tools/eval_w2v.py)


@dataclass
class PaperRun:
    """What ``run_paper`` measures and how."""

    models: list[str] = field(default_factory=lambda: [r.hub_id for r in FINETUNED_100H])
    splits: tuple[str, ...] = SPLITS
    speed_split: str = "dev-other"
    speed_utterances: int = 200  # a seeded sample of the speed split; 0: all of it (2864 on LibriSpeech)
    speed_repeats: int = 3
    reference: bool = True  # also time transformers' implementation of the same weights
    lm: str | None = None  # a KenLM 4-gram (.arpa / .bin): also decode with beam search and the LM
    beam_size: int = 50
    lm_weight: float = 2.0
    word_score: float = -1.0
    finetune_minutes: float | None = None  # also fine-tune PRETRAINED with the 100h recipe, this long each
    pretrained: list[str] = field(default_factory=lambda: list(PRETRAINED))


def card_wers(hub_id: str) -> dict[str, float]:
    return next((r.card for r in FINETUNED_100H if r.hub_id == hub_id), {})


def speed_lengths(data: Path, split: str, count: int, seed: int) -> list[int]:
    """Sample counts of ``count`` utterances of ``split`` (all when 0), read from the audio headers."""
    from sew.data.audio import header_num_samples
    from sew.data.corpus import read_corpus

    utts = read_corpus(data, split=split).utterances
    if count and count < len(utts):
        utts = random.Random(seed).sample(utts, count)
    return [u.num_samples or header_num_samples(u.audio, name=u.path) for u in utts]


def score(model_dir: Path, data: Path, split: str, run: PaperRun, device: str, with_lm: bool) -> dict:
    """WER / CER of ``model_dir`` on ``split``: greedy, or beam search with the 4-gram."""
    from sew.asr.decode import GreedyDecoder, make_decoder
    from sew.asr.evaluate import eval_dataset, evaluate
    from sew.asr.model import load_ctc_model
    from sew.data.corpus import read_corpus

    model, vocab, device = load_ctc_model(model_dir, device=device)
    decoder = make_decoder(vocab, run.beam_size, run.lm, run.lm_weight, run.word_score) if with_lm else \
        GreedyDecoder(vocab)
    dataset, references = eval_dataset(read_corpus(data, split=split))
    with torch.inference_mode():
        summary = evaluate(model, dataset, references, decoder, device=device, rows=False,
                           max_tokens=PAPER_MAX_TOKENS).summary
    return {"wer": round(100 * summary["wer"], 2), "cer": round(100 * summary["cer"], 2),
            "utterances": summary["utterances"]}


def finetune_released(hub_id: str, data: Path, out: Path, minutes: float, seed: int, progress: bool) -> Path:
    """Fine-tune a released pretrained checkpoint with the official 100h recipe; returns RUN/best (or final)."""
    from sew.asr.finetune import finetune, load_recipe

    run_dir = out / "runs" / hub_id.replace("/", "--")
    precision = "fp16" if torch.cuda.is_available() else "'no'"  # the recipe's fp16 needs a GPU (quoted: YAML's no is False)
    recipe = load_recipe("100h", [f"model={hub_id}", f"train.max_minutes={minutes}", f"train.seed={seed}",
                                  "data.train_split=train-clean-100", "data.valid_split=dev-other",
                                  f"train.mixed_precision={precision}"])
    finetune(recipe, data, run_dir, progress=progress)
    return run_dir / "best" if (run_dir / "best").is_dir() else run_dir / "final"


def run_paper(run: PaperRun, data: str | Path | None, out_root: str | Path = "results", *, seed: int = 0,
              device: str = "cpu", progress: bool = True, resume=None) -> tuple[Path, dict]:
    """Score and time every checkpoint of ``run``; write results.json, results.md and pareto.png. Each finished
    phase is kept as it ends (``PhaseStore``); ``resume`` continues a results directory."""
    from sew.bench.plot import pareto_plot
    from sew.bench.profile import Progress
    from sew.bench.report import PhaseStore, markdown_table, results_dir, write_results
    from sew.bench.speed import SpeedSetup, run_speed_suite
    from sew.bench.timing import in_fresh_process, machine_info
    from sew.data.corpus import list_splits
    from sew.hub import resolve_model_dir

    if data is None:
        raise ValueError("the paper profile scores on LibriSpeech: pass --data DIR holding dev-other and test-other "
                         "(the LibriSpeech layout, or manifests of it)")
    data = Path(data)
    found = list_splits(data)
    missing = [s for s in (*run.splits, run.speed_split) if s not in found]
    if missing:
        raise ValueError(f"{data}: no split {', '.join(missing)} (found {', '.join(found)}); the paper profile "
                         "needs LibriSpeech's dev-other and test-other")
    out = results_dir(out_root, resume)
    failures = FailureLog()
    store = PhaseStore(out, {"run": vars(run), "data": str(data), "seed": seed, "device": device}, failures)
    models = list(run.models)
    tuned = len(run.pretrained) if run.finetune_minutes else 0
    scored = len(models) + tuned
    steps = Progress([run.finetune_minutes * 60 if tuned else None] * tuned + [None]
                     + [None] * scored * len(run.splits) * (2 if run.lm else 1))
    if run.finetune_minutes:
        for hub_id in run.pretrained:
            steps.step(f"{hub_id}: fine-tuning with the 100h recipe, {run.finetune_minutes:g} min")
            tuned = store.run(f"fine-tuning {hub_id}", lambda: failures.attempt(
                hub_id, "fine-tuning (100h recipe)", lambda: str(finetune_released(
                    hub_id, data, out, run.finetune_minutes, seed, progress))))
            if tuned is not None:
                models.append(str(tuned))
    if device == "cuda":  # the paper's float32: no TF32 in matrix products or convolutions
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    lengths = speed_lengths(data, run.speed_split, run.speed_utterances, seed)
    setup = SpeedSetup(device=device, threads=torch.get_num_threads(), max_tokens=PAPER_MAX_TOKENS,
                       repeats=run.speed_repeats, lengths=lengths)
    def time_models() -> dict:  # in a fresh process, as a deployed model runs (whatever was fine-tuned here)
        steps.step(f"speed of {len(models)} models on {len(lengths)} {run.speed_split} utterances")
        timed = in_fresh_process(run_speed_suite, models, setup, reference=run.reference, failures=failures,
                                 log=functools.partial(print, flush=True))
        return {"machine": timed.machine, "baseline": timed.baseline, "speed": timed.row_dicts()}

    timed = (store.run("speed", lambda: failures.attempt("every model", "speed", time_models))
             or {"speed": [], "machine": machine_info(device), "baseline": None})  # the WER rows still come
    info, baseline, speed = timed["machine"], timed["baseline"], timed["speed"]
    rows = []
    for spec in models:
        row = {"model": spec, "card": card_wers(spec)}
        directory = failures.attempt(spec, "loading", lambda: resolve_model_dir(spec))
        for split in run.splits:
            for with_lm in (False, True) if run.lm else (False,):
                key = f"{split}{'-4gram' if with_lm else ''}"
                steps.step(f"{spec}: {key}")
                scored = None if directory is None else store.run(f"{spec} {key}", lambda: failures.attempt(
                    spec, f"scoring {key}", lambda: score(directory, data, split, run, device, with_lm)))
                if scored is not None:
                    row[f"wer_{key}"], row[f"cer_{key}"] = scored["wer"], scored["cer"]
        for split, wer in row["card"].items():
            row[f"card_wer_{split}"] = wer
        rows.append(row)
    ours = {r["model"]: r for r in speed if r["implementation"] == "sew"}
    for row in rows:
        timed = ours.get(row["model"], {})
        row.update({k: timed[k] for k in ("family", "params_m", "ms_per_utterance", "speedup_vs_baseline")
                    if k in timed})
        twin = next((r for r in speed if r["model"] == row["model"] and r["implementation"] == "transformers"), None)
        if twin:
            row["hf_ms_per_utterance"] = twin["ms_per_utterance"]
            row["sew_speedup_vs_transformers"] = twin["sew_speedup_vs_transformers"]
    primary = run.splits[-1]
    columns = [("model", "model"), ("family", "family"), ("params_m", "params (M)"), ("ms_per_utterance", "ms / utt"),
               ("speedup_vs_baseline", "speed vs base"), ("hf_ms_per_utterance", "HF ms / utt"),
               ("sew_speedup_vs_transformers", "sew vs HF")]
    for split in run.splits:
        columns += [(f"wer_{split}", f"WER {split} %"), (f"card_wer_{split}", f"card {split} %")]
        if run.lm:
            columns.append((f"wer_{split}-4gram", f"WER {split} 4-gram %"))
    table = markdown_table(rows, columns)
    results = {"profile_name": "paper", "profile": "paper", "run": vars(run), "machine": info, "seed": seed,
               "data": str(data), "baseline": baseline, "speed_utterances": len(lengths), "speed": speed,
               "wer": rows, "failures": failures.records, "table": table}
    write_results(out, results, "sew bench --profile paper", f"speed: {len(lengths)} {run.speed_split} "
                                f"utterances, batches of at most {PAPER_MAX_TOKENS} samples; baseline: {baseline}\n\n"
                                f"{table}\n\n{failures.markdown()}")
    plotted = [dict(r, wer=r.get(f"wer_{primary}"), card_wer=r.get(f"card_wer_{primary}")) for r in rows
               if r.get(f"wer_{primary}") is not None and "family" in r]
    pareto_plot(speed, plotted, out / "pareto.png", metrics=("wer",), split=primary)
    print("\n" + table + f"\n\nwrote {out}/results.json, results.md and pareto.png", flush=True)
    if failures:
        print(f"{len(failures)} part(s) failed, recorded under 'failures' in results.json", file=sys.stderr)
    return out, results


def run_from_args(args, device: str) -> dict:
    """``sew bench --profile paper``: the paper's Figure 1 from the released checkpoints; its results."""
    run = PaperRun(lm=args.lm, finetune_minutes=args.finetune_minutes, reference=not args.no_reference)
    if args.models:
        run.models = list(args.models)
    if args.speed_utterances is not None:
        run.speed_utterances = args.speed_utterances
    print(f"sew bench: profile paper (released LibriSpeech-100h checkpoints on {args.data}); "
          f"models {', '.join(run.models)}", flush=True)
    _, results = run_paper(run, args.data, args.out, seed=args.seed, device=device, progress=not args.no_progress,
                           resume=args.resume)
    return results
