import sys

import pytest
import torch

from sew.asr.decode import GreedyDecoder, greedy_ids, make_decoder
from sew.asr.ngram import read_arpa_words, write_arpa
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


BEAM = pytest.mark.skipif(sys.version_info >= (3, 13), reason="flashlight-text has wheels for CPython 3.10-3.12 only")


def probs(rows: list[dict[int, float]], vocab_size: int = 8) -> torch.Tensor:
    """Log-probabilities ``[T, V]``: each frame's listed ids with their probabilities, the rest 1e-4."""
    out = torch.full((len(rows), vocab_size), 1e-4)
    for t, row in enumerate(rows):
        for i, p in row.items():
            out[t, i] = p
    return out.log()


def test_greedy_is_the_default_and_a_missing_extra_explains_how_to_install(monkeypatch):
    assert isinstance(make_decoder(VOCAB), GreedyDecoder)
    monkeypatch.setitem(sys.modules, "flashlight.lib.text", None)  # as if flashlight-text were not installed
    with pytest.raises(ImportError, match=r"pip install -e \"\.\[lm\]\""):
        make_decoder(VOCAB, beam_size=10)


@BEAM
def test_beam_search_without_an_lm_agrees_with_greedy_on_clear_frames():
    decoder = make_decoder(VOCAB, beam_size=10)
    ids = [5, 5, 0, 5, 6, 6, 4, 4, 7, 0, 7]  # repeats, blanks, a delimiter
    assert decoder(one_hot(ids)) == ["aab cc"] == GreedyDecoder(VOCAB)(one_hot(ids))
    unk_first = probs([{5: .9}, {3: .6, 6: .3}, {0: .9}])  # <unk> is never emitted: the next best is
    assert decoder(unk_first) == ["ab"] and GreedyDecoder(VOCAB)(unk_first) == ["a"]
    batch = torch.stack([one_hot([5, 0, 6, 6, 7, 4]), one_hot([7, 7, 0, 0, 5, 5])])
    assert decoder(batch, torch.tensor([6, 2])) == ["abc", "c"]  # padding frames are not decoded
    assert decoder(batch, torch.tensor([6, 0])) == ["abc", ""]


@BEAM
def test_the_lm_picks_the_word_it_knows_where_the_frames_are_ambiguous(tmp_path, capsys):
    lm = write_arpa(["ab ab c", "ab c", "c ab"], tmp_path / "lm.arpa", order=3)
    frames = probs([{5: .9}, {6: .45, 7: .55}, {0: .9}, {4: .9}, {7: .9}])  # a (b|c) _ | c: greedy says "ac c"
    assert GreedyDecoder(VOCAB)(frames) == ["ac c"]
    assert make_decoder(VOCAB, beam_size=10)(frames) == ["ac c"]
    assert make_decoder(VOCAB, beam_size=10, lm_path=str(lm))(frames) == ["ab c"]  # "ac" is not a word of the LM
    # A lexicon file replaces the ARPA's words; one the vocabulary cannot spell is left out, and said.
    (tmp_path / "words.txt").write_text("ac\nc\nxyz\n")
    decoder = make_decoder(VOCAB, beam_size=10, lm_path=str(lm), lexicon=str(tmp_path / "words.txt"))
    assert decoder(frames) == ["ac c"]
    assert "1 of 3 words have characters the model does not emit" in capsys.readouterr().err
    (tmp_path / "lm.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="binary KenLM model does not list its words"):
        make_decoder(VOCAB, beam_size=10, lm_path=str(tmp_path / "lm.bin"))
    with pytest.raises(ValueError, match="no such language model file"):
        make_decoder(VOCAB, beam_size=10, lm_path=str(tmp_path / "missing.arpa"))


def test_arpa_writer_normalises_every_context(tmp_path):
    texts = ["The cat sat.", "the cat ran", "a dog sat", "the dog"]
    path = write_arpa(texts, tmp_path / "lm.arpa", order=3)
    assert read_arpa_words(path) == ["a", "cat", "dog", "ran", "sat", "the"]
    sections, logp, logb = {}, {}, {}
    for line in path.read_text().splitlines():
        if line.startswith("\\") and line.endswith("-grams:"):
            order = int(line[1])
        elif "\t" in line:
            fields = line.split("\t")
            gram = tuple(fields[1].split())
            logp[gram] = float(fields[0])
            logb[gram] = float(fields[2]) if len(fields) > 2 else 0.0
            sections[order] = sections.get(order, 0) + 1
    header = {int(k): int(v) for k, v in (l[len("ngram "):].split("=") for l in path.read_text().splitlines()
                                          if l.startswith("ngram "))}
    assert header == sections
    vocab = [w for (w,) in (g for g in logp if len(g) == 1) if w != "<s>"]

    def prob(word, context):  # the backoff rule KenLM applies
        gram = (*context, word)
        if gram in logp:
            return 10 ** logp[gram]
        return 10 ** logb.get(tuple(context), 0.0) * prob(word, context[1:])

    contexts = {g[:-1] for g in logp if len(g) > 1}
    assert len(contexts) > 5
    for context in contexts:  # every distribution the model defines sums to one
        assert sum(prob(w, context) for w in vocab) == pytest.approx(1.0, abs=1e-5), context
    assert sum(prob(w, ()) for w in vocab) == pytest.approx(1.0, abs=1e-5)
    assert prob("cat", ("<s>", "the")) > prob("dog", ("<s>", "the")) > prob("ran", ("<s>", "the"))
    with pytest.raises(ValueError, match="no words"):
        write_arpa(["...", ""], tmp_path / "empty.arpa")
