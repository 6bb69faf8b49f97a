"""Language modelling: next-token cross-entropy on packed text (also imitation learning when the data's loss
weights are zero on context tokens)."""

from __future__ import annotations

import jax.numpy as jnp
import optax

FAMILY = "lm"


def token_losses(logits, targets):
  """Per-token cross-entropy in f32: [..., L, V], [..., L] -> [..., L]."""
  return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)


def loss_fn(params, batch, *, model, config, rng=None):
  del config, rng
  out = model.apply({"params": params}, batch["decoder_input_tokens"], positions=batch["decoder_positions"],
                    segment_ids=batch["decoder_segment_ids"])
  logits = out["logits"]
  weights = batch["decoder_loss_weights"].astype(jnp.float32)
  losses = token_losses(logits, batch["decoder_target_tokens"])
  n = jnp.maximum(weights.sum(), 1.0)
  loss = (losses * weights).sum() / n
  correct = (logits.argmax(-1) == batch["decoder_target_tokens"]).astype(jnp.float32)
  return loss, {"token_accuracy": (correct * weights).sum() / n, "tokens": weights.sum()}
