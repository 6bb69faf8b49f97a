"""What every attention implementation shares (hhh.models.attention): the default query/key block, the finite logit of
masked entries (also the decode cache's, hhh.models.kv_cache), the shared prefix placed before each row's keys, and the
one-time warning when a requested kernel falls back.
"""

from __future__ import annotations

import logging

import jax.numpy as jnp
import numpy as np

# Query/key block of blockwise_attention and splash_attention called directly (attend passes its own: CPU_BLOCK or
# ACCELERATOR_BLOCK).
DEFAULT_BLOCK_Q = 512
DEFAULT_BLOCK_KV = 512

# A large finite negative logit for masked entries (as the splash and Pallas kernels do): a block whose keys are all
# masked contributes exp(mask - max) = 0 once a visible key has been seen, and never NaNs.
MASK_VALUE = -0.7 * float(np.finfo(np.float32).max)

_log = logging.getLogger("hhh.models.attention")
_WARNED: set = set()


def warn_once(msg: str) -> None:
  """Logs `msg` (a kernel's fallback or a replicated dimension) once per process."""
  if msg not in _WARNED:
    _WARNED.add(msg)
    _log.warning("attention: %s", msg)


def with_prefix(k, v, prefix_k, prefix_v):
  """[B, T, H, D] keys/values with the shared [P, H, D] prefix in front (broadcast over the batch)."""
  if prefix_k is None:
    return k, v
  b = k.shape[0]
  pk = jnp.broadcast_to(prefix_k.astype(k.dtype)[None], (b,) + prefix_k.shape)
  pv = jnp.broadcast_to(prefix_v.astype(v.dtype)[None], (b,) + prefix_v.shape)
  return jnp.concatenate([pk, k], axis=1), jnp.concatenate([pv, v], axis=1)

