"""Speech data: audio loading, corpus readers, text and vocabulary, batching, the built-in corpus.

Modules, in the order data flows: ``audio`` (decode to 16 kHz mono), ``corpus`` and
``readers`` (manifests, LibriSpeech, audiofolder, HF datasets; ``speech_commands``), ``records``
(utterances with transcripts and class labels), ``manifest`` (write the canonical fairseq form),
``text`` (normalisation, CTC vocabulary), ``dataset`` (examples and padded batches), ``sampler``
(length-bucketed, sharded, resumable batches), ``rejects`` (bad-item reporting), ``synth`` (the
built-in eSpeak NG corpus, through ``espeak``; ``realistic`` degrades it into recordings) and
``tasks`` (the built-in tasks: classification, ``kws`` and ``speaker_id``, and ``standin``, a Czech
stand-in for a small real ASR corpus).
"""
