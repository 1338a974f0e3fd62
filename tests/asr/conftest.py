"""The fixtures of tests/train (tiny corpus, vocabulary, tiny models) for the ASR tests."""

from tests.train.conftest import make_model, tiny_corpus, train_set, vocab  # noqa: F401
