"""The tensor map's building blocks: one hhh parameter and its Hugging Face tensor (`Tensor`), and `TensorMap`, the
list an architecture (hhh/hf/neox.py, llama.py, gpt2.py) fills with the layouts they share.

HF Linear weights are [out, in] and hhh kernels [in, out] (attention: [d_model, heads, head_dim] and [heads, head_dim,
d_model]); GPT-2's Conv1D stores [in, out]. Each entry carries both directions (`to_hhh` for import, `to_hf` for
export; None where the HF tensor is fused and written by the architecture's `fused_to_hf`).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np


@dataclasses.dataclass(frozen=True)
class Tensor:
  """One hhh parameter (`path` under params; per layer when `layer`) and its HF tensor."""
  path: tuple
  hf: str  # HF name ("{i}" = the layer)
  to_hhh: Callable[[np.ndarray], np.ndarray]
  to_hf: Callable[[np.ndarray], np.ndarray]
  layer: bool = True


def same(x):
  return x


def transpose(x):
  return np.ascontiguousarray(x.T)


class TensorMap:
  """The tensors of one model (hhh model section `m`), in the order they are added."""

  def __init__(self, m: dict):
    self.m = m
    self.d, self.h, self.dh = m["d_model"], m["n_heads"], m["d_head"]
    self.tensors: list = []

  def add(self, path, name, to_hhh=same, to_hf=same, layer=True):
    self.tensors.append(Tensor(tuple(path), name, to_hhh, to_hf, layer))

  def norm(self, hhh_name, hf_name, bias):
    self.add(("layers", hhh_name, "scale"), f"{hf_name}.weight")
    if bias:
      self.add(("layers", hhh_name, "bias"), f"{hf_name}.bias")

  def linear_in_out(self, path, name, heads=None):
    """HF Linear [out, in] <-> hhh kernel [in, out] or [in, heads, head_dim]."""
    d, dh = self.d, self.dh
    if heads is None:
      self.add(path, name, transpose, transpose)
    else:
      self.add(path, name, lambda w: np.ascontiguousarray(w.T.reshape(d, heads, dh)),
               lambda k: np.ascontiguousarray(k.reshape(d, heads * dh).T))

  def out_proj(self, path, name, conv=False):
    """attention output: HF Linear [d, h*dh] (Conv1D [h*dh, d]) <-> hhh [h, dh, d]."""
    d, h, dh = self.d, self.h, self.dh
    if conv:
      self.add(path, name, lambda w: np.ascontiguousarray(w.reshape(h, dh, d)), lambda k: np.ascontiguousarray(
          k.reshape(h * dh, d)))
    else:
      self.add(path, name, lambda w: np.ascontiguousarray(w.T.reshape(h, dh, d)),
               lambda k: np.ascontiguousarray(k.reshape(h * dh, d).T))

  def unembedding(self, name, score_head):
    """The LM head, unless tied to the embedding or replaced by a score head."""
    if not score_head and not self.m["tie_embeddings"]:
      self.add(("unembedding", "kernel"), name, transpose, transpose, layer=False)
