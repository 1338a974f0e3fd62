"""Word and character error rates (jiwer), per utterance and over a set.

References and hypotheses are compared after ``normalize_text`` (the same normalisation as
the training targets). CER counts every character including the spaces between words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jiwer

from sew.data.text import normalize_text


@dataclass
class Errors:
    """Edit operations between a reference and a hypothesis (words or characters)."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    hits: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def reference_length(self) -> int:
        return self.substitutions + self.deletions + self.hits

    @property
    def rate(self) -> float:
        """errors / reference length; an empty reference gives 0 without errors, else inf."""
        n = self.reference_length
        return self.errors / n if n else (0.0 if self.errors == 0 else float("inf"))

    def __add__(self, other: "Errors") -> "Errors":
        return Errors(self.substitutions + other.substitutions, self.deletions + other.deletions,
                      self.insertions + other.insertions, self.hits + other.hits)


def _errors(output) -> Errors:
    return Errors(output.substitutions, output.deletions, output.insertions, output.hits)


def utterance_errors(reference: str, hypothesis: str) -> tuple[Errors, Errors]:
    """``(word errors, character errors)`` of one normalised pair."""
    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    return _errors(jiwer.process_words(ref, hyp)), _errors(jiwer.process_characters(ref, hyp))


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float | int]:
    """WER and CER (as fractions) over a set, with the counts behind them."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    words, chars = Errors(), Errors()
    for ref, hyp in zip(references, hypotheses):
        w, c = utterance_errors(ref, hyp)
        words, chars = words + w, chars + c
    return {"wer": words.rate, "cer": chars.rate, "utterances": len(references),
            "words": words.reference_length, "word_errors": words.errors, "substitutions": words.substitutions,
            "deletions": words.deletions, "insertions": words.insertions,
            "characters": chars.reference_length, "char_errors": chars.errors}
