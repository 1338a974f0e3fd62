"""The records a corpus reader returns: utterances and the corpus split that holds them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Utterance:
    """One item: id, audio (a path, or the file's bytes), 16 kHz length, transcript or None."""

    id: str
    path: str  # the audio file; for embedded audio, a name used in reports
    num_samples: int | None = None  # at 16 kHz; None until scanned
    transcript: str | None = None
    line: int | None = None  # where the item is listed in its manifest (1-based), for reports
    audio_bytes: bytes | None = field(default=None, repr=False, compare=False)

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
    format: str  # "fairseq", "librispeech", "audiofolder" or "hf-datasets"

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

    def total_seconds(self) -> float:
        return sum(u.num_samples or 0 for u in self.utterances) / 16000.0
