"""Word and character error rates under one training budget: every model gets the same recipe,
the same corpus and the same wall-clock / update budget, then greedy decoding of the test split."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from sew.bench.failures import describe_error
from sew.cpu import capabilities


def train_and_score(model: str, run_dir: str | Path, *, recipe: str = "quick", budget_minutes: float | None = 7.0,
                    max_updates: int | None = None, seed: int = 0, data: str | Path | None = None,
                    test_split: str = "test", progress: bool = True, extra: list[str] | None = None,
                    variants: list[str] | tuple[str, ...] = (), pretrain_minutes: float | None = None,
                    pretrain_recipe: str = "quick", device: str | None = None) -> dict:
    """Fine-tune ``model`` (preset or directory) with the fine-tuning ``recipe`` and score it on ``test_split``.

    ``variants`` also scores the trained model through other backends: ``bf16`` (bfloat16 weights and
    activations), ``int8`` (dynamic int8 linear layers) and ``onnx`` (ONNX Runtime), giving ``wer_int8``,
    ``cer_int8``, ... next to ``wer``, ``cer``. ``device``: ``"cpu"`` trains on the CPU even where a GPU
    is present (None: the GPU when there is one). ``pretrain_minutes``: first pretrain ``model`` (a preset)
    with ``pretrain_recipe`` for that long on the same corpus, then fine-tune from ``RUN/pretrain/final``."""
    import sew
    from sew.asr.decode import make_decoder
    from sew.asr.evaluate import eval_dataset, evaluate
    from sew.asr.finetune import finetune, load_recipe
    from sew.data.corpus import read_corpus
    from sew.data.synth import default_corpus
    from sew.data.text import Vocabulary
    from sew.export import inference_backend

    from sew.train.setup import make_accelerator

    run = Path(run_dir)
    start = time.perf_counter()

    def accelerator(precision: str):
        return make_accelerator(precision, cpu=True) if device == "cpu" else None
    init, pretrain_updates = model, None
    if pretrain_minutes:
        from sew.pretrain.recipe import load_recipe as load_pretrain_recipe
        from sew.pretrain.run import pretrain

        torch.manual_seed(seed)
        recipe_overrides = [f"model={model}", f"train.seed={seed}", f"train.max_minutes={pretrain_minutes}"]
        pretrain_recipe_ = load_pretrain_recipe(pretrain_recipe, recipe_overrides)
        pretrain_updates = pretrain(pretrain_recipe_, data, run / "pretrain", progress=progress,
                                    accelerator=accelerator(pretrain_recipe_.train.mixed_precision)).update
        init = str(run / "pretrain" / "final")
    overrides = [f"model={init}", f"train.seed={seed}", "data.valid_split=null"]
    if budget_minutes is not None:
        overrides.append(f"train.max_minutes={budget_minutes}")
    if max_updates is not None:
        overrides.append(f"train.max_update={max_updates}")
    torch.manual_seed(seed)
    finetune_recipe = load_recipe(recipe, overrides + list(extra or []))
    state = finetune(finetune_recipe, data, run, progress=progress,
                     accelerator=accelerator(finetune_recipe.train.mixed_precision))
    wall = time.perf_counter() - start
    trained = sew.load_model(run / "final")
    vocab = Vocabulary.load(run)
    root = Path(data) if data is not None else default_corpus()
    dataset, references = eval_dataset(read_corpus(root, split=test_split))
    with torch.inference_mode():
        result = evaluate(inference_backend(trained, "torch"), dataset, references, make_decoder(vocab), rows=False)
    scores, variant_errors = {}, {}
    for variant in variants:
        if variant == "bf16":
            scores["bf16"] = capabilities().bf16_kind  # native kernels, or emulated through float32
        try:
            backend = inference_backend(trained, variant, run / "final")
            with torch.inference_mode():
                summary = evaluate(backend, dataset, references, make_decoder(vocab), rows=False).summary
        except Exception as err:  # one backend failing must not cost the run its other scores
            variant_errors[variant] = describe_error(err)
            scores[f"wer_{variant}"] = scores[f"cer_{variant}"] = None
            continue
        scores[f"wer_{variant}"] = round(100 * summary["wer"], 2)
        scores[f"cer_{variant}"] = round(100 * summary["cer"], 2)
        scores[f"decode_seconds_{variant}"] = summary["decode_seconds"]
    if variant_errors:
        scores["variant_errors"] = variant_errors
    return {
        "model": model, "family": trained.config.family, "seed": seed, "recipe": recipe,
        "budget_minutes": budget_minutes, "max_updates": max_updates, "updates": state.update,
        "pretrain_minutes": pretrain_minutes, "pretrain_updates": pretrain_updates,
        "train_seconds": round(state.elapsed_seconds, 1), "wall_seconds": round(wall, 1),
        "wer": round(100 * result.summary["wer"], 2), "cer": round(100 * result.summary["cer"], 2),
        "empty_hypotheses": result.summary["empty_hypotheses"], "test_utterances": len(dataset),
        "decode_seconds": result.summary["decode_seconds"], **scores,
        "run_dir": str(run),
    }


def summarize_repeats(rows: list[dict]) -> dict:
    """Mean and spread (population standard deviation) of WER and CER over repeats of one model."""
    out = dict(rows[0])
    out.pop("seed")
    out["seeds"] = [r["seed"] for r in rows]
    for key in [k for k in rows[0] if k.startswith(("wer_", "cer_"))]:  # backend variants: the mean
        values = [r[key] for r in rows if r.get(key) is not None]
        out[key] = round(statistics.fmean(values), 2) if values else None
    for key in ("wer", "cer"):
        values = [r[key] for r in rows]
        out[key] = round(statistics.fmean(values), 2)
        out[f"{key}_std"] = round(statistics.pstdev(values), 2) if len(values) > 1 else 0.0
        out[f"{key}_runs"] = values
    updates = [r["updates"] for r in rows]
    out["updates"] = updates[0] if len(updates) == 1 else updates
    return out


def run_wer_command(args, device: str) -> int:
    """``sew bench wer``: fine-tune and score each model of ``args.models``; a model that fails is recorded and the
    others still run; each finished run is kept as it ends (``PhaseStore``, ``--resume``). Exit 1 on a failure."""
    from sew.bench.failures import FailureLog
    from sew.bench.report import PhaseStore, markdown_table, results_dir, write_results
    from sew.bench.timing import machine_info

    out = results_dir(args.out, args.resume)
    settings = {k: getattr(args, k) for k in ("models", "preset", "max_minutes", "max_update", "seed", "repeats",
                                              "variants", "pretrain_minutes")}
    failures, rows = FailureLog(), []
    store = PhaseStore(out, {**settings, "data": str(args.data), "device": device}, failures)
    for name in args.models:
        runs = [store.run(f"{name} seed {args.seed + k}", lambda k=k: failures.attempt(
            name, f"fine-tuning and scoring, seed {args.seed + k}", lambda: train_and_score(
                name, out / "runs" / f"{name}-seed{args.seed + k}", recipe=args.preset, budget_minutes=args.max_minutes,
                max_updates=args.max_update, seed=args.seed + k, data=args.data, progress=not args.no_progress,
                variants=args.variants, pretrain_minutes=args.pretrain_minutes, device=device)))
            for k in range(args.repeats)]
        if any(r is not None for r in runs):
            rows.append(summarize_repeats([r for r in runs if r is not None]))
    columns = [("model", "model"), ("family", "family"), ("pretrain_updates", "pretrain updates"), ("updates", "updates"),
               ("train_seconds", "train s"), ("wer", "WER %"), ("wer_std", "WER sd"), ("cer", "CER %"),
               ("cer_std", "CER sd"), *[(f"{m}_{v}", f"{m.upper()} {v} %") for v in args.variants for m in ("wer", "cer")]]
    table = markdown_table(rows, columns)
    write_results(out, {"machine": machine_info(device), "wer": rows, "failures": failures.records}, "WER",
                  f"{table}\n\n{failures.markdown()}")
    print("\n" + table + f"\n\nwrote {out}/results.json and results.md")
    return 1 if failures else 0

