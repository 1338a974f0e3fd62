"""A speech dataset over ``Utterance`` records and the collate function that pads batches.

``SpeechDataset[i]`` decodes one utterance (random crop to ``max_sample_size`` for
pretraining, seeded by ``(seed, epoch, i)``) and encodes its transcript; ``collate`` pads
waveforms with zeros and targets with -100 and keeps the lengths.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from sew.data import rejects
from sew.data.audio import SAMPLE_RATE, AudioError, header_num_samples, load_audio
from sew.data.corpus import Corpus, Utterance
from sew.data.manifest import check_transcript
from sew.data.rejects import RejectLog
from sew.data.sampler import LengthBucketSampler
from sew.data.text import Vocabulary, chars_per_second, normalize_text

TARGET_PAD = -100  # ignored by the CTC loss helpers and by cross-entropy


@dataclass
class Example:
    """One decoded utterance: waveform ``[T]`` float32 and target ids (or None)."""

    id: str
    waveform: np.ndarray
    target: list[int] | None


@dataclass
class Batch:
    """Padded batch: ``waveforms [B, T]``, ``lengths [B]``; ``targets [B, S]`` padded with -100."""

    ids: list[str]
    waveforms: torch.Tensor
    lengths: torch.Tensor
    targets: torch.Tensor | None = None
    target_lengths: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        """The same batch with every tensor on ``device``."""
        move = lambda t: None if t is None else t.to(device, non_blocking=non_blocking)  # noqa: E731
        return Batch(self.ids, move(self.waveforms), move(self.lengths), move(self.targets), move(self.target_lengths))

    def pin_memory(self) -> "Batch":
        """Pinned host copies, for ``DataLoader(pin_memory=True)`` on GPU machines."""
        pin = lambda t: None if t is None else t.pin_memory()  # noqa: E731
        return Batch(self.ids, pin(self.waveforms), pin(self.lengths), pin(self.targets), pin(self.target_lengths))


def check_rate(utt: Utterance, max_per_second: float) -> tuple[str, str] | None:
    """(reason, detail) when the transcript's symbols come faster than ``max_per_second``."""
    seconds = utt.num_samples / SAMPLE_RATE
    rate = chars_per_second(utt.transcript, seconds)
    if rate > max_per_second:
        return rejects.TOO_FAST, (f"{len(normalize_text(utt.transcript))} characters in {seconds:.2f} s of audio, "
                                  f"{rate:.0f} per second where the limit is {max_per_second:g}")
    return None


class SpeechDataset(torch.utils.data.Dataset):
    """Utterances with 16 kHz lengths, decoded on access; bad items go to ``rejects_log``.

    With a ``vocab``, utterances without a usable transcript (missing, empty, or with
    characters outside the vocabulary) are rejected up front, and with ``max_chars_per_second``
    those whose transcript has more symbols per second of audio than speech holds: a recording
    of only part of its transcript, which CTC would be forced to align anyway. Without a vocab,
    transcripts are ignored (pretraining). Audio that fails to decode at access time is rejected
    then and ``__getitem__`` returns None, which ``collate`` leaves out.
    """

    def __init__(self, utterances: Corpus | Sequence[Utterance], *, vocab: Vocabulary | None = None,
                 max_sample_size: int | None = None, seed: int = 0, rejects_log: RejectLog | None = None,
                 max_chars_per_second: float | None = None) -> None:
        self.log = rejects_log if rejects_log is not None else RejectLog()
        self.vocab, self.max_sample_size, self.seed = vocab, max_sample_size, seed
        self.epoch = 0
        self.utterances = []
        for utt in utterances:
            problem = check_transcript(utt, True, vocab) if vocab is not None else None
            if problem:
                self.log.reject(utt.path, problem[0], utt.line, problem[1])
                continue
            if utt.num_samples is None:  # read from the header; `sew data manifest` avoids this step
                try:
                    utt = replace(utt, num_samples=header_num_samples(utt.audio, name=utt.path))
                except FileNotFoundError:
                    self.log.reject(utt.path, rejects.MISSING_FILE, utt.line, "file not found")
                    continue
                except AudioError as err:
                    self.log.reject(utt.path, err.reason, utt.line, err.detail)
                    continue
            if vocab is not None and max_chars_per_second:
                problem = check_rate(utt, max_chars_per_second)
                if problem:
                    self.log.reject(utt.path, problem[0], utt.line, problem[1])
                    continue
            self.utterances.append(utt)

    def __len__(self) -> int:
        return len(self.utterances)

    @property
    def lengths(self) -> list[int]:
        """Samples each item will have after cropping (what the sampler should batch by)."""
        cap = self.max_sample_size
        return [min(u.num_samples, cap) if cap else u.num_samples for u in self.utterances]

    @property
    def ids(self) -> list[str]:
        return [u.id for u in self.utterances]

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's random crops for plain indices (an ``EpochIndex`` from the sampler carries its own)."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> Example | None:
        epoch = getattr(index, "epoch", self.epoch)
        utt = self.utterances[index]
        try:
            wave, _ = load_audio(utt.audio, name=utt.path)
        except FileNotFoundError:
            self.log.reject(utt.path, rejects.MISSING_FILE, utt.line, "file not found")
            return None
        except AudioError as err:
            self.log.reject(utt.path, err.reason, utt.line, err.detail)
            return None
        if self.max_sample_size and len(wave) > self.max_sample_size:
            rng = np.random.default_rng([self.seed, epoch, int(index)])
            start = int(rng.integers(0, len(wave) - self.max_sample_size + 1))
            wave = wave[start:start + self.max_sample_size]
        target = self.vocab.encode(utt.transcript) if self.vocab is not None else None
        return Example(utt.id, wave, target)

    def sampler(self, max_tokens: int, **kwargs) -> LengthBucketSampler:
        """A ``LengthBucketSampler`` over this dataset's lengths, reporting to the same log."""
        return LengthBucketSampler(self.lengths, max_tokens, rejects_log=self.log, names=[u.path for u in self.utterances],
                                   **kwargs)


def collate(examples: Sequence[Example | None]) -> Batch:
    """Pad a list of examples into a ``Batch``; Nones (failed decodes, already reported) are left out.

    A batch whose every item failed comes back empty (``len(batch) == 0``); skip it.
    """
    examples = [e for e in examples if e is not None]
    if not examples:
        return Batch([], torch.zeros(0, 0), torch.zeros(0, dtype=torch.int64))
    lengths = torch.tensor([len(e.waveform) for e in examples], dtype=torch.int64)
    waveforms = torch.zeros(len(examples), int(lengths.max()), dtype=torch.float32)
    for row, e in enumerate(examples):
        waveforms[row, : len(e.waveform)] = torch.from_numpy(e.waveform)
    batch = Batch([e.id for e in examples], waveforms, lengths)
    if all(e.target is not None for e in examples):
        batch.target_lengths = torch.tensor([len(e.target) for e in examples], dtype=torch.int64)
        batch.targets = torch.full((len(examples), int(batch.target_lengths.max())), TARGET_PAD, dtype=torch.int64)
        for row, e in enumerate(examples):
            batch.targets[row, : len(e.target)] = torch.tensor(e.target, dtype=torch.int64)
    return batch


def make_dataloader(dataset: SpeechDataset, sampler: LengthBucketSampler, num_workers: int = 0,
                    pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """A ``DataLoader`` drawing batches from ``sampler`` and padding them with ``collate``."""
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers,
                                       pin_memory=pin_memory, persistent_workers=num_workers > 0,
                                       worker_init_fn=ignore_preemption if num_workers else None)


def ignore_preemption(worker_id: int) -> None:
    """In a data worker: ignore the preemption signals a cluster sends to the whole process group. The
    training process handles them (a checkpoint, then it ends its workers); a worker killed first would
    end the run with a data-loader error instead (``sew.train.interrupts``)."""
    import signal

    for name in ("SIGTERM", "SIGUSR1"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
