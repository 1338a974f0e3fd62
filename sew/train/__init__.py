"""Shared training infrastructure: fine-tuning (``sew.asr``) and pretraining use the same pieces.

* ``sew.train.loop``: ``TrainConfig`` (budget, optimiser, schedule, logging, checkpoint
  cadence), ``Trainer(cfg, model, task, run_dir).fit(dataset, resume=None)``, ``TrainingDiverged``.
* ``sew.train.task``: ``TrainingTask`` (``loss(model, batch, update, micro, generator)`` returning
  ``LossSums``: sums and their sample count; optional ``validate``, ``save_model``,
  ``checkpoint_files``).
* ``sew.train.setup``: ``make_accelerator`` (CPU / GPU / ``accelerate launch``; bf16 / fp16),
  ``configure_threads``, ``build_optimizer``, ``freeze``.
* ``sew.train.state``: ``TrainingState``, ``save_checkpoint`` / ``load_checkpoint`` /
  ``latest_checkpoint`` (model, optimizer, scaler, sampler position, every RNG; safetensors + JSON,
  atomic, keep the last K).
* ``sew.train.schedule``: ``TriStageSchedule``, ``PolynomialDecaySchedule``, ``build_schedule``,
  ``set_lr`` (schedules are functions of ``(update, progress)``).
* ``sew.train.masking``: ``MaskingConfig``, ``compute_time_mask``, ``compute_channel_mask``,
  ``compute_masks``, ``update_generator`` (padding-aware, seeded).
* ``sew.train.logs``: ``RunLogger`` (a progress bar against the run's budget, ``log.jsonl``,
  TensorBoard), ``read_log``, ``plot_run``.
"""
