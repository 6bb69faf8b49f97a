"""Imitation learning: next-token cross-entropy on the preferred responses only.

The `lab_imitation`-style tasks (kind "imitation") put loss weight 0 on context tokens, so the loss is the LM loss
over response tokens (and their EOS). As a ranker, an imitation model scores a response by its mean per-token
log-probability given the context: `hhh.scoring.sequence_logprobs` / `comparison_scores(...,
"mean_logprob")`.
"""

from __future__ import annotations

from hhh.objectives import lm

FAMILY = "lm"
METRIC_WEIGHTS = {"loss": "response_tokens", "token_accuracy": "response_tokens"}


def loss_fn(params, batch, *, model, config, rng=None, aux=None):
  loss, metrics = lm.loss_fn(params, batch, model=model, config=config, rng=rng, aux=aux)
  return loss, dict(metrics, response_tokens=metrics.pop("tokens"))
