"""Word n-gram language models in the ARPA format, built from transcripts: no KenLM tools needed.

    write_arpa(["the cat sat", "the dog sat"], "lm.arpa", order=3)
    read_arpa_words("lm.arpa")  # the unigrams, the words a lexicon-based beam search may emit

Interpolated absolute discounting (Ney et al.), written in backoff form: for a seen n-gram the
interpolated probability, for each context its interpolation weight as the backoff weight, so
every conditional distribution sums to one and KenLM loads the file as written. Kneser-Ney
estimates beat it on large corpora; for the small transcript sets here (and for tests that need
an LM they make themselves) the difference does not matter, and nothing else has to be installed.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

from sew.data.text import normalize_text
from sew.files import atomic_write

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
NO_PROB = -99.0  # log10 probability ARPA files give <s>, which is never predicted


def count_ngrams(sentences: Iterable[list[str]], order: int) -> list[Counter]:
    """``counts[k][ngram]`` for k = 1..order over ``<s> w1 .. wn </s>`` (index 0 unused)."""
    counts = [Counter() for _ in range(order + 1)]
    for words in sentences:
        padded = (BOS, *words, EOS)
        for k in range(1, order + 1):
            for i in range(len(padded) - k + 1):
                gram = padded[i:i + k]
                if gram != (BOS,):
                    counts[k][gram] += 1
    return counts


def estimate(counts: list[Counter], discount: float) -> tuple[list[dict], list[dict]]:
    """log10 probabilities and backoff weights per order from ``count_ngrams``'s counts."""
    order = len(counts) - 1
    vocab = sorted({g[0] for g in counts[1]} | {UNK})
    total = sum(counts[1].values())
    seen = len(counts[1])
    floor = discount * seen / total  # the mass the unigrams give to the uniform distribution
    prob: list[dict] = [{} for _ in range(order + 1)]
    prob[1] = {(w,): max(counts[1][(w,)] - discount, 0.0) / total + floor / len(vocab) for w in vocab}
    backoff: list[dict] = [{} for _ in range(order + 1)]
    for k in range(2, order + 1):
        by_context: dict[tuple, list] = defaultdict(list)
        for gram, c in counts[k].items():
            by_context[gram[:-1]].append((gram, c))
        for context, grams in by_context.items():
            context_total = sum(c for _, c in grams)
            gamma = discount * len(grams) / context_total
            backoff[k - 1][context] = gamma
            for gram, c in grams:
                lower = _interpolated(gram[1:], prob, backoff)
                prob[k][gram] = (c - discount) / context_total + gamma * lower
    logp = [{g: math.log10(p) for g, p in level.items()} for level in prob]
    logp[1][(BOS,)] = NO_PROB
    backoff[1].setdefault((BOS,), 1.0)
    logb = [{g: math.log10(b) for g, b in level.items()} for level in backoff]
    return logp, logb


def _interpolated(gram: tuple, prob: list[dict], backoff: list[dict]) -> float:
    """P(gram[-1] | gram[:-1]) by backing off from the longest seen context."""
    k = len(gram)
    if gram in prob[k]:
        return prob[k][gram]
    return backoff[k - 1].get(gram[:-1], 1.0) * _interpolated(gram[1:], prob, backoff)


def write_arpa(texts: Iterable[str], path: str | Path, order: int = 3, discount: float = 0.7) -> Path:
    """An ``order``-gram ARPA model of ``texts`` (normalised as CTC targets are) at ``path``, written atomically."""
    if order < 1:
        raise ValueError(f"order must be at least 1, got {order}")
    if not 0 < discount < 1:
        raise ValueError(f"discount must be between 0 and 1, got {discount}")
    sentences = [words for words in (normalize_text(t).split() for t in texts) if words]
    if not sentences:
        raise ValueError("no words in the texts: an n-gram model needs at least one non-empty transcript")
    logp, logb = estimate(count_ngrams(sentences, order), discount)
    lines = ["", "\\data\\"] + [f"ngram {k}={len(logp[k])}" for k in range(1, order + 1)]
    for k in range(1, order + 1):
        lines += ["", f"\\{k}-grams:"]
        for gram in sorted(logp[k]):
            bow = logb[k].get(gram) if k < order else None
            row = f"{logp[k][gram]:.6f}\t{' '.join(gram)}"
            lines.append(row if bow is None else f"{row}\t{bow:.6f}")
    lines += ["", "\\end\\", ""]
    path = Path(path)
    atomic_write(path, lambda tmp: Path(tmp).write_text("\n".join(lines), encoding="utf-8"))
    return path


def read_arpa_words(path: str | Path) -> list[str]:
    """The words of an ARPA file's unigram section, without ``<s>``, ``</s>`` and ``<unk>``."""
    words, inside = [], False
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if line == "\\1-grams:":
                inside = True
            elif inside and (line.startswith("\\") or not line):
                if words or line.startswith("\\"):
                    break
            elif inside:
                fields = line.split()
                if len(fields) < 2:
                    raise ValueError(f"{path}:{number}: not an ARPA unigram line: {line!r}")
                if fields[1] not in (BOS, EOS, UNK):
                    words.append(fields[1])
    if not words:
        raise ValueError(f"{path}: no \\1-grams: section with words; is it an ARPA file?")
    return words
