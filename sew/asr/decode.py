"""CTC decoding: greedy (best path) and, optionally, beam search with a KenLM n-gram through flashlight-text.

Both take log-probabilities or logits ``[frames, vocab]`` of one utterance (or ``[B, T, V]``
with valid ``lengths``) and return normalised text, the same normalisation as references.
"""

from __future__ import annotations

import os

import torch

from sew.data.text import PAD, SPECIALS, WORD_DELIMITER, Vocabulary

BEAM_INSTALL_HINT = ("beam search needs the optional package flashlight-text (KenLM built in): "
                     "`pip install -e \".[lm]\"` or `pip install flashlight-text`. Greedy decoding needs nothing")


def greedy_ids(logits: torch.Tensor, lengths: torch.Tensor | None = None, blank: int = 0) -> list[list[int]]:
    """Best-path CTC ids: argmax per frame, repeats merged, blanks dropped.

    ``logits [B, T, V]`` (or ``[T, V]``), ``lengths [B]`` valid frames (default: all ``T``).
    """
    if logits.dim() == 2:
        logits = logits[None]
    best = logits.argmax(-1).cpu()  # [B, T]
    lengths = lengths.tolist() if lengths is not None else [best.shape[1]] * best.shape[0]
    out = []
    for row, n in zip(best, lengths):
        row = row[: int(n)]
        if row.numel():
            keep = torch.ones_like(row, dtype=torch.bool)
            keep[1:] = row[1:] != row[:-1]
            row = row[keep]
        out.append([int(i) for i in row if int(i) != blank])
    return out


class GreedyDecoder:
    """Greedy CTC decoding to text with a ``Vocabulary`` (``<s>``, ``</s>``, ``<unk>`` are dropped)."""

    def __init__(self, vocab: Vocabulary) -> None:
        self.vocab = vocab

    def __call__(self, logits: torch.Tensor, lengths: torch.Tensor | None = None) -> list[str]:
        return [self.vocab.decode(ids) for ids in greedy_ids(logits, lengths, self.vocab.blank_id)]


class BeamSearchDecoder:
    """CTC beam search in flashlight-text's decoder, with an optional KenLM model (ARPA or binary).

    With an LM it is the lexicon decoder of the official SEW / fairseq evaluation: words are spelled
    in a trie of the LM's words (an ARPA file's unigrams, or ``lexicon``: a file of one word a line,
    needed for a binary LM), so only words the LM knows are emitted, scored by ``lm_weight`` (alpha)
    times the LM plus ``word_score`` (beta) per word (2.0 and -1.0 with the LibriSpeech 4-gram).
    Without an LM it is a plain lexicon-free beam search over characters. flashlight-text is chosen
    over pyctcdecode for its wheels with KenLM built in and no numpy pin, and for its speed
    (docs/finetuning.md). Raises ``ImportError`` with the install line when it is missing.
    """

    def __init__(self, vocab: Vocabulary, lm_path: str | None = None, *, beam_size: int = 50,
                 lm_weight: float = 2.0, word_score: float = -1.0, lexicon: str | None = None,
                 beam_threshold: float = 25.0) -> None:
        try:
            from flashlight.lib.text import decoder as fl
        except ImportError as err:
            raise ImportError(BEAM_INSTALL_HINT) from err
        self.vocab, self.lexicon_words = vocab, None
        # <s>, </s> and <unk> are never emitted: a log-probability the beam never keeps.
        self.never = [vocab.index[token] for token in SPECIALS if token not in (PAD, WORD_DELIMITER)]
        silence, size = vocab.delimiter_id, len(vocab)
        if lm_path is None:
            options = fl.LexiconFreeDecoderOptions(beam_size, size, beam_threshold, 0.0, 0.0, False,
                                                   fl.CriterionType.CTC)
            self.decoder = fl.LexiconFreeDecoder(options, fl.ZeroLM(), silence, vocab.blank_id, [])
            return
        from flashlight.lib.text.decoder.kenlm import KenLM
        from flashlight.lib.text.dictionary import Dictionary

        if not os.path.isfile(lm_path):
            raise ValueError(f"{lm_path}: no such language model file (an ARPA .arpa or KenLM binary .bin)")

        words = lexicon_words(vocab, lm_path, lexicon)
        self.lexicon_words = Dictionary([UNK_WORD, *words])
        self.lm = KenLM(str(lm_path), self.lexicon_words)  # kept: the decoder holds it by reference
        trie = fl.Trie(size, silence)
        start = self.lm.start(False)
        for index, word in enumerate(words, 1):
            _, score = self.lm.score(start, index)
            trie.insert([vocab.index[ch] for ch in word], index, score)
        trie.smear(fl.SmearingMode.MAX)
        options = fl.LexiconDecoderOptions(beam_size, size, beam_threshold, lm_weight, word_score,
                                           float("-inf"), 0.0, False, fl.CriterionType.CTC)
        self.decoder = fl.LexiconDecoder(options, trie, self.lm, silence, vocab.blank_id, 0, [], False)

    def __call__(self, logits: torch.Tensor, lengths: torch.Tensor | None = None) -> list[str]:
        if logits.dim() == 2:
            logits = logits[None]
        lengths = lengths.tolist() if lengths is not None else [logits.shape[1]] * logits.shape[0]
        log_probs = torch.log_softmax(logits.detach().float(), -1).cpu()
        log_probs[..., self.never] = -1e4
        texts = []
        for lp, n in zip(log_probs, lengths):
            emissions = lp[: int(n)].contiguous()
            if emissions.shape[0] == 0:
                texts.append("")
                continue
            best = self.decoder.decode(emissions.data_ptr(), emissions.shape[0], emissions.shape[1])[0]
            if self.lexicon_words is None:
                texts.append(self.vocab.decode(best.tokens, ctc=True))
            else:
                texts.append(" ".join(self.lexicon_words.get_entry(w) for w in best.words if w > 0))
        return texts


UNK_WORD = "<unk>"


def lexicon_words(vocab: Vocabulary, lm_path: str, lexicon: str | None) -> list[str]:
    """The words beam search may emit: ``lexicon`` (one word a line) or the ARPA file's unigrams,
    normalised, without those the vocabulary cannot spell (said in one line)."""
    import sys

    from sew.asr.ngram import read_arpa_words
    from sew.data.text import normalize_text

    if lexicon is not None:
        with open(lexicon, encoding="utf-8") as f:
            raw = [line.split()[0] for line in f if line.strip()]
    elif str(lm_path).endswith(".arpa"):
        raw = read_arpa_words(lm_path)
    else:
        raise ValueError(f"{lm_path}: a binary KenLM model does not list its words; pass --lexicon WORDS "
                         "(one word a line, e.g. the training transcripts' words) or use the .arpa file")
    words, unspellable = [], 0
    for word in dict.fromkeys(raw):
        if word != normalize_text(word) or vocab.unknown_chars(word):
            unspellable += 1
        else:
            words.append(word)
    if not words:
        raise ValueError(f"{lexicon or lm_path}: none of its {len(raw)} words can be spelled with the model's "
                         "characters; is it the LM for this model's language?")
    if unspellable:
        print(f"warning: {lexicon or lm_path}: {unspellable} of {len(raw)} words have characters the model "
              "does not emit (or are not normalised text); beam search will not produce them", file=sys.stderr)
    return words


def make_decoder(vocab: Vocabulary, beam_size: int = 0, lm_path: str | None = None, lm_weight: float = 2.0,
                 word_score: float = -1.0, lexicon: str | None = None):
    """Greedy when ``beam_size`` is 0 and there is no LM; beam search otherwise."""
    if beam_size <= 0 and lm_path is None:
        return GreedyDecoder(vocab)
    return BeamSearchDecoder(vocab, lm_path, beam_size=beam_size or 50, lm_weight=lm_weight, word_score=word_score,
                             lexicon=lexicon)
