"""The decode cache (hhh.sampling, docs/sampling.md): each layer's keys/values [B, kv_heads, S, head_dim] with the
logical axes CACHE_AXES, written at each row's index (`write_cache`) and attended to with the shared prefix
(`cached_attention`); a layer's slice of a cache or prefix cache (`cache_layer`); and the scanned parameters split
per layer for the unrolled decode model (`unrolled_params`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from hhh.models.attention_common import MASK_VALUE

# Logical axes of each layer's decode cache k and v [batch, kv heads, slots, head_dim]: sharded like the activations
# (hhh.core.sharding rules: batch over every data-parallel axis, heads over tensor; slots and head_dim whole). Heads
# before slots: each (row, head) reads its slots contiguously (no transposed copies for the attention matmuls).
CACHE_AXES = ("activation_batch", "activation_heads", "activation_length", "activation_kv")


def write_cache(cache, new, index):
  """A layer's decode cache [B, H, S, D] with new [B, T, H, D] written at slots index[b] .. index[b] + T - 1 of row b:
  one scatter, in place when the old cache is not used afterwards (as in the decode loop).

  The caller keeps index[b] + T <= S (out-of-range slots are not checked)."""
  b, t = new.shape[0], new.shape[1]
  rows = jnp.arange(b, dtype=index.dtype)[:, None]  # [B, 1]
  slots = index[:, None] + jnp.arange(t, dtype=index.dtype)[None]  # [B, T]
  # The advanced indices (axes 0 and 2) broadcast to [B, T] and lead the update's shape: [B, T, H, D] = new.
  return cache.at[rows, :, slots, :].set(new.astype(cache.dtype), mode="promise_in_bounds")


def cache_layer(cache, i: int) -> dict:
  """Layer i of a cache holding stacked [layers, ...] arrays or a sequence of per-layer arrays."""
  return {name: c[i] for name, c in cache.items()}


def prefix_length(prefix_cache) -> int:
  """Positions P of a prefix cache (stacked [layers, P, ...] or per-layer [P, ...] arrays); 0 without one."""
  if prefix_cache is None:
    return 0
  k = prefix_cache["k"]
  return k[0].shape[0] if isinstance(k, (list, tuple)) else k.shape[1]


def unrolled_params(params, n_layers: int):
  """Parameters of a scan_layers=True model (stacked under "layers") as the scan_layers=False model names them
  ("layer_0", ...), for decoding; anything else is unchanged. Works on any tree shaped like the parameters."""
  if "layers" not in params:
    return params
  out = {k: v for k, v in params.items() if k != "layers"}
  for i in range(n_layers):
    out[f"layer_{i}"] = jax.tree.map(lambda x, i=i: x[i], params["layers"])
  return out


def _einsum32(eq, a, b):
  """einsum accumulated in f32 with `a` in the dtype of `b` (the cache or prefix: the large operand is never cast)."""
  return jnp.einsum(eq, a.astype(b.dtype), b, preferred_element_type=jnp.float32)


def cached_attention(q, cache_k, cache_v, index, *, prefix_k=None, prefix_v=None):
  """Decode attention of queries q [B, T, H, D] at cache slots index[b] + t over the cache cache_k, cache_v
  [B, H, S, D] (the new tokens' keys/values already written) and the shared prefix [P, H, D]: query t of row b sees
  slots j <= index[b] + t of its row and every prefix key. Dense (a few queries per row); logits and softmax in
  f32, scaled by 1/sqrt(D)."""
  t, d = q.shape[1], q.shape[-1]
  scale = 1.0 / d ** 0.5
  scores = _einsum32("bthd,bhsd->bhts", q, cache_k) * scale
  slot = index[:, None] + jnp.arange(t, dtype=index.dtype)[None]  # [B, T]
  visible = jnp.arange(cache_k.shape[2], dtype=index.dtype)[None, None, :] <= slot[:, :, None]  # [B, T, S]
  scores = jnp.where(visible[:, None], scores, MASK_VALUE)
  p = 0 if prefix_k is None else prefix_k.shape[0]
  if p:
    scores = jnp.concatenate([_einsum32("bthd,phd->bhtp", q, prefix_k) * scale, scores], axis=-1)
  probs = jax.nn.softmax(scores, axis=-1)
  out = _einsum32("bhts,bhsd->bthd", probs[..., p:], cache_v)
  if p:
    out = out + _einsum32("bhtp,phd->bthd", probs[..., :p], prefix_v)
  return out.astype(q.dtype)
