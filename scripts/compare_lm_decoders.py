"""Beam search with a KenLM n-gram: flashlight-text (what ``sew eval --lm`` uses) against pyctcdecode, on one
model, one ARPA model and one corpus: WER, CER and decoding time, at the best LM weights of each on dev.

    python scripts/compare_lm_decoders.py --model runs/ft/best --out results/lm-decoders

The LM is a trigram of the training transcripts (``sew.asr.ngram.write_arpa``) unless ``--lm`` names one.
The logits are computed once; only decoding is timed, one utterance at a time on one thread. Both
decoders read the same ARPA file and see the same words (its unigrams). They scale the LM differently:
flashlight-text multiplies KenLM's log10 scores by ``lm_weight``, pyctcdecode multiplies natural logs by
``alpha`` (so ``alpha = lm_weight * log10(e)`` is the same weight); each gets its own grid. pyctcdecode
needs ``pip install --no-deps pyctcdecode pygtrie`` and ``pip install kenlm`` (built from source with a
C++ compiler); a decoder that is missing is reported as such.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from pathlib import Path

import torch

from sew.asr.decode import BeamSearchDecoder, GreedyDecoder
from sew.asr.metrics import error_rates
from sew.asr.model import load_ctc_model
from sew.asr.ngram import write_arpa
from sew.data.corpus import read_corpus
from sew.data.dataset import make_dataloader
from sew.data.text import PAD, SPECIALS, WORD_DELIMITER, normalize_text


@torch.no_grad()
def split_logits(model, root, split: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Per utterance: log-probabilities ``[frames, vocab]`` and the normalised reference."""
    from sew.asr.evaluate import eval_dataset

    dataset, refs = eval_dataset(read_corpus(root, split=split))
    longest = max(dataset.lengths)
    out = {}
    for batch in make_dataloader(dataset, dataset.sampler(max_tokens=max(800_000, longest), shuffle=False,
                                                          max_length=longest)):
        result = model(batch.waveforms, batch.lengths)
        for utt_id, logits, n in zip(batch.ids, result.logits.float(), result.lengths.tolist()):
            out[utt_id] = torch.log_softmax(logits[:n], -1)
    return out, {i: normalize_text(refs[i]) for i in out}


class PyCTCDecode:
    """pyctcdecode's beam search on the same labels (the old ``sew`` decoder, kept here for the comparison)."""

    def __init__(self, vocab, lm_path: str, beam_size: int, alpha: float, beta: float):
        from pyctcdecode import build_ctcdecoder

        labels, self.never = [], []
        for i, token in enumerate(vocab.tokens):
            if token == PAD:
                labels.append("")
            elif token == WORD_DELIMITER:
                labels.append(" ")
            elif token in SPECIALS:
                labels.append(chr(0x2460 + i))
                self.never.append(i)
            else:
                labels.append(token)
        self.beam_size = beam_size
        self.decoder = build_ctcdecoder(labels, kenlm_model_path=lm_path, alpha=alpha, beta=beta)

    def __call__(self, log_probs: torch.Tensor) -> str:
        lp = log_probs.clone()
        lp[:, self.never] = -1000.0
        return normalize_text(self.decoder.decode(lp.numpy(), beam_width=self.beam_size))


def score(decode, logits: dict[str, torch.Tensor], refs: dict[str, str]) -> dict:
    """WER / CER of ``decode`` (one utterance's log-probabilities -> text) and its time per utterance."""
    hyps, start = [], time.perf_counter()
    for utt_id in refs:
        hyps.append(decode(logits[utt_id]))
    seconds = time.perf_counter() - start
    rates = error_rates(list(refs.values()), hyps)
    return {"wer": round(100 * rates["wer"], 2), "cer": round(100 * rates["cer"], 2),
            "ms_per_utterance": round(1000 * seconds / len(refs), 2), "empty": sum(not h for h in hyps)}


def decoders(name: str, vocab, lm: str, beam: int, weight: float, word: float):
    if name == "flashlight-text":
        d = BeamSearchDecoder(vocab, lm, beam_size=beam, lm_weight=weight, word_score=word)
        return lambda lp: d(lp)[0]
    return PyCTCDecode(vocab, lm, beam, weight * math.log10(math.e), word)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a fine-tuned CTC model directory")
    p.add_argument("--data", default=None, help="corpus with train / dev / test (default: the built-in corpus)")
    p.add_argument("--lm", default=None, help="ARPA model (default: a trigram of the training transcripts)")
    p.add_argument("--beam-size", type=int, default=50, help="beam width of both decoders (default: 50)")
    p.add_argument("--lm-weights", type=float, nargs="+", default=[0.5, 1.0, 2.0, 3.0],
                   help="LM weights on log10 scores to try on dev (default: 0.5 1 2 3)")
    p.add_argument("--word-scores", type=float, nargs="+", default=[-1.0, 0.0, 1.0],
                   help="word insertion scores to try on dev (default: -1 0 1)")
    p.add_argument("--out", default="results/lm-decoders", help="where results.json goes")
    args = p.parse_args()
    from sew.data.synth import default_corpus

    torch.set_num_threads(1)
    root = args.data or default_corpus()
    model, vocab, _ = load_ctc_model(args.model, device="cpu")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lm = args.lm or str(write_arpa((u.transcript for u in read_corpus(root, split="train") if u.transcript),
                                   out / "train-3gram.arpa", order=3))
    dev, dev_refs = split_logits(model.eval(), root, "dev")
    test, test_refs = split_logits(model, root, "test")
    greedy = GreedyDecoder(vocab)
    rows = [{"decoder": "greedy", **score(lambda lp: greedy(lp)[0], test, test_refs)}]
    print(json.dumps(rows[0]), flush=True)
    for name in ("flashlight-text", "pyctcdecode"):
        try:
            grid = []
            for weight, word in itertools.product(args.lm_weights, args.word_scores):
                grid.append((score(decoders(name, vocab, lm, args.beam_size, weight, word), dev, dev_refs)["wer"],
                             weight, word))
                print(f"{name} dev: lm_weight {weight}, word_score {word}: WER {grid[-1][0]}", flush=True)
            best_wer, weight, word = min(grid)
            row = {"decoder": name, "lm_weight": weight, "word_score": word, "dev_wer": best_wer,
                   **score(decoders(name, vocab, lm, args.beam_size, weight, word), test, test_refs),
                   "official_settings": score(decoders(name, vocab, lm, args.beam_size, 2.0, -1.0), test, test_refs)}
        except ImportError as err:
            row = {"decoder": name, "error": f"not installed: {err}"}
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {"model": args.model, "data": str(root), "lm": lm, "beam_size": args.beam_size,
              "test_utterances": len(test_refs), "torch_threads": 1, "rows": rows}
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out / 'results.json'}")


if __name__ == "__main__":
    main()
