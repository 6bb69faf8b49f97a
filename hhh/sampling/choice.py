"""Choosing a token: temperature 0 is greedy (argmax of the logits); otherwise the logits are divided by the
temperature, cut to the top-k and then to the nucleus (`filter_logits`) and a token is drawn with the row's own
random stream (`row_keys`: fold_in(fold_in(key(seed), prompt), sample), then the step)."""

from __future__ import annotations

import jax
import jax.numpy as jnp



def filter_logits(logits, temperature, top_k, top_p):
  """Logits [..., V] of the sampling distribution: divided by `temperature` (> 0), then only the `top_k` largest
  kept (top_k > 0), then only the nucleus (top_p < 1): the most probable tokens whose probability mass (under the
  temperature/top-k distribution) reaches top_p, the one that crosses it included. Removed tokens get -inf; tokens
  tied with the last kept value are kept. temperature, top_k, top_p may be traced scalars."""
  x = logits.astype(jnp.float32) / jnp.maximum(jnp.asarray(temperature, jnp.float32), 1e-6)
  v = x.shape[-1]
  top_k = jnp.asarray(top_k, jnp.int32)
  top_p = jnp.asarray(top_p, jnp.float32)
  desc = -jnp.sort(-x, axis=-1)
  kth = jax.lax.dynamic_index_in_dim(desc, jnp.clip(top_k, 1, v) - 1, axis=-1, keepdims=True)
  use_k = top_k > 0
  x = jnp.where(use_k & (x < kth), -jnp.inf, x)
  desc = jnp.where(use_k & (desc < kth), -jnp.inf, desc)
  probs = jax.nn.softmax(desc, axis=-1)
  before = jnp.cumsum(probs, axis=-1) - probs  # mass of the more probable tokens
  cut = jnp.min(jnp.where(before < top_p, desc, jnp.inf), axis=-1, keepdims=True)
  return jnp.where((top_p < 1) & (x < cut), -jnp.inf, x)


def choose_tokens(logits, keys, temperature, top_k, top_p):
  """Next tokens [R] from logits [R, V]: argmax when temperature == 0, else a draw from `filter_logits` with each
  row's key (keys: [R] typed PRNG keys)."""
  def greedy(_):
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)

  def draw(_):
    x = filter_logits(logits, temperature, top_k, top_p)
    return jax.vmap(lambda k, row: jax.random.categorical(k, row))(keys, x).astype(jnp.int32)

  return jax.lax.cond(jnp.asarray(temperature) <= 0, greedy, draw, None)


def row_keys(seed, prompt_index, sample_index):
  """Raw key data [R, ...] of each row's stream: fold_in(fold_in(key(seed), prompt), sample)."""
  base = jax.random.key(seed)
  keys = jax.vmap(lambda i, j: jax.random.fold_in(jax.random.fold_in(base, i), j))(prompt_index, sample_index)
  return jax.random.key_data(keys)

