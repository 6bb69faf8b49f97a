"""The base config every `configs/*.py` file starts from, and the paper's size ladder.

Sizes are small overrides of one base config: `configs/preference.py:52b` = base + the 52b model shape + the
preference objective. The returned ConfigDict is locked, so a typo in an override (`--config.train.stepz=1`) fails
and names the key.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
from typing import Any, Sequence

import ml_collections

from hhh.config.record import read_run_config
from hhh.core.errors import ConfigError
from hhh.core import paths
from hhh.core.paths import CONFIGS_DIR
from hhh.core import sharding
from hhh.models.transformer import TransformerConfig

# The seven sizes of the paper (non-embedding parameters ~ 12 * n_layers * d_model^2), vocab 2^16, context 8192,
# plus CPU sizes for tests, laptops and benchmarks. Head dim 128 for the large sizes, 64 below.
PAPER_SIZES = {
    "13m": dict(n_layers=4, d_model=512, n_heads=8),
    "42m": dict(n_layers=8, d_model=640, n_heads=10),
    "197m": dict(n_layers=16, d_model=1024, n_heads=16),
    "810m": dict(n_layers=24, d_model=1664, n_heads=13),
    "2.7b": dict(n_layers=32, d_model=2560, n_heads=20),
    "13b": dict(n_layers=40, d_model=5120, n_heads=40),
    "52b": dict(n_layers=64, d_model=8192, n_heads=64),
}
CPU_SIZES = {
    # Steps in well under a second on 2 CPU cores; used by tests and the embedded default job.
    "tiny": dict(n_layers=2, d_model=64, n_heads=4, vocab_size=512, max_len=512),
    # Laboratory sizes: three small rungs that train in minutes on a laptop.
    "lab_s": dict(n_layers=2, d_model=128, n_heads=4, vocab_size=512, max_len=1024),
    "lab_m": dict(n_layers=4, d_model=192, n_heads=6, vocab_size=512, max_len=1024),
    "lab_l": dict(n_layers=4, d_model=256, n_heads=8, vocab_size=512, max_len=1024),
    # ~21M non-embedding parameters: the CPU benchmark size. Wide and shallow because CPU matmul efficiency grows
    # with width (tools/bench.py here: 6 x 512 reached 46% MFU, 3 x 768 55%).
    "cpu": dict(n_layers=3, d_model=768, n_heads=12, vocab_size=512, max_len=1024),
}
SIZES = {**PAPER_SIZES, **CPU_SIZES}
# Tensor-parallel degree of each paper size's default TPU mesh (data=1, fsdp=-1: fsdp fills the slice), with one
# example per data-parallel device per microbatch. Tensor parallelism only where memory needs it (docs/scale.md):
# none for one 8192-token sequence per device; configs/preference.py (one comparison = K=4 x 8192 tokens per
# device) takes PAPER_TENSOR_PREFERENCE, where the 52b needs tensor=2 to stay under 60 GiB per v5p chip.
PAPER_TENSOR = dict.fromkeys(PAPER_SIZES, 1)
PAPER_TENSOR_PREFERENCE = {**PAPER_TENSOR, "52b": 2}
PAPER_LABELS = {"13m": 13e6, "42m": 42e6, "197m": 197e6, "810m": 810e6, "2.7b": 2.7e9, "13b": 13e9, "52b": 52e9}


def run_dir_of(size: str) -> str:
  """The run directory named by a config string's size argument ("" when it is a size of the ladder): a directory
  holding an hhh run's config.json (a training run, or an import by tools/hf_import.py) gives its architecture."""
  if size in SIZES:
    return ""
  path = paths.resolve(size)
  return path if os.path.isfile(os.path.join(path, "config.json")) else ""


def _run_record(run_dir: str) -> dict:
  rec = read_run_config(run_dir)
  if not isinstance(rec.get("model"), dict):
    raise ValueError(f"{run_dir}/config.json has no `model` section")
  return rec


def model_config(size: str) -> ml_collections.ConfigDict:
  run_dir = run_dir_of(size)
  if size not in SIZES and not run_dir:
    raise ValueError(f"unknown model size {size!r}; choose one of {list(SIZES)}, or give the directory of a run "
                     f"(one with a config.json, e.g. written by tools/hf_import.py)")
  # One source of the model's defaults: hhh.models.transformer.TransformerConfig (the paper ladder's architecture).
  m = ml_collections.ConfigDict({f.name: f.default for f in dataclasses.fields(TransformerConfig)
                                 if f.default is not dataclasses.MISSING})
  m.update(dict(vocab_size=65536, d_model=0, n_layers=0, n_heads=0))
  if run_dir:  # the run's architecture, over today's defaults (fields added since keep their defaults)
    saved = _run_record(run_dir)["model"]
    unknown = sorted(set(saved) - set(m))
    if unknown:
      raise ValueError(f"{run_dir}/config.json: unknown model fields {unknown}")
    m.update(saved)
    m.score_head = False  # the objective's config decides
    return m
  m.update(SIZES[size])
  if size in PAPER_SIZES:
    m.dtype = "bfloat16"  # TPU compute dtype; parameters stay f32
    m.remat = "full"
    m.logits_chunk = 512
  return m


def base_config(size: str = "tiny") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.size = size
  c.seed = 0
  c.model = model_config(size)

  c.objective = ml_collections.ConfigDict(dict(name="lm"))

  run_dir = run_dir_of(size)
  # A run's architecture (e.g. an imported Pythia): the CPU sizes' defaults (pure data parallelism, short sequences)
  # below 100M non-embedding parameters, the paper sizes' (fully sharded) above.
  small = size in CPU_SIZES or (bool(run_dir) and _non_embedding(c.model) < 1e8)
  c.data = ml_collections.ConfigDict(dict(
      task="lab_lm",  # seqio task or mixture (see README for the registered names)
      train_split="train",
      eval_task="",  # "" = same as task
      eval_split="validation",
      vocab="byte",  # "byte" (zero set-up), "spm:PATH" (tools/train_vocab.py; pod runs: 65,536 pieces), "hf:PATH"
      seq_len=128 if small else 8192,
      num_responses=2,  # K of the comparison family
      shuffle=True,
  ))

  c.train = ml_collections.ConfigDict(dict(
      steps=200 if small else 100_000,
      batch_size=16 if small else 512,  # global batch (sequences, comparisons or samples)
      # microbatches per step; 0 = auto: batch / (data-parallel devices x microbatch_per_device). Paper sizes: auto
      # with one sequence (or comparison) per data-parallel device per microbatch, so one config fits any slice.
      grad_accum=1 if small else 0,
      microbatch_per_device=0 if small else 1,  # examples per data-parallel device per microbatch, for grad_accum=0
      log_every=10,
      eval_every=100,
      eval_batches=4,
      checkpoint_every=100,
      keep_checkpoints=3,
      async_checkpoints=True,
  ))

  c.optim = ml_collections.ConfigDict(dict(
      lr=3e-3 if small else 3e-4,
      warmup_steps=20 if small else 2000,
      schedule="cosine",  # cosine | linear | constant (after warmup)
      end_lr_fraction=0.1,  # final lr = lr * end_lr_fraction
      weight_decay=0.1,
      b1=0.9, b2=0.95, eps=1e-8,
      clip_grad_norm=1.0,  # <= 0 disables clipping
  ))

  c.mesh = ml_collections.ConfigDict(dict(
      # CPU sizes: pure data parallelism. Paper sizes: fully sharded (fsdp fills the slice), tensor per size.
      shape=ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1) if small else
                                      dict(data=1, fsdp=-1, tensor=PAPER_TENSOR.get(size, 1))),
      slices=1,
      # Paper sizes also shard the residual stream's d_model over `tensor` (a no-op at tensor=1): the layer inputs
      # that remat keeps, [B, L, d_model] per layer, are then 1/tensor per device (docs/scale.md).
      rules=[list(r) if small or r[0] != "activation_embed" else [r[0], "tensor"] for r in sharding.DEFAULT_RULES],
  ))

  if run_dir:
    vocab = _run_record(run_dir).get("data", {}).get("vocab")
    if vocab:  # an import's tokenizer (hf:RUN_DIR)
      c.data.vocab = vocab
  c.init_from = ""  # checkpoint directory (a run's workdir or a step dir): load its parameters only
  c.multihost = "auto"  # auto | on | off: jax.distributed.initialize
  return c


def _non_embedding(model_cfg) -> int:
  return TransformerConfig.from_config(model_cfg).non_embedding_params()


def parse_arg(arg: str | None) -> str:
  """The config string's argument is the size, e.g. `configs/pretrain.py:13m` (default: tiny)."""
  return (arg or "tiny").strip()


def size_and_variants(arg: str | None, usage: str, allowed: Sequence[Sequence[str]]) -> tuple[str, list[str]]:
  """`SIZE[,VARIANT...]` -> (size, variants) for the config files that take variants (distill, pmp, finetune);
  variants not in `allowed` raise a ValueError showing `usage` (e.g. "configs/finetune.py:SIZE[,lab]")."""
  size, *variants = [p.strip() for p in parse_arg(arg).split(",")]
  if variants not in [list(a) for a in allowed]:
    raise ValueError(f"{usage}, got {arg!r}")
  return size, variants




def load(spec: str) -> ml_collections.ConfigDict:
  """A config from its config string as the commands take it, `configs/preference.py:13m` (or `preference:13m`, or any
  file path): loaded by path, so it works from any current directory."""
  path, _, arg = spec.partition(":")
  if not os.path.exists(path):
    name = os.path.basename(path)
    path = os.path.join(CONFIGS_DIR, name if name.endswith(".py") else f"{name}.py")
  if not os.path.exists(path):
    raise ConfigError(f"config file {spec.partition(':')[0]!r} not found (looked in . and {CONFIGS_DIR})")
  mod_name = "hhh_config_" + os.path.splitext(os.path.basename(path))[0]
  loader = importlib.util.spec_from_file_location(mod_name, path)
  mod = importlib.util.module_from_spec(loader)
  loader.loader.exec_module(mod)
  return mod.get_config(arg or None)


def override(c: ml_collections.ConfigDict, overrides: dict[str, Any]) -> ml_collections.ConfigDict:
  """Sets dotted keys (`{"train.steps": 10}`) as `--config.train.steps=10` does, in place; returns `c`.

  A value given as a string is read as the command line reads it: JSON where it parses (10, 0.5, true, [..]) unless
  the field is a string; ml_collections' type safety applies (an int may replace a float, not the reverse). An
  unknown key or a wrong type is a ConfigError naming the key.
  """
  for key, value in overrides.items():
    node = c
    *parents, leaf = key.split(".")
    for p in parents:
      if p not in node or not isinstance(node[p], ml_collections.ConfigDict):
        raise ConfigError(f"unknown config key {key!r}: {p!r} is not a section")
      node = node[p]
    if leaf not in node:
      raise ConfigError(f"unknown config key {key!r}; {'.'.join(parents) or 'the config'} has {sorted(node.keys())}")
    if isinstance(value, str) and not isinstance(node[leaf], str):
      try:
        value = json.loads(value)
      except json.JSONDecodeError:
        pass
    try:
      node[leaf] = value
    except TypeError as e:
      raise ConfigError(f"config key {key!r}: {e}") from e
  return c


def finalize(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  c.lock()
  return c
