"""The per-token layers of a transformer block: `Norm` (RMSNorm or LayerNorm), `Mlp` (GELU or SwiGLU) and the `rotary`
position embedding, plus the normal initializer of every projection (`dense_init`).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from hhh.core import sharding
from hhh.models.config import TransformerConfig
from hhh.models.layout import rows


def dense_init(std):
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


def make_norm(cfg: TransformerConfig, name: str) -> Norm:
  """The norm of kind `cfg.norm` named `name` (a block's attention_norm or mlp_norm, or the final_norm)."""
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


class Mlp(nn.Module):
  """gelu_tanh / gelu: wo(gelu(wi(x))); swiglu: wo(silu(wg(x)) * wi(x))."""
  cfg: TransformerConfig

  @nn.compact
  def __call__(self, x):
    cfg = self.cfg
    def dense(features, names, std, name):
      return nn.Dense(features, use_bias=cfg.mlp_bias, dtype=cfg.compute_dtype, param_dtype=cfg.param_dtype,
                      kernel_init=nn.with_logical_partitioning(dense_init(std), names),
                      bias_init=nn.with_logical_partitioning(nn.initializers.zeros, names[-1:]), name=name)

    lead = x.shape[:-1]
    x = rows(x)
    h = dense(cfg.d_ff, ("embed", "mlp"), cfg.init_std, "wi")(x)
    if cfg.mlp == "swiglu":
      h = nn.silu(dense(cfg.d_ff, ("embed", "mlp"), cfg.init_std, "wg")(x)) * h
    else:
      h = nn.gelu(h, approximate=cfg.mlp == "gelu_tanh")
    if h.ndim == 3:  # no logical name for the merged rows of the CPU layout
      h = sharding.constrain(h, ("activation_batch", "activation_length", "activation_mlp"))
    y = dense(cfg.d_model, ("mlp", "embed"), cfg.init_std / (2 * cfg.n_layers) ** 0.5, "wo")(h)
    return y.reshape(lead + (cfg.d_model,))
