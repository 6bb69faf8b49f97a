"""The optimiser of every objective: AdamW (weight decay on matrices only) after global-norm clipping, with linear
warmup and cosine / linear / constant decay (config.optim; docs/contracts.md)."""

from __future__ import annotations

import jax
import ml_collections
import optax

from hhh.errors import ConfigError


def learning_rate_schedule(optim: ml_collections.ConfigDict, steps: int) -> optax.Schedule:
  """Linear warmup to `lr`, then cosine or linear decay to `lr * end_lr_fraction` at `steps` (or constant)."""
  peak, warmup = float(optim.lr), int(optim.warmup_steps)
  end = peak * float(optim.end_lr_fraction)
  decay_steps = max(steps - warmup, 1)
  if optim.schedule == "cosine":
    decay = optax.cosine_decay_schedule(peak, decay_steps, alpha=float(optim.end_lr_fraction))
  elif optim.schedule == "linear":
    decay = optax.linear_schedule(peak, end, decay_steps)
  elif optim.schedule == "constant":
    decay = optax.constant_schedule(peak)
  else:
    raise ConfigError(f"unknown optim.schedule {optim.schedule!r}; choose cosine, linear or constant")
  if warmup <= 0:
    return decay
  return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), decay], [warmup])


def make_optimizer(optim: ml_collections.ConfigDict, steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  schedule = learning_rate_schedule(optim, steps)
  # Weight decay on matrices only (not on norm scales and biases).
  decay_mask = lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)  # noqa: E731
  parts = []
  if float(optim.clip_grad_norm) > 0:
    parts.append(optax.clip_by_global_norm(float(optim.clip_grad_norm)))
  parts.append(optax.adamw(schedule, b1=float(optim.b1), b2=float(optim.b2), eps=float(optim.eps),
                           weight_decay=float(optim.weight_decay), mask=decay_mask))
  return optax.chain(*parts), schedule
