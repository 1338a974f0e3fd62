"""The trainer's side of the health monitor (``sew.train.health``): a mixin of ``sew.train.loop.Trainer``.

Every logged train and valid record goes to the task's monitor on the main process; a finding is
logged as a ``health`` record (and printed once); ``stop_on_health`` turns it into the end of the
run, decided on the main process and broadcast. ``RUN/summary.json`` is written when the run ends.
"""

from __future__ import annotations

from sew.train.health import SUMMARY_FILE, Finding


class HealthHooks:
    """Methods of ``Trainer`` (which sets ``monitor``, ``stopped_by_health``, ``logger``, ``acc``, ``cfg``,
    ``state``, ``run_dir`` and ``is_main``)."""

    def _replay_health(self) -> None:
        """A resumed run's monitor: the log's records up to the checkpoint, replayed silently."""
        if self.monitor is None or not self.is_main or not self.state.update:
            return
        from sew.train.logs import read_log

        self.monitor.replay(r for r in read_log(self.run_dir)
                            if r.get("kind") in ("train", "valid") and r["update"] <= self.state.update)

    def _health(self, record: dict, broadcast: bool) -> bool:
        """Show ``record`` to the monitor (main process); True when ``stop_on_health`` ends the run.
        ``broadcast``: every process calls this at the same update and takes the main one's decision."""
        stop = [False]
        if self.monitor is not None and self.is_main:
            for finding in self.monitor.observe(record):
                if finding.recovered is not None:  # a standing finding withdrawn: said, never a reason to stop
                    self.logger.log("health", finding.recovered, {"symptom": "recovered", "from": finding.symptom,
                                                                  "message": finding.recovery})
                    continue
                self.logger.log("health", finding.update, {"symptom": finding.symptom, "message": finding.message,
                                                           **finding.values})
                if self.cfg.stop_on_health:
                    stop[0] = True
        if broadcast and self.cfg.stop_on_health and self.acc.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            broadcast_object_list(stop)
        if stop[0] and not self.stopped_by_health:
            self.stopped_by_health = True
            self.logger.message(f"--stop-on-health: stopping at update {self.state.update}")
        return stop[0]

    def _write_summary(self) -> None:
        """``RUN/summary.json``: where the run ended, its health findings, its last logged numbers."""
        from sew.files import write_json
        from sew.train.logs import read_log

        state = self.state
        last = {kind: next((r for r in reversed(read_log(self.run_dir)) if r.get("kind") == kind), None)
                for kind in ("train", "valid")}
        findings = self.monitor.findings if self.monitor is not None else []
        write_json(self.run_dir / SUMMARY_FILE, {
            "update": state.update, "minutes": state.elapsed_seconds / 60.0, "skipped": state.skipped_updates,
            "best_metric": state.best_metric, "best_update": state.best_update,
            "monitored": self.monitor is not None, "healthy": all(f.recovered is not None for f in findings),
            "stopped_by_health": self.stopped_by_health, "health": [f.to_dict() for f in findings],
            "last_train": last["train"], "last_valid": last["valid"]})

    def _health_stopped_run(self, what: str, streak: int) -> None:
        """The run stops on non-finite updates: say it as a divergence finding (once) and write the summary."""
        state = self.state
        if self.monitor is not None and self.is_main and not self.monitor.said("divergence"):
            finding = Finding("divergence", state.update,
                              f"divergence: {streak} consecutive updates had a non-finite {what} "
                              f"at update {state.update}; the run stopped", {"skipped": state.skipped_updates})
            self.monitor.findings.append(finding)
            self.logger.log("health", state.update, {"symptom": finding.symptom, "message": finding.message,
                                                     **finding.values})
        if self.is_main:
            self._write_summary()
