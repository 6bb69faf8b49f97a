"""Sampling from a trained LM: prefill + decode with a key/value cache, on the training mesh (docs/sampling.md).

Two compiled programs per shape serve a whole generation:

  * prefill: the prompts of a batch, right-padded to a bucketed length T, go through the training forward
    (`return_cache=True`, after the shared prefix) once; their keys/values become the first T slots of a decode
    cache {"k", "v": one [rows, heads, S, head_dim] array per layer, "index": [rows]} with S = T + max_new_tokens
    slots, whose logical axes (`kv_cache.CACHE_AXES`) shard it like the activations: rows over the data axes,
    heads over `tensor`. Row b's index starts at its own prompt length, so every row decodes at its own position.
    With n samples per prompt each prompt is prefilled once and its cache rows are copied n times.
  * decode: `jax.lax.while_loop` over steps (one program for every step, and for every chunk of steps: the step
    limit is an argument): choose each row's next token from its logits, record it and its log-probability, stop
    the row at end-of-sequence or when its newest tokens spell a stop string, then run the model on the chosen
    tokens with `cache=` (hhh.models.transformer: writes k/v at each row's index, attends to slots <= index and to
    the shared prefix) for the next logits. The loop ends when every row is done or the limit is reached.

Both run the model with its layers unrolled (`kv_cache.unrolled_params`: the scanned parameters are split per
layer once, when the Sampler is built), so that no step copies a layer's weights or cache out of a stacked array.

The shared prefix (the HHH prompt) is prefilled ONCE per sampler with `hhh.scoring.prompt_cache` (the
model's `prefix_cache`, as context distillation and prompted evaluation use it) and every row of every batch
attends to it.

Choosing a token: temperature 0 is greedy (argmax of the logits); otherwise the logits are divided by the
temperature, cut to the top-k (`top_k` > 0) and then to the nucleus (`top_p` < 1: the most probable tokens whose
mass reaches top_p, the token that crosses it included; tokens tied with the last kept one are kept), and a token
is drawn (`filter_logits`).

Log-probs: each returned token's log-probability under the UNMODIFIED model distribution, log softmax(logits) at
temperature 1 without top-k/top-p, whatever the sampling settings (so a sample's sum is its log-likelihood under
the model, comparable across settings).

Determinism: row (prompt i, sample j) draws step t with key fold_in(fold_in(fold_in(key(seed), i), j), t), so the
same seed gives the same samples whatever the batch size, the padding or the mesh (up to float summation order,
which can flip a near-tie), and a different seed gives different samples.

Stop strings are cut exactly from the returned text (the text ends before the first occurrence of any of them);
the returned tokens are those whose text lies before the cut (for the byte vocabulary exactly the text's bytes),
and a sample that ends at end-of-sequence keeps that token (and its log-prob) last.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import re
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from hhh.core import sharding
from hhh.core.errors import ConfigError
from hhh.models import kv_cache, transformer

BUCKET = 64  # prompt lengths are padded to a multiple of this (bounds recompilation)
STOP_REASONS = ("eos", "stop", "length")


# ----------------------------------------------------------------------------------------------- settings


@dataclasses.dataclass(frozen=True)
class Settings:
  """How to sample (every field can change between calls without recompiling, except max_new_tokens and the
  number/length of stop strings, which are shapes)."""
  max_new_tokens: int = 128
  temperature: float = 1.0  # 0 = greedy
  top_k: int = 0  # 0 = off
  top_p: float = 1.0  # 1 = off
  num_samples: int = 1
  stop: tuple = ()
  seed: int = 0

  def __post_init__(self):
    object.__setattr__(self, "stop", tuple(self.stop))
    bad = []
    if int(self.max_new_tokens) < 1:
      bad.append(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
    if not float(self.temperature) >= 0 or not math.isfinite(float(self.temperature)):
      bad.append(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
    if int(self.top_k) < 0:
      bad.append(f"top_k must be >= 0 (0 = off), got {self.top_k}")
    if not 0 < float(self.top_p) <= 1:
      bad.append(f"top_p must be in (0, 1] (1 = off), got {self.top_p}")
    if int(self.num_samples) < 1:
      bad.append(f"num_samples must be >= 1, got {self.num_samples}")
    if any(not isinstance(s, str) or not s for s in self.stop):
      bad.append(f"stop must be a tuple of non-empty strings, got {self.stop!r}")
    if bad:
      raise ConfigError("; ".join(bad))

  @classmethod
  def from_config(cls, config) -> "Settings":
    stop = config.stop
    if isinstance(stop, str):  # a single string given on the command line
      stop = (stop,) if stop else ()
    return cls(max_new_tokens=int(config.max_new_tokens), temperature=float(config.temperature),
               top_k=int(config.top_k), top_p=float(config.top_p), num_samples=int(config.num_samples),
               stop=tuple(stop), seed=int(config.seed))

  def describe(self) -> dict:
    return {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature, "top_k": self.top_k,
            "top_p": self.top_p, "num_samples": self.num_samples, "stop": list(self.stop), "seed": self.seed}


@dataclasses.dataclass
class Sample:
  prompt_index: int
  sample_index: int
  text: str
  tokens: list  # generated token ids (an end-of-sequence token last when stop_reason == "eos")
  logprobs: list  # log P(token) under the unmodified model distribution, one per token
  stop_reason: str  # eos | stop (a stop string) | length (max_new_tokens)

  @property
  def sum_logprob(self) -> float:
    return float(sum(self.logprobs))


# ----------------------------------------------------------------------------------------------- token choice


def filter_logits(logits, temperature, top_k, top_p):
  """Logits [..., V] of the sampling distribution: divided by `temperature` (> 0), then only the `top_k` largest
  kept (top_k > 0), then only the nucleus (top_p < 1): the most probable tokens whose probability mass (under the
  temperature/top-k distribution) reaches top_p, the one that crosses it included. Removed tokens get -inf; tokens
  tied with the last kept value are kept. temperature, top_k, top_p may be traced scalars."""
  x = logits.astype(jnp.float32) / jnp.maximum(jnp.asarray(temperature, jnp.float32), 1e-6)
  v = x.shape[-1]
  top_k = jnp.asarray(top_k, jnp.int32)
  top_p = jnp.asarray(top_p, jnp.float32)
  desc = -jnp.sort(-x, axis=-1)
  kth = jax.lax.dynamic_index_in_dim(desc, jnp.clip(top_k, 1, v) - 1, axis=-1, keepdims=True)
  use_k = top_k > 0
  x = jnp.where(use_k & (x < kth), -jnp.inf, x)
  desc = jnp.where(use_k & (desc < kth), -jnp.inf, desc)
  probs = jax.nn.softmax(desc, axis=-1)
  before = jnp.cumsum(probs, axis=-1) - probs  # mass of the more probable tokens
  cut = jnp.min(jnp.where(before < top_p, desc, jnp.inf), axis=-1, keepdims=True)
  return jnp.where((top_p < 1) & (x < cut), -jnp.inf, x)


def choose_tokens(logits, keys, temperature, top_k, top_p):
  """Next tokens [R] from logits [R, V]: argmax when temperature == 0, else a draw from `filter_logits` with each
  row's key (keys: [R] typed PRNG keys)."""
  def greedy(_):
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)

  def draw(_):
    x = filter_logits(logits, temperature, top_k, top_p)
    return jax.vmap(lambda k, row: jax.random.categorical(k, row))(keys, x).astype(jnp.int32)

  return jax.lax.cond(jnp.asarray(temperature) <= 0, greedy, draw, None)


def row_keys(seed, prompt_index, sample_index):
  """Raw key data [R, ...] of each row's stream: fold_in(fold_in(key(seed), prompt), sample)."""
  base = jax.random.key(seed)
  keys = jax.vmap(lambda i, j: jax.random.fold_in(jax.random.fold_in(base, i), j))(prompt_index, sample_index)
  return jax.random.key_data(keys)


# ----------------------------------------------------------------------------------------------- model steps


def prefill(model, params, tokens, lengths, slots: int, prefix_cache=None):
  """Right-padded prompts [B, T] (row b: lengths[b] >= 1 tokens) -> (decode cache with `slots` >= T slots and
  index = lengths, next-token logits [B, V] after each row's last prompt token). The training forward (its
  attention kernel) computes the keys/values; `prefix_cache` is the shared prefix. `model` has scan_layers=False
  (`kv_cache.unrolled_params`)."""
  t = tokens.shape[1]
  out = model.apply({"params": params}, tokens, prefix_cache=prefix_cache, return_logits=False, return_hidden=True,
                    return_cache=True)
  last = jnp.take_along_axis(out["hidden"], (lengths - 1)[:, None, None], axis=1)[:, 0]  # [B, D]
  logits = transformer.unembed(params, last, model.cfg)
  pad = ((0, 0), (0, 0), (0, slots - t), (0, 0))
  cache = {name: tuple(sharding.constrain(jnp.pad(jnp.swapaxes(c[i], 1, 2), pad), kv_cache.CACHE_AXES)
                       for i in range(c.shape[0]))  # per layer [B, H, S, D]
           for name, c in out["cache"].items()}
  cache["index"] = lengths.astype(jnp.int32)
  return cache, logits


def decode_step(model, params, cache, tokens, prefix_cache=None):
  """tokens [B, T] written at each row's cache index -> (logits [B, T, V] f32, cache with index + T)."""
  out = model.apply({"params": params}, tokens, prefix_cache=prefix_cache, cache=cache)
  return out["logits"], out["cache"]


def _stop_hit(tokens, step, stop_ids):
  """[R] bool: the tokens generated up to `step` end with one of the stop sequences stop_ids [M, L] (right-aligned,
  -1 = padding on the left)."""
  length = stop_ids.shape[1]
  padded = jnp.concatenate([jnp.full((tokens.shape[0], length), -2, tokens.dtype), tokens], axis=1)
  window = jax.lax.dynamic_slice_in_dim(padded, step + 1, length, axis=1)  # tokens step-L+1 .. step
  match = (window[:, None, :] == stop_ids[None]) | (stop_ids[None] < 0)  # [R, M, L]
  return jnp.any(jnp.all(match, axis=-1) & jnp.any(stop_ids >= 0, axis=-1)[None], axis=-1)


def init_state(model, params, tokens, lengths, row_source, done, prompt_index, sample_index, seed, prefix_cache, *,
               slots: int, max_new: int):
  """The decode loop's starting state: prefill of the unique prompts, then row r takes prompt row row_source[r]."""
  cache, logits = prefill(model, params, tokens, lengths, slots, prefix_cache)
  take = lambda x: jnp.take(x, row_source, axis=0)  # noqa: E731
  cache = jax.tree.map(take, cache)
  rows = row_source.shape[0]
  return {
      "cache": cache,
      "logits": take(logits),
      "tokens": jnp.zeros((rows, max_new), jnp.int32),
      "logprobs": jnp.zeros((rows, max_new), jnp.float32),
      "count": jnp.zeros((rows,), jnp.int32),
      "done": done,
      "step": jnp.zeros((), jnp.int32),
      "keys": row_keys(seed, prompt_index, sample_index),
  }


def decode_loop(model, params, state, limit, temperature, top_k, top_p, stop_ids, prefix_cache=None, *,
                eos_id: int, pad_id: int = 0):
  """Steps of the state until every row is done or `limit` (<= max_new_tokens) tokens were generated: one
  `jax.lax.while_loop`, so one compiled program serves every step and every chunk."""
  max_new = state["tokens"].shape[1]
  limit = jnp.minimum(jnp.asarray(limit, jnp.int32), max_new)

  def cond(s):
    return (s["step"] < limit) & ~jnp.all(s["done"])

  def body(s):
    step = s["step"]
    keys = jax.vmap(lambda k: jax.random.fold_in(jax.random.wrap_key_data(k), step))(s["keys"])
    tok = choose_tokens(s["logits"], keys, temperature, top_k, top_p)
    logp = jnp.take_along_axis(jax.nn.log_softmax(s["logits"], axis=-1), tok[:, None], axis=-1)[:, 0]
    active = ~s["done"]
    tok = jnp.where(active, tok, pad_id)
    tokens = jax.lax.dynamic_update_slice_in_dim(s["tokens"], tok[:, None], step, axis=1)
    logprobs = jax.lax.dynamic_update_slice_in_dim(s["logprobs"], jnp.where(active, logp, 0.0)[:, None], step,
                                                   axis=1)
    done = s["done"] | (active & (tok == eos_id))
    if stop_ids.shape[0]:
      done = done | (active & _stop_hit(tokens, step, stop_ids))
    logits, cache = decode_step(model, params, s["cache"], tok[:, None], prefix_cache)
    return {**s, "cache": cache, "logits": logits[:, 0], "tokens": tokens, "logprobs": logprobs,
            "count": s["count"] + active.astype(jnp.int32), "done": done, "step": step + 1}

  return jax.lax.while_loop(cond, body, state)


# ----------------------------------------------------------------------------------------------- the sampler


def _named(mesh, rules, names) -> NamedSharding:
  return NamedSharding(mesh, nn.logical_to_mesh_axes(tuple(names), rules))


def state_shardings(mesh, rules, n_layers: int) -> dict:
  """NamedShardings of the decode state: the cache by CACHE_AXES, every per-row array over the data axes."""
  batch = lambda *rest: _named(mesh, rules, ("activation_batch",) + rest)  # noqa: E731
  kv = (_named(mesh, rules, kv_cache.CACHE_AXES),) * n_layers
  return {
      "cache": {"k": kv, "v": kv, "index": batch()},
      "logits": batch("activation_vocab"),
      "tokens": batch(None), "logprobs": batch(None), "count": batch(), "done": batch(),
      "step": NamedSharding(mesh, P()),
      "keys": batch(*([None] * jax.random.key_data(jax.random.key(0)).ndim)),
  }


def prefix_sharding(mesh, rules, n_layers: int) -> dict:
  """The shared prefix: one [P, heads, head_dim] array per layer, heads over `tensor`, replicated over the data."""
  s = (_named(mesh, rules, ("activation_length", "activation_heads", "activation_kv")),) * n_layers
  return {"k": s, "v": s}


def unrolled(model, params, mesh):
  """(model with scan_layers=False, its parameters) from a model and parameters on `mesh`: the stacked layer
  parameters are split per layer once, each onto its stacked sharding without the layer axis."""
  cfg = model.cfg
  if not cfg.scan_layers:
    return model, params

  def sharding_of(x, drop_layer_axis: bool):
    sh = getattr(x, "sharding", None)
    spec = tuple(sh.spec) if isinstance(sh, NamedSharding) else ()
    return NamedSharding(mesh, P(*(spec[1:] if drop_layer_axis else spec)))

  shardings = {k: jax.tree.map(lambda x: sharding_of(x, False), v) for k, v in params.items() if k != "layers"}
  for i in range(cfg.n_layers):
    shardings[f"layer_{i}"] = jax.tree.map(lambda x: sharding_of(x, True), params["layers"])
  split = jax.jit(lambda p: kv_cache.unrolled_params(p, cfg.n_layers), out_shardings=shardings)
  with jax.set_mesh(mesh):
    return transformer.Transformer(dataclasses.replace(cfg, scan_layers=False)), split(params)


def _put(x: np.ndarray, sh) -> jax.Array:
  """A global array from the full host copy (every process holds the same small inputs)."""
  x = np.asarray(x)
  return jax.make_array_from_callback(x.shape, sh, lambda idx: x[idx])


def _host(x) -> np.ndarray:
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(jax.device_get(x))


def _round_up(n: int, m: int) -> int:
  return -(-n // m) * m


class Sampler:
  """Sampling from `model` with `params` (already on the mesh) and an optional shared prefix (token ids).

  `generate(prompts, settings)` samples whole batches; `stream(prompt, settings, chunk, on_text)` samples one prompt
  `chunk` tokens per compiled call and hands the text to `on_text` as it is produced (hhh.chat).
  """

  def __init__(self, model, params, mesh, rules, vocab, *, prefix_tokens=None, batch_size: int = 16,
               eos_id: Optional[int] = None):
    from hhh.data import vocab as vocab_lib  # pylint: disable=g-import-not-at-top
    self.mesh, self.rules = mesh, tuple(rules)
    self.model, self.params = unrolled(model, params, mesh)
    self.vocab = vocab_lib.get_vocabulary(vocab) if isinstance(vocab, str) else vocab
    self.eos_id = vocab_lib.eos_id(self.vocab) if eos_id is None else int(eos_id)
    self.pad_id = vocab_lib.pad_id(self.vocab)
    self.dp = sharding.data_parallel_size(mesh)
    self.batch_size = max(1, int(batch_size))
    self.max_len = int(self.model.cfg.max_len)
    self._fns = _jitted(self.model, mesh, self.rules, self.eos_id, self.pad_id)
    self._set_prefix(prefix_tokens)

  def _set_prefix(self, prefix_tokens) -> None:
    self.prefix_tokens = np.asarray([] if prefix_tokens is None else prefix_tokens, np.int32)
    self.prefix_len = int(self.prefix_tokens.size)
    if self.prefix_len >= self.max_len:
      raise ConfigError(f"the shared prompt is {self.prefix_len} tokens; the model's context is "
                        f"model.max_len={self.max_len}")
    self.prefix = None
    if self.prefix_len:
      with self._ctx():
        self.prefix = self._fns["prefix"](self.params, _put(self.prefix_tokens, NamedSharding(self.mesh, P())))

  def with_prefix(self, prefix_tokens) -> "Sampler":
    """The same model and parameters (shared, not copied) with another shared prefix (None: none)."""
    other = copy.copy(self)
    other._set_prefix(prefix_tokens)  # pylint: disable=protected-access
    return other

  def _ctx(self):
    return sharding.activate(self.mesh, self.rules)

  # -- sizes

  def room(self, settings: Settings) -> int:
    """Most tokens a row's own context can have: model.max_len - shared prefix - max_new_tokens."""
    return self.max_len - self.prefix_len - int(settings.max_new_tokens)

  def check_lengths(self, prompts: Sequence[Sequence[int]], settings: Settings) -> None:
    room = self.room(settings)
    if room < 1:
      raise ConfigError(f"no room for any prompt: model.max_len={self.max_len} = {self.prefix_len} (shared prompt) + "
                        f"{int(settings.max_new_tokens)} (max_new_tokens) leaves {room} tokens; lower max_new_tokens "
                        f"or prompt_max_tokens, or use --config.prompt=none")
    for i, p in enumerate(prompts):
      if len(p) == 0:
        raise ConfigError(f"prompt {i} is empty: the model needs at least one token to continue from")
      if len(p) > room:
        raise ConfigError(
            f"prompt {i} is {len(p)} tokens, longer than the {room} the model's context leaves for it: "
            f"model.max_len={self.max_len} = {self.prefix_len} (shared prompt) + {int(settings.max_new_tokens)} "
            f"(max_new_tokens) + at most {room} (the row's context). Shorten it, lower max_new_tokens or "
            f"prompt_max_tokens, or use --config.prompt=none.")

  def _bucket(self, longest: int, settings: Settings) -> int:
    return max(longest, min(_round_up(longest, BUCKET), self.room(settings)))

  # -- compiled steps

  def start_state(self, prompts, rows, key_index, settings: Settings, n_rows: int):
    """Initial decode state of `rows` [(prompt, sample)] of `prompts` (token lists) in n_rows rows (the rest are
    padding, done from the start); prompt p draws from the stream of key_index[p]."""
    uniq = sorted({p for p, _ in rows})
    where = {p: i for i, p in enumerate(uniq)}
    length = self._bucket(max(len(prompts[p]) for p in uniq), settings)
    tokens = np.full((n_rows, length), self.pad_id, np.int32)
    lengths = np.ones((n_rows,), np.int32)
    for p, i in where.items():
      tokens[i, :len(prompts[p])] = prompts[p]
      lengths[i] = len(prompts[p])
    source = np.zeros((n_rows,), np.int32)
    done = np.ones((n_rows,), bool)
    pidx, sidx = np.zeros((n_rows,), np.int32), np.zeros((n_rows,), np.int32)
    for r, (p, s) in enumerate(rows):
      source[r], done[r], pidx[r], sidx[r] = where[p], False, key_index[p], s
    row = lambda x: _put(x, _named(self.mesh, self.rules, ("activation_batch",) + (None,) * (x.ndim - 1)))  # noqa
    seed = _put(np.asarray(int(settings.seed) % 2**32, np.uint32), NamedSharding(self.mesh, P()))
    with self._ctx():
      return self._fns["start"](self.params, row(tokens), row(lengths), row(source), row(done), row(pidx),
                                row(sidx), seed, self.prefix, slots=length + int(settings.max_new_tokens),
                                max_new=int(settings.max_new_tokens))

  def stop_ids(self, settings: Settings) -> jax.Array:
    """The stop strings' token ids [M, L], right-aligned (-1 on the left), for the in-loop early stop."""
    seqs = [list(self.vocab.encode(s)) for s in settings.stop]
    seqs = [s for s in seqs if s]
    width = max([len(s) for s in seqs] + [1])
    arr = np.full((len(seqs), width), -1, np.int32)
    for i, s in enumerate(seqs):
      arr[i, width - len(s):] = s
    return _put(arr, NamedSharding(self.mesh, P()))

  def _decode_args(self, state, limit: int, settings: Settings, stop_ids):
    scalar = lambda x, dt: _put(np.asarray(x, dt), NamedSharding(self.mesh, P()))  # noqa: E731
    return (self.params, state, scalar(limit, np.int32), scalar(settings.temperature, np.float32),
            scalar(settings.top_k, np.int32), scalar(settings.top_p, np.float32), stop_ids, self.prefix)

  def decode(self, state, limit: int, settings: Settings, stop_ids):
    """Runs the decode loop on `state` (donated) until every row is done or `limit` tokens were generated."""
    with self._ctx():
      return self._fns["decode"](*self._decode_args(state, limit, settings, stop_ids))

  def lower_decode(self, state, settings: Settings, stop_ids):
    """The decode program lowered for `state`'s shapes (`.compile()` it to time compilation or read its memory)."""
    with self._ctx():
      return self._fns["decode"].lower(*self._decode_args(state, int(settings.max_new_tokens), settings, stop_ids))

  # -- host side

  def finish(self, tokens, logprobs, settings: Settings, prompt_index: int = 0, sample_index: int = 0) -> Sample:
    return finish_row(self.vocab, self.eos_id, tokens, logprobs, settings.stop, prompt_index, sample_index)

  def generate(self, prompts: Sequence[Sequence[int]], settings: Settings,
               prompt_indices: Optional[Sequence[int]] = None) -> list:
    """Samples `settings.num_samples` continuations of every prompt (token id lists): Samples in prompt order, then
    sample order. `prompt_indices` (default 0..n-1) key each prompt's random stream."""
    prompts = [list(map(int, p)) for p in prompts]
    self.check_lengths(prompts, settings)
    keys_of = list(range(len(prompts))) if prompt_indices is None else [int(i) for i in prompt_indices]
    rows = [(p, s) for p in range(len(prompts)) for s in range(int(settings.num_samples))]
    n_rows = _round_up(min(self.batch_size, len(rows)), self.dp)
    stop_ids = self.stop_ids(settings)
    out = []
    for start in range(0, len(rows), n_rows):
      batch = rows[start:start + n_rows]
      state = self.start_state(prompts, batch, keys_of, settings, n_rows)
      state = self.decode(state, int(settings.max_new_tokens), settings, stop_ids)
      toks, lps, count = _host(state["tokens"]), _host(state["logprobs"]), _host(state["count"])
      for r, (p, s) in enumerate(batch):
        out.append(self.finish(toks[r, :count[r]], lps[r, :count[r]], settings, keys_of[p], s))
    return out

  def stream(self, prompt: Sequence[int], settings: Settings, *, chunk: int = 8,
             on_text: Callable[[str], Any] = lambda _: None, prompt_index: int = 0) -> Sample:
    """One sample of `prompt`, decoded `chunk` tokens per compiled call; on_text(piece) gets the text as it grows
    (text that could be the start of a stop string is held back until it is not). Returns the Sample."""
    prompt = [int(t) for t in prompt]
    self.check_lengths([prompt], settings)
    state = self.start_state([prompt], [(0, 0)], [prompt_index], settings, self.dp)
    stop_ids = self.stop_ids(settings)
    shown, step, max_new = "", 0, int(settings.max_new_tokens)
    while True:
      step = min(step + max(1, int(chunk)), max_new)
      state = self.decode(state, step, settings, stop_ids)
      count, done = int(_host(state["count"])[0]), bool(_host(state["done"])[0])
      toks = _host(state["tokens"])[0, :count]
      final = done or count >= max_new
      sample = self.finish(toks, _host(state["logprobs"])[0, :count], settings, prompt_index, 0)
      text = sample.text if final or sample.stop_reason == "stop" else hold_back(sample.text, settings.stop)
      if len(text) > len(shown) and text.startswith(shown):
        on_text(text[len(shown):])
        shown = text
      if final or sample.stop_reason in ("stop", "eos"):
        return sample


_JIT_CACHE: dict = {}


def _jitted(model, mesh, rules, eos_id: int, pad_id: int) -> dict:
  """The compiled programs per (model config, mesh, rules, eos): prefix, start (prefill) and decode."""
  key = (model.cfg, mesh, rules, eos_id, pad_id)
  if key in _JIT_CACHE:
    return _JIT_CACHE[key]
  from hhh import scoring  # pylint: disable=g-import-not-at-top

  n_layers = model.cfg.n_layers

  def prefix(params, tokens):  # [layers, P, heads, head_dim] -> one array per layer
    return {k: tuple(c[i] for i in range(n_layers)) for k, c in scoring.prompt_cache(model, params, tokens).items()}

  prefix = jax.jit(prefix, out_shardings=prefix_sharding(mesh, rules, n_layers))

  def start(params, tokens, lengths, source, done, pidx, sidx, seed, prefix_cache, *, slots, max_new):
    return init_state(model, params, tokens, lengths, source, done, pidx, sidx, seed, prefix_cache, slots=slots,
                      max_new=max_new)

  state_sh = state_shardings(mesh, rules, n_layers)
  start_jit = jax.jit(start, static_argnames=("slots", "max_new"), out_shardings=state_sh)

  def decode(params, state, limit, temperature, top_k, top_p, stop_ids, prefix_cache):
    return decode_loop(model, params, state, limit, temperature, top_k, top_p, stop_ids, prefix_cache,
                       eos_id=eos_id, pad_id=pad_id)

  decode_jit = jax.jit(decode, donate_argnums=(1,), out_shardings=state_sh)
  _JIT_CACHE[key] = {"prefix": prefix, "start": start_jit, "decode": decode_jit}
  return _JIT_CACHE[key]


def finish_row(vocab, eos_id: int, tokens, logprobs, stop: Sequence[str], prompt_index: int = 0,
               sample_index: int = 0) -> Sample:
  """A row's generated tokens and log-probs (as many as it produced) -> Sample: up to and including the first
  end-of-sequence token, then the text cut before the first stop string and the tokens to those within it."""
  tokens = [int(t) for t in tokens]
  logprobs = [float(x) for x in logprobs]
  reason = "length"
  if eos_id in tokens:
    n = tokens.index(eos_id) + 1
    tokens, logprobs, reason = tokens[:n], logprobs[:n], "eos"
  text = vocab.decode(tokens)
  cut = first_stop(text, stop)
  if cut is not None:
    text, reason = text[:cut], "stop"
    n = _tokens_within(vocab, tokens, text)
    tokens, logprobs = tokens[:n], logprobs[:n]
  return Sample(int(prompt_index), int(sample_index), text, tokens, logprobs, reason)


def first_stop(text: str, stop: Sequence[str]) -> Optional[int]:
  """Index of the first occurrence of any stop string in text (None if none occurs)."""
  hits = [i for i in (text.find(s) for s in stop if s) if i >= 0]
  return min(hits) if hits else None


def hold_back(text: str, stop: Sequence[str]) -> str:
  """text without its longest suffix that is a proper prefix of a stop string (it may become one)."""
  keep = len(text)
  for s in stop:
    for n in range(min(len(s) - 1, len(text)), 0, -1):
      if text.endswith(s[:n]):
        keep = min(keep, len(text) - n)
        break
  return text[:keep]


def _tokens_within(vocab, tokens, text: str) -> int:
  """The largest n such that decode(tokens[:n]) is a prefix of text (decoding is prefix-monotone)."""
  lo, hi = 0, len(tokens)
  while lo < hi:
    mid = (lo + hi + 1) // 2
    if text.startswith(vocab.decode(tokens[:mid])):
      lo = mid
    else:
      hi = mid - 1
  return lo


# ----------------------------------------------------------------------------------------------- commands' set-up


def read_prompts(spec: str) -> list:
  """The prompts named by --config.prompts: a .jsonl file (a JSON string, or an object with "prompt", per line), any
  other existing file (one prompt per non-empty line), or else the text itself (one prompt)."""
  from hhh.core import paths  # pylint: disable=g-import-not-at-top
  if not spec:
    raise ConfigError("--config.prompts is required: a .jsonl file, a text file (one prompt per line) or the prompt "
                      "text itself")
  path = paths.resolve(spec)
  if not os.path.isfile(path):
    # A value with no spaces that has a path separator or a file extension names a file: a typo must not be sampled
    # as the literal text "missing.tsv".
    looks_like_a_path = not any(c.isspace() for c in spec) and (
        "/" in spec or os.sep in spec or re.search(r"\.[A-Za-z0-9]{1,5}$", spec) is not None)
    if looks_like_a_path or os.path.isdir(path):
      raise ConfigError(f"prompts file {path} does not exist (or is not a file); to sample a text with no spaces "
                        f"that looks like a path, put it in a .txt file")
    return [spec]
  out = []
  with open(path, "rb") as f:
    for n, raw in enumerate(f, 1):
      try:
        line = raw.decode("utf-8").rstrip("\n")
      except UnicodeDecodeError as e:
        raise ConfigError(f"prompts file {path}, line {n}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
      if not line.strip():
        continue
      if path.endswith(".jsonl"):
        try:
          rec = json.loads(line)
        except json.JSONDecodeError as e:
          raise ConfigError(f"prompts file {path}, line {n}: not JSON ({e})") from e
        if isinstance(rec, dict):
          if not isinstance(rec.get("prompt"), str):
            raise ConfigError(f"prompts file {path}, line {n}: an object needs a string field \"prompt\"")
          rec = rec["prompt"]
        if not isinstance(rec, str):
          raise ConfigError(f"prompts file {path}, line {n}: expected a JSON string or {{\"prompt\": ...}}")
        out.append(rec)
      else:
        out.append(line)
  if not out:
    raise ConfigError(f"prompts file {path} holds no prompts")
  return out


def format_context(text: str, fmt: str) -> str:
  """The row's context after the shared prefix: a human turn ("dialogue") or the text itself ("raw")."""
  from hhh.data import dialogue  # pylint: disable=g-import-not-at-top
  if fmt == "dialogue":
    return dialogue.query(text)
  if fmt == "raw":
    return text
  raise ConfigError(f"format must be 'dialogue' or 'raw', got {fmt!r}")


def prefix_ids(config, vocab) -> tuple:
  """(token ids of the shared prefix or None, description) for config.prompt: hhh | none | PATH of a prompt file."""
  from hhh import prompts  # pylint: disable=g-import-not-at-top
  from hhh.core import paths  # pylint: disable=g-import-not-at-top
  spec = str(config.prompt).strip()
  if spec.lower() in ("none", ""):
    return None, {"prompt": "none", "prompt_tokens": 0}
  path = "" if spec.lower() == "hhh" else paths.resolve(spec)
  if path and not os.path.isfile(path):
    raise ConfigError(f"prompt: {path} does not exist (use hhh, none or the path of a prompt file)")
  budget = int(config.prompt_max_tokens) or (int(config.model.max_len) - int(config.context_tokens)
                                             - int(config.max_new_tokens))
  if budget <= 0:
    raise ConfigError(f"no room for the shared prompt: model.max_len={int(config.model.max_len)} - context_tokens="
                      f"{int(config.context_tokens)} - max_new_tokens={int(config.max_new_tokens)} = {budget}; set "
                      f"prompt_max_tokens or use --config.prompt=none")
  try:
    ids, full = prompts.token_ids(path, vocab, budget)
  except ValueError as e:
    raise ConfigError(f"prompt {spec}: {e}") from e
  return ids, {"prompt": spec if path else "hhh", "prompt_tokens": len(ids), "prompt_tokens_full": full}


def from_config(config, *, devices=None) -> tuple:
  """(Sampler, Settings, info) for configs/sample.py: the run's parameters on the mesh (hhh.run.checkpoint's loader),
  the vocabulary and the shared prefix."""
  from hhh.run import model as run_model  # pylint: disable=g-import-not-at-top
  from hhh.core import paths  # pylint: disable=g-import-not-at-top
  from hhh.data import vocab as vocab_lib  # pylint: disable=g-import-not-at-top
  settings = Settings.from_config(config)
  format_context("", config.format)  # validates format
  if not config.checkpoint:
    raise ConfigError("--config.checkpoint is required: a training run's workdir (or a step folder) of an LM")
  checkpoint = paths.resolve(config.checkpoint)
  vocab = vocab_lib.get_vocabulary(config.data.vocab)
  if int(config.model.vocab_size) < vocab.vocab_size:
    raise ConfigError(f"model.vocab_size={int(config.model.vocab_size)} is smaller than the vocabulary "
                      f"{config.data.vocab!r} ({vocab.vocab_size} ids)")
  prefix, info = prefix_ids(config, vocab)
  ms, params = run_model.model_from_run(config.model, config.mesh, checkpoint, what="checkpoint", devices=devices)
  sampler = Sampler(ms.model, params, ms.mesh, ms.rules, vocab, prefix_tokens=prefix,
                    batch_size=int(config.batch_size))
  info = {"checkpoint": checkpoint, "size": config.size, "vocab": config.data.vocab, "format": config.format,
          **info}
  return sampler, settings, info
