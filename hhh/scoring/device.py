"""Between the host and the mesh: host arrays onto the mesh (`put`), results back to every host (`to_host`), and the
one table of jitted functions per model (`jitted`), shared by scoring (hhh.scoring.scorer) and sampling
(hhh.sampling.sampler): a new jax.jit of a new closure would compile again, so the lab's many evaluations and
samplers of one model size build their functions once."""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np

_JIT_CACHE: dict = {}


def put(x: np.ndarray, sh) -> jax.Array:
  """A global array from the full host copy (every process holds the same small inputs: evaluation sets, prompts)."""
  x = np.asarray(x)
  return jax.make_array_from_callback(x.shape, sh, lambda idx: x[idx])


def to_host(x: Any) -> np.ndarray:
  """The whole of a (global) array on every host."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(jax.device_get(x))


def jitted(key: tuple, build: Callable[[], Any]) -> Any:
  """What build() returns (jitted functions, tables of compiled programs), built once per `key`: the user's name,
  then the model config, mesh, rules and whatever else the functions close over."""
  if key not in _JIT_CACHE:
    _JIT_CACHE[key] = build()
  return _JIT_CACHE[key]
