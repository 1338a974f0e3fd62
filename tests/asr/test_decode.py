import pytest
import torch

from sew.asr.decode import BEAM_INSTALL_HINT, GreedyDecoder, greedy_ids, make_decoder
from sew.asr.metrics import error_rates, utterance_errors
from sew.data.text import Vocabulary

VOCAB = Vocabulary(["<pad>", "<s>", "</s>", "<unk>", "|", "a", "b", "c"])


def one_hot(ids, vocab_size=8):
    """Logits ``[T, V]`` whose argmax is ``ids``."""
    logits = torch.full((len(ids), vocab_size), -5.0)
    logits[torch.arange(len(ids)), torch.tensor(ids)] = 5.0
    return logits


def test_greedy_merges_repeats_and_drops_blanks():
    # frames: a a _ a b b | | c _ c   -> "aab c" ... repeats merge only when adjacent
    ids = [5, 5, 0, 5, 6, 6, 4, 4, 7, 0, 7]
    assert greedy_ids(one_hot(ids)) == [[5, 5, 6, 4, 7, 7]]
    assert GreedyDecoder(VOCAB)(one_hot(ids)) == ["aab cc"]


def test_greedy_respects_lengths_and_skips_specials():
    batch = torch.stack([one_hot([5, 1, 6, 3, 7, 4]), one_hot([7, 7, 0, 0, 0, 0])])
    assert GreedyDecoder(VOCAB)(batch, torch.tensor([6, 2])) == ["abc", "c"]
    assert GreedyDecoder(VOCAB)(one_hot([4, 4, 0, 4])) == [""]


def test_error_rates_known_answers():
    out = error_rates(["the cat sat", "a b"], ["the hat sat down", "a b"])
    # words: 1 substitution + 1 insertion over 5 reference words
    assert out["wer"] == pytest.approx(2 / 5)
    assert (out["substitutions"], out["insertions"], out["deletions"]) == (1, 1, 0)
    # characters: "the cat sat" (11) vs "the hat sat down" (+1 sub, +5 ins); "a b" (3) exact
    assert out["cer"] == pytest.approx(6 / 14)
    words, chars = utterance_errors("Hello, World!", "hello world")  # normalised before scoring
    assert words.errors == chars.errors == 0
    assert utterance_errors("", "a")[0].rate == float("inf")


def test_beam_search_without_the_extra_explains_how_to_install():
    try:
        import pyctcdecode  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install pyctcdecode"):
            make_decoder(VOCAB, beam_size=10)
        assert "kenlm" in BEAM_INSTALL_HINT
    else:
        decoder = make_decoder(VOCAB, beam_size=10)
        assert decoder(one_hot([5, 0, 6, 4, 7]))[0] == "ab c"
    assert isinstance(make_decoder(VOCAB), GreedyDecoder)
