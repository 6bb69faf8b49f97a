"""The one trainer for every objective.

  python -m hhh.train --config=configs/pretrain.py:tiny --workdir=/tmp/run --config.train.steps=100

An objective (`config.objective.name`) is a pure loss function plus the feature family it consumes; everything else
- sharded state creation, AdamW with warmup and decay, gradient clipping and accumulation, donation, periodic
held-out evaluation, logging, orbax checkpoints with exact resume and a final save on SIGTERM - is shared.

One concern per module: checks (config checks, the resolved accumulation), state (Setup, the train state, the state
a run starts from), step (microbatched train and eval steps), data (the data iterator, the global batch), finite (the
non-finite guard), held_out (held-out metric pooling), mfu (FLOPs per example), record (run.json), loop (`train`),
main (the command), optimizer, aot (ahead-of-time compilation for a TPU slice). The names importers use are here.
"""

from __future__ import annotations

from hhh.train.checks import resolve_grad_accum
from hhh.train.data import global_batch
from hhh.train.held_out import held_out_metrics, pool_batch_metrics
from hhh.train.loop import DiskFullError, train
from hhh.train.mfu import flops_per_example
from hhh.train.state import build, init_state, make_aux, starting_params
from hhh.train.step import jit_eval_step, jit_train_step

__all__ = ["DiskFullError", "build", "flops_per_example", "global_batch", "held_out_metrics", "init_state",
           "jit_eval_step", "jit_train_step", "make_aux", "pool_batch_metrics", "resolve_grad_accum",
           "starting_params", "train"]
