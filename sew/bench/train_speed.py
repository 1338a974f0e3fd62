"""Training speed: one update of a plain user loop, ours against transformers on the same weights and batch.

"Ours" is the model as ``sew.build_model`` / ``sew.load_model`` returns it, in ``train()``, driven by
what a user writes: forward with lengths, ``F.ctc_loss`` (sum) on the logits, backward, an
``torch.optim.Adam`` step. No trainer, no conversion. Steps:

* ``finetune``: CTC fine-tuning with the feature extractor trained;
* ``frozen``: the same with the feature extractor frozen (``freeze_feature_encoder`` on transformers');
* ``pretrain``: the contrastive objective on a masked batch (``sew.pretrain.PretrainingModel``); for
  wav2vec 2.0 against ``Wav2Vec2ForPreTraining`` with the same time mask and 100 negatives (wav2vec
  2.0's linear heads on both sides). transformers has no SEW / SEW-D pretraining: ours alone there.

Batches are fixed: 4 utterances of 10, 8.5, 7 and 5.5 s (22% padding) for the base-size models, and
a quick-recipe batch (8 utterances of 2.2-3.6 s, under 30 s padded) for the micro presets. Dropout
as the preset has it; LayerDrop off on both sides (transformers skips a dropped layer, ours computes
it: with it on, the two would not do the same work); no time masks in fine-tuning. Implementations
take turns repeat by repeat; warm-up excluded; medians. ``sew-plain`` rows run ours with
``sew.models.kernels.batched_kernels()``: the batched kernels, which are the code before the CPU
training kernels came in.

FLOPs are analytical (``sew.bench.flops``) on the valid samples: 3x the forward (2x for a frozen
extractor's share, which runs forward only); pretraining counts the encoder only.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field

import torch
from torch.nn import functional as F

from sew.bench.failures import FailureLog
from sew.bench.flops import SAMPLE_RATE, encoder_macs
from sew.bench.speed import bench_model, open_suite, set_peak_fractions
from sew.bench.timing import PeakMemory, make_inputs, synchronize
from sew.cpu import capabilities
from sew.models.kernels import batched_kernels

BASE_SECONDS = (10.0, 8.5, 7.0, 5.5)
MICRO_SECONDS = (3.6, 3.4, 3.2, 3.0, 2.8, 2.6, 2.4, 2.2)
DEFAULT_MODELS = ["sew-d-mid", "w2v2-base", "sew-d-micro", "sew-micro", "w2v2-micro"]
STEPS = ("finetune", "frozen", "pretrain")
PRODUCTS = ("mm", "addmm", "bmm", "baddbmm", "matmul", "linear", "_linear_pointwise", "mkldnn_convolution",
            "convolution_backward", "_convolution", "convolution", "mkldnn_linear")
ATTENTION = ("_softmax", "_softmax_backward_data", "_safe_softmax", "isneginf", "_scaled_dot_product_attention_math",
             "scaled_dot_product_attention", "_scaled_dot_product_flash_attention_for_cpu",
             "_scaled_dot_product_flash_attention_for_cpu_backward")
DROPOUT = ("bernoulli_", "native_dropout", "dropout", "native_dropout_backward")


@dataclass
class TrainSpeedSetup:
    device: str = "cpu"
    dtype: str = "float32"  # or "bfloat16": autocast around forward and loss
    threads: int | None = None
    repeats: int | None = None  # timed updates per implementation (default: 3 for base sizes, 7 for micro batches)
    warmup: int = 1
    steps: tuple[str, ...] = STEPS
    plain: bool = True  # also time the batched kernels (rows sew-plain) in the finetune and pretrain steps
    reference: bool = True  # also time transformers' twin
    breakdown: bool = True  # one profiled update of ours: where the time goes
    compile: bool = False  # also time torch.compile(model) (rows sew-compiled), compiled once before timing
    seconds: tuple[float, ...] | None = None  # the batch's utterance lengths (default: by model size, above)


@dataclass
class TrainSpeedRow:
    model: str
    implementation: str  # sew, sew-plain, sew-compiled, transformers
    step: str
    precision: str
    batch: str
    params_m: float
    ms_per_update: float
    updates_per_s: float
    audio_s_per_s: float
    train_gflop: float
    achieved_gflops: float
    peak_memory_mb: float | None = None
    peak_fraction: float | None = None
    sew_speedup_vs_transformers: float | None = None
    fast_speedup_vs_plain: float | None = None
    breakdown: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None and v != {}}


def batch_seconds(spec: str, model) -> tuple[float, ...]:
    return MICRO_SECONDS if "micro" in spec or model.num_parameters() < 20e6 else BASE_SECONDS


def precision_label(setup: TrainSpeedSetup) -> str:
    if setup.dtype == "bfloat16":
        kind = capabilities().bf16_kind if setup.device == "cpu" else "native"
        return f"bfloat16 autocast ({kind})"
    return setup.dtype


def autocast(setup: TrainSpeedSetup):
    if setup.dtype == "bfloat16":
        return torch.autocast(torch.device(setup.device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def ctc_targets(batch: int, frames: torch.Tensor, vocab: int, seed: int = 0):
    """Random label sequences about a quarter of the shortest output long (CTC needs room for repeats)."""
    g = torch.Generator().manual_seed(seed)
    length = max(1, int(frames.min()) // 4)
    return torch.randint(1, vocab, (batch, length), generator=g), torch.full((batch,), length)


def update_step(parameters, loss_of, setup: TrainSpeedSetup):
    """One update: ``loss_of(x, n)`` under the setup's autocast, backward, an Adam step."""
    optimizer = torch.optim.Adam([p for p in parameters if p.requires_grad], lr=1e-5)

    def step(x, n):
        with autocast(setup):
            loss = loss_of(x, n)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        with torch.profiler.record_function("optimizer"):
            optimizer.step()
    return step


def ctc_step(forward, parameters, setup: TrainSpeedSetup, targets, target_lengths):
    """An update on the summed CTC loss of ``forward(x, n) -> (logits, frame_lengths)``."""
    def loss_of(x, n):
        logits, frames = forward(x, n)
        log_probs = logits.float().log_softmax(-1).transpose(0, 1)
        return F.ctc_loss(log_probs, targets, frames, target_lengths, reduction="sum", zero_infinity=True)
    return update_step(parameters, loss_of, setup)


def plain(step):
    """``step`` on the batched kernels (``batched_kernels()``): the code before the CPU training kernels."""
    def run(x, n):
        with batched_kernels():
            step(x, n)
    return run


def finetune_candidates(model, setup, x, n, frozen: bool):
    """(implementation, step) pairs for the CTC step of ``model`` and its transformers twin."""
    from sew.bench.speed import transformers_twin

    model.context.transformer.layerdrop = 0.0
    model.feature_extractor.requires_grad_(not frozen)
    frames = model.output_lengths(n)
    targets, target_lengths = (t.to(x.device) for t in ctc_targets(len(n), frames.cpu(), model.config.vocab_size))

    def ours(x, n):
        out = model(x, n)
        return out.logits, out.lengths

    step = ctc_step(ours, model.parameters(), setup, targets, target_lengths)
    candidates = [("sew", model, step)]
    if setup.plain and not frozen:  # kept out of the default run's 15 minutes; the finetune rows show the gain
        candidates.append(("sew-plain", model, plain(step)))
    if setup.compile:
        compiled = torch.compile(model)
        candidates.append(("sew-compiled", model, ctc_step(lambda x, n: (compiled(x, n).logits, frames),
                                                           model.parameters(), setup, targets, target_lengths)))
    if setup.reference:
        twin = transformers_twin(model, torch.device(setup.device), torch.float32).train()
        twin.config.apply_spec_augment, twin.config.layerdrop = False, 0.0
        if frozen:
            twin.freeze_feature_encoder()
        mask = (torch.arange(x.shape[1], device=x.device)[None] < n[:, None]).long()
        candidates.append(("transformers", twin, ctc_step(lambda x, n: (twin(x, attention_mask=mask).logits, frames),
                                                         twin.parameters(), setup, targets, target_lengths)))
    return candidates


def pretrain_candidates(model, setup, x, n):
    """Ours on the contrastive objective (and ``Wav2Vec2ForPreTraining`` for wav2vec 2.0), same masks."""
    from sew.pretrain.config import ObjectiveConfig
    from sew.pretrain.objective import PretrainingModel
    from sew.train.masking import compute_time_mask

    model.context.transformer.layerdrop = 0.0
    model.feature_extractor.requires_grad_(True)
    twin = None
    if setup.reference and model.config.family == "wav2vec2":
        ours, twin = wav2vec2_pretraining_pair(model, setup)
    else:
        ours = PretrainingModel(model, ObjectiveConfig()).to(setup.device)
    ours.train()
    frame_lengths, frames = ours.frame_lengths(n.cpu(), x.shape[1])
    cfg = ours.config.objective
    time_mask = compute_time_mask(frame_lengths, frames, cfg.mask_prob, cfg.mask_length, cfg.min_masks,
                                  torch.Generator().manual_seed(0)).to(x.device)
    generator = torch.Generator(device=x.device).manual_seed(0)

    step = update_step(ours.parameters(), lambda x, n: ours(x, n, time_mask, generator=generator).loss, setup)
    candidates = [("sew", ours, step)] + ([("sew-plain", ours, plain(step))] if setup.plain else [])
    if twin is not None:
        from transformers.models.wav2vec2.modeling_wav2vec2 import _sample_negative_indices

        negatives = torch.from_numpy(_sample_negative_indices((len(n), frames), cfg.num_negatives,
                                                              time_mask.cpu().numpy())).long().to(x.device)
        mask = (torch.arange(x.shape[1], device=x.device)[None] < n[:, None]).long()
        candidates.append(("transformers", twin, update_step(twin.parameters(), lambda x, n: twin(
            x, attention_mask=mask, mask_time_indices=time_mask, sampled_negative_indices=negatives).loss, setup)))
    return candidates


def wav2vec2_pretraining_pair(encoder, setup):
    """Ours and ``Wav2Vec2ForPreTraining`` with the same encoder and head weights."""
    from transformers import Wav2Vec2ForPreTraining
    from transformers.utils import logging as hf_logging

    from sew.interop import export_hf
    from sew.pretrain.interop import load_hf_pretraining

    with tempfile.TemporaryDirectory() as ctc, tempfile.TemporaryDirectory() as pretraining:
        export_hf(encoder, ctc)
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # its load report lists the new heads, which are meant to be new
        try:
            twin = Wav2Vec2ForPreTraining.from_pretrained(ctc)
        finally:
            hf_logging.set_verbosity(verbosity)
        twin.config.apply_spec_augment, twin.config.layerdrop = True, 0.0
        twin.save_pretrained(pretraining)
        ours = load_hf_pretraining(pretraining, feature_penalty_weight=10.0, mask_prob=0.65, mask_length=10)
    ours.encoder.context.transformer.layerdrop = 0.0
    return ours.to(setup.device), twin.to(setup.device).train()


def time_turns(candidates, x, n, device, warmup: int, repeats: int) -> tuple[list[float], list[int | None]]:
    """Median seconds per update of each candidate, taking turns; peak memory of each one's warm-up update."""
    times, memory = [[] for _ in candidates], [None] * len(candidates)
    for r in range(warmup + repeats):
        for i, (_, _, step) in enumerate(candidates):
            synchronize(device)
            if r == 0:
                with PeakMemory(device) as peak:
                    step(x, n)
                    synchronize(device)
                memory[i] = peak.peak
                continue
            start = time.perf_counter()
            step(x, n)
            synchronize(device)
            if r >= warmup:
                times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times], memory


def breakdown(step, x, n, device) -> dict[str, float]:
    """Shares of one update's time: matrix products, attention (softmax and its glue), dropout's random
    numbers, other element-wise work and norms, the optimizer step (operators' own time)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        step(x, n)
        synchronize(device)
    events = prof.key_averages()
    attribute = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    optimizer = next((e.cpu_time_total for e in events if e.key == "optimizer"), 0.0)
    parts = {"matrix products": 0.0, "attention": 0.0, "dropout": 0.0, "element-wise": 0.0}
    for e in events:
        name = e.key.removeprefix("aten::")
        if not e.key.startswith("aten::"):
            continue
        part = ("matrix products" if name in PRODUCTS else "attention" if name in ATTENTION
                else "dropout" if name in DROPOUT else "element-wise")
        parts[part] += getattr(e, attribute)
    # the optimizer's own element-wise operators are counted under it, not under element-wise
    parts["element-wise"] = max(0.0, parts["element-wise"] - (optimizer if device.type == "cpu" else 0.0))
    parts["optimizer"] = optimizer
    total = sum(parts.values()) or 1.0
    return {k: round(v / total, 3) for k, v in parts.items()}


def measure_model(spec: str, setup: TrainSpeedSetup, log=print) -> list[TrainSpeedRow]:
    device = torch.device(setup.device)
    rows = []
    for step_name in setup.steps:
        model = bench_model(spec).to(device).train()
        seconds = setup.seconds or batch_seconds(spec, model)
        lengths = [int(s * SAMPLE_RATE) for s in seconds]
        ((x, n),) = make_inputs(lengths, [list(range(len(lengths)))], device, torch.float32)
        if step_name == "pretrain":
            candidates = pretrain_candidates(model, setup, x, n)
        else:
            candidates = finetune_candidates(model, setup, x, n, frozen=step_name == "frozen")
        # A micro update takes a fraction of a second: more turns keep a shared machine's drift out of the ratios.
        repeats = setup.repeats or (7 if seconds == MICRO_SECONDS else 3)
        medians, memory = time_turns(candidates, x, n, device, setup.warmup, repeats)
        parts = breakdown(candidates[0][2], x, n, device) if setup.breakdown else {}
        macs = [encoder_macs(model.config, length, len(lengths)) for length in lengths]
        forward = sum(m["total"] - (m["ctc_head"] if step_name == "pretrain" else 0.0) for m in macs)
        features = sum(m["features"] for m in macs)
        flops = 2 * (3 * forward - (2 * features if step_name == "frozen" else 0.0))
        audio = sum(lengths) / SAMPLE_RATE
        padding = 1 - sum(lengths) / (len(lengths) * max(lengths))
        batch = f"{len(lengths)} x {max(seconds):g}-{min(seconds):g} s ({padding:.0%} padding)"
        found = {}
        for (implementation, module, _), seconds_taken, peak in zip(candidates, medians, memory):
            row = TrainSpeedRow(
                model=spec, implementation=implementation, step=step_name, precision=precision_label(setup),
                batch=batch, params_m=round(sum(p.numel() for p in module.parameters()) / 1e6, 2),
                ms_per_update=round(1000 * seconds_taken, 1), updates_per_s=round(1 / seconds_taken, 3),
                audio_s_per_s=round(audio / seconds_taken, 2), train_gflop=round(flops / 1e9, 1),
                achieved_gflops=round(flops / seconds_taken / 1e9, 1),
                peak_memory_mb=None if peak is None else round(peak / 2**20, 1),
                breakdown=parts if implementation == "sew" else {})
            found[implementation] = row
            rows.append(row)
            log(f"  {spec:12s} {step_name:9s} {implementation:13s} {row.ms_per_update:9.1f} ms/update "
                f"{row.audio_s_per_s:7.1f} audio s/s {row.achieved_gflops:6.1f} GFLOP/s")
        ours = found["sew"]
        if "transformers" in found:
            found["transformers"].sew_speedup_vs_transformers = round(
                found["transformers"].ms_per_update / ours.ms_per_update, 3)
        if "sew-plain" in found:
            found["sew-plain"].fast_speedup_vs_plain = round(found["sew-plain"].ms_per_update / ours.ms_per_update, 3)
        if parts:
            log("  " + ", ".join(f"{k} {v:.0%}" for k, v in parts.items()))
    return rows


@dataclass
class TrainSpeedRun:
    rows: list[TrainSpeedRow]
    machine: dict
    failures: list[dict] = field(default_factory=list)

    def row_dicts(self) -> list[dict]:
        return [r.as_dict() for r in self.rows]


def run_train_speed(specs: list[str], setup: TrainSpeedSetup, failures: FailureLog | None = None,
                    step=None, log=print) -> TrainSpeedRun:
    """Time a training update of every model of ``specs``; a model that fails is recorded and the rest run."""
    device = torch.device(setup.device)
    failures = failures if failures is not None else FailureLog()
    peak_dtype = torch.bfloat16 if setup.dtype == "bfloat16" else torch.float32
    machine, peak_before = open_suite(device, precision_label(setup), peak_dtype, log)
    rows: list[TrainSpeedRow] = []
    for spec in specs:
        if step is not None:
            step(f"{spec}: train-speed")
        rows.extend(failures.attempt(spec, "train-speed", lambda: measure_model(spec, setup, log)) or [])
    set_peak_fractions(rows, machine, device, peak_dtype, peak_before)
    return TrainSpeedRun(rows, machine, failures.records)


TRAIN_SPEED_COLUMNS = [
    ("model", "model"), ("step", "step"), ("implementation", "impl"), ("precision", "precision"), ("batch", "batch"),
    ("ms_per_update", "ms / update"), ("updates_per_s", "updates / s"), ("audio_s_per_s", "audio s / s"),
    ("train_gflop", "GFLOP / update"), ("achieved_gflops", "GFLOP/s"), ("peak_fraction", "of peak"),
    ("peak_memory_mb", "peak MB"), ("sew_speedup_vs_transformers", "sew vs HF"), ("fast_speedup_vs_plain", "fast vs plain"),
]


def breakdown_table(rows: list[dict]) -> str:
    """Where ours spends an update: one line per model and step."""
    lines = ["| model | step | matrix products | attention | dropout | element-wise | optimizer |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        b = r.get("breakdown")
        if b:
            lines.append(f"| {r['model']} | {r['step']} | " + " | ".join(
                f"{b.get(k, 0):.0%}" for k in ("matrix products", "attention", "dropout", "element-wise", "optimizer"))
                + " |")
    return "\n".join(lines)
