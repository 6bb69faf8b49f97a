"""Llama <-> hhh: its config.json fields and tensor names (docs/interop.md's table, second column).

RMSNorm without biases, SwiGLU MLP (gate_proj, up_proj, down_proj), grouped-query attention (`num_key_value_heads`),
full rotary in the `half` layout and separate q/k/v projections (nothing fused).
"""
from __future__ import annotations

import numpy as np

from hhh.core.errors import ConfigError
from hhh.hf import configs
from hhh.hf.tensor_map import TensorMap

NAME = "llama"
CAUSAL_LM = "LlamaForCausalLM"
SEQ_CLS = "LlamaForSequenceClassification"
BASE = "model"
LAYER_PREFIX = f"{BASE}.layers"  # layer i is LAYER_PREFIX.i


def model_config(hf: dict) -> dict:
  if hf.get("rope_scaling") or (isinstance(hf.get("rope_parameters"), dict) and
                                hf["rope_parameters"].get("rope_type", "default") != "default"):
    raise ConfigError(f"llama: rope scaling {hf.get('rope_scaling') or hf.get('rope_parameters')!r} is not "
                      f"supported (plain rotary only)")
  if hf.get("hidden_act", "silu") != "silu":
    raise ConfigError(f"llama: hidden_act {hf.get('hidden_act')!r} is not supported (silu)")
  d, heads = int(hf["hidden_size"]), int(hf["num_attention_heads"])
  rope = configs.rope_theta(hf, hf.get("rope_theta", 10000.0))
  return dict(vocab_size=int(hf["vocab_size"]), d_model=d, n_layers=int(hf["num_hidden_layers"]), n_heads=heads,
              n_kv_heads=int(hf.get("num_key_value_heads") or heads), d_head=int(hf.get("head_dim") or d // heads),
              d_ff=int(hf["intermediate_size"]), max_len=int(hf["max_position_embeddings"]), rope_theta=float(rope),
              norm_eps=float(hf.get("rms_norm_eps", 1e-6)), norm="rms", attn_bias=bool(hf.get("attention_bias",
                                                                                             False)),
              mlp_bias=bool(hf.get("mlp_bias", False)), mlp="swiglu", parallel_residual=False, rotary_pct=1.0,
              rotary_layout="half", positions="rotary", tie_embeddings=bool(hf.get("tie_word_embeddings", False)))


def hf_config(m: dict, out: dict, vocab_size: int) -> None:
  out.update(model_type="llama", vocab_size=vocab_size, hidden_size=m["d_model"], num_hidden_layers=m["n_layers"],
             num_attention_heads=m["n_heads"], num_key_value_heads=m.get("n_kv_heads") or m["n_heads"],
             head_dim=m["d_head"], intermediate_size=m["d_ff"], max_position_embeddings=m["max_len"],
             rope_theta=m["rope_theta"], rms_norm_eps=m["norm_eps"], hidden_act="silu",
             attention_bias=m["attn_bias"], mlp_bias=m["mlp_bias"], tie_word_embeddings=m["tie_embeddings"])
  if isinstance(out.get("rope_parameters"), dict):
    out["rope_parameters"] = {**out["rope_parameters"], "rope_theta": m["rope_theta"]}


def add_tensors(t: TensorMap, score_head: bool) -> None:
  m, h, dh = t.m, t.h, t.dh
  kv = m.get("n_kv_heads") or h
  p = f"{LAYER_PREFIX}.{{i}}"
  t.norm("attention_norm", f"{p}.input_layernorm", False)
  t.norm("mlp_norm", f"{p}.post_attention_layernorm", False)
  for name, proj, heads in (("query", "q_proj", h), ("key", "k_proj", kv), ("value", "v_proj", kv)):
    t.linear_in_out(("layers", "attention", name), f"{p}.self_attn.{proj}.weight", heads)
    if m["attn_bias"]:
      t.add(("layers", "attention", f"{name}_bias"), f"{p}.self_attn.{proj}.bias",
            lambda b, heads=heads: np.ascontiguousarray(b.reshape(heads, dh)),
            lambda b: np.ascontiguousarray(b.reshape(-1)))
  t.out_proj(("layers", "attention", "out"), f"{p}.self_attn.o_proj.weight")
  if m["attn_bias"]:
    t.add(("layers", "attention", "out_bias"), f"{p}.self_attn.o_proj.bias")
  for hhh_name, proj in (("wg", "gate_proj"), ("wi", "up_proj"), ("wo", "down_proj")):
    t.linear_in_out(("layers", "mlp", hhh_name, "kernel"), f"{p}.mlp.{proj}.weight")
    if m["mlp_bias"]:
      t.add(("layers", "mlp", hhh_name, "bias"), f"{p}.mlp.{proj}.bias")
  t.add(("embedding",), f"{BASE}.embed_tokens.weight", layer=False)
  t.add(("final_norm", "scale"), f"{BASE}.norm.weight", layer=False)
  t.unembedding("lm_head.weight", score_head)


fused_to_hf = None  # q, k and v are separate tensors: every one is in the map
