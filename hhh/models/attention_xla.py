"""The reference attention (`model.attention` "xla"): an explicit boolean [B, 1, T, P + T] mask over dense scores,
`jax.nn.dot_product_attention(implementation="xla")`. Every other implementation is tested against it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from hhh.models.attention_common import with_prefix


def attention_mask(segment_ids, prefix_len: int):
  """Boolean [B, 1, T, P + T] mask: a query sees earlier keys of its own segment, and the whole shared prefix."""
  t = segment_ids.shape[1]
  idx = jnp.arange(t)
  causal = idx[None, :] <= idx[:, None]  # [T(q), T(k)]
  same = segment_ids[:, :, None] == segment_ids[:, None, :]  # [B, T, T]
  mask = same & causal[None]
  if prefix_len:
    mask = jnp.concatenate([jnp.ones((mask.shape[0], t, prefix_len), bool), mask], axis=-1)
  return mask[:, None]


def xla_attention(q, k, v, *, segment_ids=None, prefix_k=None, prefix_v=None):
  """The reference: dense scores under an explicit [B, 1, T, P + T] mask."""
  p = 0 if prefix_k is None else prefix_k.shape[0]
  if segment_ids is None:
    segment_ids = jnp.ones(q.shape[:2], jnp.int32)
  k, v = with_prefix(k, v, prefix_k, prefix_v)
  return jax.nn.dot_product_attention(q, k, v, mask=attention_mask(segment_ids, p), implementation="xla")


