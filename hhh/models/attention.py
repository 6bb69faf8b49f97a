"""Causal self-attention over packed documents with an optional shared prefix: one function, several kernels.

`attend(q, k, v, segment_ids=..., prefix_k=..., prefix_v=..., impl=...)` is the only entry point (the transformer
calls it once per layer). Semantics, identical for every implementation:

  * q, k, v: [B, T, H, D]; the result is [B, T, H, D] in q's dtype; logits are scaled by 1/sqrt(D).
  * causal: query i sees keys j <= i;
  * packed documents: with `segment_ids` [B, T], query i sees key j only if segment_ids[i] == segment_ids[j]
    (documents packed into one row never attend to each other); `segment_ids=None` means one document per row;
  * shared prefix: `prefix_k`/`prefix_v` [P, H, D] (the prompt cache of context distillation and prompted
    evaluation, one sequence shared by every row) are keys/values placed before the row and visible to EVERY query,
    whatever its segment.

Implementations (`model.attention`, docs/attention.md):

  * "xla": the reference - a boolean [B, 1, T, P + T] mask and `jax.nn.dot_product_attention(implementation="xla")`,
    which materialises the [B, H, T, P + T] scores (exactly what the model did before this module existed).
  * "blockwise": pure-JAX flash attention (online softmax over key blocks, a custom VJP that recomputes the scores
    block by block): never holds more than [B, H, block_q, block_kv] scores, skips key blocks above the causal
    diagonal, runs everywhere (CPU, fallback of the kernels below).
  * "splash": TPU Pallas splash attention (causal mask, `SegmentIds`), under `shard_map` over the mesh.
  * "cudnn": the GPU path - cuDNN flash attention (`is_causal`) for unpacked rows, Pallas GPU `mha` with
    `segment_ids` for packed rows (cuDNN has no segment ids in the public API), under `shard_map`.
  * "auto": splash on TPU, cudnn on GPU, and on CPU xla for short sequences (faster there) and blockwise above
    `CPU_DENSE_MAX_TOKENS` query x key tokens.

A kernel that cannot serve a call (splash/cudnn with both packed segments and a prefix, shapes a kernel does not
take, a missing module) falls back to blockwise and logs why once.
"""

from __future__ import annotations

import functools
import logging
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hhh.core.buckets import round_up as _round_up

IMPLEMENTATIONS = ("auto", "xla", "blockwise", "splash", "cudnn")

# `auto` on CPU: dense XLA attention while T x (P + T) <= this many query x key pairs (per row and head), blockwise
# above. Measured on the 2-core CPU host (docs/attention.md): the two break even around T = 64-128 (forward +
# backward) and blockwise wins 2-5x from T = 512; below this bound the tests and the laboratory's training keep
# exactly the former computation (and its shorter compile).
CPU_DENSE_MAX_TOKENS = 128 * 128

# Query/key block of blockwise and splash when the caller passes 0: small blocks are faster on CPU (cache-sized
# score tiles; measured in docs/attention.md), 512 is the usual TPU/GPU tile (MaxText's splash default).
CPU_BLOCK = 128
ACCELERATOR_BLOCK = 512
DEFAULT_BLOCK_Q = 512
DEFAULT_BLOCK_KV = 512

# A large finite negative logit for masked entries (as the splash and Pallas kernels do): a block whose keys are all
# masked contributes exp(mask - max) = 0 once a visible key has been seen, and never NaNs.
_MASK_VALUE = -0.7 * float(np.finfo(np.float32).max)
_PAD_POS = np.iinfo(np.int32).max // 2  # position of padding keys: after every query

_log = logging.getLogger(__name__)
_WARNED: set = set()


def _warn_once(msg: str) -> None:
  if msg not in _WARNED:
    _WARNED.add(msg)
    _log.warning("attention: %s", msg)


# ----------------------------------------------------------------------------------------------- entry point


def attend(q, k, v, *, segment_ids=None, prefix_k=None, prefix_v=None, impl: str = "auto", block_q: int = 0,
           block_kv: int = 0, interpret: bool = False):
  """Causal, segment-local attention with an optional shared prefix (see the module docstring).

  block_q / block_kv: tiles of blockwise and splash (0: CPU_BLOCK on CPU, ACCELERATOR_BLOCK elsewhere).
  `interpret=True` runs the Pallas kernels (splash, GPU mha) in interpret mode (tests on CPU).
  """
  if (prefix_k is None) != (prefix_v is None):
    raise ValueError("prefix_k and prefix_v must be given together")
  p = 0 if prefix_k is None else prefix_k.shape[0]
  platform = current_platform()
  default_block = CPU_BLOCK if platform == "cpu" else ACCELERATOR_BLOCK
  block_q, block_kv = block_q or default_block, block_kv or default_block
  name, reason = resolve(impl, q_len=q.shape[1], prefix_len=p, packed=segment_ids is not None, platform=platform)
  if reason:
    _warn_once(reason)
  kw = dict(segment_ids=segment_ids, prefix_k=prefix_k, prefix_v=prefix_v)
  if name == "xla":
    return xla_attention(q, k, v, **kw)
  if name == "blockwise":
    return blockwise_attention(q, k, v, **kw, block_q=block_q, block_kv=block_kv)
  if name == "splash":
    return splash_attention(q, k, v, **kw, block=max(block_q, block_kv), interpret=interpret)
  if name == "cudnn":
    return gpu_attention(q, k, v, **kw, interpret=interpret)
  raise AssertionError(name)


def current_platform() -> str:
  """The platform the traced computation will run on: the mesh's devices when a mesh is set (AOT compilation for
  TPU from a CPU host sets a TPU mesh), else JAX's default backend."""
  mesh = jax.sharding.get_abstract_mesh()
  dev = None if mesh.empty else mesh.abstract_device
  if dev is not None and getattr(dev, "platform", None):
    return str(dev.platform)
  return jax.default_backend()


def resolve(impl: str, *, q_len: int, prefix_len: int = 0, packed: bool = True, platform: str = "cpu"
            ) -> tuple[str, str]:
  """(implementation to run, why it differs from the request or ""), decided at trace time from static facts."""
  if impl not in IMPLEMENTATIONS:
    raise ValueError(f"unknown attention implementation {impl!r}; choose one of {IMPLEMENTATIONS}")
  if impl == "auto":
    if platform == "tpu":
      impl = "splash"
    elif platform in ("gpu", "cuda", "rocm"):
      impl = "cudnn"
    else:
      return ("xla" if q_len * (prefix_len + q_len) <= CPU_DENSE_MAX_TOKENS else "blockwise"), ""
  if impl == "splash":
    if packed and prefix_len:
      return "blockwise", ("splash: packed segments together with a shared prefix are not expressible as one splash "
                           "mask (the prefix must be visible to every segment); using blockwise")
    if not _has_splash():
      return "blockwise", "splash: jax.experimental.pallas.ops.tpu.splash_attention is unavailable; using blockwise"
  if impl == "cudnn":
    if packed and prefix_len:
      return "blockwise", ("cudnn: packed segments together with a shared prefix are not supported by cuDNN or "
                           "Pallas GPU mha; using blockwise")
    if packed and not _has_gpu_mha():
      return "blockwise", "cudnn: Pallas GPU mha (for segment ids) is unavailable; using blockwise"
  return impl, ""


@functools.cache
def _has_splash() -> bool:
  try:
    from jax.experimental.pallas.ops.tpu import splash_attention  # noqa: F401  pylint: disable=g-import-not-at-top
  except Exception:  # pylint: disable=broad-except
    return False
  return True


@functools.cache
def _has_gpu_mha() -> bool:
  try:
    from jax.experimental.pallas.ops.gpu import attention  # noqa: F401  pylint: disable=g-import-not-at-top
  except Exception:  # pylint: disable=broad-except
    return False
  return True


# ----------------------------------------------------------------------------------------------- reference


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


def _with_prefix(k, v, prefix_k, prefix_v):
  """[B, T, H, D] keys/values with the shared [P, H, D] prefix in front (broadcast over the batch)."""
  if prefix_k is None:
    return k, v
  b = k.shape[0]
  pk = jnp.broadcast_to(prefix_k.astype(k.dtype)[None], (b,) + prefix_k.shape)
  pv = jnp.broadcast_to(prefix_v.astype(v.dtype)[None], (b,) + prefix_v.shape)
  return jnp.concatenate([pk, k], axis=1), jnp.concatenate([pv, v], axis=1)


def xla_attention(q, k, v, *, segment_ids=None, prefix_k=None, prefix_v=None):
  """The reference: dense scores under an explicit [B, 1, T, P + T] mask."""
  p = 0 if prefix_k is None else prefix_k.shape[0]
  if segment_ids is None:
    segment_ids = jnp.ones(q.shape[:2], jnp.int32)
  k, v = _with_prefix(k, v, prefix_k, prefix_v)
  return jax.nn.dot_product_attention(q, k, v, mask=attention_mask(segment_ids, p), implementation="xla")


# ----------------------------------------------------------------------------------------------- blockwise


def blockwise_attention(q, k, v, *, segment_ids=None, prefix_k=None, prefix_v=None,
                        block_q: int = DEFAULT_BLOCK_Q, block_kv: int = DEFAULT_BLOCK_KV):
  """Flash attention in pure JAX: online softmax over key blocks, O(T x block) memory forward and backward.

  Lengths that are not multiples of the blocks are padded (padding keys are never visible; padding queries are
  dropped). Blocks larger than the sequence shrink to it.
  """
  b, t, h, d = q.shape
  p = 0 if prefix_k is None else prefix_k.shape[0]
  k, v = _with_prefix(k, v, prefix_k, prefix_v)
  s = p + t
  bq = min(block_q, _round_up(t, 8))
  bk = min(block_kv, _round_up(s, 8))
  tp, sp = _round_up(t, bq), _round_up(s, bk)
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
      sc = jnp.where(_block_mask(q_start, kv_start, bq, bk, kv_pos, q_seg, kv_seg), sc, _MASK_VALUE)
      m_new = jnp.maximum(m, sc.max(-1))
      alpha = jnp.exp(m - m_new)
      pr = jnp.exp(sc - m_new[..., None])
      l = alpha * l + pr.sum(-1)
      acc = alpha[..., None] * acc + jnp.einsum("bhqk,bhkd->bhqd", pr.astype(v.dtype), vj,
                                                preferred_element_type=jnp.float32)
      return m_new, l, acc

    init = (jnp.full((b, h, bq), _MASK_VALUE, jnp.float32), jnp.zeros((b, h, bq), jnp.float32),
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


def _spec_axes(logical: str, dim: int, mesh) -> tuple | None:
  """Mesh axes that shard a dimension of size `dim` named `logical`, by the active rules (batch: every data axis,
  heads: tensor by default); axes that do not divide `dim` are dropped (that dimension is then replicated)."""
  from hhh.core import sharding  # pylint: disable=g-import-not-at-top
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
    _warn_once(f"{logical} of size {dim} is not divisible by mesh axes {dropped}: the attention kernel replicates "
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
  k, v = _with_prefix(k, v, prefix_k, prefix_v)
  tp, sp = _round_up(t, 128), _round_up(p + t, 128)
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
    k, v = _with_prefix(k, v, prefix_k, prefix_v)
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
  tp = _round_up(t, 128)
  seg = jnp.ones((b, t), jnp.int32) if segment_ids is None else segment_ids.astype(jnp.int32)
  seg = _pad_len(seg, tp, 1, value=-1)

  def local(qb, kb, vb, sb):
    x = [jnp.swapaxes(a, 1, 2) for a in (qb, kb, vb)]  # the Pallas GPU kernel takes [B, T, H, D]
    o = gpu_mha.mha(*x, segment_ids=sb, sm_scale=1.0 / math.sqrt(d), causal=True, interpret=interpret)
    return jnp.swapaxes(o, 1, 2)

  out = _shard_mapped(local, *(_pad_len(jnp.swapaxes(x, 1, 2), tp, 2) for x in (q, k, v)), seg)
  return jnp.swapaxes(out[:, :, :t], 1, 2).astype(q.dtype)
