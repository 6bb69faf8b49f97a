"""Blockwise (flash) attention in pure JAX (`model.attention` "blockwise"): an online softmax over key blocks with a
custom VJP that recomputes the scores block by block, so no more than [B, H, block_q, block_kv] scores are ever held;
key blocks above the causal diagonal are skipped. Runs everywhere: the CPU path for long sequences and the fallback of
the splash and cuDNN kernels.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from hhh.core.buckets import round_up
from hhh.models.attention_common import DEFAULT_BLOCK_KV, DEFAULT_BLOCK_Q, MASK_VALUE, with_prefix

_PAD_POS = np.iinfo(np.int32).max // 2  # position of padding keys: after every query


def blockwise_attention(q, k, v, *, segment_ids=None, prefix_k=None, prefix_v=None,
                        block_q: int = DEFAULT_BLOCK_Q, block_kv: int = DEFAULT_BLOCK_KV):
  """Flash attention in pure JAX: online softmax over key blocks, O(T x block) memory forward and backward.

  Lengths that are not multiples of the blocks are padded (padding keys are never visible; padding queries are
  dropped). Blocks larger than the sequence shrink to it.
  """
  b, t, h, d = q.shape
  p = 0 if prefix_k is None else prefix_k.shape[0]
  k, v = with_prefix(k, v, prefix_k, prefix_v)
  s = p + t
  bq = min(block_q, round_up(t, 8))
  bk = min(block_kv, round_up(s, 8))
  tp, sp = round_up(t, bq), round_up(s, bk)
  # [B, H, len, D]: the blocks below slice the length axis.
  qt = jnp.pad(jnp.swapaxes(q, 1, 2), ((0, 0), (0, 0), (0, tp - t), (0, 0)))
  kt = jnp.pad(jnp.swapaxes(k, 1, 2), ((0, 0), (0, 0), (0, sp - s), (0, 0)))
  vt = jnp.pad(jnp.swapaxes(v, 1, 2), ((0, 0), (0, 0), (0, sp - s), (0, 0)))
  # Key positions relative to the first query: the prefix is negative (visible to all), padding after everything.
  kv_pos = jnp.concatenate([jnp.arange(-p, t, dtype=jnp.int32), jnp.full((sp - s,), _PAD_POS, jnp.int32)])
  if segment_ids is None:
    q_seg = kv_seg = None
  else:
    seg = segment_ids.astype(jnp.int32)
    q_seg = jnp.pad(seg, ((0, 0), (0, tp - t)), constant_values=-1)
    kv_seg = jnp.pad(seg, ((0, 0), (p, sp - s)), constant_values=-1)
  out = _flash(qt, kt, vt, kv_pos, q_seg, kv_seg, bq, bk, p)
  return jnp.swapaxes(out[:, :, :t], 1, 2).astype(q.dtype)


def _block_mask(q_start, kv_start, bq, bk, kv_pos, q_seg, kv_seg):
  """[B or 1, 1, bq, bk] visibility of the keys of the block at kv_start for the queries of the block at q_start."""
  qp = q_start + jnp.arange(bq, dtype=jnp.int32)
  kp = jax.lax.dynamic_slice_in_dim(kv_pos, kv_start, bk)
  mask = (kp[None, :] <= qp[:, None])[None, None]
  if q_seg is not None:
    qs = jax.lax.dynamic_slice_in_dim(q_seg, q_start, bq, axis=1)
    ks = jax.lax.dynamic_slice_in_dim(kv_seg, kv_start, bk, axis=1)
    same = (qs[:, :, None] == ks[:, None, :]) | (kp < 0)[None, None, :]  # the prefix is in every segment
    mask = mask & same[:, None]
  return mask


def _kv_blocks_for(q_start, bq, bk, p, n_kv):
  """Number of key blocks any query of the block at q_start can see (causal: keys up to p + last query)."""
  return jnp.minimum((p + q_start + bq + bk - 1) // bk, n_kv)


def _flash_forward(q, k, v, kv_pos, q_seg, kv_seg, bq, bk, p):
  b, h, tp, d = q.shape
  n_q, n_kv = tp // bq, k.shape[2] // bk
  scale = 1.0 / math.sqrt(d)

  def q_block(i):
    q_start = i * bq
    qi = jax.lax.dynamic_slice_in_dim(q, q_start, bq, axis=2)

    def kv_step(j, carry):
      m, l, acc = carry
      kv_start = j * bk
      kj = jax.lax.dynamic_slice_in_dim(k, kv_start, bk, axis=2)
      vj = jax.lax.dynamic_slice_in_dim(v, kv_start, bk, axis=2)
      sc = jnp.einsum("bhqd,bhkd->bhqk", qi, kj, preferred_element_type=jnp.float32) * scale
      sc = jnp.where(_block_mask(q_start, kv_start, bq, bk, kv_pos, q_seg, kv_seg), sc, MASK_VALUE)
      m_new = jnp.maximum(m, sc.max(-1))
      alpha = jnp.exp(m - m_new)
      pr = jnp.exp(sc - m_new[..., None])
      l = alpha * l + pr.sum(-1)
      acc = alpha[..., None] * acc + jnp.einsum("bhqk,bhkd->bhqd", pr.astype(v.dtype), vj,
                                                preferred_element_type=jnp.float32)
      return m_new, l, acc

    init = (jnp.full((b, h, bq), MASK_VALUE, jnp.float32), jnp.zeros((b, h, bq), jnp.float32),
            jnp.zeros((b, h, bq, d), jnp.float32))
    m, l, acc = jax.lax.fori_loop(0, _kv_blocks_for(q_start, bq, bk, p, n_kv), kv_step, init)
    return acc / l[..., None], m + jnp.log(l)

  out, lse = jax.lax.map(q_block, jnp.arange(n_q))  # [n_q, B, H, bq, D], [n_q, B, H, bq]
  out = jnp.moveaxis(out, 0, 2).reshape(b, h, tp, d)
  lse = jnp.moveaxis(lse, 0, 2).reshape(b, h, tp)
  return out, lse


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7, 8))
def _flash(q, k, v, kv_pos, q_seg, kv_seg, bq, bk, p):
  out, _ = _flash_forward(q, k, v, kv_pos, q_seg, kv_seg, bq, bk, p)
  return out.astype(q.dtype)


def _flash_fwd(q, k, v, kv_pos, q_seg, kv_seg, bq, bk, p):
  out, lse = _flash_forward(q, k, v, kv_pos, q_seg, kv_seg, bq, bk, p)
  out = out.astype(q.dtype)
  return out, (q, k, v, kv_pos, q_seg, kv_seg, out, lse)


def _flash_bwd(bq, bk, p, res, dout):
  q, k, v, kv_pos, q_seg, kv_seg, out, lse = res
  b, h, tp, d = q.shape
  n_q, n_kv = tp // bq, k.shape[2] // bk
  scale = 1.0 / math.sqrt(d)
  dt = q.dtype  # matmul operands in the input dtype, accumulation and softmax statistics in f32
  delta = (dout.astype(jnp.float32) * out.astype(jnp.float32)).sum(-1)  # [B, H, Tp]
  dout = dout.astype(dt)

  def kv_block(dq, j):
    kv_start = j * bk
    kj = jax.lax.dynamic_slice_in_dim(k, kv_start, bk, axis=2)
    vj = jax.lax.dynamic_slice_in_dim(v, kv_start, bk, axis=2)
    # Causal: the first query block that can see this key block (prefix blocks are seen by all).
    first = jnp.clip((kv_start - p) // bq, 0, n_q)

    def q_step(i, carry):
      dq, dk, dv = carry
      q_start = i * bq
      qi = jax.lax.dynamic_slice_in_dim(q, q_start, bq, axis=2)
      doi = jax.lax.dynamic_slice_in_dim(dout, q_start, bq, axis=2)
      lsei = jax.lax.dynamic_slice_in_dim(lse, q_start, bq, axis=2)
      di = jax.lax.dynamic_slice_in_dim(delta, q_start, bq, axis=2)
      sc = jnp.einsum("bhqd,bhkd->bhqk", qi, kj, preferred_element_type=jnp.float32) * scale
      mask = _block_mask(q_start, kv_start, bq, bk, kv_pos, q_seg, kv_seg)
      pr = jnp.where(mask, jnp.exp(sc - lsei[..., None]), 0.0)
      dv = dv + jnp.einsum("bhqk,bhqd->bhkd", pr.astype(dt), doi, preferred_element_type=jnp.float32)
      dp = jnp.einsum("bhqd,bhkd->bhqk", doi, vj, preferred_element_type=jnp.float32)
      ds = (pr * (dp - di[..., None]) * scale).astype(dt)
      dk = dk + jnp.einsum("bhqk,bhqd->bhkd", ds, qi, preferred_element_type=jnp.float32)
      dqi = jax.lax.dynamic_slice_in_dim(dq, q_start, bq, axis=2) + jnp.einsum(
          "bhqk,bhkd->bhqd", ds, kj, preferred_element_type=jnp.float32)
      dq = jax.lax.dynamic_update_slice_in_dim(dq, dqi, q_start, axis=2)
      return dq, dk, dv

    zeros = jnp.zeros((b, h, bk, d), jnp.float32)
    dq, dk, dv = jax.lax.fori_loop(first, n_q, q_step, (dq, zeros, zeros))
    return dq, (dk, dv)

  dq, (dk, dv) = jax.lax.scan(kv_block, jnp.zeros((b, h, tp, d), jnp.float32), jnp.arange(n_kv))
  dk = jnp.moveaxis(dk, 0, 2).reshape(k.shape)
  dv = jnp.moveaxis(dv, 0, 2).reshape(v.shape)
  return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype), None, None, None


_flash.defvjp(_flash_fwd, _flash_bwd)


# ----------------------------------------------------------------------------------------------- sharded kernels
