"""The trainer's config checks: every training number in range and every batch dividing the mesh, each refused with
an error that names the problem before anything is compiled, and `train.grad_accum` resolved (0 = "auto" from
`train.microbatch_per_device` and the data-parallel size). `hhh.train.state.build` calls `check_config` once per
run and keeps the accumulation it returns."""

from __future__ import annotations

import jax
import ml_collections
import numpy as np

from hhh import objectives
from hhh.core import sharding
from hhh.core.errors import ConfigError


def check_config(config: ml_collections.ConfigDict, mesh, objective: objectives.Objective) -> int:
  """Errors that name the problem, before anything is compiled. Returns the resolved accumulation
  (`resolve_grad_accum`)."""
  for key, low in (("train.batch_size", 1), ("data.seq_len", 1), ("train.steps", 1), ("train.log_every", 1),
                   ("train.checkpoint_every", 1), ("train.keep_checkpoints", 1), ("train.eval_every", 0),
                   ("train.eval_batches", 0), ("model.max_len", 1)):
    section, field = key.split(".")
    value = config[section][field]
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
      why = {"train.checkpoint_every": " (steps between saves; the final step is always saved)",
             "train.keep_checkpoints": " (how many recent checkpoints to keep; the newest is never deleted)",
             "train.eval_every": " (0 = no held-out evaluation during training)"}.get(key, "")
      raise ConfigError(f"{key} must be an integer >= {low}{why}, got {value!r}")
  if objective.family == "comparison" and int(config.data.num_responses) < 2:
    raise ConfigError(f"data.num_responses must be >= 2 for a comparison objective, got {config.data.num_responses}")
  dp = sharding.data_parallel_size(mesh)
  b, accum = int(config.train.batch_size), resolve_grad_accum(config, mesh)
  if b % accum:
    raise ConfigError(f"train.batch_size={b} is not divisible by train.grad_accum={accum}")
  if (b // accum) % dp:
    raise ConfigError(f"the global batch per accumulation step ({b} / grad_accum {accum} = {b // accum}) is not "
                     f"divisible by the data-parallel size {dp} (mesh slice x data x fsdp = "
                     f"{dict((a, mesh.shape[a]) for a in sharding.BATCH_AXES)})")
  if b % jax.process_count():
    raise ConfigError(f"train.batch_size={b} is not divisible by the {jax.process_count()} processes")
  if int(config.data.seq_len) > int(config.model.max_len):
    raise ConfigError(f"data.seq_len={config.data.seq_len} is longer than the model's context "
                     f"model.max_len={config.model.max_len}")
  return accum


def resolve_grad_accum(config: ml_collections.ConfigDict, mesh) -> int:
  """`train.grad_accum`, or for 0 ("auto") the number of microbatches that gives every data-parallel device
  `train.microbatch_per_device` examples per microbatch (the paper sizes' default: the slice decides the
  accumulation, so one config fits any slice size)."""
  accum = int(config.train.grad_accum)
  if accum >= 1:
    return accum
  if accum < 0:
    raise ConfigError(f"train.grad_accum must be >= 1, or 0 for auto (from train.microbatch_per_device), got {accum}")
  per_device = int(config.train.microbatch_per_device)
  if per_device < 1:
    raise ConfigError(f"train.grad_accum=0 (auto) needs train.microbatch_per_device >= 1, got {per_device}")
  dp, b = sharding.data_parallel_size(mesh), int(config.train.batch_size)
  if b % (dp * per_device):
    raise ConfigError(f"train.grad_accum=0 (auto): train.batch_size={b} is not divisible by data-parallel size {dp} x "
                      f"train.microbatch_per_device={per_device}; set train.grad_accum or the batch size")
  return b // (dp * per_device)
