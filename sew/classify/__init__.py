"""Utterance classification (keyword spotting, speaker identification, ...) on the encoders.

``sew.models.classifier.SequenceClassifier`` is the model; this package trains it
(``finetune_classifier``: the whole encoder, or a frozen one with only the layer weights and the
head: the SUPERB probing protocol), scores it (accuracy, macro-F1, a confusion matrix),
classifies files of any length and extracts per-layer features for other toolkits.
"""
