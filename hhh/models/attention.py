"""Causal self-attention over packed documents with an optional shared prefix: one function, several kernels.

`attend(q, k, v, segment_ids=..., prefix_k=..., prefix_v=..., impl=...)` is the only entry point (the transformer
calls it once per layer); this module picks the implementation (`resolve`), the kernels live beside it. Semantics,
identical for every implementation:

  * q, k, v: [B, T, H, D]; the result is [B, T, H, D] in q's dtype; logits are scaled by 1/sqrt(D).
  * causal: query i sees keys j <= i;
  * packed documents: with `segment_ids` [B, T], query i sees key j only if segment_ids[i] == segment_ids[j]
    (documents packed into one row never attend to each other); `segment_ids=None` means one document per row;
  * shared prefix: `prefix_k`/`prefix_v` [P, H, D] (the prompt cache of context distillation and prompted
    evaluation, one sequence shared by every row) are keys/values placed before the row and visible to EVERY query,
    whatever its segment.

Implementations (`model.attention`, docs/attention.md):

  * "xla" (attention_xla.py): the reference - a boolean [B, 1, T, P + T] mask and
    `jax.nn.dot_product_attention(implementation="xla")`, which materialises the [B, H, T, P + T] scores (exactly
    what the model did before this module existed).
  * "blockwise" (attention_blockwise.py): pure-JAX flash attention (online softmax over key blocks, a custom VJP
    that recomputes the scores block by block): never holds more than [B, H, block_q, block_kv] scores, skips key
    blocks above the causal diagonal, runs everywhere (CPU, fallback of the kernels below).
  * "splash" (attention_kernels.py): TPU Pallas splash attention (causal mask, `SegmentIds`), under `shard_map` over
    the mesh.
  * "cudnn" (attention_kernels.py): the GPU path - cuDNN flash attention (`is_causal`) for unpacked rows, Pallas GPU
    `mha` with `segment_ids` for packed rows (cuDNN has no segment ids in the public API), under `shard_map`.
  * "auto": splash on TPU, cudnn on GPU, and on CPU xla for short sequences (faster there) and blockwise above
    `CPU_DENSE_MAX_TOKENS` query x key tokens.

A kernel that cannot serve a call (splash/cudnn with both packed segments and a prefix, shapes a kernel does not
take, a missing module) falls back to blockwise and logs why once (attention_common.py: what they all share).
"""

from __future__ import annotations

import functools

from hhh.models.attention_blockwise import blockwise_attention
from hhh.models.attention_common import warn_once
from hhh.models.attention_kernels import gpu_attention, splash_attention
from hhh.models.attention_xla import attention_mask, xla_attention  # noqa: F401  (attention_mask: the reference mask)
from hhh.models.layout import current_platform

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
    warn_once(reason)
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
