"""Offline context distillation's stored teacher (docs/objectives.md): per split, `{split}.npz` with the text
(`tokens`, `loss_weights`) and the prompted teacher's top-k next-token log-probs plus one bucket for the remaining
mass (`TEACHER_KEYS`), and `meta.json`. The writer (`write_split`, driven by tools/teacher_logits.py, which owns the
model) and the trainer's reader (`read_batches`) live here together, so the format has one home.
"""

from __future__ import annotations

import json
import os
import time
from typing import Callable, Iterable

import jax
import numpy as np

TEACHER_KEYS = ("topk_ids", "topk_logprobs", "remainder_logprob")


def split_file(teacher_dir: str, split: str) -> str:
  return os.path.join(teacher_dir, f"{split}.npz")


def write_split(teacher_dir: str, split: str, batches: Iterable[dict], teacher: Callable, max_examples: int = 0) -> dict:
  """Runs `teacher(tokens) -> (topk_ids, topk_logprobs, remainder_logprob)` over distill-family `batches` and writes
  `{split}.npz` (rows of weight 0, the last batch's padding, are dropped; at most `max_examples` rows, 0 = all).
  -> {"examples", "seconds"}."""
  t0 = time.perf_counter()
  cols = {n: [] for n in ("tokens", "loss_weights") + TEACHER_KEYS}
  n = 0
  for b in batches:
    keep = b["loss_weights"].sum(-1) > 0
    for name, v in zip(("tokens", "loss_weights") + TEACHER_KEYS, (b["tokens"], b["loss_weights"]) +
                       tuple(teacher(b["tokens"]))):
      cols[name].append(np.asarray(v)[keep])
    n += int(keep.sum())
    if max_examples and n >= max_examples:
      break
  data = {name: np.concatenate(v)[: max_examples or None] for name, v in cols.items()}
  os.makedirs(teacher_dir, exist_ok=True)
  np.savez(split_file(teacher_dir, split), **data)
  return {"examples": int(len(data["tokens"])), "seconds": time.perf_counter() - t0}


def write_meta(teacher_dir: str, meta: dict) -> None:
  with open(os.path.join(teacher_dir, "meta.json"), "w") as f:
    json.dump(meta, f, indent=2)


def read_batches(config, *, split: str, start_batch: int, train: bool):
  """Batches of the stored teacher file: tokens, loss_weights and the teacher's top-k features.

  Per host: rows i with i % process_count == process_index. Training repeats the file with a fresh permutation
  per epoch (seeded by config.seed; none when data.shuffle is False) and resumes exactly at `start_batch`;
  evaluation makes one pass and pads the last batch with rows of weight 0.
  """
  path = split_file(config.objective.teacher_dir, split)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: write it with `python tools/teacher_logits.py "
                            f"--config=... --out={config.objective.teacher_dir} --splits={split}`")
  with np.load(path) as f:
    data = {k: f[k] for k in ("tokens", "loss_weights") + TEACHER_KEYS}
  data["loss_weights"] = data["loss_weights"].astype(np.float32)
  n_proc, idx = jax.process_count(), jax.process_index()
  data = {k: v[idx::n_proc] for k, v in data.items()}
  n = len(data["tokens"])
  b = int(config.train.batch_size) // n_proc
  if n == 0:
    raise ValueError(f"{path} holds no examples for process {idx}")

  def rows(epoch):
    if train and bool(config.data.shuffle):
      return np.random.default_rng([int(config.seed), epoch]).permutation(n)
    return np.arange(n)

  def gen():
    if not train:
      for s in range(0, n, b):
        sel = np.arange(s, min(s + b, n))
        out = {k: v[sel] for k, v in data.items()}
        if len(sel) < b:
          out = {k: np.concatenate([v, np.zeros((b - len(sel),) + v.shape[1:], v.dtype)]) for k, v in out.items()}
        yield out
      return
    # Training drops the incomplete last batch of an epoch (like the seqio pipeline's drop_remainder).
    per_epoch = n // b
    if per_epoch == 0:
      raise ValueError(f"{path}: {n} examples per process is less than one batch of {b}")
    i = start_batch
    while True:
      epoch, j = divmod(i, per_epoch)
      sel = rows(epoch)[j * b:(j + 1) * b]
      yield {k: v[sel] for k, v in data.items()}
      i += 1

  return gen()
