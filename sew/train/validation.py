"""Validation inside the training loop: when it is due, ``RUN/best``, early stopping."""

from __future__ import annotations

import torch


class ValidationHooks:
    """Methods of ``Trainer`` (which sets ``cfg``, ``state``, ``acc``, ``task``, ``logger``, ``is_main``,
    ``_last_valid_time``, ``_validated_at`` and provides ``paused_clock``, ``unwrapped``, ``_write_model``
    and ``_health``)."""

    def _validate_when_due(self) -> bool:
        cfg, state = self.cfg, self.state
        due = bool(cfg.validate_every) and state.update % cfg.validate_every == 0
        if cfg.validate_every_minutes:
            due |= state.elapsed_seconds - self._last_valid_time >= 60.0 * cfg.validate_every_minutes
        return self._validate() if due else False

    def _validate(self) -> bool:
        """Validate, keep ``RUN/best``; returns True when early stopping triggers."""
        state = self.state
        self._last_valid_time = state.elapsed_seconds
        if self._validated_at == state.update:
            return False
        self._validated_at = state.update
        stop = [False]
        with self.paused_clock():
            if self.is_main:
                model = self.unwrapped
                model.eval()
                with torch.no_grad(), self.acc.autocast():
                    metrics = self.task.validate(model)
                model.train()
                if metrics is not None:
                    stop[0] = self._record_validation(metrics)
            if self.acc.num_processes > 1:
                from accelerate.utils import broadcast_object_list

                broadcast_object_list(stop)
        return stop[0]

    def _record_validation(self, metrics: dict[str, float]) -> bool:
        state, cfg = self.state, self.cfg
        metrics = {**metrics, "minutes": state.elapsed_seconds / 60.0}
        value = metrics.get(cfg.best_metric)
        if value is not None and (state.best_metric is None or value < state.best_metric):
            state.best_metric, state.best_update, state.evals_since_best = float(value), state.update, 0
            self._write_model("best", metrics)
        else:
            state.evals_since_best += 1
        metrics["best_" + cfg.best_metric] = state.best_metric
        self.logger.log("valid", state.update, metrics)
        if self._health({"kind": "valid", "update": state.update, **metrics}, broadcast=False):
            return True  # _validate broadcasts the decision
        stop = bool(cfg.patience) and state.evals_since_best >= cfg.patience
        if stop:
            self.logger.message(f"early stop: no better {cfg.best_metric} in {cfg.patience} validations "
                                f"(best {state.best_metric:.4g} at update {state.best_update})")
        return stop
