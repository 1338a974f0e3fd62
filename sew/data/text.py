"""Transcript normalisation and the CTC character vocabulary.

``normalize_text`` is the one normalisation applied to training targets, references and
hypotheses alike. ``Vocabulary`` maps characters to ids; it is saved as ``vocab.json`` in
the format of Hugging Face's ``Wav2Vec2CTCTokenizer`` (a token -> id dict).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

PAD = "<pad>"  # index 0: the CTC blank, also used to pad
BOS, EOS = "<s>", "</s>"  # never emitted; kept so that Hugging Face's tokenizer adds none of its own
UNK = "<unk>"
WORD_DELIMITER = "|"
SPECIALS = [PAD, BOS, EOS, UNK, WORD_DELIMITER]
VOCAB_FILE = "vocab.json"

# Typographic apostrophes folded to the ASCII one.
_APOSTROPHES = {"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u0060": "'", "\u00b4": "'"}
_SPACES = re.compile(r"\s+")


def _keep(ch: str) -> bool:
    """Letters and combining marks of any script, decimal digits and the apostrophe."""
    return ch == "'" or unicodedata.category(ch)[0] in "LM" or unicodedata.category(ch) == "Nd"


# Characters (word gaps included) per second of audio that read speech stays below: Tux Paint's
# Russian, Bulgarian and Romanian at most 27.4 (medians 9-13), the built-in eSpeak corpus 27. A
# transcript above it is likely longer than what its recording says (a fifth of Tux Paint's Catalan).
PLAUSIBLE_CHARS_PER_SECOND = 30.0


def chars_per_second(transcript: str, seconds: float) -> float:
    """Symbols of the normalised ``transcript`` (characters and word gaps: what CTC aligns) per second."""
    return len(normalize_text(transcript)) / max(seconds, 1e-3)


def normalize_text(text: str) -> str:
    """Normalise a transcript: the one function for targets, references and hypotheses.

    1. Unicode NFC, then case folding (``str.casefold``: "Straße" -> "strasse").
    2. Typographic apostrophes become "'"; every character that is not a letter or
       combining mark of any script, a decimal digit or "'" becomes a space
       (punctuation, symbols, the "|" delimiter).
    3. Apostrophes at the edges of a word (quotes) are dropped: "'tis" -> "tis",
       "don't" stays. Whitespace is collapsed to single spaces and stripped.
    """
    text = unicodedata.normalize("NFC", text).casefold()
    text = "".join(_APOSTROPHES.get(ch, ch) for ch in text)
    text = "".join(ch if _keep(ch) else " " for ch in text)
    words = (word.strip("'") for word in _SPACES.split(text))
    return " ".join(word for word in words if word)


def to_letters(text: str) -> str:
    """Normalised text in the fairseq ``.ltr`` form: "ab cd" -> "a b | c d |"."""
    words = normalize_text(text).split()
    return " ".join(" ".join(word) + " " + WORD_DELIMITER for word in words)


def from_letters(letters: str) -> str:
    """Inverse of ``to_letters``: "a b | c d |" -> "ab cd"."""
    return " ".join("".join(letters.split()).replace(WORD_DELIMITER, " ").split())


class Vocabulary:
    """Character vocabulary for CTC: ``<pad>`` (blank) 0, ``<s>`` 1, ``</s>`` 2, ``<unk>`` 3, ``|`` 4, characters.

    The layout of the Hugging Face wav2vec 2.0 CTC checkpoints, so that
    ``len(Wav2Vec2CTCTokenizer(vocab.json)) == len(vocabulary)``.
    """

    def __init__(self, tokens: Iterable[str]) -> None:
        self.tokens = list(tokens)
        if self.tokens[:len(SPECIALS)] != SPECIALS:
            raise ValueError(f"a vocabulary starts with {SPECIALS}; got {self.tokens[:len(SPECIALS)]}")
        if len(set(self.tokens)) != len(self.tokens):
            raise ValueError("a vocabulary lists each token once")
        self.index = {token: i for i, token in enumerate(self.tokens)}

    # -- construction and files ------------------------------------------------------------
    @classmethod
    def build(cls, transcripts: Iterable[str], min_count: int = 1) -> "Vocabulary":
        """Every character seen at least ``min_count`` times in the normalised transcripts."""
        counts = Counter()
        for text in transcripts:
            counts.update(normalize_text(text).replace(" ", ""))
        chars = sorted(ch for ch, n in counts.items() if n >= min_count)
        return cls([*SPECIALS, *chars])

    def save(self, out_dir: str | Path) -> Path:
        """Write ``vocab.json`` (token -> id) into ``out_dir``."""
        path = Path(out_dir) / VOCAB_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.index, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        """Read ``vocab.json`` (or the directory holding it)."""
        path = Path(path)
        if path.is_dir():
            path = path / VOCAB_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no vocabulary here; `sew data manifest` writes vocab.json")
        index = json.loads(path.read_text(encoding="utf-8"))
        ids = sorted(index.values())
        if ids != list(range(len(ids))):
            raise ValueError(f"{path}: ids must be 0..{len(ids) - 1} without gaps")
        return cls(sorted(index, key=index.get))

    # -- use ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.tokens == other.tokens

    # Fixed positions of the specials (SPECIALS): the CTC blank is the padding symbol.
    pad_id = blank_id = 0
    unk_id = 3
    delimiter_id = 4

    def unknown_chars(self, text: str) -> set[str]:
        """Characters of the normalised ``text`` that the vocabulary lacks."""
        return {ch for ch in normalize_text(text).replace(" ", "") if ch not in self.index}

    def encode(self, text: str) -> list[int]:
        """Normalise ``text`` and map it to ids; spaces become ``|``, unknown characters ``<unk>``."""
        norm = normalize_text(text).replace(" ", WORD_DELIMITER)
        return [self.index.get(ch, self.unk_id) for ch in norm]

    def decode(self, ids: Iterable[int], ctc: bool = False) -> str:
        """Ids to text; ``ctc=True`` first merges repeats and drops blanks (greedy CTC output)."""
        ids = [int(i) for i in ids]
        if ctc:
            ids = [i for j, i in enumerate(ids) if j == 0 or i != ids[j - 1]]
        out = []
        for i in ids:
            if i < len(SPECIALS) - 1 or i >= len(self.tokens):
                continue  # blank, <s>, </s>, <unk> and padding (-100 in targets)
            token = self.tokens[i]
            out.append(" " if token == WORD_DELIMITER else token)
        return " ".join("".join(out).split())

    def character_counts(self, transcripts: Iterable[str]) -> list[int]:
        """How often each id occurs in the encoded transcripts (for a CTC prior on the head bias)."""
        counts = [0] * len(self.tokens)
        for text in transcripts:
            for i in self.encode(text):
                counts[i] += 1
        return counts
