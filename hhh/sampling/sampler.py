"""`Sampler`: sampling from a model with its parameters on the mesh and an optional shared prefix, prefilled once.
It unrolls the model's layers once (`unrolled`), lays out the decode state on the mesh (`state_shardings`), and
drives the compiled programs (prefix, start = prefill, decode; one set per model config and mesh) for whole batches
(`generate`) or one streamed prompt (`stream`)."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from hhh.core import buckets, sharding
from hhh.core.errors import ConfigError
from hhh.data import vocab as vocab_lib
from hhh.models import kv_cache, transformer
from hhh.sampling.decode import decode_loop, init_state
from hhh.sampling.settings import Sample, Settings
from hhh.sampling.text import finish_row, hold_back
from hhh.scoring import device
from hhh.scoring.logprobs import prompt_cache

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


class Sampler:
  """Sampling from `model` with `params` (already on the mesh) and an optional shared prefix (token ids).

  `generate(prompts, settings)` samples whole batches; `stream(prompt, settings, chunk, on_text)` samples one prompt
  `chunk` tokens per compiled call and hands the text to `on_text` as it is produced (hhh.chat).
  """

  def __init__(self, model, params, mesh, rules, vocab, *, prefix_tokens=None, batch_size: int = 16,
               eos_id: Optional[int] = None):
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
        self.prefix = self._fns["prefix"](self.params,
                                          device.put(self.prefix_tokens, NamedSharding(self.mesh, P())))

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
    return max(longest, buckets.bucket_length(longest, self.room(settings)))

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
    row = lambda x: device.put(x, _named(self.mesh, self.rules, ("activation_batch",) + (None,) * (x.ndim - 1)))  # noqa
    seed = device.put(np.asarray(int(settings.seed) % 2**32, np.uint32), NamedSharding(self.mesh, P()))
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
    return device.put(arr, NamedSharding(self.mesh, P()))

  def _decode_args(self, state, limit: int, settings: Settings, stop_ids):
    scalar = lambda x, dt: device.put(np.asarray(x, dt), NamedSharding(self.mesh, P()))  # noqa: E731
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
    n_rows = buckets.round_up(min(self.batch_size, len(rows)), self.dp)
    stop_ids = self.stop_ids(settings)
    out = []
    for start in range(0, len(rows), n_rows):
      batch = rows[start:start + n_rows]
      state = self.start_state(prompts, batch, keys_of, settings, n_rows)
      state = self.decode(state, int(settings.max_new_tokens), settings, stop_ids)
      toks, lps, count = (device.to_host(state[k]) for k in ("tokens", "logprobs", "count"))
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
      count, done = int(device.to_host(state["count"])[0]), bool(device.to_host(state["done"])[0])
      toks = device.to_host(state["tokens"])[0, :count]
      final = done or count >= max_new
      sample = self.finish(toks, device.to_host(state["logprobs"])[0, :count], settings, prompt_index, 0)
      text = sample.text if final or sample.stop_reason == "stop" else hold_back(sample.text, settings.stop)
      if len(text) > len(shown) and text.startswith(shown):
        on_text(text[len(shown):])
        shown = text
      if final or sample.stop_reason in ("stop", "eos"):
        return sample


def _jitted(model, mesh, rules, eos_id: int, pad_id: int) -> dict:
  """The compiled programs per (model config, mesh, rules, eos): prefix, start (prefill) and decode."""
  n_layers = model.cfg.n_layers

  def build():
    def prefix(params, tokens):  # [layers, P, heads, head_dim] -> one array per layer
      return {k: tuple(c[i] for i in range(n_layers)) for k, c in prompt_cache(model, params, tokens).items()}

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
    return {"prefix": prefix, "start": start_jit, "decode": decode_jit}

  return device.jitted(("sampling", model.cfg, mesh, rules, eos_id, pad_id), build)
