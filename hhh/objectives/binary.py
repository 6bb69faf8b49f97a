"""Binary discrimination: each sample (context + response + end-of-context token) is classified good (1) or bad (0)
on its own by a logistic loss on the score head at the end-of-context token. As a ranker (hhh.scoring.comparison_scores)
the two samples of a comparison are compared by their scores.

Loss: mean over valid samples of -[y log sigmoid(r) + (1 - y) log sigmoid(-r)].
Metrics: accuracy (sign of r vs label), mean_score_good, mean_score_bad, samples.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from hhh import scoring

FAMILY = "binary"
METRIC_WEIGHTS = {"loss": "samples", "accuracy": "samples"}


def loss_from_scores(scores, batch):
  y = batch["label"].astype(jnp.float32)
  v = batch["valid"].astype(jnp.float32)
  losses = y * jax.nn.softplus(-scores) + (1.0 - y) * jax.nn.softplus(scores)
  n = jnp.maximum(v.sum(), 1.0)
  correct = ((scores > 0) == (y > 0.5)).astype(jnp.float32)
  good, bad = v * y, v * (1.0 - y)
  metrics = {"accuracy": (correct * v).sum() / n,
             "mean_score_good": (scores * good).sum() / jnp.maximum(good.sum(), 1.0),
             "mean_score_bad": (scores * bad).sum() / jnp.maximum(bad.sum(), 1.0),
             "samples": v.sum()}
  return (losses * v).sum() / n, metrics


def loss_fn(params, batch, *, model, config, rng=None, aux=None):
  del config, rng, aux
  scores = scoring.eoc_scores(model, params, batch["tokens"], batch["eoc_index"])  # [B]
  return loss_from_scores(scores, batch)
