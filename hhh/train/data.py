"""The trainer's data: this host's batches of the run's task from its position (`start_batch`, the number of batches
already trained on, kept in every checkpoint so a resume reads on exactly where the run stopped), through the
objective's own hook when it brings its data (offline distillation's teacher files) else the seqio pipeline; and the
global batch assembled from every host's piece."""

from __future__ import annotations

from typing import Iterator

import jax
import numpy as np

from hhh import objectives
from hhh.core import sharding


def data_iterator(config, objective: objectives.Objective, *, split: str, start_batch: int,
                  train: bool) -> Iterator[dict]:
  """This host's batches of `split` from batch `start_batch` on (`train`: the training task, shuffled and repeated;
  else the held-out task once, in order). `objective` is the run's (hhh.train.state.Setup.objective)."""
  if objective.batches is not None:  # an objective may bring its own data (offline distillation: teacher files)
    own = objective.batches(config, split=split, start_batch=start_batch, train=train)
    if own is not None:
      return own
  from hhh.data import pipeline  # pylint: disable=g-import-not-at-top  (TensorFlow import is slow)
  task = config.data.task if train or not config.data.eval_task else config.data.eval_task
  per_host = int(config.train.batch_size) // jax.process_count()
  family = objective.family
  return pipeline.make_iterator(
      task, split=split, family=family, seq_len=int(config.data.seq_len), batch_size=per_host,
      vocab=config.data.vocab, seed=int(config.seed), shuffle=bool(config.data.shuffle) and train, repeat=train,
      shard_index=jax.process_index(), num_shards=jax.process_count(), start_batch=start_batch,
      k=int(config.data.num_responses))


def global_batch(setup, local_batch: dict):
  """Assembles the global batch from this host's piece (every host passes its own rows) on `setup`'s mesh."""
  return {k: jax.make_array_from_process_local_data(sharding.batch_sharding(setup.mesh, np.ndim(v)), np.asarray(v))
          for k, v in local_batch.items()}
