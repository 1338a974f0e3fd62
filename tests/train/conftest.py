"""Fixtures for the training and ASR tests: a tiny synthetic corpus and tiny models."""

from __future__ import annotations

import pytest
import torch

import sew


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """30 s of train and about 10 s each of dev/test synthetic speech (about a second to make)."""
    from sew.data.synth import synthesize_corpus

    out = tmp_path_factory.mktemp("corpus")
    synthesize_corpus(out, minutes=0.5, eval_minutes=0.15, workers=1, progress=False, log=lambda s: None)
    return out


@pytest.fixture(scope="session")
def vocab(tiny_corpus):
    from sew.data.text import Vocabulary

    return Vocabulary.load(tiny_corpus)


@pytest.fixture
def train_set(tiny_corpus, vocab):
    """The first 12 train utterances as a ``SpeechDataset``."""
    from sew.data.corpus import read_corpus
    from sew.data.dataset import SpeechDataset

    return SpeechDataset(read_corpus(tiny_corpus, split="train").utterances[:12], vocab=vocab)


def tiny_model(vocab_size: int, seed: int = 0, preset: str = "sew-d-micro", **overrides):
    """A one-layer micro model with a CTC head; dropouts as given (default: the preset's)."""
    torch.manual_seed(seed)
    return sew.build_model(preset, vocab_size=vocab_size, num_layers=overrides.pop("num_layers", 1), **overrides)


@pytest.fixture
def make_model(vocab):
    return lambda seed=0, **kw: tiny_model(len(vocab), seed, **kw)
