"""Reading a run's health after the fact: ``sew pretrain --check RUN`` (a replay of ``RUN/log.jsonl``),
``RUN/summary.json`` and the health line the training commands print last (``sew.train.health``)."""

from __future__ import annotations

import json
from pathlib import Path

from sew.train.health import SUMMARY_FILE, WINDOW, Finding, HealthMonitor, monitor_for_run, summary_line

def check_run(run_dir) -> tuple[HealthMonitor, list[dict]]:
    """Replay ``RUN/log.jsonl`` through a fresh monitor: (the monitor with its findings, the train records)."""
    from sew.train.logs import read_log

    monitor = monitor_for_run(run_dir)
    records = [r for r in read_log(run_dir) if r.get("kind") in ("train", "valid")]
    if not records:
        raise ValueError(f"{run_dir}: log.jsonl has no train or valid record yet")
    monitor.replay(records)
    return monitor, [r for r in records if r["kind"] == "train"]


REPORT_KEYS = ("loss", "contrastive", "chance", "accuracy", "prob_perplexity", "code_perplexity", "time_share",
               "empty", "gnorm")


def check_report(run_dir) -> tuple[str, bool]:
    """What ``sew pretrain --check RUN`` prints, and whether the run is healthy."""
    monitor, train = check_run(run_dir)
    last = train[-1] if train else {}
    numbers = []
    for key in REPORT_KEYS:
        value = monitor._window(key) if train else None
        if value is not None:
            numbers.append(f"{key} {value:.4g}")
    lines = [f"{run_dir}: {last.get('update', 0)} updates, {float(last.get('minutes', 0.0)):.1f} min of training"]
    if numbers:
        lines.append(f"last {WINDOW} updates: " + ", ".join(numbers))
    lines += [line for f in monitor.findings for line in
              [f"update {f.update}: {f.message}"] + ([f"update {f.recovered}: {f.recovery}"] if f.recovery else [])]
    lines.append(summary_line(monitor.findings))
    return "\n".join(lines), monitor.healthy


def read_summary(run_dir) -> dict | None:
    path = Path(run_dir) / SUMMARY_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def final_line(run_dir) -> str:
    """The health line printed last by the training commands."""
    summary = read_summary(run_dir)
    if summary is None or "health" not in summary:
        return "health: not monitored"
    findings = [Finding(**f) for f in summary["health"]]
    line = summary_line(findings)
    if summary.get("stopped_by_health"):
        line += " (stopped by --stop-on-health)"
    return line + f"; details in {run_dir}/{SUMMARY_FILE}"
