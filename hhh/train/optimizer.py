"""The optimiser of every objective: AdamW (weight decay on matrices only) after global-norm clipping, with linear
warmup and cosine / linear / constant decay (config.optim; docs/contracts.md)."""

from __future__ import annotations

import math

import jax
import ml_collections
import optax

from hhh.core.errors import ConfigError


# Every optimiser number, with the range it must lie in: (key, low, high, low_open, high_open, what it is).
RANGES = (
    ("lr", 0.0, math.inf, False, True, "the peak learning rate; 0 trains nothing"),
    ("end_lr_fraction", 0.0, 1.0, False, False, "final lr = lr * end_lr_fraction"),
    ("weight_decay", 0.0, math.inf, False, True, "AdamW decoupled weight decay"),
    ("b1", 0.0, 1.0, False, True, "Adam's first-moment decay"),
    ("b2", 0.0, 1.0, False, True, "Adam's second-moment decay"),
    ("eps", 0.0, math.inf, True, True, "Adam's denominator epsilon"),
    ("clip_grad_norm", -math.inf, math.inf, True, True, "<= 0 disables clipping"),
)


def check_optim(optim: ml_collections.ConfigDict) -> None:
  """Refuses an optimiser number that cannot train (negative or non-finite lr, b1 >= 1, ...) before any step."""
  for key, low, high, low_open, high_open, what in RANGES:
    value = optim[key]
    try:
      x = float(value)
    except (TypeError, ValueError):
      x = math.nan
    if isinstance(value, bool) or not math.isfinite(x) or (x <= low if low_open else x < low) or (
        x >= high if high_open else x > high):
      interval = ("(" if low_open else "[") + f"{low:g}, {high:g}" + (")" if high_open else "]")
      raise ConfigError(f"optim.{key} must be a finite number in {interval} ({what}), got {value!r}")
  steps = optim.warmup_steps
  if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
    raise ConfigError(f"optim.warmup_steps must be an integer >= 0, got {steps!r}")


def learning_rate_schedule(optim: ml_collections.ConfigDict, steps: int) -> optax.Schedule:
  """Linear warmup to `lr`, then cosine or linear decay to `lr * end_lr_fraction` at `steps` (or constant)."""
  check_optim(optim)
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
