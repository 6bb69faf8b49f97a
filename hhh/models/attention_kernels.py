"""The accelerator attention kernels, each run per device under `shard_map` over the mesh (batch over the data axes,
heads over tensor): TPU Pallas splash attention (`model.attention` "splash") and the GPU path ("cudnn": cuDNN flash
attention for unpacked rows, Pallas GPU `mha` with segment ids for packed ones). The Pallas modules are imported when
a kernel runs (hhh.models.attention checks they exist first).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from hhh.core.buckets import round_up
from hhh.core import sharding
from hhh.models.attention_blockwise import blockwise_attention
from hhh.models.attention_common import DEFAULT_BLOCK_Q, warn_once, with_prefix


def _spec_axes(logical: str, dim: int, mesh) -> tuple | None:
  """Mesh axes that shard a dimension of size `dim` named `logical`, by the active rules (batch: every data axis,
  heads: tensor by default); axes that do not divide `dim` are dropped (that dimension is then replicated)."""
  rules = nn.get_logical_axis_rules() or sharding.DEFAULT_RULES
  axes = nn.logical_to_mesh_axes((logical,), rules)[0]
  if axes is None:
    return None
  axes = tuple(a for a in (axes if isinstance(axes, (tuple, list)) else (axes,)) if a in mesh.axis_names)
  wanted = axes
  while axes and dim % math.prod(mesh.shape[a] for a in axes):
    axes = axes[:-1]
  dropped = [a for a in wanted if a not in axes and mesh.shape[a] > 1]
  if dropped:
    warn_once(f"{logical} of size {dim} is not divisible by mesh axes {dropped}: the attention kernel replicates "
               f"it over them (correct, but redundant work)")
  return axes or None


def _shard_mapped(fn, q, k, v, seg):
  """Runs fn(q, k, v, seg) ([B, H, T, D] blocks, seg [B, T] or None) per device under `shard_map` when a mesh is
  set: batch over the data axes, heads over tensor, sequence and head_dim whole. Without a mesh: directly."""
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty:
    return fn(q, k, v, seg)
  P = jax.sharding.PartitionSpec
  batch = _spec_axes("activation_batch", q.shape[0], mesh)
  heads = _spec_axes("activation_heads", q.shape[1], mesh)
  x_spec = P(batch, heads, None, None)
  seg_spec = None if seg is None else P(batch, None)
  return jax.shard_map(fn, mesh=mesh, in_specs=(x_spec, x_spec, x_spec, seg_spec), out_specs=x_spec,
                       check_vma=False)(q, k, v, seg)


def _pad_len(x, n, axis, value=0):
  pad = [(0, 0)] * x.ndim
  pad[axis] = (0, n - x.shape[axis])
  return jnp.pad(x, pad, constant_values=value)


def _splash_block(n: int, block: int) -> int:
  """The largest of block, block/2, ..., 128 (multiples of 128, the TPU lane width) dividing n (a multiple of 128)."""
  b = max(128, block // 128 * 128)
  while n % b:
    b -= 128
  return b


def splash_attention(q, k, v, *, segment_ids=None, prefix_k=None, prefix_v=None, block: int = DEFAULT_BLOCK_Q,
                     interpret: bool = False):
  """TPU splash attention: `CausalMask` (offset by the prefix length, so the prefix is visible to every query) and
  `SegmentIds` for packed rows, one kernel per example (vmap) and per device (shard_map).

  Sequence lengths are padded to a multiple of 128 (the kernel's block granularity): padding keys come after every
  real query, so causality already hides them; padding queries are dropped. Packed segments with a prefix cannot be
  one splash mask: `attend` sends those to blockwise.
  """
  from jax.experimental.pallas.ops.tpu import splash_attention as sa  # pylint: disable=g-import-not-at-top
  if segment_ids is not None and prefix_k is not None:
    raise ValueError("splash attention takes segment ids or a prefix, not both (attend() falls back to blockwise)")
  b, t, h, d = q.shape
  p = 0 if prefix_k is None else prefix_k.shape[0]
  k, v = with_prefix(k, v, prefix_k, prefix_v)
  tp, sp = round_up(t, 128), round_up(p + t, 128)
  bq, bkv = _splash_block(tp, block), _splash_block(sp, block)
  # The kernel does not scale the logits.
  qs = (q.astype(jnp.float32) / math.sqrt(d)).astype(q.dtype)
  qt = _pad_len(jnp.swapaxes(qs, 1, 2), tp, 2)
  kt = _pad_len(jnp.swapaxes(k, 1, 2), sp, 2)
  vt = _pad_len(jnp.swapaxes(v, 1, 2), sp, 2)
  seg = None if segment_ids is None else _pad_len(segment_ids.astype(jnp.int32), tp, 1, value=-1)
  sizes = sa.BlockSizes(block_q=bq, block_kv=bkv, block_kv_compute=bkv, block_q_dkv=bq, block_kv_dkv=bkv,
                        block_kv_dkv_compute=bkv, block_q_dq=bq, block_kv_dq=bkv)

  def local(qb, kb, vb, sb):
    mask = sa.MultiHeadMask([sa.CausalMask(shape=(tp, sp), offset=p)] * qb.shape[1])
    kernel = sa.make_splash_mha(mask, block_sizes=sizes, head_shards=1, q_seq_shards=1, interpret=interpret)
    if sb is None:
      return jax.vmap(kernel)(qb, kb, vb)
    return jax.vmap(lambda x, y, z, s: kernel(x, y, z, segment_ids=sa.SegmentIds(q=s, kv=s)))(qb, kb, vb, sb)

  out = _shard_mapped(local, qt, kt, vt, seg)
  return jnp.swapaxes(out[:, :, :t], 1, 2).astype(q.dtype)


def gpu_attention(q, k, v, *, segment_ids=None, prefix_k=None, prefix_v=None, interpret: bool = False):
  """The GPU path.

  * One document per row: cuDNN flash attention, `jax.nn.dot_product_attention(..., is_causal=True,
    implementation="cudnn")`. cuDNN's causal mask is aligned at the first query and key, so with a prefix of P keys
    the queries are front-padded with P zero rows (query P + i then sees the whole prefix and keys <= i) and the
    padding rows are dropped. cuDNN needs bf16/fp16 and a head dimension <= 128 (multiple of 8); otherwise Pallas.
  * Packed rows: Pallas GPU `mha(..., segment_ids=..., causal=True)` (exact; cuDNN's public API has no segment ids
    and a boolean mask would be materialised as a [B, 1, T, T] bias).
  """
  b, t, h, d = q.shape
  cudnn_ok = q.dtype in (jnp.bfloat16, jnp.float16) and d <= 128 and d % 8 == 0 and not interpret
  if segment_ids is None and cudnn_ok:
    p = 0 if prefix_k is None else prefix_k.shape[0]
    k, v = with_prefix(k, v, prefix_k, prefix_v)
    qf = jnp.concatenate([jnp.zeros((b, p, h, d), q.dtype), q], axis=1) if p else q

    def local(qb, kb, vb, _):
      return jnp.swapaxes(jax.nn.dot_product_attention(
          jnp.swapaxes(qb, 1, 2), jnp.swapaxes(kb, 1, 2), jnp.swapaxes(vb, 1, 2), is_causal=True,
          implementation="cudnn"), 1, 2)

    out = _shard_mapped(local, *(jnp.swapaxes(x, 1, 2) for x in (qf, k, v)), None)
    return jnp.swapaxes(out, 1, 2)[:, p:].astype(q.dtype)
  if prefix_k is not None:
    return blockwise_attention(q, k, v, segment_ids=segment_ids, prefix_k=prefix_k, prefix_v=prefix_v)
  from jax.experimental.pallas.ops.gpu import attention as gpu_mha  # pylint: disable=g-import-not-at-top
  tp = round_up(t, 128)
  seg = jnp.ones((b, t), jnp.int32) if segment_ids is None else segment_ids.astype(jnp.int32)
  seg = _pad_len(seg, tp, 1, value=-1)

  def local(qb, kb, vb, sb):
    x = [jnp.swapaxes(a, 1, 2) for a in (qb, kb, vb)]  # the Pallas GPU kernel takes [B, T, H, D]
    o = gpu_mha.mha(*x, segment_ids=sb, sm_scale=1.0 / math.sqrt(d), causal=True, interpret=interpret)
    return jnp.swapaxes(o, 1, 2)

  out = _shard_mapped(local, *(_pad_len(jnp.swapaxes(x, 1, 2), tp, 2) for x in (q, k, v)), seg)
  return jnp.swapaxes(out[:, :, :t], 1, 2).astype(q.dtype)
