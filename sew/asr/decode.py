"""CTC decoding: greedy (best path) and, optionally, beam search with a KenLM n-gram through pyctcdecode.

Both take log-probabilities or logits ``[frames, vocab]`` of one utterance (or ``[B, T, V]``
with valid ``lengths``) and return normalised text, the same normalisation as references.
"""

from __future__ import annotations

import torch

from sew.data.text import PAD, SPECIALS, WORD_DELIMITER, Vocabulary

BEAM_INSTALL_HINT = ("beam search needs the optional packages pyctcdecode and (for --lm) kenlm: "
                     "`pip install pyctcdecode kenlm`; pyctcdecode 0.5 declares numpy<2, so in an environment "
                     "with numpy 2 use `pip install --no-deps pyctcdecode pygtrie` or a separate virtual "
                     "environment. Greedy decoding needs neither")


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
    """CTC beam search with an optional KenLM model (ARPA or binary), through ``pyctcdecode``.

    ``lm_weight`` (alpha) and ``word_score`` (beta) as in the official SEW evaluation
    (2.0 and -1.0 with the LibriSpeech 4-gram). Raises ``ImportError`` with install
    instructions when pyctcdecode (or kenlm, with an LM) is missing.
    """

    def __init__(self, vocab: Vocabulary, lm_path: str | None = None, *, beam_size: int = 50,
                 lm_weight: float = 2.0, word_score: float = -1.0) -> None:
        try:
            from pyctcdecode import build_ctcdecoder
        except ImportError as err:
            raise ImportError(BEAM_INSTALL_HINT) from err
        if lm_path is not None:
            try:
                import kenlm  # noqa: F401
            except ImportError as err:
                raise ImportError(BEAM_INSTALL_HINT) from err
        self.vocab, self.beam_size = vocab, beam_size
        # pyctcdecode: "" is the blank, " " the word delimiter. <s>, </s>, <unk> get placeholder
        # labels and a log-probability low enough that the beam never keeps them.
        labels, self.never = [], []
        for i, token in enumerate(vocab.tokens):
            if token == PAD:
                labels.append("")
            elif token == WORD_DELIMITER:
                labels.append(" ")
            elif token in SPECIALS:
                labels.append(chr(0x2460 + i))
                self.never.append(i)
            else:
                labels.append(token)
        self.decoder = build_ctcdecoder(labels, kenlm_model_path=lm_path, alpha=lm_weight, beta=word_score)

    def __call__(self, logits: torch.Tensor, lengths: torch.Tensor | None = None) -> list[str]:
        from sew.data.text import normalize_text

        if logits.dim() == 2:
            logits = logits[None]
        lengths = lengths.tolist() if lengths is not None else [logits.shape[1]] * logits.shape[0]
        log_probs = torch.log_softmax(logits.float(), -1).cpu()
        log_probs[..., self.never] = -1000.0
        texts = []
        for lp, n in zip(log_probs.numpy(), lengths):
            texts.append(normalize_text(self.decoder.decode(lp[: int(n)], beam_width=self.beam_size)))
        return texts


def make_decoder(vocab: Vocabulary, beam_size: int = 0, lm_path: str | None = None, lm_weight: float = 2.0,
                 word_score: float = -1.0):
    """Greedy when ``beam_size`` is 0 and there is no LM; beam search otherwise."""
    if beam_size <= 0 and lm_path is None:
        return GreedyDecoder(vocab)
    return BeamSearchDecoder(vocab, lm_path, beam_size=beam_size or 50, lm_weight=lm_weight, word_score=word_score)
