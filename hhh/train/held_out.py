"""Held-out evaluation's numbers: per-batch metric dicts pooled into one, a metric the objective declares a mean
over units (its METRIC_WEIGHTS, e.g. comparisons or tokens) weighted by those units, the others averaged per batch."""

from __future__ import annotations

import jax

from hhh.train.data import global_batch


def held_out_metrics(setup, params, eval_step, batches, rng, aux=None) -> dict:
  """Held-out metrics over `batches`: a metric the objective declares a mean over units (METRIC_WEIGHTS) is pooled,
  sum(mean x units) / sum(units), so unequal batches (packing, ties, the padded last batch) weigh by their units;
  the others are averaged per batch."""
  return pool_batch_metrics([jax.device_get(eval_step(params, global_batch(setup, local), rng, aux))
                             for local in batches], setup.objective.metric_weights)


def pool_batch_metrics(per_batch: list[dict], weights: dict) -> dict:
  """Per-batch metric dicts -> one dict: weighted means for `weights` ({metric: count metric}), else batch means."""
  out = {}
  for k in (per_batch[0] if per_batch else {}):
    vals = [float(m[k]) for m in per_batch]
    if k in weights:
      units = [float(m[weights[k]]) for m in per_batch]
      out[k] = sum(v * u for v, u in zip(vals, units)) / sum(units) if sum(units) > 0 else 0.0
    else:
      out[k] = sum(vals) / len(vals)
  return out
