"""Import (`tools/hf_import.py`): a HF model directory (config.json + model.safetensors, or a sharded
model.safetensors.index.json) becomes an hhh run directory: RUN/checkpoints/0/state (orbax, the parameters only, as
`hhh.run.model.load_model_params` and `init_from` read them), RUN/config.json (the hhh `model` section, so
`configs/<objective>.py:RUN` builds the same architecture, and the source HF config) and the tokenizer files
(`data.vocab = "hf:RUN"`).

Conversion is streamed: each hhh parameter is assembled from memory-mapped safetensors slices (all layers of a scanned
parameter into one buffer), placed on its sharding and its buffer dropped before the next: conversion holds one copy
of the model plus the largest stacked parameter. The write is bounded: orbax has at most the largest parameter's bytes
in flight (`Checkpointer(max_write_bytes=...)`; its default lets every array's encoded chunks be buffered at once),
and the command returns freed buffers to the system (`release_freed_memory`). A 1.01B-parameter Pythia-shaped model,
4.05 GB in f32 (`tools/bench_import.py`): peak 6.4-7.1 GB resident, 1.6-1.7x the model, against 8.5-8.6 GB (2.1x)
with orbax's defaults.
"""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from hhh import config as hc
from hhh.core import paths
from hhh.core.errors import ConfigError
from hhh.hf import architectures
from hhh.hf.reader import TOKENIZER_FILES, SafetensorsReader, read_hf_config
from hhh.run import checkpoint as ckpt_lib
from hhh.run import model as run_model


def release_freed_memory() -> bool:
  """glibc only (False elsewhere): large allocations are mapped and unmapped (not kept in the heap once freed) and at
  most 2 malloc arenas serve the process's threads. Without this the buffers that orbax's writer threads free stay
  in per-thread arenas and the import's peak grew by ~0.3x the model (tools/bench_import.py, docs/interop.md). The
  import command calls it once at start; it is process-wide, so library users choose."""
  try:
    libc = ctypes.CDLL("libc.so.6")
    m_mmap_threshold, m_arena_max = -3, -8
    return bool(libc.mallopt(m_mmap_threshold, 1 << 20)) and bool(libc.mallopt(m_arena_max, 2))
  except (OSError, AttributeError):
    return False


def check_import_target(out_dir: str, overwrite: bool) -> bool:
  """An import writes only into an empty (or new) directory, or, with `overwrite`, over an earlier import: never over
  a training run or anything else it did not write (orbax's keep-1 save would delete that run's checkpoints).
  Returns whether an earlier import's checkpoint is there to be replaced."""
  if not os.path.exists(out_dir):
    return False
  if not os.path.isdir(out_dir):
    raise ConfigError(f"--out={out_dir} is a file, not a directory")
  entries = sorted(os.listdir(out_dir))
  if not entries:
    return False
  if not overwrite:
    raise ConfigError(f"--out={out_dir} is not empty ({', '.join(entries[:6])}{' ...' if len(entries) > 6 else ''}): "
                      f"choose a new directory, or pass --overwrite to replace an earlier hf_import there")
  record = None
  try:
    with open(os.path.join(out_dir, "config.json")) as f:
      record = json.load(f)
  except (OSError, ValueError):
    pass
  ckpts = os.path.join(out_dir, "checkpoints")
  steps = sorted(os.listdir(ckpts)) if os.path.isdir(ckpts) else []
  foreign = [e for e in entries if e not in ("checkpoints", "config.json", *TOKENIZER_FILES)]
  if not isinstance(record, dict) or "hf" not in record or foreign or steps not in ([], ["0"]):
    what = foreign or [f"checkpoints/{s}" for s in steps if s != "0"] or ["no hf_import config.json"]
    raise ConfigError(f"--out={out_dir} is not an earlier hf_import ({', '.join(what[:6])}): --overwrite replaces "
                      f"only what an import wrote, never a training run; choose a new directory")
  return bool(steps)


def _hf_name(arch: str, name: str, names: set) -> str:
  """HF names of a *ForSequenceClassification checkpoint keep the base prefix; causal LM ones too. Some Llama
  checkpoints saved from the base model drop the `model.` prefix: accept both."""
  if name in names:
    return name
  base = architectures.BASE[arch] + "."
  if name.startswith(base) and name[len(base):] in names:
    return name[len(base):]
  return name


def import_checkpoint(hf_dir: str, out_dir: str, *, mesh_cfg=None, devices=None, vocab_size: int = 0,
                      overwrite: bool = False, log: Callable[[str], None] = print) -> dict:
  """Writes the hhh run directory `out_dir` for the HF model in `hf_dir`; returns a summary.

  `out_dir` must be new or empty; `overwrite` replaces an earlier import there (and nothing else: a training run is
  refused). vocab_size > the HF vocabulary pads the embedding (and unembedding) with zero rows, e.g. for the
  end-of-context token of an `hf:` vocabulary that the checkpoint's embedding does not cover."""
  t0 = time.perf_counter()
  hf_dir, out_dir = paths.resolve(hf_dir), paths.resolve(out_dir)
  hf = read_hf_config(hf_dir)
  arch = architectures.arch_of(hf)
  if os.path.realpath(hf_dir) == os.path.realpath(out_dir):
    raise ConfigError(f"--out={out_dir} is the Hugging Face directory itself: choose a new directory")
  replace = check_import_target(out_dir, overwrite)
  if any(a.endswith("ForSequenceClassification") for a in hf.get("architectures") or []):
    raise ConfigError(f"{hf_dir} is a sequence-classification model: import its base LM (hhh trains the score "
                      f"head from an LM with configs/preference.py)")
  m = architectures.model_config(hf)
  hf_vocab = m["vocab_size"]
  if vocab_size and vocab_size > hf_vocab:
    m["vocab_size"] = int(vocab_size)
  full = hc.model_config("tiny")  # every field with its default, then the imported architecture
  full.update(m)
  full.update(dict(dtype="float32", param_dtype="float32", remat="none", scan_layers=True, score_head=False))
  mesh_cfg = mesh_cfg or hc.base_config("tiny").mesh
  ms = run_model.build_model(full, mesh_cfg, devices)
  reader = SafetensorsReader(hf_dir)
  names = reader.names()
  flat_abstract = ckpt_lib.flatten(ms.abstract)
  flat_shardings = ckpt_lib.flatten(ms.shardings)
  table = architectures.tensors(arch, m)
  by_path = {t.path: t for t in table}
  missing_hhh = sorted("/".join(p) for p in flat_abstract if p not in by_path)
  if missing_hhh:
    raise RuntimeError(f"internal: no HF tensor mapped to hhh parameters {missing_hhh}")
  params_flat = {}
  used = set()
  peak_leaf = 0
  for path, spec in flat_abstract.items():
    t = by_path[path]
    buf = np.empty(spec.shape, np.float32)
    peak_leaf = max(peak_leaf, buf.nbytes)
    for i in range(m["n_layers"]) if t.layer else [None]:
      name = _hf_name(arch, t.hf.format(i=i), names)
      if name not in names:
        if path == ("unembedding", "kernel") and m["tie_embeddings"]:
          continue
        raise ConfigError(f"{hf_dir}: tensor {name} not found (needed for hhh parameter {'/'.join(path)})")
      used.add(name)
      x = t.to_hhh(reader.get(name).astype(np.float32))
      target = buf[i] if t.layer else buf
      if path[0] in ("embedding", "unembedding") and x.shape != target.shape:  # vocabulary padded for the eoc token
        rows = x.shape[0] if path[0] == "embedding" else x.shape[1]
        target[...] = 0
        if path[0] == "embedding":
          target[:rows] = x
        else:
          target[:, :rows] = x
        continue
      if x.shape != target.shape:
        raise ConfigError(f"{name}: shape {x.shape} after conversion, hhh parameter {'/'.join(path)} expects "
                          f"{target.shape}")
      target[...] = x
    params_flat[path] = jax.device_put(buf, flat_shardings[path])
    del buf
  unused = sorted(n for n in names - used if not n.endswith(("rotary_emb.inv_freq", ".attn.bias", ".attn.masked_bias",
                                                               ".attention.bias", ".attention.masked_bias")))
  if unused:
    raise ConfigError(f"{hf_dir}: tensors not converted {unused[:8]}{' ...' if len(unused) > 8 else ''}: an "
                      f"architecture variant this importer does not know")
  params = ckpt_lib.unflatten(params_flat)
  os.makedirs(out_dir, exist_ok=True)
  if replace:  # the earlier import's own checkpoint (check_import_target), written again now that conversion worked
    shutil.rmtree(os.path.join(out_dir, "checkpoints", "0"))
  # Bounded writes: with orbax's default bound (96 GB) every array's encoded chunks can be in flight at once, which
  # doubled the host memory of the write. Orbax reserves whole arrays, so the bound is the largest one.
  c = ckpt_lib.Checkpointer(out_dir, every=1, keep=1, async_save=False, max_write_bytes=peak_leaf + 2**20)
  c.save(0, {"params": params, "step": jnp.asarray(0)}, {"train_batches": 0}, force=True)
  c.wait()
  c.close()
  copied = []
  for f in TOKENIZER_FILES:
    src = os.path.join(hf_dir, f)
    if os.path.isfile(src):
      shutil.copyfile(src, os.path.join(out_dir, f))
      copied.append(f)
  record = {"model": {k: v for k, v in full.to_dict().items()},
            "data": {"vocab": f"hf:{out_dir}"} if "tokenizer.json" in copied else {},
            "hf": {"source": hf_dir, "architecture": arch, "config": hf, "vocab_size": hf_vocab}}
  with open(os.path.join(out_dir, "config.json"), "w") as f:
    json.dump(record, f, indent=2, sort_keys=True)
  n_params = sum(int(np.prod(s.shape)) for s in flat_abstract.values())
  summary = {"architecture": arch, "parameters": n_params, "tensors": len(used), "tokenizer_files": copied,
             "largest_parameter_bytes": peak_leaf, "seconds": time.perf_counter() - t0, "out": out_dir}
  log(f"hf_import: {arch} with {n_params:,} parameters ({len(used)} tensors) -> {out_dir} in "
      f"{summary['seconds']:.1f}s" + (f"; tokenizer: {', '.join(copied)}" if copied else "; no tokenizer files"))
  return summary
