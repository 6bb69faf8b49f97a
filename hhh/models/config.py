"""The model's configuration: `TransformerConfig` (sizes, dtypes, rematerialisation, attention kernel and the
architecture options of hhh.models.transformer, validated on construction; the defaults are the paper's ladder) and
the choices each option takes.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from hhh.models.attention import IMPLEMENTATIONS

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
    if self.attention not in IMPLEMENTATIONS:
      raise ValueError(f"unknown attention implementation {self.attention!r}; choose one of "
                       f"{list(IMPLEMENTATIONS)}")
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
