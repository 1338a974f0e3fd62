"""Speech data: audio loading, corpus readers, text and vocabulary, batching, the built-in corpus.

Modules, in the order data flows: ``audio`` (decode to 16 kHz mono), ``corpus`` and
``readers`` (manifests, LibriSpeech, audiofolder, HF datasets; ``speech_commands``), ``records``
(utterances with transcripts and class labels), ``manifest`` (write the canonical fairseq form),
``text`` (normalisation, CTC vocabulary), ``dataset`` (examples and padded batches), ``sampler``
(length-bucketed, sharded, resumable batches), ``rejects`` (bad-item reporting), ``synth`` (the
built-in eSpeak NG corpus, through ``espeak``) and ``tasks`` (the built-in classification tasks,
``kws`` and ``speaker_id``).
"""
