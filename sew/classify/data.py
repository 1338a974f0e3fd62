"""Labelled utterances as training examples: the class id rides in ``Batch.targets[:, 0]``."""

from __future__ import annotations

from collections.abc import Sequence

from sew.data.corpus import Corpus, Utterance
from sew.data.dataset import Example, SpeechDataset
from sew.data.rejects import NO_LABEL, UNKNOWN_LABEL, RejectLog


def corpus_labels(corpus: Corpus) -> list[str]:
    """The sorted class labels of ``corpus``; a ``ValueError`` saying where labels come from when it has none."""
    labels = sorted({u.label for u in corpus if getattr(u, "label", None)})
    if len(labels) < 2:
        raise ValueError(f"{corpus.source} (split {corpus.split}): {len(labels)} class label(s) found; classification "
                         "needs at least 2 (a SPLIT.label file beside the .tsv, a 'label' column in an audiofolder's "
                         "metadata, or one folder per label in the Speech Commands layout)")
    return labels


class LabelDataset(SpeechDataset):
    """The utterances of ``utterances`` whose label is one of ``labels``; others are rejected with the reason
    (no label, or a label the model does not know), never dropped silently."""

    def __init__(self, utterances: Corpus | Sequence[Utterance], labels: Sequence[str], *,
                 max_sample_size: int | None = None, seed: int = 0, rejects_log: RejectLog | None = None) -> None:
        log = rejects_log if rejects_log is not None else RejectLog()
        self.label_index = {name: i for i, name in enumerate(labels)}
        kept = []
        for utt in utterances:
            label = getattr(utt, "label", None)
            if not label:
                log.reject(utt.path, NO_LABEL, utt.line, "the utterance has no class label")
            elif label not in self.label_index:
                log.reject(utt.path, UNKNOWN_LABEL, utt.line,
                           f"label {label!r} is not one of the model's {len(self.label_index)} labels")
            else:
                kept.append(utt)
        super().__init__(kept, max_sample_size=max_sample_size, seed=seed, rejects_log=log)

    def __getitem__(self, index: int) -> Example | None:
        example = super().__getitem__(index)
        if example is not None:
            example.target = [self.label_index[self.utterances[index].label]]
        return example

    def targets(self) -> dict[str, int]:
        """Class id per utterance id."""
        return {u.id: self.label_index[u.label] for u in self.utterances}
