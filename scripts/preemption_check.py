"""Preempt a run three times with SIGTERM and check that it still ends with the weights of an uninterrupted run.

    python scripts/preemption_check.py                 # fine-tuning and pretraining, 0 and 2 data workers
    python scripts/preemption_check.py --tasks finetune --workers 2 --seed 5

For each task and worker count: one uninterrupted run, then the same command started again and again in
a fresh run directory, each time sent SIGTERM (to its whole process group, as a cluster does, data workers
included) when its log reaches a randomly drawn update: the first before the first checkpoint, the others
after it; the last start runs to the end. Each stop must exit 75 with a checkpoint of the update it
stopped at (or, for a signal that comes before training starts, die of it with nothing to lose); the
final model and optimizer state must equal the uninterrupted run's, bitwise. Exit status 1 when one does not.
Tiny models on the built-in corpus: a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

UPDATES, SAVE_EVERY = 24, 8
COMMON = ["--no-progress", "--threads", "1", "--max-update", str(UPDATES), "--set", "train.max_minutes=null",
          "--set", f"train.save_every={SAVE_EVERY}", "--set", "train.keep_last=1", "--set", "train.log_every=1"]
TASKS = {
    "finetune": ["finetune", "--seed", "3", "--valid-split", "none", "--test-split", "",
                 "--set", "model_overrides.num_layers=1", "--set", "train.max_tokens=96000",
                 "--set", "train.validate_every_minutes=null", "--set", "data.valid_max_tokens=96000"],
    "pretrain": ["pretrain", "--preset", "quick-contrastive", "--seed", "3",
                 "--set", "model_overrides={num_layers: 2, layerdrop: 0.0}", "--set", "objective.num_negatives=20",
                 "--set", "objective.mlp_hidden_size=256", "--set", "objective.codebook_entries=64",
                 "--set", "data.max_sample_size=16000", "--set", "data.min_sample_size=16000",
                 "--set", "data.valid_split=null", "--set", "train.max_tokens=64000",
                 "--set", "train.warmup_updates=2", "--set", "train.validate_every=0", "--set", "train.lr=2e-3"],
}


def command(task: str, run_dir: Path, workers: int) -> list[str]:
    return [sys.executable, "-m", "sew", *TASKS[task], "--run-dir", str(run_dir), *COMMON,
            "--set", f"train.num_workers={workers}"]


def last_update(run_dir: Path) -> int:
    """The newest train record's update in RUN/log.jsonl (0 before the first)."""
    try:
        lines = (run_dir / "log.jsonl").read_text().splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("kind") == "train":
            return int(record["update"])
    return 0


def start(cmd: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # its own process group, as a batch job has


def preempt_at(cmd: list[str], run_dir: Path, update: int) -> dict:
    """Start ``cmd``, SIGTERM its process group once its log reaches ``update`` (or at once when ``update`` is 0)."""
    process, begun = start(cmd), time.time()
    while update and last_update(run_dir) < update and process.poll() is None:
        time.sleep(0.01)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    out, _ = process.communicate(timeout=600)
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").glob("update_*")) if run_dir.is_dir() else []
    return {"target_update": update, "exit": process.returncode, "logged_update": last_update(run_dir),
            "checkpoints": checkpoints, "seconds": round(time.time() - begun, 1),
            "said": next((line for line in out.splitlines() if "received" in line), "")[:160]}


def final_state(run_dir: Path) -> dict[str, torch.Tensor]:
    checkpoint = run_dir / "checkpoints" / f"update_{UPDATES:08d}"
    return {**{f"model.{k}": v for k, v in load_file(str(checkpoint / "model.safetensors")).items()},
            **{f"optimizer.{k}": v for k, v in load_file(str(checkpoint / "optimizer.safetensors")).items()}}


def check(task: str, workers: int, root: Path, rng: random.Random) -> dict:
    reference, preempted = root / f"{task}-w{workers}-reference", root / f"{task}-w{workers}-preempted"
    done = subprocess.run(command(task, reference, workers), env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{task}: the uninterrupted run failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    targets = [rng.randint(0, SAVE_EVERY - 1)] + sorted(rng.sample(range(SAVE_EVERY + 1, UPDATES), 2))
    stops = [preempt_at(command(task, preempted, workers), preempted, u) for u in targets]
    last = subprocess.run(command(task, preempted, workers), env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True)
    a, b = final_state(reference), final_state(preempted) if last.returncode == 0 else {}
    equal = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    expected = all(s["exit"] == 75 or (s["exit"] == -signal.SIGTERM and s["logged_update"] == 0) for s in stops)
    return {"task": task, "workers": workers, "stops": stops, "final_exit": last.returncode,
            "bitwise_equal": equal, "exits_as_documented": expected}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS), help="which runs (default: both)")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="data workers to try (default: 0 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the preemption moments (default: 0)")
    p.add_argument("--out", default="results/preemption", help="run directories and results.json (default: %(default)s)")
    args = p.parse_args()
    root = Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True)
    rng, results = random.Random(args.seed), []
    for task in args.tasks:
        for workers in args.workers:
            results.append(check(task, workers, root, rng))
            r = results[-1]
            stops = "; ".join(f"at update {s['target_update']}: exit {s['exit']}, logged {s['logged_update']}, "
                              f"kept {','.join(s['checkpoints']) or 'none'}" for s in r["stops"])
            print(f"{task}, {workers} workers: {stops}; final run exit {r['final_exit']}; "
                  f"bitwise equal to the uninterrupted run: {r['bitwise_equal']}", flush=True)
    same = {}
    for task in args.tasks:  # data workers change nothing: the uninterrupted runs agree bitwise
        if len(args.workers) > 1:
            states = [final_state(root / f"{task}-w{w}-reference") for w in args.workers]
            same[task] = all(a.keys() == states[0].keys() and all(torch.equal(a[k], states[0][k]) for k in a)
                             for a in states[1:])
            print(f"{task}: uninterrupted runs with {' and '.join(map(str, args.workers))} workers bitwise equal: "
                  f"{same[task]}", flush=True)
    (root / "results.json").write_text(json.dumps({"runs": results, "workers_agree": same}, indent=2) + "\n")
    print(f"wrote {root / 'results.json'}")
    ok = all(r["bitwise_equal"] and r["exits_as_documented"] for r in results) and all(same.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
