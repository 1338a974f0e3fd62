"""Speech recognition with CTC: fine-tuning, decoding, evaluation and transcription.

* ``sew.asr.ctc``: ``ctc_loss`` (float32, zero_infinity), ``prior_bias`` / ``init_prior_bias``.
* ``sew.asr.decode``: ``greedy_ids``, ``GreedyDecoder``, ``BeamSearchDecoder`` (flashlight-text + KenLM, optional).
* ``sew.asr.metrics``: ``error_rates`` (WER / CER with jiwer), ``utterance_errors``.
* ``sew.asr.evaluate``: ``evaluate`` a model on a dataset in length-sorted padded batches.
* ``sew.asr.transcribe``: ``chunked_logits`` (long files), ``transcribe_files`` (per-file errors).
* ``sew.asr.task``: ``CTCTask`` for ``sew.train.loop.Trainer``.
* ``sew.asr.finetune``: ``FinetuneRecipe``, ``load_recipe``, ``finetune`` (what ``sew finetune`` runs).
"""
