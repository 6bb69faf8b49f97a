"""GPT-2 <-> hhh: its config.json fields and tensor names (docs/interop.md's table, third column).

LayerNorm with biases, GELU MLP, learned positions, embeddings tied by default; its Conv1D weights are stored
[in, out] (hhh's own layout) and c_attn fuses q, k and v along the output columns.
"""
from __future__ import annotations

import numpy as np

from hhh.core.errors import ConfigError
from hhh.hf import configs
from hhh.hf.tensor_map import TensorMap

NAME = "gpt2"
CAUSAL_LM = "GPT2LMHeadModel"
SEQ_CLS = "GPT2ForSequenceClassification"
BASE = "transformer"
LAYER_PREFIX = f"{BASE}.h"  # layer i is LAYER_PREFIX.i


def model_config(hf: dict) -> dict:
  for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"):
    if hf.get(flag):
      raise ConfigError(f"gpt2: {flag}=True is not supported")
  if hf.get("scale_attn_weights") is False:
    raise ConfigError("gpt2: scale_attn_weights=False is not supported")
  d, heads = int(hf["n_embd"]), int(hf["n_head"])
  return dict(vocab_size=int(hf["vocab_size"]), d_model=d, n_layers=int(hf["n_layer"]), n_heads=heads,
              d_head=d // heads, d_ff=int(hf.get("n_inner") or 4 * d), max_len=int(hf["n_positions"]),
              norm_eps=float(hf.get("layer_norm_epsilon", 1e-5)), norm="layer", attn_bias=True, mlp_bias=True,
              mlp=configs.activation(hf.get("activation_function", "gelu_new"), NAME), parallel_residual=False,
              rotary_pct=1.0, rotary_layout="half", positions="learned",
              tie_embeddings=bool(hf.get("tie_word_embeddings", True)))


def hf_config(m: dict, out: dict, vocab_size: int) -> None:
  out.update(model_type="gpt2", vocab_size=vocab_size, n_embd=m["d_model"], n_layer=m["n_layers"], n_head=m["n_heads"],
             n_inner=m["d_ff"], n_positions=m["max_len"], layer_norm_epsilon=m["norm_eps"],
             activation_function=configs.HF_ACTIVATION[m["mlp"]], tie_word_embeddings=m["tie_embeddings"])


def add_tensors(t: TensorMap, score_head: bool) -> None:
  d, h, dh = t.d, t.h, t.dh
  p = f"{LAYER_PREFIX}.{{i}}"
  t.norm("attention_norm", f"{p}.ln_1", True)
  t.norm("mlp_norm", f"{p}.ln_2", True)
  for j, name in enumerate(("query", "key", "value")):
    t.add(("layers", "attention", name), f"{p}.attn.c_attn.weight",
          lambda w, j=j: np.ascontiguousarray(w[:, j * d:(j + 1) * d].reshape(d, h, dh)), None)
    t.add(("layers", "attention", f"{name}_bias"), f"{p}.attn.c_attn.bias",
          lambda b, j=j: np.ascontiguousarray(b[j * d:(j + 1) * d].reshape(h, dh)), None)
  t.out_proj(("layers", "attention", "out"), f"{p}.attn.c_proj.weight", conv=True)
  t.add(("layers", "attention", "out_bias"), f"{p}.attn.c_proj.bias")
  t.add(("layers", "mlp", "wi", "kernel"), f"{p}.mlp.c_fc.weight")
  t.add(("layers", "mlp", "wi", "bias"), f"{p}.mlp.c_fc.bias")
  t.add(("layers", "mlp", "wo", "kernel"), f"{p}.mlp.c_proj.weight")
  t.add(("layers", "mlp", "wo", "bias"), f"{p}.mlp.c_proj.bias")
  t.add(("embedding",), f"{BASE}.wte.weight", layer=False)
  t.add(("position_embedding",), f"{BASE}.wpe.weight", layer=False)
  t.add(("final_norm", "scale"), f"{BASE}.ln_f.weight", layer=False)
  t.add(("final_norm", "bias"), f"{BASE}.ln_f.bias", layer=False)
  t.unembedding("lm_head.weight", score_head)  # GPT-2 with tie_word_embeddings=False keeps its own lm_head


def fused_to_hf(m: dict, layer_params: dict) -> dict:
  """c_attn of one layer from hhh's q/k/v: {suffix under the layer: array}."""
  d, h, dh = m["d_model"], m["n_heads"], m["d_head"]
  a = layer_params["attention"]
  return {"attn.c_attn.weight": np.concatenate([a[n].reshape(d, h * dh) for n in ("query", "key", "value")], 1),
          "attn.c_attn.bias": np.concatenate([a[f"{n}_bias"].reshape(-1) for n in ("query", "key", "value")])}
