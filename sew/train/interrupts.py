"""How a run ends early and can be continued: preemption signals and the exit status a job script reads.

Clusters announce preemption with a signal: SIGTERM (Kubernetes, SLURM at the end of a job's time, ``kill``)
or SIGUSR1 (SLURM's ``--signal=USR1@SECONDS``). While a run trains, either signal only sets a flag; the
trainer looks at it after each complete update, writes a checkpoint of that update and raises
``Preempted``. The commands then exit with ``PREEMPTED_EXIT`` (75, ``EX_TEMPFAIL``: try again later), so a
job script can requeue the same command, which continues exactly where the run stopped::

    sew pretrain --preset base --run-dir runs/pt; [ $? -eq 75 ] && scontrol requeue "$SLURM_JOB_ID"
"""

from __future__ import annotations

import contextlib
import signal
import threading

import torch

from sew.train.state import set_rng_state

PREEMPTED_EXIT = 75  # os.EX_TEMPFAIL
SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGUSR1") if hasattr(signal, name))


class InterruptHooks:
    """Methods of ``Trainer`` (which sets ``acc``, ``state``, ``optimizer``, ``logger``, ``_boundary``,
    ``_stepping`` and provides ``_save``): how a run that is stopped early saves."""

    def _signalled(self, signals: list[int]) -> bool:
        """Whether a preemption signal came; in a distributed run, to any process (all stop at one update)."""
        if self.acc.num_processes == 1:
            return bool(signals)
        flag = torch.tensor([float(signals[0]) if signals else 0.0], device=self.acc.device)
        flag = self.acc.reduce(flag, reduction="sum")
        if float(flag) and not signals:
            signals.append(int(signal.SIGTERM))  # another process's signal
        return bool(float(flag))

    def _save_at_boundary(self, sampler, err: BaseException) -> None:
        """Ctrl-C or an error: back to the end of the last complete update (data position and RNG), and
        save it, unless the error came inside the optimiser step (the weights may be half updated)."""
        if self._stepping:
            self.logger.message(f"{type(err).__name__} inside the optimiser step: no checkpoint written; the last "
                                "periodic one stands")
            return
        self.logger.message(f"{'interrupted' if isinstance(err, KeyboardInterrupt) else type(err).__name__}: "
                            f"writing a checkpoint of update {self.state.update} to resume from")
        self.state.batches_done, self.state.epoch, rng = self._boundary
        set_rng_state(rng)
        self.optimizer.zero_grad(set_to_none=True)
        try:
            self._save(sampler)
        except Exception as save_err:  # never hide the error that ended the run
            self.logger.message(f"the checkpoint could not be written either: {save_err}")


class Preempted(Exception):
    """Raised by ``Trainer.fit`` after a preemption signal, once the checkpoint of the last update is written."""

    def __init__(self, signum: int, update: int, checkpoint) -> None:
        self.signum, self.update, self.checkpoint = signum, update, checkpoint
        super().__init__(f"{signal.Signals(signum).name} received: stopped after update {update}; checkpoint "
                         f"{checkpoint}. Run the same command again to continue (exit status {PREEMPTED_EXIT})")


@contextlib.contextmanager
def preemption_signals():
    """Catch ``SIGNALS`` while inside; yields a list that holds the signal numbers received. The previous
    handlers come back on the way out. Outside the main thread (where Python cannot install handlers)
    nothing is caught."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {signum: signal.signal(signum, lambda signum, frame: received.append(signum)) for signum in SIGNALS}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
