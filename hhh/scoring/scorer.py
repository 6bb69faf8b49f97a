"""`Scorer`: the pure functions of hhh.scoring.logprobs jitted for host batches on a mesh. Batches are trimmed to a
bucketed length (a multiple of 64 covering every end-of-context token, hhh.core.buckets) so that short examples do
not pay for the longest one; buckets bound recompilation. Programs are compiled ahead of time per (kind, rows,
length), on a thread pool (`compile_workers`), and kept in a table shared by every scorer of the same model config
and mesh (hhh.scoring.device.jitted)."""
from __future__ import annotations

import concurrent.futures
import contextlib
import os
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from hhh.core import buckets, sharding
from hhh.scoring import device
from hhh.scoring.logprobs import eoc_scores, lm_forward, prompt_cache


def batch_length(eoc_index: np.ndarray, valid: np.ndarray, seq_len: int, bucket: int = buckets.BUCKET) -> int:
  """Smallest multiple of `bucket` (capped at seq_len) that holds every valid row up to its end-of-context token."""
  ends = np.asarray(eoc_index)[np.asarray(valid) > 0]
  need = int(ends.max()) + 1 if ends.size else 1
  return buckets.bucket_length(need, seq_len, bucket)


class Scorer:
  """Jitted LM / PM scoring of host batches on `mesh`, parameters already sharded (`param_shardings`)."""

  def __init__(self, model, params, mesh, rules, param_shardings, *, prefix_tokens: Optional[np.ndarray] = None):
    self.model, self.params, self.mesh, self.rules = model, params, mesh, tuple(rules)
    self.param_shardings = param_shardings
    self.dp = sharding.data_parallel_size(mesh)
    self._repl = sharding.replicated(mesh)
    self._fns, self._exes = _jitted(model, mesh, self.rules, param_shardings)
    self.prefix_cache = None
    self.prefix_len = 0
    self.prefix_tokens = None if prefix_tokens is None else np.asarray(prefix_tokens, np.int32)
    if prefix_tokens is not None and len(prefix_tokens):
      self.prefix_cache = self._prefix_cache(np.asarray(prefix_tokens, np.int32))
      self.prefix_len = int(len(prefix_tokens))

  @classmethod
  def of(cls, ms, params, **kwargs) -> "Scorer":
    """A scorer of `params` on a hhh.run.model.ModelSetup's model and mesh."""
    return cls(ms.model, params, ms.mesh, ms.rules, ms.shardings, **kwargs)

  def _ctx(self):
    return sharding.activate(self.mesh, self.rules)

  def _prefix_cache(self, prefix):
    with self._ctx():
      return jax.jit(lambda p, t: prompt_cache(self.model, p, t), in_shardings=(self.param_shardings, self._repl),
                     out_shardings=self._repl)(self.params, jnp.asarray(prefix))

  def _rows(self, x, n_pad):
    x = np.asarray(x)
    if n_pad:
      x = np.concatenate([x, np.zeros((n_pad,) + x.shape[1:], x.dtype)])
    return x

  def trimmed_length(self, eoc_index, valid, seq_len: int) -> int:
    """The bucketed length a batch of rows is trimmed to (and, with a prompt, capped so prompt + rows fit)."""
    length = batch_length(eoc_index, valid, seq_len)
    if self.prefix_cache is not None:
      length = min(length, self.model.cfg.max_len - self.prefix_len)
    return length

  def _padded_rows(self, n: int) -> int:
    return n + (-n) % self.dp

  def _flatten(self, tokens, response_start, eoc_index, valid, rows: int = 0):
    """[..., L] host arrays -> flat rows padded to `rows` (at least) and to a multiple of the data-parallel size,
    trimmed to a bucket."""
    tokens = np.asarray(tokens)
    L = tokens.shape[-1]
    length = self.trimmed_length(eoc_index, valid, L)
    t = tokens.reshape(-1, L)[:, :length]
    rs = np.minimum(np.asarray(response_start).reshape(-1), length - 1)
    ei = np.minimum(np.asarray(eoc_index).reshape(-1), length - 1)
    n = t.shape[0]
    pad = self._padded_rows(max(n, rows)) - n
    shardings = (sharding.batch_sharding(self.mesh, 2), sharding.batch_sharding(self.mesh, 1),
                 sharding.batch_sharding(self.mesh, 1))
    return [device.put(self._rows(a, pad), sh) for a, sh in zip((t, rs, ei), shardings)], n

  # Programs are compiled ahead of time per (kind, rows, length) and kept in a table shared by every scorer of the
  # same model config and mesh. `prepare` traces the programs a whole evaluation set will need and compiles them on a
  # thread pool while the first batches run, so tracing (Python, one core) overlaps compilation (docs/eval.md,
  # "Batching and determinism"; measured in docs/lab.md).

  def _abstract(self, kind: str, rows: int, length: int) -> tuple:
    row, col = sharding.batch_sharding(self.mesh, 2), sharding.batch_sharding(self.mesh, 1)
    t = jax.ShapeDtypeStruct((rows, length), np.int32, sharding=row)
    c = jax.ShapeDtypeStruct((rows,), np.int32, sharding=col)
    if kind == "pm":
      return (t, c)
    if kind == "lm_prefix":
      return (t, c, c, self.prefix_cache)
    return (t, c, c)

  def _key(self, kind: str, rows: int, length: int) -> tuple:
    pre = () if kind != "lm_prefix" else tuple(x.shape for x in jax.tree.leaves(self.prefix_cache))
    return (kind, rows, length, pre)

  @contextlib.contextmanager
  def prepare(self, shapes):
    """Within the block, the programs of `shapes` [(kind "lm" | "lm_prefix" | "pm", rows, length)] not compiled yet
    compile in the given order on the compile pool; the calls that need them wait for them. Rows are counted before
    padding to the data-parallel size. Leaving the block by an exception (Ctrl-C included) cancels the compiles that
    have not started, so an interrupted evaluation does not wait for them at exit."""
    submitted = []
    try:
      for kind, rows, length in shapes:
        rows = self._padded_rows(rows)
        key = self._key(kind, rows, length)
        if key not in self._exes:  # lowered here (tracing is Python), compiled on the pool
          self._exes[key] = _compile_pool().submit(self._lower(kind, rows, length).compile)
          submitted.append(key)
      yield
    except BaseException:
      for key in submitted:
        exe = self._exes.get(key)
        if isinstance(exe, concurrent.futures.Future) and exe.cancel():
          del self._exes[key]  # a later call compiles it again
      raise

  def _lower(self, kind: str, rows: int, length: int):
    with self._ctx():
      return self._fns[kind].lower(self.params, *self._abstract(kind, rows, length))

  def _run(self, kind: str, *args):
    rows, length = args[0].shape
    key = self._key(kind, rows, length)
    exe = self._exes.get(key)
    if exe is None:
      exe = self._exes[key] = self._lower(kind, rows, length).compile()
    elif isinstance(exe, concurrent.futures.Future):
      exe = self._exes[key] = exe.result()
    return exe(self.params, *args)

  def lm(self, tokens, response_start, eoc_index, valid, *, with_prefix: bool = False, rows: int = 0):
    """Host arrays with leading shape S -> (sum log-prob, count, greedy) numpy arrays of shape S; the forward pass
    runs on at least `rows` rows (padding rows added: one compiled program serves batches of any size up to it)."""
    lead = np.asarray(response_start).shape
    (t, rs, ei), n = self._flatten(tokens, response_start, eoc_index, valid, rows)
    with self._ctx():
      if with_prefix:
        if self.prefix_cache is None:
          raise ValueError("with_prefix=True but the scorer has no prefix (prompt) tokens")
        out = self._run("lm_prefix", t, rs, ei, self.prefix_cache)
      else:
        out = self._run("lm", t, rs, ei)
    return tuple(device.to_host(x)[:n].reshape(lead) for x in out)

  def pm(self, tokens, eoc_index, valid, *, rows: int = 0):
    """Host arrays with leading shape S -> the score at each end-of-context token, shape S (`rows` as in lm)."""
    lead = np.asarray(eoc_index).shape
    (t, _, ei), n = self._flatten(tokens, np.zeros_like(np.asarray(eoc_index)), eoc_index, valid, rows)
    with self._ctx():
      s = self._run("pm", t, ei)
    return device.to_host(s)[:n].reshape(lead)


def _jitted(model, mesh, rules, param_shardings):
  """One set of jitted functions, and one table of their compiled programs, per (model config, mesh, rules): the
  lab's many evaluations of one model size reuse compilations (a new jax.jit of a new closure would compile again)."""
  def build():
    row, col, repl = sharding.batch_sharding(mesh, 2), sharding.batch_sharding(mesh, 1), sharding.replicated(mesh)
    lm = jax.jit(lambda p, t, s, e: lm_forward(model, p, t, s, e),
                 in_shardings=(param_shardings, row, col, col), out_shardings=(col, col, col))
    lm_prefix = jax.jit(lambda p, t, s, e, c: lm_forward(model, p, t, s, e, prefix_cache=c),
                        in_shardings=(param_shardings, row, col, col, repl), out_shardings=(col, col, col))
    pm = jax.jit(lambda p, t, e: eoc_scores(model, p, t, e), in_shardings=(param_shardings, row, col),
                 out_shardings=col)
    return {"lm": lm, "lm_prefix": lm_prefix, "pm": pm}, {}
  return device.jitted(("scoring", model.cfg, mesh, rules), build)


_POOL: Optional[concurrent.futures.ThreadPoolExecutor] = None


def compile_workers() -> int:
  """Programs compiled at once by `Scorer.prepare`: HHH_COMPILE_WORKERS, else the host's cores (at most 4)."""
  env = os.environ.get("HHH_COMPILE_WORKERS", "")
  if env:
    if not env.isdigit() or int(env) < 1:
      raise ValueError(f"HHH_COMPILE_WORKERS must be a positive integer, got {env!r}")
    return int(env)
  return max(1, min(4, os.cpu_count() or 1))


def _compile_pool() -> concurrent.futures.ThreadPoolExecutor:
  global _POOL
  if _POOL is None:
    _POOL = concurrent.futures.ThreadPoolExecutor(compile_workers(), thread_name_prefix="hhh-compile")
  return _POOL

