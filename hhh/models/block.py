"""One pre-norm transformer block (`Block`): self-attention (`Attention`: query/key/value projections, rotary,
grouped-query heads, `hhh.models.attention.attend` in training and the decode cache when decoding) and the MLP, in
sequence or in parallel (`parallel_residual`).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from hhh.core import sharding
from hhh.models import attention as attention_lib
from hhh.models.config import TransformerConfig
from hhh.models.kv_cache import CACHE_AXES, cached_attention, write_cache
from hhh.models.layers import Mlp, dense_init, make_norm, rotary
from hhh.models.layout import dense_product


def repeat_kv(x, groups: int, axis: int):
  """Keys/values of n_kv_heads heads (on `axis`) as n_heads = n_kv_heads * groups heads for grouped-query attention:
  query head h reads kv head h // groups (HF Llama's repeat_kv order). None and groups == 1 pass through."""
  return x if x is None or groups == 1 else jnp.repeat(x, groups, axis=axis)


class Attention(nn.Module):
  cfg: TransformerConfig

  @nn.compact
  def __call__(self, x, positions, segment_ids, prefix_kv, cache=None, cache_index=None):
    cfg = self.cfg
    def kernel(name, shape, names, std):
      return self.param(name, nn.with_logical_partitioning(dense_init(std), names), shape, cfg.param_dtype)

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


class Block(nn.Module):
  """One pre-norm transformer block. Signature fits nn.scan: (carry, per-layer input) -> (carry, per-layer output)."""
  cfg: TransformerConfig
  return_cache: bool = False

  @nn.compact
  def __call__(self, x, positions, segment_ids, prefix_kv, cache=None, cache_index=None):
    cfg = self.cfg
    act = ("activation_batch", "activation_length", "activation_embed")
    h, kv = Attention(cfg, name="attention")(make_norm(cfg, "attention_norm")(x), positions, segment_ids, prefix_kv,
                                             cache, cache_index)
    mlp = Mlp(cfg, name="mlp")
    if cfg.parallel_residual:  # both branches read the block input
      x = x + h + mlp(make_norm(cfg, "mlp_norm")(x))
    else:
      x = sharding.constrain(x + h, act)
      x = x + mlp(make_norm(cfg, "mlp_norm")(x))
    return sharding.constrain(x, act), (kv if self.return_cache or cache is not None else None)  # decode: the cache
