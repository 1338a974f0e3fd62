"""The reference modules: plain PyTorch from waveform to logits, trained and exported as they are.

Reading order (docs/models.md): ``config`` (EncoderConfig), ``encoder`` (SpeechEncoder, the whole
model), ``features`` (the waveform feature extractor), ``context`` (squeeze, the transformer stack,
upsample), ``transformer`` and ``disentangled`` (wav2vec 2.0 / SEW attention and SEW-D's DeBERTa
attention), ``classifier`` (utterance heads). ``lengths`` turns lengths into masks in one place and
``kernels`` picks per call which kernel runs (by device and tracing state). The CPU inference
variants are ``sew.inference``.
"""
