"""The model steps of sampling, pure (for jit): `prefill` of right-padded prompts into a decode cache, `decode_step`
(the model on new tokens with `cache=`), the decode state (`init_state`) and `decode_loop`, one
`jax.lax.while_loop` that chooses, records and feeds back each row's next token until every row stopped (end of
sequence, a stop string's tokens) or the step limit."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from hhh.core import sharding
from hhh.models import kv_cache, transformer
from hhh.sampling.choice import choose_tokens, row_keys



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
