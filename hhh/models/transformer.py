"""Decoder-only transformer with an LM head and a scalar score head.

Every parameter and activation carries logical axis names (see `hhh.core.sharding` for the table that maps them onto the
(slice, data, fsdp, tensor) mesh), so the same module runs on one CPU and on a pod slice.

Architecture (`TransformerConfig`; the defaults are the paper's ladder): pre-norm blocks, causal attention in which
packed documents never attend to each other (`hhh.models.attention.attend`: dense XLA, blockwise flash, TPU splash or
GPU cuDNN/Pallas kernels, chosen by `attention`; docs/attention.md), `nn.scan` over layers and a configurable
rematerialisation policy. Parameters are stored in `param_dtype` (f32) and computed in `dtype` (bf16 on TPU, f32 on
CPU); logits and scores are returned in f32. The options, which represent Hugging Face GPT-NeoX (Pythia), Llama and
GPT-2 checkpoints exactly (docs/interop.md):

  * `norm`: "rms" (RMSNorm, `scale`) | "layer" (LayerNorm, `scale` and `bias`), every block norm and `final_norm`;
  * `mlp`: "gelu_tanh" (4x GELU, tanh approximation: GPT-2's gelu_new) | "gelu" (exact erf GELU: GPT-NeoX) |
    "swiglu" (Llama: wo(silu(wg(x)) * wi(x))); `attn_bias`, `mlp_bias`: biases on the projections;
  * `n_kv_heads` < n_heads: grouped-query attention (query head h reads key/value head h // (n_heads // n_kv_heads),
    as HF Llama's repeat_kv); every cache holds n_kv_heads heads;
  * `parallel_residual`: x + attn(attention_norm(x)) + mlp(mlp_norm(x)) (GPT-NeoX) instead of two sequential
    residual steps;
  * `positions`: "rotary" | "learned" (an absolute `position_embedding` table added to the token embedding: GPT-2);
    rotary acts on the first int(d_head * `rotary_pct`) dims of each head (the rest pass through: Pythia's 0.25) in
    pairs (i, i + r/2) (`rotary_layout` "half": GPT-NeoX, HF Llama) or (2i, 2i + 1) ("interleaved": GPT-J);
  * `tie_embeddings`: logits = hidden @ embedding.T, no `unembedding` parameter (GPT-2).

The vocabulary head can be applied outside the module: `return_hidden=True` gives the final (normalised) hidden
states, `unembed` turns hidden states into the same f32 logits, and `per_position` maps a per-token function of the
logits (cross-entropy, KL, log-prob of the next token) over sequence chunks of `logits_chunk` positions under
rematerialisation, so the [B, T, V] f32 logits are never live at once (hhh.objectives use it).

The score head is a linear read-out of the final hidden state at the END-OF-CONTEXT token of each sample, located by
the explicit index `score_index` (never guessed from padding).

`prefix_cache` lets a caller reuse the keys/values of a fixed prefix (the HHH prompt of context distillation) for
every sequence of a batch: it holds per-layer `k`, `v` of shape [layers, P, kv_heads, head_dim] computed once with
`return_cache=True` (kv_heads = n_kv_heads).

Decoding (hhh.sampling, docs/sampling.md): `cache` is a key/value cache {"k", "v": one [B, kv_heads, S, head_dim]
array per layer, "index": [B]}, each array with the logical axes CACHE_AXES (batch over the data axes, heads over
`tensor`, like the activations). `tokens` [B, T] sit at slots index[b] .. index[b] + T - 1 of row b (position =
prefix length + slot, rotary or learned): each layer writes their keys/values into those slots (in place), then every
query attends to the slots of its row up to its own and to the whole `prefix_cache`; the updated cache (index + T)
comes back as out["cache"]. Decoding runs the layers unrolled (`scan_layers=False`; `unrolled_params` converts
scanned parameters once): a scanned layer would slice its weights and its cache out of stacked arrays at every step,
which XLA copies on CPU. `prefix_cache` may then also hold one [P, kv_heads, head_dim] array per layer. Without
`cache` nothing of this runs: the training forward is the same computation as before the decode path existed.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from hhh.core import sharding
from hhh.models import layout
from hhh.models.block import Block
from hhh.models.config import REMAT_POLICIES, TransformerConfig
from hhh.models.kv_cache import cache_layer, prefix_length
from hhh.models.layers import dense_init, make_norm


class Transformer(nn.Module):
  cfg: TransformerConfig

  @nn.compact
  def __call__(self, tokens, positions=None, segment_ids=None, score_index=None, prefix_cache=None,
               return_logits=True, return_cache=False, return_hidden=False, cache=None):
    cfg = self.cfg
    lead, length = tokens.shape[:-1], tokens.shape[-1]
    tokens = tokens.reshape(-1, length)
    n = tokens.shape[0]
    prefix_len = prefix_length(prefix_cache)
    cache_index = None
    if cache is not None:  # decode (module docstring): tokens go to slots cache["index"] + t of each row
      if segment_ids is not None or score_index is not None or return_cache or len(lead) != 1:
        raise ValueError("decoding with `cache` takes tokens [batch, T] without segment_ids, score_index or "
                         "return_cache")
      if cfg.scan_layers or len(cache["k"]) != cfg.n_layers:
        raise ValueError(f"decoding with `cache` runs the layers unrolled: a model with scan_layers=False "
                         f"(parameters from unrolled_params) and one cache array per layer ({cfg.n_layers})")
      slots = cache["k"][0].shape[2]
      if slots + prefix_len > cfg.max_len:
        raise ValueError(f"decode cache of {slots} slots (+ prefix {prefix_len}) exceeds the model context "
                         f"max_len={cfg.max_len}")
      cache_index = jnp.asarray(cache["index"], jnp.int32).reshape(n)
      if positions is None:
        positions = prefix_len + cache_index[:, None] + jnp.arange(length, dtype=jnp.int32)
    elif length + prefix_len > cfg.max_len:
      raise ValueError(f"sequence length {length} (+ prefix {prefix_len}) exceeds the model context "
                       f"max_len={cfg.max_len}")
    if positions is None:
      positions = jnp.broadcast_to(prefix_len + jnp.arange(length, dtype=jnp.int32), (n, length))
    else:
      positions = positions.reshape(n, length)
    if segment_ids is not None:  # None: one document per row (attention then needs no segment comparison)
      segment_ids = segment_ids.reshape(n, length)

    embedding = self.param(
        "embedding", nn.with_logical_partitioning(nn.initializers.normal(1.0), ("vocab", "embed")),
        (cfg.vocab_size, cfg.d_model), cfg.param_dtype)
    x = jnp.take(embedding, tokens, axis=0)
    if cfg.positions == "learned":
      table = self.param(
          "position_embedding", nn.with_logical_partitioning(dense_init(cfg.init_std), ("position", "embed")),
          (cfg.max_len, cfg.d_model), cfg.param_dtype)
      x = x + jnp.take(table, positions, axis=0)
    x = x.astype(cfg.compute_dtype)
    x = sharding.constrain(x, ("activation_batch", "activation_length", "activation_embed"))

    block = Block
    if cfg.remat != "none":
      block = nn.remat(Block, policy=getattr(jax.checkpoint_policies, REMAT_POLICIES[cfg.remat]),
                       prevent_cse=not cfg.scan_layers)
    if cfg.scan_layers:
      layers = nn.scan(block, variable_axes={"params": 0}, split_rngs={"params": True},
                       in_axes=(nn.broadcast, nn.broadcast, 0), length=cfg.n_layers,
                       metadata_params={nn.PARTITION_NAME: "layers"},
                       unroll=cfg.n_layers if layout.flat_matmuls() else 1)  # CPU: unrolled (flat_matmuls)
      x, kv_out = layers(cfg, return_cache, name="layers")(x, positions, segment_ids, prefix_cache)
    else:
      caches = []
      for i in range(cfg.n_layers):
        layer_prefix = None if prefix_cache is None else cache_layer(prefix_cache, i)
        layer_cache = None if cache is None else cache_layer({"k": cache["k"], "v": cache["v"]}, i)
        x, kv = block(cfg, return_cache, name=f"layer_{i}")(x, positions, segment_ids, layer_prefix, layer_cache,
                                                            cache_index)
        caches.append(kv)
      kv_out = jax.tree.map(lambda *c: jnp.stack(c), *caches) if return_cache else None
    x = make_norm(cfg, "final_norm")(x)

    out = {}
    if return_hidden:
      out["hidden"] = x.reshape(lead + (length, cfg.d_model))
    if return_logits or self.is_initializing():
      if cfg.tie_embeddings:
        logits = _vocab_logits(x, embedding, cfg)
      else:
        logits = nn.Dense(
            cfg.vocab_size, use_bias=False, dtype=cfg.compute_dtype, param_dtype=cfg.param_dtype,
            kernel_init=nn.with_logical_partitioning(dense_init(cfg.init_std), ("embed", "vocab")),
            name="unembedding")(layout.rows(x))
        logits = logits.reshape(x.shape[:-1] + (cfg.vocab_size,)).astype(jnp.float32)
        logits = sharding.constrain(logits, ("activation_batch", "activation_length", "activation_vocab"))
      out["logits"] = logits.reshape(lead + (length, cfg.vocab_size))
    if score_index is not None and not cfg.score_head:
      raise ValueError("score_index given but the model has no score head (set model.score_head=True)")
    score_head = nn.Dense(
        1, dtype=jnp.float32, param_dtype=cfg.param_dtype, name="score_head",
        kernel_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed", "score")),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("score",)))
    if score_index is not None:
      idx = jnp.asarray(score_index, jnp.int32).reshape(n)
      h = jnp.take_along_axis(x, idx[:, None, None], axis=1)[:, 0]  # [N, D] hidden at the end-of-context token
      out["score"] = score_head(h.astype(jnp.float32))[:, 0].reshape(lead)
    elif cfg.score_head and self.is_initializing():
      score_head(x[:, 0].astype(jnp.float32))  # create the head's parameters at init
    if return_cache:
      # {"k", "v"}: [layers, N, T, heads, head_dim]. The prefix of context distillation is one sequence: take [:, 0].
      out["cache"] = kv_out
    if cache is not None:
      out["cache"] = {"k": tuple(kv["k"] for kv in caches), "v": tuple(kv["v"] for kv in caches),
                      "index": cache_index + length}
    return out


def unembed(params, hidden, cfg: TransformerConfig):
  """f32 logits [..., V] of final hidden states [..., D] (`return_hidden`), exactly the module's `logits`."""
  if cfg.tie_embeddings:
    return _vocab_logits(hidden, params["embedding"], cfg)
  return _vocab_logits(hidden, params["unembedding"]["kernel"], cfg)


def _vocab_logits(hidden, weight, cfg: TransformerConfig):
  """hidden [..., D] times the unembedding kernel [D, V] or, with tie_embeddings, the embedding [V, D] transposed."""
  h, weight = hidden.astype(cfg.compute_dtype), weight.astype(cfg.compute_dtype)
  contract = 1 if cfg.tie_embeddings else 0  # the weight's D axis
  lead = h.shape[:-1]
  h = layout.rows(h)
  logits = jax.lax.dot_general(h, weight, (((h.ndim - 1,), (contract,)), ((), ()))).astype(jnp.float32)
  logits = logits.reshape(lead + (weight.shape[1 - contract],))
  if logits.ndim == 3:
    logits = sharding.constrain(logits, ("activation_batch", "activation_length", "activation_vocab"))
  return logits


def per_position(fn, xs, chunk: int):
  """fn(*xs) for arrays xs [N, T, ...] whose outputs are per position ([N, T, ...] pytree), computed over chunks of
  `chunk` positions (0: at once) in a scan whose body is rematerialised: only one chunk's vocabulary-sized
  intermediates (fn computes logits inside) are live, in the forward and in the backward pass.

  Every position is computed exactly as without chunks (the same ops on a slice), so losses equal the unchunked ones
  up to the order of float sums downstream. T need not be a multiple of `chunk` (the last chunk is padded).
  """
  t = xs[0].shape[1]
  if chunk <= 0 or chunk >= t:
    return fn(*xs)
  n_chunks = -(-t // chunk)
  pad = n_chunks * chunk - t

  def split(x):  # [N, T, ...] -> [chunks, N, chunk, ...]
    x = jnp.pad(x, [(0, 0), (0, pad)] + [(0, 0)] * (x.ndim - 2))
    return jnp.moveaxis(x.reshape((x.shape[0], n_chunks, chunk) + x.shape[2:]), 1, 0)

  def merge(y):  # [chunks, N, chunk, ...] -> [N, T, ...]
    y = jnp.moveaxis(y, 0, 1)
    return y.reshape((y.shape[0], n_chunks * chunk) + y.shape[3:])[:, :t]

  body = jax.checkpoint(lambda _, c: (None, fn(*c)), prevent_cse=False)
  _, ys = jax.lax.scan(body, None, tuple(split(x) for x in xs))
  return jax.tree.map(merge, ys)


def init_inputs(cfg: TransformerConfig, length: int = 8):
  """Small dummy inputs for `model.init` (shapes of parameters do not depend on length)."""
  return jnp.zeros((1, min(length, cfg.max_len)), jnp.int32)
