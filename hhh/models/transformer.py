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

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from hhh.core import sharding
from hhh.models import attention as attention_lib
from hhh.models.attention import attention_mask  # noqa: F401  (re-exported: the reference mask)

REMAT_POLICIES = {
    "none": None,  # no rematerialisation (store every activation)
    "full": "nothing_saveable",  # recompute the whole block in the backward pass
    "dots": "checkpoint_dots",  # keep matmul outputs, recompute the rest
    "dots_no_batch": "checkpoint_dots_with_no_batch_dims",  # keep weight matmuls only (MaxText's 'minimal')
}

NORMS = ("rms", "layer")
MLPS = ("gelu_tanh", "gelu", "swiglu")
ROTARY_LAYOUTS = ("half", "interleaved")
POSITIONS = ("rotary", "learned")

# Logical axes of each layer's decode cache k and v [batch, kv heads, slots, head_dim]: sharded like the activations
# (hhh.core.sharding rules: batch over every data-parallel axis, heads over tensor; slots and head_dim whole). Heads
# before slots: each (row, head) reads its slots contiguously (no transposed copies for the attention matmuls).
CACHE_AXES = ("activation_batch", "activation_heads", "activation_length", "activation_kv")
_CACHE_MASK = -0.7 * float(jnp.finfo(jnp.float32).max)  # masked cache slots (finite: as hhh.models.attention)


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  vocab_size: int
  d_model: int
  n_layers: int
  n_heads: int
  d_head: int = 0  # 0: d_model // n_heads
  d_ff: int = 0  # 0: 4 * d_model
  max_len: int = 8192
  dtype: str = "float32"
  param_dtype: str = "float32"
  remat: str = "none"
  scan_layers: bool = True
  rope_theta: float = 10000.0
  init_std: float = 0.02
  norm_eps: float = 1e-6
  score_head: bool = False  # preference / binary models; LMs have none (so `init_from` an LM creates it fresh)
  attention: str = "auto"  # auto | xla | blockwise | splash | cudnn (hhh.models.attention, docs/attention.md)
  attention_block: int = 0  # query and key block of blockwise / splash (0: 128 on CPU, 512 on TPU and GPU)
  logits_chunk: int = 0  # 0: whole-sequence logits; else the vocabulary loss in chunks of this many positions
  # Architecture options (module docstring); the defaults are the paper's ladder.
  norm: str = "rms"  # NORMS: rms (RMSNorm) | layer (LayerNorm with bias)
  attn_bias: bool = False  # biases of the query/key/value and output projections
  mlp_bias: bool = False  # biases of the MLP's dense layers
  mlp: str = "gelu_tanh"  # MLPS: gelu_tanh | gelu (exact erf) | swiglu
  n_kv_heads: int = 0  # key/value heads (grouped-query attention); 0: n_heads
  parallel_residual: bool = False  # x + attn(norm(x)) + mlp(norm(x)) (GPT-NeoX)
  rotary_pct: float = 1.0  # fraction of each head's dims that get rotary; the rest pass through
  rotary_layout: str = "half"  # ROTARY_LAYOUTS: half (pairs i, i + r/2) | interleaved (pairs 2i, 2i + 1)
  positions: str = "rotary"  # POSITIONS: rotary | learned (absolute position_embedding, no rotary)
  tie_embeddings: bool = False  # logits = hidden @ embedding.T (no unembedding parameter)

  def __post_init__(self):
    if self.d_head == 0:
      if self.d_model % self.n_heads:
        raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
      object.__setattr__(self, "d_head", self.d_model // self.n_heads)
    if self.d_ff == 0:
      object.__setattr__(self, "d_ff", 4 * self.d_model)
    if self.n_kv_heads == 0:
      object.__setattr__(self, "n_kv_heads", self.n_heads)
    if self.remat not in REMAT_POLICIES:
      raise ValueError(f"unknown remat policy {self.remat!r}; choose one of {sorted(REMAT_POLICIES)}")
    for name, choices in (("norm", NORMS), ("mlp", MLPS), ("rotary_layout", ROTARY_LAYOUTS),
                          ("positions", POSITIONS)):
      if getattr(self, name) not in choices:
        raise ValueError(f"unknown {name}={getattr(self, name)!r}; choose one of {list(choices)}")
    if self.n_kv_heads < 0 or self.n_heads % self.n_kv_heads:
      raise ValueError(f"n_kv_heads={self.n_kv_heads} must divide n_heads={self.n_heads} (0: n_heads)")
    if not 0 < self.rotary_pct <= 1:
      raise ValueError(f"rotary_pct must be in (0, 1], got {self.rotary_pct}")
    if self.positions == "rotary" and (self.rotary_dims % 2 or not self.rotary_dims):
      raise ValueError(f"rotary embeddings need an even, positive number of dims: int(d_head * rotary_pct) = "
                       f"int({self.d_head} * {self.rotary_pct}) = {self.rotary_dims}")
    if self.attention not in attention_lib.IMPLEMENTATIONS:
      raise ValueError(f"unknown attention implementation {self.attention!r}; choose one of "
                       f"{list(attention_lib.IMPLEMENTATIONS)}")
    if self.attention_block < 0 or self.logits_chunk < 0:
      raise ValueError(f"attention_block and logits_chunk must be >= 0, got {self.attention_block} and "
                       f"{self.logits_chunk}")

  @classmethod
  def from_config(cls, cfg) -> "TransformerConfig":
    """Builds from an ml_collections ConfigDict (or any mapping) holding these fields."""
    d = dict(cfg)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
      raise ValueError(f"unknown model config keys {unknown}; known: {sorted(names)}")
    return cls(**d)

  @property
  def compute_dtype(self):
    return jnp.dtype(self.dtype)

  @property
  def rotary_dims(self) -> int:
    """Dims of each head that get rotary (the first ones; as HF GPT-NeoX's rotary_ndims)."""
    return int(self.d_head * self.rotary_pct)

  def non_embedding_params(self) -> int:
    """Analytic count of parameters outside embedding (token and position), unembedding and score head (checked
    against eval_shape in the tests). Biases and norms included."""
    d, q_width, kv_width = self.d_model, self.n_heads * self.d_head, self.n_kv_heads * self.d_head
    attn = 2 * d * q_width + 2 * d * kv_width  # query, out; key, value
    if self.attn_bias:
      attn += q_width + 2 * kv_width + d
    n_in = 2 if self.mlp == "swiglu" else 1  # wi (and wg)
    mlp = (n_in + 1) * d * self.d_ff
    if self.mlp_bias:
      mlp += n_in * self.d_ff + d
    norm = (2 if self.norm == "layer" else 1) * d
    return self.n_layers * (attn + mlp + 2 * norm) + norm  # + final norm


def _dense_init(std):
  return nn.initializers.normal(stddev=std)


class Norm(nn.Module):
  """RMSNorm (`kind` "rms": parameter `scale`) or LayerNorm ("layer": mean-centred, `scale` and `bias`) over the last
  axis, computed in f32."""
  kind: str
  eps: float
  dtype: Any
  param_dtype: Any

  @nn.compact
  def __call__(self, x):
    def param(name, init):
      return self.param(name, nn.with_logical_partitioning(init, ("norm",)), (x.shape[-1],), self.param_dtype)

    x32 = x.astype(jnp.float32)
    if self.kind == "layer":
      x32 = x32 - jnp.mean(x32, axis=-1, keepdims=True)
    y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
    y = y * param("scale", nn.initializers.ones).astype(jnp.float32)
    if self.kind == "layer":
      y = y + param("bias", nn.initializers.zeros).astype(jnp.float32)
    return y.astype(self.dtype)


def _norm(cfg: TransformerConfig, name: str) -> Norm:
  return Norm(cfg.norm, cfg.norm_eps, cfg.compute_dtype, cfg.param_dtype, name=name)


def rotary(x, positions, theta, *, pct: float = 1.0, layout: str = "half"):
  """Rotary position embedding on [batch, length, heads, head_dim] with positions [batch, length].

  The first r = int(head_dim * pct) dims of each head are rotated, pair i (< r/2) by positions * theta^(-2i/r); the
  pairs are (i, i + r/2) for `layout` "half" (GPT-NeoX, HF Llama) and (2i, 2i + 1) for "interleaved" (GPT-J). The
  other head_dim - r dims pass through unchanged."""
  d = int(x.shape[-1] * pct)
  freq = 1.0 / (theta ** (jnp.arange(0, d, 2, dtype=jnp.float32) / d))
  angles = positions.astype(jnp.float32)[:, :, None, None] * freq  # [B, T, 1, d/2]
  sin, cos = jnp.sin(angles), jnp.cos(angles)
  rot, rest = x.astype(jnp.float32), None
  if d < x.shape[-1]:
    rot, rest = rot[..., :d], x[..., d:]
  if layout == "half":
    x1, x2 = jnp.split(rot, 2, axis=-1)
    y = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  else:
    x1, x2 = rot[..., 0::2], rot[..., 1::2]
    y = jnp.stack([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).reshape(rot.shape)
  y = y.astype(x.dtype)
  return y if rest is None else jnp.concatenate([y, rest], axis=-1)


def repeat_kv(x, groups: int, axis: int):
  """Keys/values of n_kv_heads heads (on `axis`) as n_heads = n_kv_heads * groups heads for grouped-query attention:
  query head h reads kv head h // groups (HF Llama's repeat_kv order). None and groups == 1 pass through."""
  return x if x is None or groups == 1 else jnp.repeat(x, groups, axis=axis)


def write_cache(cache, new, index):
  """A layer's decode cache [B, H, S, D] with new [B, T, H, D] written at slots index[b] .. index[b] + T - 1 of row b:
  one scatter, in place when the old cache is not used afterwards (as in the decode loop).

  The caller keeps index[b] + T <= S (out-of-range slots are not checked)."""
  b, t = new.shape[0], new.shape[1]
  rows = jnp.arange(b, dtype=index.dtype)[:, None]  # [B, 1]
  slots = index[:, None] + jnp.arange(t, dtype=index.dtype)[None]  # [B, T]
  # The advanced indices (axes 0 and 2) broadcast to [B, T] and lead the update's shape: [B, T, H, D] = new.
  return cache.at[rows, :, slots, :].set(new.astype(cache.dtype), mode="promise_in_bounds")


def _layer(cache, i: int) -> dict:
  """Layer i of a cache holding stacked [layers, ...] arrays or a sequence of per-layer arrays."""
  return {name: c[i] for name, c in cache.items()}


def _prefix_length(prefix_cache) -> int:
  if prefix_cache is None:
    return 0
  k = prefix_cache["k"]
  return k[0].shape[0] if isinstance(k, (list, tuple)) else k.shape[1]


def unrolled_params(params, n_layers: int):
  """Parameters of a scan_layers=True model (stacked under "layers") as the scan_layers=False model names them
  ("layer_0", ...), for decoding; anything else is unchanged. Works on any tree shaped like the parameters."""
  if "layers" not in params:
    return params
  out = {k: v for k, v in params.items() if k != "layers"}
  for i in range(n_layers):
    out[f"layer_{i}"] = jax.tree.map(lambda x, i=i: x[i], params["layers"])
  return out


def flat_matmuls() -> bool:
  """The CPU layout of the computation (True on CPU; TPU and GPU keep the programs docs/scale.md measured):

  * projections run as 2-D matmuls over [batch * length, features]: XLA CPU gives the weight gradient of a
    [B, T, D] x [D, F] dot (two contracting dims) a transposed copy of the [B, T, F] gradient, which made the MLP's
    forward + backward 1.6x slower than the same matmuls on 2-D operands;
  * the scan over layers is unrolled (the parameters stay stacked under "layers"): the rolled loop's stacked
    residuals (zero-filled, updated and sliced per layer) cost 15% of the `cpu` size's step.

  The numbers are the same either way (up to the order of float sums); docs/attention.md, "CPU", has the timings."""
  return attention_lib.current_platform() == "cpu"


def dense_product(x, w, n_in: int, eq: str):
  """x [..., *w.shape[:n_in]] contracted with the first n_in axes of w -> [..., *w.shape[n_in:]]: `jnp.einsum(eq)`,
  or on CPU (flat_matmuls) the same product as one 2-D matmul."""
  if not flat_matmuls():
    return jnp.einsum(eq, x, w)
  k = math.prod(w.shape[:n_in])
  y = x.reshape(-1, k) @ w.reshape(k, -1)
  return y.reshape(x.shape[:x.ndim - n_in] + w.shape[n_in:])


def _rows(x):
  """x [..., D] as [rows, D] on CPU (flat_matmuls: one 2-D matmul follows), unchanged elsewhere."""
  return x.reshape(-1, x.shape[-1]) if flat_matmuls() else x


def _einsum32(eq, a, b):
  """einsum accumulated in f32 with `a` in the dtype of `b` (the cache or prefix: the large operand is never cast)."""
  return jnp.einsum(eq, a.astype(b.dtype), b, preferred_element_type=jnp.float32)


def cached_attention(q, cache_k, cache_v, index, *, prefix_k=None, prefix_v=None):
  """Decode attention of queries q [B, T, H, D] at cache slots index[b] + t over the cache cache_k, cache_v
  [B, H, S, D] (the new tokens' keys/values already written) and the shared prefix [P, H, D]: query t of row b sees
  slots j <= index[b] + t of its row and every prefix key. Dense (a few queries per row); logits and softmax in
  f32, scaled by 1/sqrt(D)."""
  t, d = q.shape[1], q.shape[-1]
  scale = 1.0 / d ** 0.5
  scores = _einsum32("bthd,bhsd->bhts", q, cache_k) * scale
  slot = index[:, None] + jnp.arange(t, dtype=index.dtype)[None]  # [B, T]
  visible = jnp.arange(cache_k.shape[2], dtype=index.dtype)[None, None, :] <= slot[:, :, None]  # [B, T, S]
  scores = jnp.where(visible[:, None], scores, _CACHE_MASK)
  p = 0 if prefix_k is None else prefix_k.shape[0]
  if p:
    scores = jnp.concatenate([_einsum32("bthd,phd->bhtp", q, prefix_k) * scale, scores], axis=-1)
  probs = jax.nn.softmax(scores, axis=-1)
  out = _einsum32("bhts,bhsd->bthd", probs[..., p:], cache_v)
  if p:
    out = out + _einsum32("bhtp,phd->bthd", probs[..., :p], prefix_v)
  return out.astype(q.dtype)


class Attention(nn.Module):
  cfg: TransformerConfig

  @nn.compact
  def __call__(self, x, positions, segment_ids, prefix_kv, cache=None, cache_index=None):
    cfg = self.cfg
    def kernel(name, shape, names, std):
      return self.param(name, nn.with_logical_partitioning(_dense_init(std), names), shape, cfg.param_dtype)

    def bias(name, shape, names):
      return self.param(name, nn.with_logical_partitioning(nn.initializers.zeros, names), shape, cfg.param_dtype)

    dt = cfg.compute_dtype
    x = x.astype(dt)
    names = ("activation_batch", "activation_length", "activation_heads", "activation_kv")

    def project(name, heads):  # [B, T, heads, head_dim]
      w = kernel(name, (cfg.d_model, heads, cfg.d_head), ("embed", "heads", "kv"), cfg.init_std)
      y = dense_product(x, w.astype(dt), 1, "btd,dhk->bthk")
      if cfg.attn_bias:
        y = y + bias(f"{name}_bias", (heads, cfg.d_head), ("heads", "kv")).astype(dt)
      return sharding.constrain(y, names)

    q, k, v = project("query", cfg.n_heads), project("key", cfg.n_kv_heads), project("value", cfg.n_kv_heads)
    if cfg.positions == "rotary":
      q, k = (rotary(t, positions, cfg.rope_theta, pct=cfg.rotary_pct, layout=cfg.rotary_layout) for t in (q, k))
    new_kv = {"k": k, "v": v}  # n_kv_heads heads: caches hold these; repeated to n_heads just before attention
    groups = cfg.n_heads // cfg.n_kv_heads
    pk, pv = (None, None) if prefix_kv is None else (prefix_kv["k"], prefix_kv["v"])
    pk, pv = repeat_kv(pk, groups, -2), repeat_kv(pv, groups, -2)  # [P, heads, head_dim]
    if cache is None:
      out = attention_lib.attend(q, repeat_kv(k, groups, 2), repeat_kv(v, groups, 2), segment_ids=segment_ids,
                                 prefix_k=pk, prefix_v=pv, impl=cfg.attention, block_q=cfg.attention_block,
                                 block_kv=cfg.attention_block)
    else:  # decode: write the new keys/values into this layer's cache [B, H, S, D], then attend over it
      new_kv = {"k": sharding.constrain(write_cache(cache["k"], k, cache_index), CACHE_AXES),
                "v": sharding.constrain(write_cache(cache["v"], v, cache_index), CACHE_AXES)}
      out = cached_attention(q, repeat_kv(new_kv["k"], groups, 1), repeat_kv(new_kv["v"], groups, 1), cache_index,
                             prefix_k=pk, prefix_v=pv)
    out = sharding.constrain(out, names)
    w_out = kernel("out", (cfg.n_heads, cfg.d_head, cfg.d_model), ("heads", "kv", "embed"),
                   cfg.init_std / (2 * cfg.n_layers) ** 0.5)
    out = dense_product(out, w_out.astype(dt), 2, "bthk,hkd->btd")
    if cfg.attn_bias:
      out = out + bias("out_bias", (cfg.d_model,), ("embed",)).astype(dt)
    return out, new_kv


class Mlp(nn.Module):
  """gelu_tanh / gelu: wo(gelu(wi(x))); swiglu: wo(silu(wg(x)) * wi(x))."""
  cfg: TransformerConfig

  @nn.compact
  def __call__(self, x):
    cfg = self.cfg
    def dense(features, names, std, name):
      return nn.Dense(features, use_bias=cfg.mlp_bias, dtype=cfg.compute_dtype, param_dtype=cfg.param_dtype,
                      kernel_init=nn.with_logical_partitioning(_dense_init(std), names),
                      bias_init=nn.with_logical_partitioning(nn.initializers.zeros, names[-1:]), name=name)

    lead = x.shape[:-1]
    x = _rows(x)
    h = dense(cfg.d_ff, ("embed", "mlp"), cfg.init_std, "wi")(x)
    if cfg.mlp == "swiglu":
      h = nn.silu(dense(cfg.d_ff, ("embed", "mlp"), cfg.init_std, "wg")(x)) * h
    else:
      h = nn.gelu(h, approximate=cfg.mlp == "gelu_tanh")
    if h.ndim == 3:  # no logical name for the merged rows of the CPU layout
      h = sharding.constrain(h, ("activation_batch", "activation_length", "activation_mlp"))
    y = dense(cfg.d_model, ("mlp", "embed"), cfg.init_std / (2 * cfg.n_layers) ** 0.5, "wo")(h)
    return y.reshape(lead + (cfg.d_model,))


class Block(nn.Module):
  """One pre-norm transformer block. Signature fits nn.scan: (carry, per-layer input) -> (carry, per-layer output)."""
  cfg: TransformerConfig
  return_cache: bool = False

  @nn.compact
  def __call__(self, x, positions, segment_ids, prefix_kv, cache=None, cache_index=None):
    cfg = self.cfg
    act = ("activation_batch", "activation_length", "activation_embed")
    h, kv = Attention(cfg, name="attention")(_norm(cfg, "attention_norm")(x), positions, segment_ids, prefix_kv,
                                             cache, cache_index)
    mlp = Mlp(cfg, name="mlp")
    if cfg.parallel_residual:  # both branches read the block input
      x = x + h + mlp(_norm(cfg, "mlp_norm")(x))
    else:
      x = sharding.constrain(x + h, act)
      x = x + mlp(_norm(cfg, "mlp_norm")(x))
    return sharding.constrain(x, act), (kv if self.return_cache or cache is not None else None)  # decode: the cache


class Transformer(nn.Module):
  cfg: TransformerConfig

  @nn.compact
  def __call__(self, tokens, positions=None, segment_ids=None, score_index=None, prefix_cache=None,
               return_logits=True, return_cache=False, return_hidden=False, cache=None):
    cfg = self.cfg
    lead, length = tokens.shape[:-1], tokens.shape[-1]
    tokens = tokens.reshape(-1, length)
    n = tokens.shape[0]
    prefix_len = _prefix_length(prefix_cache)
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
          "position_embedding", nn.with_logical_partitioning(_dense_init(cfg.init_std), ("position", "embed")),
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
                       unroll=cfg.n_layers if flat_matmuls() else 1)  # CPU: unrolled (flat_matmuls)
      x, kv_out = layers(cfg, return_cache, name="layers")(x, positions, segment_ids, prefix_cache)
    else:
      caches = []
      for i in range(cfg.n_layers):
        layer_prefix = None if prefix_cache is None else _layer(prefix_cache, i)
        layer_cache = None if cache is None else _layer({"k": cache["k"], "v": cache["v"]}, i)
        x, kv = block(cfg, return_cache, name=f"layer_{i}")(x, positions, segment_ids, layer_prefix, layer_cache,
                                                            cache_index)
        caches.append(kv)
      kv_out = jax.tree.map(lambda *c: jnp.stack(c), *caches) if return_cache else None
    x = _norm(cfg, "final_norm")(x)

    out = {}
    if return_hidden:
      out["hidden"] = x.reshape(lead + (length, cfg.d_model))
    if return_logits or self.is_initializing():
      if cfg.tie_embeddings:
        logits = _vocab_logits(x, embedding, cfg)
      else:
        logits = nn.Dense(
            cfg.vocab_size, use_bias=False, dtype=cfg.compute_dtype, param_dtype=cfg.param_dtype,
            kernel_init=nn.with_logical_partitioning(_dense_init(cfg.init_std), ("embed", "vocab")),
            name="unembedding")(_rows(x))
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
  h = _rows(h)
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
