"""Where the traced computation runs and the layout it gets there: `current_platform` (the mesh's devices, else JAX's
default backend) and, on CPU, the flat layout (`flat_matmuls`): projections as 2-D matmuls (`dense_product`, `rows`)
and the layer scan unrolled. The numbers are the same in either layout; docs/attention.md, "CPU", has the timings.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def current_platform() -> str:
  """The platform the traced computation will run on: the mesh's devices when a mesh is set (AOT compilation for
  TPU from a CPU host sets a TPU mesh), else JAX's default backend."""
  mesh = jax.sharding.get_abstract_mesh()
  dev = None if mesh.empty else mesh.abstract_device
  if dev is not None and getattr(dev, "platform", None):
    return str(dev.platform)
  return jax.default_backend()


def flat_matmuls() -> bool:
  """The CPU layout of the computation (True on CPU; TPU and GPU keep the programs docs/scale.md measured):

  * projections run as 2-D matmuls over [batch * length, features]: XLA CPU gives the weight gradient of a
    [B, T, D] x [D, F] dot (two contracting dims) a transposed copy of the [B, T, F] gradient, which made the MLP's
    forward + backward 1.6x slower than the same matmuls on 2-D operands;
  * the scan over layers is unrolled (the parameters stay stacked under "layers"): the rolled loop's stacked
    residuals (zero-filled, updated and sliced per layer) cost 15% of the `cpu` size's step.

  The numbers are the same either way (up to the order of float sums); docs/attention.md, "CPU", has the timings."""
  return current_platform() == "cpu"


def dense_product(x, w, n_in: int, eq: str):
  """x [..., *w.shape[:n_in]] contracted with the first n_in axes of w -> [..., *w.shape[n_in:]]: `jnp.einsum(eq)`,
  or on CPU (flat_matmuls) the same product as one 2-D matmul."""
  if not flat_matmuls():
    return jnp.einsum(eq, x, w)
  k = math.prod(w.shape[:n_in])
  y = x.reshape(-1, k) @ w.reshape(k, -1)
  return y.reshape(x.shape[:x.ndim - n_in] + w.shape[n_in:])


def rows(x):
  """x [..., D] as [rows, D] on CPU (flat_matmuls: one 2-D matmul follows), unchanged elsewhere."""
  return x.reshape(-1, x.shape[-1]) if flat_matmuls() else x
