"""Evaluate a CTC model on a corpus split: decode in length-sorted padded batches, score WER / CER.

Padded batches are exact (the model gives a padded utterance the same frames as alone), so
the hypotheses do not depend on the batch size. References keep every character, also those
outside the model's vocabulary: they count as errors instead of being filtered out.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sew.asr.metrics import error_rates, utterance_errors
from sew.data.corpus import Corpus
from sew.data.dataset import SpeechDataset, make_dataloader
from sew.data.rejects import RejectLog
from sew.data.text import normalize_text


@dataclass
class EvalResult:
    """``summary`` (wer, cer, counts, seconds) and one row per utterance (id, reference, hypothesis, errors)."""

    summary: dict
    rows: list[dict] = field(default_factory=list)

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """``OUT/metrics.json`` and ``OUT/utterances.tsv``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(self.summary, indent=2) + "\n")
        with open(out / "utterances.tsv", "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(self.rows[0]) if self.rows else ["id"], delimiter="\t")
            writer.writeheader()
            writer.writerows(self.rows)
        return out / "metrics.json", out / "utterances.tsv"


def eval_dataset(corpus: Corpus, rejects_log: RejectLog | None = None) -> tuple[SpeechDataset, dict[str, str]]:
    """A dataset of the transcribed utterances of ``corpus`` and their references by id."""
    log = rejects_log if rejects_log is not None else RejectLog()
    utts = [u for u in corpus if u.transcript is not None]
    for u in corpus:
        if u.transcript is None:
            log.reject(u.path, "missing or empty transcript", u.line, "no reference to score against")
    if not utts:
        raise ValueError(f"{corpus.source} (split {corpus.split}): no utterance has a transcript to evaluate against")
    return SpeechDataset(utts, rejects_log=log), {u.id: u.transcript for u in utts}


@torch.no_grad()
def evaluate(model, dataset: SpeechDataset, references: dict[str, str], decoder, *, max_tokens: int = 1_600_000,
             device: str | torch.device = "cpu", rows: bool = True) -> EvalResult:
    """Greedy (or beam) decode ``dataset`` with ``model`` and score it against ``references``.

    Batches hold up to ``max_tokens`` padded samples, sorted by length.
    """
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    # An utterance longer than max_tokens gets a batch of its own rather than being dropped.
    tokens = max(max_tokens, max(dataset.lengths))
    sampler = dataset.sampler(max_tokens=tokens, shuffle=False, max_length=tokens)
    hyps: dict[str, str] = {}
    audio = 0.0
    for batch in make_dataloader(dataset, sampler):
        if not len(batch):
            continue
        out = model(batch.waveforms.to(device), batch.lengths.to(device))
        for utt_id, text in zip(batch.ids, decoder(out.logits.float(), out.lengths)):
            hyps[utt_id] = text
        audio += float(batch.lengths.sum()) / 16000.0
    model.train(was_training)
    ids = [i for i in dataset.ids if i in hyps]
    if not ids:
        raise ValueError("no utterance could be decoded (see the warnings above)")
    refs = [normalize_text(references[i]) for i in ids]
    summary = error_rates(refs, [hyps[i] for i in ids])
    seconds = time.perf_counter() - start
    summary.update(audio_seconds=round(audio, 2), decode_seconds=round(seconds, 2),
                   skipped=len(dataset.ids) - len(ids), empty_hypotheses=sum(not hyps[i].strip() for i in ids))
    table = []
    if rows:
        for utt_id, ref in zip(ids, refs):
            w, c = utterance_errors(ref, hyps[utt_id])
            table.append({"id": utt_id, "reference": ref, "hypothesis": hyps[utt_id], "word_errors": w.errors,
                          "words": w.reference_length, "char_errors": c.errors, "chars": c.reference_length})
    return EvalResult(summary, table)


def make_decoder_or_explain(vocab, args):
    from sew.asr.decode import make_decoder

    try:
        return make_decoder(vocab, args.beam_size, args.lm, args.lm_weight, args.word_score, getattr(args, "lexicon", None))
    except ImportError as err:
        raise ValueError(str(err)) from err


def evaluate_model(model_dir, data, split: str, out_dir, *, vocab_path=None, decoder_args=None, device=None,
                   max_tokens: int = 1_600_000, strict: bool = False, backend: str = "torch",
                   onnx_file=None) -> dict:
    """Evaluate ``model_dir`` on ``split`` of ``data``; write ``out_dir/metrics.json`` + ``utterances.tsv``; print a table."""
    import sys

    from sew.asr.decode import GreedyDecoder
    from sew.asr.model import load_ctc_model
    from sew.data.corpus import read_corpus
    from sew.data.rejects import RejectLog
    from sew.data.synth import default_corpus

    model, vocab, device = load_ctc_model(model_dir, vocab_path, device, backend, onnx_file)
    decoder = make_decoder_or_explain(vocab, decoder_args) if decoder_args is not None else GreedyDecoder(vocab)
    root = data if data is not None else default_corpus()
    log = RejectLog(strict=strict)
    dataset, refs = eval_dataset(read_corpus(root, split=split, rejects_log=log), log)
    result = evaluate(model, dataset, refs, decoder, max_tokens=max_tokens, device=device)
    s = result.summary
    s.update(model=str(model_dir), data=str(root), split=split,
             decoder="greedy" if isinstance(decoder, GreedyDecoder) else "beam", backend=backend)
    if out_dir is not None:
        metrics, rows = result.write(out_dir)
        if len(log):
            log.write(out_dir)
    print(f"{'split':<8} {'utts':>6} {'hours':>7} {'WER %':>7} {'CER %':>7} {'sub':>6} {'del':>6} {'ins':>6}")
    print(f"{split:<8} {s['utterances']:>6} {s['audio_seconds'] / 3600:>7.3f} {100 * s['wer']:>7.2f} "
          f"{100 * s['cer']:>7.2f} {s['substitutions']:>6} {s['deletions']:>6} {s['insertions']:>6}")
    if out_dir is not None:
        print(f"wrote {metrics} and {rows}")
    if len(log):
        print(f"skipped {len(log)} item(s): {log.summary()}", file=sys.stderr)
    return s
