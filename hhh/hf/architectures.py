"""The Hugging Face architectures hhh reads and writes, as one table (GPT-NeoX, Llama, GPT-2: hhh/hf/neox.py,
llama.py, gpt2.py), and what is asked of them by name: which architecture a HF config.json (or an hhh model section)
is, the hhh `model` section of a HF config and back, and the tensor map of a model.

Each architecture module gives NAME, CAUSAL_LM and SEQ_CLS (its transformers classes), BASE (the base model's tensor
prefix), LAYER_PREFIX, model_config(hf), hf_config(m, out, vocab_size), add_tensors(tensor_map, score_head) and
fused_to_hf(m, layer_params) (None where no tensor is fused).
"""
from __future__ import annotations

from typing import Optional

from hhh.core.errors import ConfigError
from hhh.hf import gpt2, llama, neox
from hhh.hf.tensor_map import TensorMap, transpose

ARCHS = {a.NAME: a for a in (neox, llama, gpt2)}
ARCHITECTURES = {**{a.CAUSAL_LM: n for n, a in ARCHS.items()}, **{a.SEQ_CLS: n for n, a in ARCHS.items()}}
BASE = {n: a.BASE for n, a in ARCHS.items()}


def arch_of(hf: dict) -> str:
  names = hf.get("architectures") or []
  for n in names:
    if n in ARCHITECTURES:
      return ARCHITECTURES[n]
  mt = hf.get("model_type")
  if mt in ARCHS:
    return mt
  raise ConfigError(f"unsupported Hugging Face architecture {names or mt!r}; supported: {sorted(ARCHITECTURES)}")


def model_config(hf: dict) -> dict:
  """The hhh `model` section (hhh.models.transformer.TransformerConfig fields) of a HF config.json."""
  return ARCHS[arch_of(hf)].model_config(hf)


def arch_of_model(m: dict) -> str:
  """The HF architecture an hhh model section maps onto (the source's when imported; else by its options)."""
  if m.get("positions") == "learned":
    return "gpt2"
  if m.get("mlp") == "swiglu":
    return "llama"
  if m.get("norm") == "layer":
    return "gpt_neox"
  raise ConfigError("this model (RMSNorm, GELU MLP: the paper ladder's architecture) has no Hugging Face "
                    "counterpart; export supports models imported from (or configured as) GPT-NeoX, Llama or GPT-2")


def hf_config(arch: str, m: dict, source: Optional[dict] = None, *, score_head: bool = False,
              vocab_size: Optional[int] = None, pad_token_id: Optional[int] = None) -> dict:
  """A HF config.json for hhh model section `m` (the imported source config's other fields kept when given)."""
  out = dict(source or {})
  for k in ("_name_or_path", "torch_dtype", "dtype", "transformers_version", "id2label", "label2id"):
    out.pop(k, None)
  ARCHS[arch].hf_config(m, out, int(vocab_size or m["vocab_size"]))
  out["architectures"] = [ARCHS[arch].SEQ_CLS if score_head else ARCHS[arch].CAUSAL_LM]
  if score_head:
    out["num_labels"] = 1
    out["problem_type"] = "regression"
  if pad_token_id is not None:
    out["pad_token_id"] = int(pad_token_id)
  return out


def tensors(arch: str, m: dict, *, score_head: bool = False) -> list:
  """Every tensor (hhh.hf.tensor_map.Tensor) of the architecture with config `m` (an hhh model section)."""
  t = TensorMap(m)
  ARCHS[arch].add_tensors(t, score_head)
  if score_head:
    t.add(("score_head", "kernel"), "score.weight", transpose, transpose, layer=False)
  return t.tensors
