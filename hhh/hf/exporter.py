"""Export (`tools/hf_export.py`): an hhh run becomes config.json + model.safetensors (+ the run's tokenizer files)
that `transformers` loads. A model with a score head (a preference or binary model) becomes
`*ForSequenceClassification` with num_labels = 1, whose score HF reads at the last non-padding token: put the
end-of-context token there, as hhh does. Rows added to the embedding at import and never trained are trimmed, so
import -> export returns the same tensors.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from typing import Callable

import jax
import ml_collections
import numpy as np

from hhh import config as hc
from hhh.config.record import RUN_CONFIG, read_run_config
from hhh.core import paths
from hhh.core.errors import ConfigError
from hhh.data import vocab as vocab_lib
from hhh.hf import architectures
from hhh.hf.reader import TOKENIZER_FILES
from hhh.run import checkpoint as ckpt_lib
from hhh.run import model as run_model


def read_run(run_dir: str) -> dict:
  """The config.json of an hhh run (written by training or by import), or a ConfigError saying export needs it."""
  run_dir = paths.resolve(run_dir)
  if not os.path.isfile(os.path.join(run_dir, RUN_CONFIG)):
    raise ConfigError(f"{run_dir} has no config.json: export needs the run directory (its `model` section says the "
                      f"architecture)")
  return read_run_config(run_dir)


def export_checkpoint(run_dir: str, out_dir: str, *, log: Callable[[str], None] = print) -> dict:
  """Writes config.json + model.safetensors (+ the run's tokenizer files) of the hhh run at `run_dir` to `out_dir`."""
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top  (the optional `hf` extra)

  t0 = time.perf_counter()
  run_dir, out_dir = paths.resolve(run_dir), paths.resolve(out_dir)
  rec = read_run(run_dir)
  m = dict(rec["model"])
  source = rec.get("hf", {})
  arch = source.get("architecture") or architectures.arch_of_model(m)
  score_head = "score_head/kernel" in run_model.saved_param_names(run_dir, "run")
  full = hc.model_config("tiny")
  full.update(m)
  full.update(dict(scan_layers=True, score_head=score_head, dtype="float32", param_dtype="float32"))
  m = full.to_dict()
  mesh = ml_collections.ConfigDict(dict(shape=dict(data=1, fsdp=1, tensor=1), slices=1,
                                        rules=[list(r) for r in hc.base_config("tiny").mesh.rules]))
  _, params = run_model.model_from_run(full, mesh, run_dir, what="run", devices=jax.devices()[:1])
  params = jax.tree.map(np.asarray, jax.device_get(params))
  flat = ckpt_lib.flatten(params)
  out: dict = {}
  vocab = int(m["vocab_size"])
  hf_vocab = int(source.get("vocab_size") or vocab)
  if hf_vocab < vocab and not np.any(flat[("embedding",)][hf_vocab:]) and (
      ("unembedding", "kernel") not in flat or not np.any(flat[("unembedding", "kernel")][:, hf_vocab:])):
    vocab = hf_vocab  # rows added at import for the end-of-context token and never trained: trimmed back
  for t in architectures.tensors(arch, m, score_head=score_head):
    if t.to_hf is None:
      continue
    for i in range(m["n_layers"]) if t.layer else [None]:
      x = flat[t.path][i] if t.layer else flat[t.path]
      if t.path[0] == "embedding":
        x = x[:vocab]
      elif t.path[0] == "unembedding":
        x = x[:, :vocab]
      out[t.hf.format(i=i)] = np.ascontiguousarray(t.to_hf(x), np.float32)
  spec = architectures.ARCHS[arch]
  if spec.fused_to_hf is not None:
    for i in range(m["n_layers"]):
      layer = jax.tree.map(lambda a, i=i: a[i], params["layers"])
      for suffix, x in spec.fused_to_hf(m, layer).items():
        out[f"{spec.LAYER_PREFIX}.{i}.{suffix}"] = np.ascontiguousarray(x, np.float32)
  score_bias = 0.0
  if score_head:
    score_bias = float(flat[("score_head", "bias")][0])
    w = flat[("score_head", "kernel")][:, 0]
    if score_bias and m["norm"] == "layer" and float(w @ w) > 0:
      # HF's score layer has no bias: shift the final LayerNorm's bias by delta with w . delta = bias (exact up to
      # rounding; the score head is the only reader of the final hidden state in a sequence classifier).
      key = [k for k in out if k.endswith(("final_layer_norm.bias", "ln_f.bias"))][0]
      out[key] = (out[key] + w * (score_bias / float(w @ w))).astype(np.float32)
      score_bias = 0.0
  os.makedirs(out_dir, exist_ok=True)
  save_file(out, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
  vocab_name = rec.get("data", {}).get("vocab", "byte")
  try:
    pad = vocab_lib.pad_id(vocab_name)
  except Exception:  # pylint: disable=broad-except  (the vocabulary may not be available here: keep the source's)
    pad = None
  cfg = architectures.hf_config(arch, m, source.get("config"), score_head=score_head, vocab_size=vocab,
                                pad_token_id=pad)
  if score_bias:
    cfg["hhh_score_bias"] = score_bias  # RMSNorm models cannot absorb it: HF scores = hhh scores - this constant
  with open(os.path.join(out_dir, "config.json"), "w") as f:
    json.dump(cfg, f, indent=2, sort_keys=True)
  copied = [f for f in TOKENIZER_FILES if os.path.isfile(os.path.join(run_dir, f))]
  for f in copied:
    shutil.copyfile(os.path.join(run_dir, f), os.path.join(out_dir, f))
  summary = {"architecture": cfg["architectures"][0], "tensors": len(out), "vocab_size": vocab,
             "score_bias_not_absorbed": score_bias, "seconds": time.perf_counter() - t0, "out": out_dir}
  log(f"hf_export: {summary['architecture']} ({len(out)} tensors, vocab {vocab}) -> {out_dir} in "
      f"{summary['seconds']:.1f}s" + (f"; score bias {score_bias:+.6f} kept in config.json as hhh_score_bias (RMSNorm "
                                      f"models cannot absorb it: HF scores differ from hhh's by this constant)"
                                      if score_bias else ""))
  return summary
