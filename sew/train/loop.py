"""The training loop shared by fine-tuning and pretraining: load, step, log, validate, checkpoint.

A ``TrainingTask`` (``sew.train.task``) supplies the loss as sums with their sample count and,
optionally, validation; ``Trainer`` does everything else::

    trainer = Trainer(TrainConfig(max_update=1000, lr=5e-4), model, task, run_dir="runs/x")
    state = trainer.fit(train_dataset)          # resumes from run_dir/checkpoints when one exists

One update is ``update_freq`` micro-batches (fewer at the end of an epoch), accumulated with
``accelerator.accumulate``; its gradient is ``sum(loss) / sum(count)`` over every micro-batch and
process. Non-finite losses or gradients skip the update with a warning; ``max_nonfinite`` in a row
stop the run with a checkpoint and ``TrainingDiverged``. fp16 overflow steps handled by the loss
scaler are not counted as failures.

Snapshots: with ``snapshot_fractions`` (e.g. ``[0.25, 0.5]``) the model is also written to
``RUN/snapshot-0.25/`` ... (atomically, as ``RUN/final``) the first time the run passes that share of
its budget (``progress()``: updates, or training minutes under a wall-clock budget), so one run gives
the models of shorter budgets trained on the full budget's schedule. Which snapshots are written is
part of the training state: a resumed run writes only those its checkpoint had not reached.

Health: the task's ``HealthMonitor`` (``sew.train.health``) reads every logged record; a finding is
printed once, logged as a ``health`` record and kept in ``RUN/summary.json``; with
``stop_on_health`` the run ends at the first one (checkpoint, ``final``, summary written).
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from collections import defaultdict
from pathlib import Path

import torch

from sew.files import DirectoryLock, replace_directory
from sew.train.config import TrainConfig
from sew.train.health_hooks import HealthHooks
from sew.train.interrupts import InterruptHooks, Preempted, preemption_signals
from sew.train.snapshots import SnapshotHooks, check_snapshot_fractions, snapshot_name
from sew.train.logs import RunLogger, budget_fraction
from sew.train.masking import update_generator
from sew.train.schedule import build_schedule, set_lr
from sew.train.setup import build_optimizer, make_accelerator, run_facts
from sew.train.state import TrainingState, checkpoint_to_resume, load_checkpoint, rng_state, save_checkpoint
from sew.train.task import TrainingTask
from sew.train.validation import ValidationHooks


class TrainingDiverged(RuntimeError):
    """Raised after ``max_nonfinite`` consecutive non-finite updates (a checkpoint is written first)."""


class Trainer(HealthHooks, SnapshotHooks, InterruptHooks, ValidationHooks):
    """Runs ``task`` on ``model`` under ``cfg``, writing everything into ``run_dir`` (see the module docstring)."""

    def __init__(self, cfg: TrainConfig, model: torch.nn.Module, task: TrainingTask, run_dir: str | Path, *,
                 accelerator=None, find_unused_parameters: bool = False, progress: bool = True, lock=None) -> None:
        check_snapshot_fractions(cfg.snapshot_fractions)
        self.cfg, self.task, self.run_dir = cfg, task, Path(run_dir)
        self.acc = accelerator or make_accelerator(cfg.mixed_precision, find_unused_parameters=find_unused_parameters)
        optimizer = build_optimizer(model, cfg.lr, betas=cfg.betas, eps=cfg.adam_eps, weight_decay=cfg.weight_decay)
        self.model, self.optimizer = self.acc.prepare(model, optimizer)
        extra = {"warmup_updates": cfg.warmup_updates}
        if cfg.schedule == "tri_stage":
            extra.update(phase_ratio=cfg.phase_ratio, init_lr_scale=cfg.init_lr_scale, final_lr_scale=cfg.final_lr_scale)
        else:
            extra.update(warmup_updates=cfg.warmup_updates or 0, total_num_update=cfg.total_num_update,
                         end_lr=cfg.end_lr, power=cfg.power)
        self.schedule = build_schedule(cfg.schedule, cfg.lr, cfg.max_update, **extra)
        self.state = TrainingState()
        self.show_progress, self.lock = progress, lock  # lock: the run directory's, when the caller holds it
        self.is_main = self.acc.is_main_process
        self.monitor = task.health_monitor(cfg)
        self.stopped_by_health = False

    @property
    def unwrapped(self) -> torch.nn.Module:
        return self.acc.unwrap_model(self.model)

    # -- the run --------------------------------------------------------------------------------
    def fit(self, dataset, resume: str | Path | bool | None = None) -> TrainingState:
        """Train on ``dataset`` (a ``SpeechDataset``) until the budget ends; returns the final state.

        ``resume``: a checkpoint directory, the run directory, True (latest in ``run_dir``, error if
        none) or None (latest in ``run_dir`` if any, else from scratch).
        """
        from sew.data.dataset import make_dataloader

        cfg, acc = self.cfg, self.acc
        sampler = dataset.sampler(max_tokens=cfg.max_tokens, seed=cfg.seed, num_shards=acc.num_processes,
                                  shard_index=acc.process_index)
        loader = make_dataloader(dataset, sampler, num_workers=cfg.num_workers, pin_memory=acc.device.type == "cuda")
        own_lock = self.lock is None and self.is_main  # taken before anything in the directory changes
        self.lock = DirectoryLock(self.run_dir) if own_lock else self.lock
        try:
            self._resume(resume, sampler)                                        # load
            self.logger = RunLogger(self.run_dir, enabled=self.is_main, progress=self.show_progress,
                                    max_update=cfg.max_update, max_minutes=cfg.max_minutes, update=self.state.update,
                                    minutes=self.state.elapsed_seconds / 60)
            with preemption_signals() as signals:
                self._train(dataset, sampler, loader, signals)
        finally:
            if own_lock:
                self.lock.release()
                self.lock = None
        return self.state

    def _train(self, dataset, sampler, loader, signals: list[int]) -> None:
        self.logger.log("run", self.state.update, run_facts(self.acc))
        self._replay_health()
        self._start_clock()
        self._stepping = False
        try:
            for micro in self._updates(dataset, sampler, loader):
                if not self._step(micro):                                         # step (False: skipped)
                    continue
                self._log_when_due()                                              # log
                self._snapshot_when_due()                                         # snapshot
                if not self._budget_done():
                    self._stop = self._validate_when_due() or self._stop          # validate (True: early stop)
                    self._checkpoint_when_due(sampler)                            # checkpoint
                self._boundary = (self.state.batches_done, self.state.epoch, rng_state())
                if self._signalled(signals):                                      # preempted: save, stop
                    path = self._save(sampler)
                    self.logger.log("event", self.state.update, {"preempted": signals[0], "checkpoint": str(path)})
                    raise Preempted(signals[0], self.state.update, path)
            self._finish(sampler)
        except (KeyboardInterrupt, Exception) as err:
            if not isinstance(err, (Preempted, TrainingDiverged)):
                self._save_at_boundary(sampler, err)
            raise
        finally:
            self.logger.close()

    def _updates(self, dataset, sampler, loader):
        """The micro-batches of each update, epoch after epoch, until the budget ends or early stopping."""
        cfg, state = self.cfg, self.state
        while not (self._budget_done() or self._stop):
            sampler.set_epoch(state.epoch)
            dataset.set_epoch(state.epoch)
            # The DataLoader draws a worker seed from the global generator when an iterator starts;
            # keep that draw out of the training stream so a run resumed mid-epoch sees the same
            # random numbers (our crops are seeded by (seed, epoch, index)).
            rng = torch.get_rng_state()
            batches = iter(loader)
            torch.set_rng_state(rng)
            micro, seen, usable = [], 0, 0
            for batch in batches:
                state.batches_done += 1
                seen += 1
                if len(batch):
                    micro.append(batch)
                    usable += 1
                if len(micro) == cfg.update_freq:
                    yield micro
                    micro = []
                    if self._budget_done() or self._stop:
                        return
            if micro:
                yield micro
                if self._budget_done() or self._stop:
                    return
            if seen and not usable:
                raise ValueError("a whole epoch gave no usable batch: every audio file failed to load "
                                 "(see the warnings above); check the paths and the files of the corpus")
            state.epoch += 1
            state.batches_done = 0

    def _step(self, micro: list) -> bool:
        """One optimiser update over the micro-batches; False when it was skipped (non-finite)."""
        cfg, acc, state = self.cfg, self.acc, self.state
        self.model.train()
        generator = update_generator(cfg.seed, state.update, acc.process_index)
        # An update is the micro-batches the loop collected (fewer at an epoch's end): their gradients are
        # summed, and synchronised across processes on the last one only.
        sums: dict[str, float] = defaultdict(float)
        values, count, finite, audio = {}, 0.0, True, 0.0
        for i, batch in enumerate(micro):
            batch = batch.to(acc.device, non_blocking=True)
            audio += float(batch.lengths.sum()) / 16000.0
            last = i == len(micro) - 1
            with contextlib.nullcontext() if last else acc.no_sync(self.model), acc.autocast():
                out = self.task.loss(self.model, batch, state.update, i, generator)
                finite &= bool(torch.isfinite(out.loss.detach()))
                acc.backward(out.loss / len(micro))
            count += float(out.count)
            sums["loss"] += float(out.loss.detach())
            for k, v in out.sums.items():
                sums[k] += float(v)
            values.update(out.values)
        totals = torch.tensor([count, 0.0 if finite else 1.0, *sums.values()], dtype=torch.float64, device=acc.device)
        if acc.num_processes > 1:  # every process takes the same decision on the same totals
            totals = acc.reduce(totals, reduction="sum")
        count, finite = float(totals[0]), float(totals[1]) == 0.0
        params = [p for p in self.model.parameters() if p.requires_grad]
        scale = len(micro) * acc.num_processes / max(count, 1.0)  # DDP averaged over processes
        for p in params:
            if p.grad is not None:
                p.grad.mul_(scale)
        gnorm = float(acc.clip_grad_norm_(params, cfg.clip_norm if cfg.clip_norm > 0 else math.inf))
        overflow = acc.scaler is not None and finite and not math.isfinite(gnorm)
        if not overflow and (not finite or not math.isfinite(gnorm)):
            self.optimizer.zero_grad(set_to_none=True)
            self._nonfinite(finite, gnorm, micro)
            return False
        set_lr(self.optimizer, self.schedule(state.update, self.progress()))
        self._stepping = True
        self.optimizer.step()  # with fp16, the scaler skips overflow steps and lowers the scale
        self._stepping = False
        self.optimizer.zero_grad(set_to_none=True)
        if acc.optimizer_step_was_skipped:
            self._overflowed()
            return False
        state.update += 1
        state.nonfinite_streak = state.overflow_streak = 0
        state.elapsed_seconds = self._elapsed()
        w = self._window
        w["n"] += 1
        w["gnorm"] += gnorm
        w["audio"] += audio
        w["sample_size"] += count  # samples the loss ran over (utterances, masked frames)
        for k, v in zip(sums, totals[2:].tolist()):
            w[k] += v / max(count, 1.0)
        w.update({f"value:{k}": v for k, v in values.items()})
        self.logger.advance(state.update, state.elapsed_seconds / 60)
        return True

    def progress(self) -> float:
        """Share of the budget done: updates, or training time when ``max_minutes`` is set."""
        return budget_fraction(self.state.update, self.state.elapsed_seconds / 60, self.cfg.max_update,
                               self.cfg.max_minutes)

    def _budget_done(self) -> bool:
        return self.state.update >= self.cfg.max_update or (
            bool(self.cfg.max_minutes) and self.state.elapsed_seconds >= 60.0 * self.cfg.max_minutes)

    def _overflowed(self) -> None:
        """An fp16 step the loss scaler skipped: it spends the budget and is counted and logged; too many in a
        row, or a scale under the floor, end the run with a checkpoint (it cannot learn in fp16)."""
        state, cfg, scaler = self.state, self.cfg, self.acc.scaler
        state.overflow_steps += 1
        state.overflow_streak += 1
        state.elapsed_seconds = self._elapsed()
        self._window["overflows"] += 1
        scale = scaler.get_scale() if scaler is not None else None
        floored = scale is not None and scale < cfg.min_loss_scale
        if floored:
            scaler.update(cfg.min_loss_scale)
        if state.overflow_streak < cfg.max_overflows and not floored:
            return
        self.logger.log("event", state.update, {"overflows": state.overflow_streak, "loss_scale": scale})
        path = self._save(None)
        self._health_stopped_run(f"gradient (fp16 overflow, loss scale {scale})", state.overflow_streak)
        raise TrainingDiverged(f"{state.overflow_streak} fp16 step(s) in a row overflowed (loss scale {scale}, floor "
                               f"{cfg.min_loss_scale}) at update {state.update}; stopped. The last good state is in "
                               f"{path}. Use mixed_precision 'bf16' or 'no', lower the learning rate, or enable "
                               "clip_norm")

    def _nonfinite(self, loss_finite: bool, gnorm: float, micro: list) -> None:
        state = self.state
        state.skipped_updates += 1
        state.nonfinite_streak += 1
        what = "loss" if not loss_finite else f"gradient norm ({gnorm})"
        ids = ", ".join(b.ids[0] for b in micro[:3])
        self.logger.message(f"warning: update {state.update + 1}: non-finite {what}; update skipped "
                            f"({state.nonfinite_streak} in a row, {state.skipped_updates} in total; batches from {ids})")
        self.logger.log("event", state.update, {"nonfinite": what, "streak": state.nonfinite_streak})
        if state.nonfinite_streak >= self.cfg.max_nonfinite:
            path = self._save(None)
            self._health_stopped_run(what, state.nonfinite_streak)
            raise TrainingDiverged(
                f"{state.nonfinite_streak} consecutive updates had a non-finite {what} (update {state.update}); "
                f"stopped. The last good state is in {path}. Lower the learning rate, enable clip_norm, use "
                f"mixed_precision 'bf16' or 'no' instead of 'fp16', or check the data for broken audio.")

    # -- clock, logs, validation, checkpoints, the end --------------------------------------------
    def _start_clock(self) -> None:
        self._elapsed_base, self._clock, self._paused = self.state.elapsed_seconds, time.perf_counter(), 0.0
        self._window: dict[str, float] = defaultdict(float)
        self._last_valid_time = self.state.elapsed_seconds
        self._validated_at, self._stop = -1, False
        self._boundary = (self.state.batches_done, self.state.epoch, rng_state())
        self._progress_seen = self.progress()  # a snapshot is due when an update crosses its fraction

    def _elapsed(self) -> float:
        return self._elapsed_base + (time.perf_counter() - self._clock) - self._paused

    @contextlib.contextmanager
    def paused_clock(self):
        """Time spent inside does not count as training time (validation, checkpoints)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self._paused += time.perf_counter() - start

    def _log_when_due(self) -> None:
        if self.state.update % self.cfg.log_every == 0:
            self._log_train()

    def _log_train(self) -> None:
        w, state = self._window, self.state
        n = max(w.pop("n", 0.0), 1.0)
        audio = w.pop("audio", 0.0)
        span = state.elapsed_seconds - w.pop("t0", self._elapsed_base)
        values = {k.removeprefix("value:"): v if k.startswith("value:") else v / n for k, v in w.items()
                  if k != "overflows"}
        values.update(lr=self.optimizer.param_groups[0]["lr"], audio_per_s=audio / max(span, 1e-9),
                      minutes=state.elapsed_seconds / 60.0, skipped=state.skipped_updates, epoch=state.epoch)
        if w.get("overflows"):
            values["overflows"] = w["overflows"]
            if self.acc.scaler is not None:
                values["loss_scale"] = self.acc.scaler.get_scale()
        self.logger.log("train", state.update, values)
        self._window = defaultdict(float, t0=state.elapsed_seconds)
        self._stop = self._health({"kind": "train", "update": state.update, **values}, broadcast=True) or self._stop

    def _checkpoint_when_due(self, sampler) -> None:
        if self.cfg.save_every and self.state.update % self.cfg.save_every == 0:
            self._save(sampler)

    def _write_model(self, name: str, metrics: dict) -> None:
        """Write the unwrapped model to ``RUN/name`` atomically (temporary directory, then rename)."""
        final, tmp = self.run_dir / name, self.run_dir / f".tmp-{name}"
        shutil.rmtree(tmp, ignore_errors=True)
        self.task.save_model(self.unwrapped, tmp, update=self.state.update, metrics=metrics)
        replace_directory(tmp, final)  # the previous best is never gone before the new one is in place

    def _save(self, sampler) -> Path:
        sampler = sampler or self._sampler
        with self.paused_clock():
            return save_checkpoint(
                self.run_dir, model=self.unwrapped, optimizer=self.optimizer, state=self.state,
                scaler=self.acc.scaler,
                sampler_state={**sampler.state_dict(), "epoch": self.state.epoch, "batches_done": self.state.batches_done},
                extra_files=self.task.checkpoint_files(), keep_last=self.cfg.keep_last, rank=self.acc.process_index,
                world_size=self.acc.num_processes, barrier=self.acc.wait_for_everyone)

    def _resume(self, resume, sampler) -> None:
        self._sampler = sampler
        if resume is False:
            return
        path = checkpoint_to_resume(self.run_dir, resume, self.is_main)
        if path is None:
            return
        self.state, sampler_state = load_checkpoint(
            path, model=self.unwrapped, optimizer=self.optimizer, scaler=self.acc.scaler,
            rank=self.acc.process_index, world_size=self.acc.num_processes, map_location=self.acc.device)
        if sampler_state is not None:
            # The training state is the authority on the data position (the sampler may already
            # have moved to the next epoch when the checkpoint was written).
            sampler.load_state_dict({**sampler_state, "epoch": self.state.epoch,
                                     "batches_done": self.state.batches_done})
        if self.is_main:
            print(f"resuming from {path} (update {self.state.update}, epoch {self.state.epoch})", flush=True)

    def _finish(self, sampler) -> None:
        state = self.state
        if self._window.get("n"):
            self._log_train()
        self._validate()
        self._save(sampler)
        if self.is_main:
            self._write_model("final", {"best_" + self.cfg.best_metric: state.best_metric})
            missed = [snapshot_name(f) for f in self.cfg.snapshot_fractions
                      if snapshot_name(f) not in state.extra.get("snapshots", {})]
            if missed:
                self.logger.message(f"note: not written: {', '.join(missed)} (the run ended at {self.progress():.0%} "
                                    f"of its budget, update {state.update}, or had passed that share when resumed "
                                    "with snapshots asked for)")
            self.logger.log("event", state.update, {"finished": "health" if self.stopped_by_health else "end",
                                                    "minutes": state.elapsed_seconds / 60.0,
                                                    "skipped": state.skipped_updates})
            self._write_summary()
            self.logger.plot()

