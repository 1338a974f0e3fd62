"""Two CPU processes under ``accelerate launch``: different data, and the first update of one process.

accelerate 1.x starts several CPU processes only through torchrun (``--multi_gpu``; its ``--cpu``
flag alone starts one process unless MPI is set up); ``sew pretrain`` then asks accelerate for a
multi-CPU job (gloo) because the machine has no GPU.
"""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from sew.data.dataset import collate
from sew.data.rejects import RejectLog
from sew.data.synth import default_corpus
from sew.pretrain.recipe import load_recipe
from sew.pretrain.run import build_datasets, build_model
from sew.pretrain.task import PretrainTask, micro_seed
from sew.train.setup import build_optimizer

from .helpers import REPO, TINY_SET, checkpoint_weights, read_log, tiny_args


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_first_update_equals_one_process_with_the_same_global_batch(tmp_path):
    """``accelerate launch --num_processes 2``: each process takes its own shard, and the first
    update equals the fairseq update on the union computed here in one process: sum of both losses
    over the total number of targets (BatchNorm statistics per micro-batch, as per GPU in fairseq)."""
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()),
           "-m", "sew", *tiny_args(run, 3, "--save-every", "1", "--keep-last", "3"), "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 process(es)" in proc.stdout
    after = checkpoint_weights(run, 1)
    lr = read_log(run)[0]["lr"]

    recipe = load_recipe("quick-contrastive", TINY_SET + ["train.max_update=3"])
    torch.manual_seed(recipe.train.seed)
    model = build_model(recipe).train()
    initial = {k: v.detach().clone() for k, v in model.named_parameters()}
    train, *_ = build_datasets(recipe, default_corpus(), RejectLog())
    batches = []
    for shard in range(2):
        sampler = train.sampler(max_tokens=recipe.train.max_tokens, seed=recipe.train.seed, num_shards=2,
                                shard_index=shard)
        batches.append(collate([train[i] for i in next(iter(sampler))]))
    assert not set(batches[0].ids) & set(batches[1].ids)  # each process sees different data
    task = PretrainTask(recipe.objective, seed=recipe.train.seed, crop=recipe.data.crop_to_shortest)
    outs = [task.forward(model, batch, 0, micro_seed(recipe.train.seed, 0, rank))
            for rank, batch in enumerate(batches)]
    total = sum(int(o.sample_size) for o in outs)
    (sum(o.loss for o in outs) / total).backward()
    t = recipe.train
    optimizer = build_optimizer(model, lr, betas=t.betas, eps=t.adam_eps, weight_decay=t.weight_decay)
    optimizer.step()
    worst = max((p.detach() - after[name]).abs().max().item() for name, p in model.named_parameters())
    moved = max((initial[name] - after[name]).abs().max().item() for name in initial)
    print(f"first update: max |two processes - one process| = {worst:.2e} (the update itself moved weights by "
          f"up to {moved:.2e})")
    assert worst <= 1e-5

