"""GPT-NeoX (Pythia) <-> hhh: its config.json fields and tensor names (docs/interop.md's table, first column).

LayerNorm with biases, GELU MLP, parallel residual by default, partial rotary (`rotary_pct`) in the `half` layout;
the fused query_key_value is laid out per head as [heads, 3, head_dim] on its output dimension.
"""
from __future__ import annotations

import numpy as np

from hhh.core.errors import ConfigError
from hhh.hf import configs
from hhh.hf.tensor_map import TensorMap

NAME = "gpt_neox"
CAUSAL_LM = "GPTNeoXForCausalLM"
SEQ_CLS = "GPTNeoXForSequenceClassification"
BASE = "gpt_neox"
LAYER_PREFIX = f"{BASE}.layers"  # layer i is LAYER_PREFIX.i


def model_config(hf: dict) -> dict:
  if hf.get("rope_scaling"):
    raise ConfigError(f"gpt_neox: rope_scaling {hf['rope_scaling']!r} is not supported")
  d, heads = int(hf["hidden_size"]), int(hf["num_attention_heads"])
  rope = configs.rope_theta(hf, hf.get("rope_theta", hf.get("rotary_emb_base", 10000)))
  pct = hf.get("rotary_pct", (hf.get("rope_parameters") or {}).get("partial_rotary_factor", 1.0))
  return dict(vocab_size=int(hf["vocab_size"]), d_model=d, n_layers=int(hf["num_hidden_layers"]), n_heads=heads,
              d_head=d // heads, d_ff=int(hf["intermediate_size"]), max_len=int(hf["max_position_embeddings"]),
              rope_theta=float(rope), norm_eps=float(hf.get("layer_norm_eps", 1e-5)), norm="layer",
              attn_bias=bool(hf.get("attention_bias", True)), mlp_bias=True,
              mlp=configs.activation(hf.get("hidden_act", "gelu"), NAME),
              parallel_residual=bool(hf.get("use_parallel_residual", True)), rotary_pct=float(pct),
              rotary_layout="half", positions="rotary", tie_embeddings=bool(hf.get("tie_word_embeddings", False)))


def hf_config(m: dict, out: dict, vocab_size: int) -> None:
  out.update(model_type="gpt_neox", vocab_size=vocab_size, hidden_size=m["d_model"], num_hidden_layers=m["n_layers"],
             num_attention_heads=m["n_heads"], intermediate_size=m["d_ff"], max_position_embeddings=m["max_len"],
             rotary_pct=m["rotary_pct"], rotary_emb_base=m["rope_theta"], rope_theta=m["rope_theta"],
             layer_norm_eps=m["norm_eps"], hidden_act=configs.HF_ACTIVATION[m["mlp"]],
             use_parallel_residual=m["parallel_residual"], attention_bias=m["attn_bias"],
             tie_word_embeddings=m["tie_embeddings"])
  if isinstance(out.get("rope_parameters"), dict):
    out["rope_parameters"] = {**out["rope_parameters"], "rope_theta": m["rope_theta"],
                              "partial_rotary_factor": m["rotary_pct"]}


def add_tensors(t: TensorMap, score_head: bool) -> None:
  m, d, h, dh = t.m, t.d, t.h, t.dh
  p = f"{LAYER_PREFIX}.{{i}}"
  t.norm("attention_norm", f"{p}.input_layernorm", True)
  t.norm("mlp_norm", f"{p}.post_attention_layernorm", True)
  for j, name in enumerate(("query", "key", "value")):  # fused [h, 3, dh] on the output dim
    t.add(("layers", "attention", name), f"{p}.attention.query_key_value.weight",
          lambda w, j=j: np.ascontiguousarray(w.reshape(h, 3, dh, d)[:, j].transpose(2, 0, 1)), None)
    if m["attn_bias"]:
      t.add(("layers", "attention", f"{name}_bias"), f"{p}.attention.query_key_value.bias",
            lambda b, j=j: np.ascontiguousarray(b.reshape(h, 3, dh)[:, j]), None)
  t.out_proj(("layers", "attention", "out"), f"{p}.attention.dense.weight")
  if m["attn_bias"]:
    t.add(("layers", "attention", "out_bias"), f"{p}.attention.dense.bias")
  t.linear_in_out(("layers", "mlp", "wi", "kernel"), f"{p}.mlp.dense_h_to_4h.weight")
  t.add(("layers", "mlp", "wi", "bias"), f"{p}.mlp.dense_h_to_4h.bias")
  t.linear_in_out(("layers", "mlp", "wo", "kernel"), f"{p}.mlp.dense_4h_to_h.weight")
  t.add(("layers", "mlp", "wo", "bias"), f"{p}.mlp.dense_4h_to_h.bias")
  t.add(("embedding",), f"{BASE}.embed_in.weight", layer=False)
  t.add(("final_norm", "scale"), f"{BASE}.final_layer_norm.weight", layer=False)
  t.add(("final_norm", "bias"), f"{BASE}.final_layer_norm.bias", layer=False)
  t.unembedding("embed_out.weight", score_head)


def fused_to_hf(m: dict, layer_params: dict) -> dict:
  """query_key_value of one layer from hhh's q/k/v: {suffix under the layer: array}."""
  d, h, dh = m["d_model"], m["n_heads"], m["d_head"]
  a = layer_params["attention"]
  w = np.stack([a[n].transpose(1, 2, 0) for n in ("query", "key", "value")], axis=1)  # [h, 3, dh, d]
  out = {"attention.query_key_value.weight": w.reshape(3 * h * dh, d)}
  if m["attn_bias"]:
    out["attention.query_key_value.bias"] = np.stack([a[f"{n}_bias"] for n in ("query", "key", "value")],
                                                     axis=1).reshape(-1)
  return out

