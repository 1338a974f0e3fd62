"""The records a corpus reader returns: utterances and the corpus split that holds them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Utterance:
    """One item: id, audio (a path, or the file's bytes), 16 kHz length, transcript or None, class label or None."""

    id: str
    path: str  # the audio file; for embedded audio, a name used in reports
    num_samples: int | None = None  # at 16 kHz; None until scanned
    transcript: str | None = None
    line: int | None = None  # where the item is listed in its manifest (1-based), for reports
    audio_bytes: bytes | None = field(default=None, repr=False, compare=False)
    label: str | None = None  # the utterance's class (keyword, speaker, ...) for classification corpora

    @property
    def audio(self) -> str | bytes:
        """What ``load_audio`` takes: the bytes when embedded, else the path."""
        return self.audio_bytes if self.audio_bytes is not None else self.path


@dataclass
class Corpus:
    """The utterances of one split of a corpus, and where they came from."""

    utterances: list[Utterance]
    split: str
    source: str  # the file or directory read
    format: str  # "fairseq", "hf-datasets", "speech-commands", "audiofolder" or "librispeech"

    def __len__(self) -> int:
        return len(self.utterances)

    def __iter__(self):
        return iter(self.utterances)

    @property
    def has_lengths(self) -> bool:
        return all(u.num_samples is not None for u in self.utterances)

    @property
    def has_transcripts(self) -> bool:
        return any(u.transcript is not None for u in self.utterances)

    @property
    def has_labels(self) -> bool:
        return any(u.label is not None for u in self.utterances)

    def labels(self) -> list[str]:
        """The class labels present, sorted and unique (empty for a corpus without labels)."""
        return sorted({u.label for u in self.utterances if u.label is not None})

    def total_seconds(self) -> float:
        return sum(u.num_samples or 0 for u in self.utterances) / 16000.0


def clean_label(value) -> str | None:
    """A label as stored: ``str(value)`` stripped, line breaks and tabs as spaces; None when empty or missing."""
    if value is None:
        return None
    text = " ".join(str(value).replace("\t", " ").splitlines()).strip()
    return text or None
