"""Ranked preference modelling: -log sigmoid(r_better - r_worse - margin), averaged over pairs.

The score r of a sample is the score head read at its end-of-context token. A comparison of K ranked responses
is run as K samples in ONE forward pass ([B, K, L] tokens) and gives every pair (i, j) with rank_i > rank_j among
its valid responses; equal ranks (ties) give no pair. The loss is the mean over all pairs of the batch, so a K-way
list weighs as many pairs as it has (the paper: "mean over the pairs of a batch").

config (config.objective): margin (float, default 0), margin_mode: "constant" (r_b - r_w must exceed `margin`) or
"score_gap" (must exceed margin * (rank_b - rank_w), larger for more clearly separated responses).
Metrics: accuracy (pairwise, ties of model scores count 1/2), mean_better, mean_worse, mean_margin (of r_b - r_w),
ece (10 bins, of sigmoid(r_b - r_w), both orders; per batch), pairs (per batch).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from hhh import scoring
from hhh.core import metrics

FAMILY = "comparison"
DEFAULTS = {"margin": 0.0, "margin_mode": "constant"}
METRIC_WEIGHTS = {k: "pairs" for k in ("loss", "accuracy", "mean_better", "mean_worse", "mean_margin")}


def pair_losses(scores, rank_scores, valid, margin: float = 0.0, margin_mode: str = "constant"):
  """(losses [..., K, K], pair mask [..., K, K]): loss of pair (i better, j worse) at [i, j]."""
  mask = metrics.pair_mask(rank_scores, valid)
  d = scores[..., :, None] - scores[..., None, :]
  if margin_mode == "constant":
    m = margin
  elif margin_mode == "score_gap":
    m = margin * (rank_scores[..., :, None] - rank_scores[..., None, :])
  else:
    raise ValueError(f"unknown objective.margin_mode {margin_mode!r}; choose constant or score_gap")
  return jax.nn.softplus(-(d - m)), mask  # softplus(-x) == -log sigmoid(x), stable for any x


def loss_from_scores(scores, batch, config):
  losses, mask = pair_losses(scores, batch["score"], batch["valid"], float(config.margin), config.margin_mode)
  n = mask.sum()
  loss = (losses * mask).sum() / jnp.maximum(n, 1.0)
  st = metrics.pair_stats(scores, batch["score"], batch["valid"])
  d = jnp.maximum(st["pairs"], 1.0)
  return loss, {"accuracy": st["correct"] / d, "mean_better": st["better"] / d, "mean_worse": st["worse"] / d,
                "mean_margin": st["margin"] / d, "ece": metrics.pairwise_ece(scores, batch["score"], batch["valid"]),
                "pairs": st["pairs"]}


def loss_fn(params, batch, *, model, config, rng=None, aux=None):
  del rng, aux
  scores = scoring.eoc_scores(model, params, batch["tokens"], batch["eoc_index"])  # [B, K]
  return loss_from_scores(scores, batch, config)
