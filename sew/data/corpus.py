"""Reading a corpus in any supported format: detection, splits, the dev split, a held-out part.

``read_corpus(source, split=...)`` recognises, in this order (``sew.data.readers.FORMATS``):

* a fairseq manifest: a ``.tsv`` whose first line is the root directory and whose lines are
  ``relative/path<TAB>num_samples``, with optional parallel ``.wrd`` / ``.ltr`` files and a
  ``.label`` file (one class label per line); or a directory of them (``train.tsv``, ``dev.tsv``
  or ``valid.tsv``, ``test.tsv``);
* a Hugging Face ``datasets`` directory written by ``save_to_disk`` (optional ``label`` column);
* the Speech Commands v2 layout (``LABEL/*.wav`` with ``validation_list.txt`` and
  ``testing_list.txt``; ``sew.data.speech_commands``);
* an audiofolder (``metadata.csv`` or ``metadata.jsonl`` with ``file_name``, a transcript
  column ``transcription``, ``text`` or ``sentence``, and/or a ``label`` column);
* the LibriSpeech layout (``speaker/chapter/*.flac`` with ``*.trans.txt``).
"""

from __future__ import annotations

import random
from pathlib import Path

from sew.data.readers import FORMATS, CorpusFormat
from sew.data.records import Corpus, Utterance
from sew.data.rejects import RejectLog

__all__ = ["Corpus", "Utterance", "DEV_ALIASES", "corpus_format", "detect_format", "list_splits", "resolve_split",
           "dev_split", "hold_out", "read_corpus"]

# Split names accepted for the development set, in the order they are looked for.
DEV_ALIASES = ("dev", "valid", "validation")


def corpus_format(source: str | Path) -> CorpusFormat:
    """The format of ``source`` (the first of ``FORMATS`` that recognises it); ``ValueError`` saying what was expected."""
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.is_file() and path.suffix != ".tsv":
        raise ValueError(f"{path}: a corpus file must be a fairseq .tsv manifest; pass a directory for other formats")
    for fmt in FORMATS:
        if fmt.detect(path):
            return fmt
    raise ValueError(
        f"{path}: not a corpus. Expected fairseq manifests (*.tsv), a LibriSpeech tree (speaker/chapter/*.trans.txt), "
        "an audiofolder (metadata.csv / metadata.jsonl), a Speech Commands tree (LABEL/*.wav with "
        "validation_list.txt and testing_list.txt) or a datasets save_to_disk directory"
    )


def detect_format(source: str | Path) -> str:
    """The name of ``source``'s format: ``fairseq``, ``hf-datasets``, ``speech-commands``, ``audiofolder`` or
    ``librispeech``."""
    return corpus_format(source).name


def list_splits(source: str | Path) -> list[str]:
    """The split names found in ``source``, train first."""
    names = corpus_format(source).splits(Path(source))
    return sorted(names, key=lambda n: (not n.startswith("train"), n))


def resolve_split(source: str | Path, split: str | None) -> str:
    """The split to read: ``split`` itself, its dev alias, a unique prefix match, or the default."""
    names = list_splits(source)
    if split is None:
        if "train" in names or len(names) == 1:
            return "train" if "train" in names else names[0]
        raise ValueError(f"{source}: several splits ({', '.join(names)}); choose one with split=")
    if split in names:
        return split
    if split in DEV_ALIASES:
        for alias in DEV_ALIASES:
            if alias in names:
                return alias
    matches = [n for n in names if n.startswith(split)]
    if len(matches) == 1:
        return matches[0]
    raise ValueError(f"{source}: no split {split!r}; found {', '.join(names) or 'none'}")


def dev_split(source: str | Path) -> str | None:
    """The corpus's development split (``dev``, ``valid`` or ``validation``), or None when it has none."""
    names = list_splits(source)
    return next((alias for alias in DEV_ALIASES if alias in names), None)


def hold_out(corpus: Corpus, fraction: float, seed: int) -> tuple[Corpus, Corpus]:
    """Split ``corpus`` into (kept, held out): a seeded ``fraction`` of its utterances (at least one,
    never all) held out, chosen from the ids, so the same corpus and seed always hold out the same
    utterances, and no utterance is in both."""
    ids = sorted({u.id for u in corpus})
    if len(ids) < 2:
        raise ValueError(f"{corpus.source} ({corpus.split}): {len(ids)} utterance(s), too few to hold any out "
                         "for validation; add a dev split or validate on nothing (--valid-split none)")
    count = min(len(ids) - 1, max(1, round(fraction * len(ids))))
    held = set(random.Random(seed).sample(ids, count))
    kept = [u for u in corpus if u.id not in held]
    out = [u for u in corpus if u.id in held]
    return (Corpus(kept, corpus.split, corpus.source, corpus.format),
            Corpus(out, f"{corpus.split} (held out)", corpus.source, corpus.format))


def read_corpus(source: str | Path, split: str | None = None, rejects_log: RejectLog | None = None) -> Corpus:
    """Read one split of ``source`` in any supported format (see the module docstring).

    Structural problems (malformed lines, listed files without transcripts) go to
    ``rejects_log``; audio is not decoded here (``sew.data.manifest.scan_corpus`` does that).
    """
    log = rejects_log if rejects_log is not None else RejectLog()
    fmt = corpus_format(source)
    name = resolve_split(source, split)
    return Corpus(fmt.read(Path(source), name, log), name, str(source), fmt.name)
