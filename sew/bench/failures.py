"""Failures inside a benchmark: recorded with their error, so one model, variant or phase that
breaks costs only its own rows and the run still writes its result files."""

from __future__ import annotations

import sys
import traceback


def describe_error(err: BaseException) -> str:
    """``Type: message`` on one line."""
    return f"{type(err).__name__}: {' '.join(str(err).split())}"


class FailureLog:
    """The failures of one benchmark run, in the order they happened."""

    def __init__(self) -> None:
        self.records: list[dict] = []

    def attempt(self, model: str, phase: str, fn):
        """``fn()``, or None after recording and announcing its error (Ctrl-C still stops the run)."""
        try:
            return fn()
        except Exception as err:
            self.add(model, phase, describe_error(err), traceback.format_exc())
            return None

    def add(self, model: str, phase: str, error: str, trace: str | None = None) -> None:
        self.records.append({"model": model, "phase": phase, "error": error, **({"traceback": trace} if trace else {})})
        print(f"error: {model}: {phase} failed: {error}; recorded in the results, the run goes on",
              file=sys.stderr, flush=True)

    def announce(self) -> None:
        """One line on stderr naming every failed part, when there is any (a run's last words)."""
        if self.records:
            print(f"{len(self.records)} part(s) failed, recorded under 'failures' in results.json: "
                  + "; ".join(f"{r['model']} {r['phase']}" for r in self.records), file=sys.stderr)

    def __len__(self) -> int:
        return len(self.records)

    def markdown(self) -> str:
        if not self.records:
            return ""
        lines = ["## Failures", "", "| model | phase | error |", "|---|---|---|"]
        lines += [f"| {r['model']} | {r['phase']} | {r['error'].replace('|', '/')[:300]} |" for r in self.records]
        return "\n".join(lines)
