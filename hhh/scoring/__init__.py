"""Scoring with a model: log-probabilities of responses, the score at the end-of-context token, and a prompt's
keys/values computed once; the one place objectives, evaluation, best-of-n and tools get numbers from a model.

A sample of the comparison / multiple-choice / binary families (docs/contracts.md) is `tokens` = context + response
+ end-of-context token, with `response_start` and `eoc_index`. From one forward pass we read

* an LM's log-probability of the response tokens `tokens[response_start:eoc_index]` given everything before them
  (summed, mean and token count), optionally after a fixed prefix (the HHH prompt) whose keys/values
  (`prompt_cache`) are shared by every row; the vocabulary head runs in chunks of `model.logits_chunk` positions, so
  [..., L, V] f32 logits are never live at once;
* a preference (or binary) model's score, read at the end-of-context token (`eoc_scores`).

The mutual-information score of the paper, log P(a|q) - log P(a), needs log P(a) with the query removed; the response
cannot be scored from nothing (the first token needs a context), so P(a) is P(a | null context) with a short
configurable null context (default "\\n\\nAssistant:", the assistant turn marker without the human's query).
`unconditional_batch` builds those rows on the host from the same batch.

Pure functions (for jit: objectives, evaluation) come first; then `Scorer`, which jits them for host batches on a
mesh: batches are trimmed to a bucketed length (a multiple of 64 covering every end-of-context token) so that short
examples do not pay for the longest one; buckets bound recompilation. `score_lm` / `score_pm` score whole sets
as fixed-size batches of valid rows, compiling each (kind, rows, length) program once, ahead of time. Set-level
metrics of the scores (pairwise accuracy, MC1/MC2, calibration) are in hhh.core.metrics.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import math
import os
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from hhh.core import metrics
from hhh.core import sharding
from hhh.models import transformer

BUCKET = 64


# ----------------------------------------------------------------------------------------------- pure functions


def sequence_logprobs(model, params, tokens, response_start, eoc_index):
  """(sum, mean, count) of log p(response token | everything before it), per sample.

  tokens [..., L] = context + response + end-of-context token; response tokens are positions
  response_start .. eoc_index-1 (the end-of-context token itself is not part of the response). Samples with no
  response tokens (padding responses) get sum = mean = count = 0. The vocabulary head runs in chunks of
  `model.logits_chunk` positions (`next_token_logprobs`).
  """
  hidden = model.apply({"params": params}, tokens, return_logits=False, return_hidden=True)["hidden"]
  nxt, _ = next_token_logprobs(params, hidden, tokens, model.cfg)
  return sequence_logprobs_from_token_logprobs(nxt, tokens, response_start, eoc_index)


def next_token_logprobs(params, hidden, tokens, cfg):
  """(log p(x_{t+1} | x_<=t), x_{t+1} == argmax) for t < L-1 from final hidden states [..., L, D] -> 2 x [..., L-1],
  computed by chunks of `cfg.logits_chunk` positions (the [..., L, V] f32 logits are never live at once)."""
  lead, length = tokens.shape[:-1], tokens.shape[-1]
  flat_t = tokens.reshape(-1, length)
  targets = jnp.concatenate([flat_t[:, 1:], jnp.zeros_like(flat_t[:, :1])], axis=1)  # position t predicts t+1

  def per_chunk(h, t):
    logits = transformer.unembed(params, h, cfg)
    logp = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(logp, t[..., None], axis=-1)[..., 0], jnp.argmax(logits, axis=-1) == t

  nxt, hit = transformer.per_position(per_chunk, (hidden.reshape(flat_t.shape + hidden.shape[-1:]), targets),
                                      cfg.logits_chunk)
  return nxt[:, :-1].reshape(lead + (length - 1,)), hit[:, :-1].reshape(lead + (length - 1,))


def sequence_logprobs_from_logits(logits, tokens, response_start, eoc_index):
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)  # [..., L, V]; position t predicts t+1
  nxt = jnp.take_along_axis(logp[..., :-1, :], tokens[..., 1:, None], axis=-1)[..., 0]  # [..., L-1]: log p(x_{t+1})
  return sequence_logprobs_from_token_logprobs(nxt, tokens, response_start, eoc_index)


def sequence_logprobs_from_token_logprobs(nxt, tokens, response_start, eoc_index):
  """(sum, mean, count) over the response of next-token log-probs nxt [..., L-1] (nxt[t] = log p(x_{t+1}))."""
  t = jnp.arange(1, tokens.shape[-1])  # index of the predicted token
  mask = (t >= response_start[..., None]) & (t < eoc_index[..., None])
  mask = mask.astype(jnp.float32)
  count = mask.sum(-1)
  total = (nxt * mask).sum(-1)
  return total, total / jnp.maximum(count, 1.0), count


def eoc_scores(model, params, tokens, eoc_index):
  """[..., L] rows -> the score head read at each row's end-of-context token [...]."""
  return model.apply({"params": params}, tokens, score_index=eoc_index, return_logits=False)["score"]


def prompt_cache(model, params, tokens):
  """Keys/values of a prompt [layers, P, heads, head_dim] (one sequence), for the model's `prefix_cache`."""
  out = model.apply({"params": params}, jnp.asarray(tokens)[None], return_logits=False, return_cache=True)
  return jax.tree.map(lambda c: c[:, 0], out["cache"])


def comparison_scores(model, params, batch, scorer: str):
  """Model scores [B, K] of a comparison batch: scorer 'score' (score head at the end-of-context token) or
  'mean_logprob' / 'sum_logprob' (the LM as a ranker)."""
  if scorer == "score":
    return eoc_scores(model, params, batch["tokens"], batch["eoc_index"])
  total, mean, _ = sequence_logprobs(model, params, batch["tokens"], batch["response_start"], batch["eoc_index"])
  if scorer == "mean_logprob":
    return mean
  if scorer == "sum_logprob":
    return total
  raise ValueError(f"unknown scorer {scorer!r}; choose score, mean_logprob or sum_logprob")


def response_logprobs(logits, tokens, response_start, eoc_index):
  """Sum of log P(tokens[t] | tokens[<t]) over response_start <= t < eoc_index, the number of such tokens, and
  whether every one of them is the argmax prediction (greedy decoding would produce the response: lambada).

  logits [N, L, V] (position t predicts token t+1), tokens [N, L], response_start/eoc_index [N] -> 3 x [N].
  A response starting at position 0 has no context for its first token, which is then not counted.
  """
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  nxt = jnp.take_along_axis(logp[:, :-1], tokens[:, 1:, None], axis=-1)[..., 0]
  hit = jnp.argmax(logits[:, :-1], axis=-1) == tokens[:, 1:]
  return _response_stats(nxt, hit, tokens, response_start, eoc_index)


def lm_forward(model, params, tokens, response_start, eoc_index, prefix_cache=None):
  """[N, L] rows -> (sum log-prob, token count, greedy) of each row's response; pure, for jit.

  The vocabulary head runs in chunks of `model.logits_chunk` positions: the [N, L, V] f32 logits of a long
  (prompted) evaluation batch are never live at once."""
  out = model.apply({"params": params}, tokens, prefix_cache=prefix_cache, return_logits=False, return_hidden=True)
  nxt, hit = next_token_logprobs(params, out["hidden"], tokens, model.cfg)
  return _response_stats(nxt, hit, tokens, response_start, eoc_index)


def _response_stats(nxt, hit, tokens, response_start, eoc_index):
  """response_logprobs from next-token log-probs and argmax hits [N, L-1]."""
  total, _, count = sequence_logprobs_from_token_logprobs(nxt, tokens, response_start, eoc_index)
  pos = jnp.arange(1, tokens.shape[1])[None]
  mask = (pos >= response_start[:, None]) & (pos < eoc_index[:, None])
  greedy = jnp.all(hit | ~mask, axis=1).astype(jnp.float32)
  return total, count, greedy


def comparison_accuracy(model, params, batches, scorer: str, max_batches: int | None = None) -> dict:
  """Pairwise accuracy (hhh.core.metrics.pair_stats; and pairwise ECE for score-head models) of `scorer` over an iterable
  of comparison batches: every (better, worse) pair with different ranks; chance is 0.5."""
  fn = jax.jit(lambda p, b: comparison_scores(model, p, b, scorer))
  scores, ranks, valid = [], [], []
  for i, b in enumerate(batches):
    if max_batches is not None and i >= max_batches:
      break
    b = {k: jnp.asarray(v) for k, v in b.items()}
    scores.append(np.asarray(fn(params, b), np.float32))
    ranks.append(np.asarray(b["score"]))
    valid.append(np.asarray(b["valid"]))
  if not scores:
    return {"accuracy": 0.0, "pairs": 0.0, "mean_better": 0.0, "mean_worse": 0.0, "mean_margin": 0.0}
  s, r, v = (np.concatenate([x.reshape((-1,) + x.shape[-1:]) for x in a]) for a in (scores, ranks, valid))
  st = {k: float(x) for k, x in metrics.pair_stats(s, r, v).items()}
  n = max(st["pairs"], 1.0)
  out = {"accuracy": st["correct"] / n, "pairs": st["pairs"], "mean_better": st["better"] / n,
         "mean_worse": st["worse"] / n, "mean_margin": st["margin"] / n}
  if scorer == "score":
    out["ece"] = float(metrics.pairwise_ece(s, r, v))
  return out


# ----------------------------------------------------------------------------------------------- host batches


def bucket_length(eoc_index: np.ndarray, valid: np.ndarray, seq_len: int, bucket: int = BUCKET) -> int:
  """Smallest multiple of `bucket` (capped at seq_len) that holds every valid row up to its end-of-context token."""
  ends = np.asarray(eoc_index)[np.asarray(valid) > 0]
  need = int(ends.max()) + 1 if ends.size else 1
  return min(seq_len, max(bucket, int(math.ceil(need / bucket)) * bucket))


def unconditional_batch(tokens, response_start, eoc_index, valid, null_ids, eoc_id: int):
  """The same responses after `null_ids` instead of their context: (tokens, response_start, eoc_index) of the
  same shapes. Responses that do not fit keep their first tokens (never happens when len(null) < len(context))."""
  tokens, rs, ei = np.asarray(tokens), np.asarray(response_start), np.asarray(eoc_index)
  lead, L = tokens.shape[:-1], tokens.shape[-1]
  t2, r2, e2 = tokens.reshape(-1, L), rs.reshape(-1), ei.reshape(-1)
  v2 = np.asarray(valid).reshape(-1)
  out = np.zeros_like(t2)
  new_rs = np.zeros_like(r2)
  new_ei = np.zeros_like(e2)
  null = np.asarray(null_ids, np.int32)
  for i in range(t2.shape[0]):
    if v2[i] <= 0:
      continue
    resp = t2[i, r2[i]:e2[i]][: L - 1 - len(null)]
    row = np.concatenate([null, resp, [eoc_id]])
    out[i, :len(row)] = row
    new_rs[i], new_ei[i] = len(null), len(null) + len(resp)
  return out.reshape(tokens.shape), new_rs.reshape(lead), new_ei.reshape(lead)


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
    length = bucket_length(eoc_index, valid, seq_len)
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
    return [_global(self._rows(a, pad), sh) for a, sh in zip((t, rs, ei), shardings)], n

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
    return tuple(_to_host(x)[:n].reshape(lead) for x in out)

  def pm(self, tokens, eoc_index, valid, *, rows: int = 0):
    """Host arrays with leading shape S -> the score at each end-of-context token, shape S (`rows` as in lm)."""
    lead = np.asarray(eoc_index).shape
    (t, _, ei), n = self._flatten(tokens, np.zeros_like(np.asarray(eoc_index)), eoc_index, valid, rows)
    with self._ctx():
      s = self._run("pm", t, ei)
    return _to_host(s)[:n].reshape(lead)


_JIT_CACHE: dict = {}


def _jitted(model, mesh, rules, param_shardings):
  """One set of jitted functions, and one table of their compiled programs, per (model config, mesh, rules): the
  lab's many evaluations of one model size reuse compilations (a new jax.jit of a new closure would compile again)."""
  key = (model.cfg, mesh, rules)
  if key not in _JIT_CACHE:
    row, col, repl = sharding.batch_sharding(mesh, 2), sharding.batch_sharding(mesh, 1), sharding.replicated(mesh)
    lm = jax.jit(lambda p, t, s, e: lm_forward(model, p, t, s, e),
                 in_shardings=(param_shardings, row, col, col), out_shardings=(col, col, col))
    lm_prefix = jax.jit(lambda p, t, s, e, c: lm_forward(model, p, t, s, e, prefix_cache=c),
                        in_shardings=(param_shardings, row, col, col, repl), out_shardings=(col, col, col))
    pm = jax.jit(lambda p, t, e: eoc_scores(model, p, t, e), in_shardings=(param_shardings, row, col),
                 out_shardings=col)
    _JIT_CACHE[key] = ({"lm": lm, "lm_prefix": lm_prefix, "pm": pm}, {})
  return _JIT_CACHE[key]


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


def _global(x: np.ndarray, sh) -> jax.Array:
  """A global array from the full host copy every process holds (evaluation sets are small)."""
  return jax.make_array_from_callback(x.shape, sh, lambda idx: x[idx])


def _to_host(x: Any) -> np.ndarray:
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(jax.device_get(x))


# ----------------------------------------------------------------------------------------------- whole sets


def _valid_rows(ex):
  """The valid responses of a set as flat rows: (example index, response index, tokens [M, L], response_start,
  eoc_index); padding responses (valid 0) are never run."""
  ii, kk = np.nonzero(np.asarray(ex.valid) > 0)
  return ii, kk, ex.tokens[ii, kk], ex.response_start[ii, kk], ex.eoc_index[ii, kk]


def _batches(eoc_index, batch_size: int) -> list:
  """Row indices in batches of at most `batch_size`, shortest rows first (each pass trims to a tight bucket)."""
  if batch_size < 1:
    raise ValueError(f"eval batch_size must be >= 1 (rows per forward pass), got {batch_size}")
  order = np.argsort(eoc_index, kind="stable")
  return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def score_lm(scorer: Scorer, ex, *, batch_size: int, with_prefix: bool = False, null_ids=None,
             eoc_id: int | None = None) -> dict:
  """LM scores of every response of an evaluation set: {sum, count, mean, greedy[, uncond, mi]} arrays [N, K]
  (zeros for padding responses).

  With `null_ids`, also log P(a | null context) ("uncond") and the mutual information "mi" = sum - uncond.
  Every valid response is one row; rows are sorted by length and scored `batch_size` at a time, every pass on
  exactly `batch_size` rows (the last one padded), so the programs compiled for one set (one per length bucket)
  serve every other set and suite of the same model.
  """
  ii, kk, tok, rs, ei = _valid_rows(ex)
  kind = "lm_prefix" if with_prefix else "lm"
  ones = np.ones(len(ii), np.float32)
  sets = {"cond": (tok, rs, ei)}
  if null_ids is not None:
    sets["uncond"] = unconditional_batch(tok, rs, ei, ones, null_ids, eoc_id)
  plan = [(name, idx) for name, (_, _, e) in sets.items() for idx in _batches(e, batch_size)]
  out = {name: np.zeros(ex.valid.shape, np.float64) for name in ("sum", "count", "greedy", "uncond")}
  with scorer.prepare([(kind, batch_size, scorer.trimmed_length(sets[name][2][idx], ones[idx], tok.shape[-1]))
                       for name, idx in plan]):
    for name, idx in plan:
      t, r, e = (a[idx] for a in sets[name])
      total, count, greedy = scorer.lm(t, r, e, ones[idx], with_prefix=with_prefix, rows=batch_size)
      if name == "cond":
        out["sum"][ii[idx], kk[idx]], out["count"][ii[idx], kk[idx]], out["greedy"][ii[idx], kk[idx]] = \
            total, count, greedy
      else:
        out["uncond"][ii[idx], kk[idx]] = total
  out["mean"] = out["sum"] / np.maximum(out["count"], 1)
  if null_ids is not None:
    out["mi"] = out["sum"] - out["uncond"]
  else:
    del out["uncond"]
  return out


def score_pm(scorer: Scorer, ex, *, batch_size: int) -> dict:
  """Preference/binary model scores of every response: {"score": [N, K]} (zeros for padding responses); rows
  batched as in score_lm."""
  ii, kk, tok, _, ei = _valid_rows(ex)
  ones = np.ones(len(ii), np.float32)
  batches = _batches(ei, batch_size)
  score = np.zeros(ex.valid.shape, np.float64)
  with scorer.prepare([("pm", batch_size, scorer.trimmed_length(ei[idx], ones[idx], tok.shape[-1]))
                       for idx in batches]):
    for idx in batches:
      score[ii[idx], kk[idx]] = scorer.pm(tok[idx], ei[idx], ones[idx], rows=batch_size)
  return {"score": score}
