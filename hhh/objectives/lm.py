"""Language modelling: next-token cross-entropy on packed text (also imitation learning when the data's loss
weights are zero on context tokens).

The vocabulary head runs in chunks of `model.logits_chunk` positions (hhh.models.transformer.per_position): the
per-token losses equal the whole-sequence ones, without the [B, T, V] f32 logits ever being live at once.
"""

from __future__ import annotations

import jax.numpy as jnp
import optax

from hhh.models import transformer

FAMILY = "lm"
METRIC_WEIGHTS = {"loss": "tokens", "token_accuracy": "tokens"}


def token_losses(logits, targets):
  """Per-token cross-entropy in f32: [..., L, V], [..., L] -> [..., L]."""
  return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)


def token_losses_and_hits(params, hidden, targets, cfg):
  """(cross-entropy, argmax == target) per position of final hidden states [B, L, D], by chunks of positions."""
  def per_chunk(h, t):
    logits = transformer.unembed(params, h, cfg)
    return token_losses(logits, t), logits.argmax(-1) == t
  return transformer.per_position(per_chunk, (hidden, targets), cfg.logits_chunk)


def loss_fn(params, batch, *, model, config, rng=None, aux=None):
  del config, rng, aux
  out = model.apply({"params": params}, batch["decoder_input_tokens"], positions=batch["decoder_positions"],
                    segment_ids=batch["decoder_segment_ids"], return_logits=False, return_hidden=True)
  weights = batch["decoder_loss_weights"].astype(jnp.float32)
  losses, hits = token_losses_and_hits(params, out["hidden"], batch["decoder_target_tokens"], model.cfg)
  n = jnp.maximum(weights.sum(), 1.0)
  loss = (losses * weights).sum() / n
  correct = hits.astype(jnp.float32)
  return loss, {"token_accuracy": (correct * weights).sum() / n, "tokens": weights.sum()}
