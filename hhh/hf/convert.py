"""Hugging Face checkpoints <-> hhh runs: GPT-NeoX (Pythia), Llama and GPT-2 (docs/interop.md).

Import (`tools/hf_import.py`): a HF model directory (config.json + model.safetensors, or a sharded
model.safetensors.index.json) becomes an hhh run directory: RUN/checkpoints/0/state (orbax, the parameters only, as
`hhh.run.model.load_model_params` and `init_from` read them), RUN/config.json (the hhh `model` section, so
`configs/<objective>.py:RUN` builds the same architecture, and the source HF config) and the tokenizer files
(`data.vocab = "hf:RUN"`). Conversion is streamed: each hhh parameter is assembled from memory-mapped safetensors
slices (all layers of a scanned parameter into one buffer), placed on its sharding and its buffer dropped before the next:
conversion holds one copy of the model plus the largest stacked parameter. The write is bounded: orbax has at most the
largest parameter's bytes in flight (`Checkpointer(max_write_bytes=...)`; its default lets every array's encoded
chunks be buffered at once), and the command returns freed buffers to the system (`release_freed_memory`). A
1.01B-parameter Pythia-shaped model, 4.05 GB in f32 (`tools/bench_import.py`): peak 6.4-7.1 GB resident, 1.6-1.7x the
model, against 8.5-8.6 GB (2.1x) with orbax's defaults.

Export (`tools/hf_export.py`): the reverse, to config.json + model.safetensors that `transformers` loads; a model
with a score head (a preference or binary model) becomes `*ForSequenceClassification` with num_labels = 1, whose
score HF reads at the last non-padding token: put the end-of-context token there, as hhh does.

The tensor maps (HF [out, in] Linear weights; GPT-2's Conv1D stores [in, out]; GPT-NeoX's fused query_key_value is
laid out per head as [heads, 3, head_dim] on its output dimension) are the tables below, one function per
architecture giving (hhh path, HF name, to_hhh, to_hf) for every tensor.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from typing import Callable, Optional

import numpy as np

from hhh.core.errors import ConfigError

ARCHITECTURES = {
    "GPTNeoXForCausalLM": "gpt_neox", "GPTNeoXForSequenceClassification": "gpt_neox",
    "LlamaForCausalLM": "llama", "LlamaForSequenceClassification": "llama",
    "GPT2LMHeadModel": "gpt2", "GPT2ForSequenceClassification": "gpt2",
}
CAUSAL_LM = {"gpt_neox": "GPTNeoXForCausalLM", "llama": "LlamaForCausalLM", "gpt2": "GPT2LMHeadModel"}
SEQ_CLS = {"gpt_neox": "GPTNeoXForSequenceClassification", "llama": "LlamaForSequenceClassification",
           "gpt2": "GPT2ForSequenceClassification"}
BASE = {"gpt_neox": "gpt_neox", "llama": "model", "gpt2": "transformer"}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
                   "tokenizer.model", "generation_config.json")


def arch_of(hf: dict) -> str:
  names = hf.get("architectures") or []
  for n in names:
    if n in ARCHITECTURES:
      return ARCHITECTURES[n]
  mt = hf.get("model_type")
  if mt in ("gpt_neox", "llama", "gpt2"):
    return mt
  raise ConfigError(f"unsupported Hugging Face architecture {names or mt!r}; supported: {sorted(ARCHITECTURES)}")


def _act(name: str, arch: str) -> str:
  table = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh"}
  if name not in table:
    raise ConfigError(f"{arch}: activation {name!r} is not supported (gelu, gelu_new, gelu_pytorch_tanh)")
  return table[name]


def model_config(hf: dict) -> dict:
  """The hhh `model` section (hhh.models.transformer.TransformerConfig fields) of a HF config.json."""
  arch = arch_of(hf)
  if arch == "gpt_neox":
    if hf.get("rope_scaling"):
      raise ConfigError(f"gpt_neox: rope_scaling {hf['rope_scaling']!r} is not supported")
    d, heads = int(hf["hidden_size"]), int(hf["num_attention_heads"])
    rope = hf.get("rope_theta", hf.get("rotary_emb_base", 10000))
    if isinstance(hf.get("rope_parameters"), dict):  # transformers >= 5 stores rotary settings here
      rope = hf["rope_parameters"].get("rope_theta", rope)
    pct = hf.get("rotary_pct", (hf.get("rope_parameters") or {}).get("partial_rotary_factor", 1.0))
    return dict(vocab_size=int(hf["vocab_size"]), d_model=d, n_layers=int(hf["num_hidden_layers"]), n_heads=heads,
                d_head=d // heads, d_ff=int(hf["intermediate_size"]), max_len=int(hf["max_position_embeddings"]),
                rope_theta=float(rope), norm_eps=float(hf.get("layer_norm_eps", 1e-5)), norm="layer",
                attn_bias=bool(hf.get("attention_bias", True)), mlp_bias=True, mlp=_act(hf.get("hidden_act", "gelu"),
                                                                                       arch),
                parallel_residual=bool(hf.get("use_parallel_residual", True)), rotary_pct=float(pct),
                rotary_layout="half", positions="rotary", tie_embeddings=bool(hf.get("tie_word_embeddings", False)))
  if arch == "llama":
    if hf.get("rope_scaling") or (isinstance(hf.get("rope_parameters"), dict) and
                                  hf["rope_parameters"].get("rope_type", "default") != "default"):
      raise ConfigError(f"llama: rope scaling {hf.get('rope_scaling') or hf.get('rope_parameters')!r} is not "
                        f"supported (plain rotary only)")
    if hf.get("hidden_act", "silu") != "silu":
      raise ConfigError(f"llama: hidden_act {hf.get('hidden_act')!r} is not supported (silu)")
    d, heads = int(hf["hidden_size"]), int(hf["num_attention_heads"])
    rope = hf.get("rope_theta", 10000.0)
    if isinstance(hf.get("rope_parameters"), dict):
      rope = hf["rope_parameters"].get("rope_theta", rope)
    return dict(vocab_size=int(hf["vocab_size"]), d_model=d, n_layers=int(hf["num_hidden_layers"]), n_heads=heads,
                n_kv_heads=int(hf.get("num_key_value_heads") or heads), d_head=int(hf.get("head_dim") or d // heads),
                d_ff=int(hf["intermediate_size"]), max_len=int(hf["max_position_embeddings"]), rope_theta=float(rope),
                norm_eps=float(hf.get("rms_norm_eps", 1e-6)), norm="rms", attn_bias=bool(hf.get("attention_bias",
                                                                                               False)),
                mlp_bias=bool(hf.get("mlp_bias", False)), mlp="swiglu", parallel_residual=False, rotary_pct=1.0,
                rotary_layout="half", positions="rotary", tie_embeddings=bool(hf.get("tie_word_embeddings", False)))
  # gpt2
  for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"):
    if hf.get(flag):
      raise ConfigError(f"gpt2: {flag}=True is not supported")
  if hf.get("scale_attn_weights") is False:
    raise ConfigError("gpt2: scale_attn_weights=False is not supported")
  d, heads = int(hf["n_embd"]), int(hf["n_head"])
  return dict(vocab_size=int(hf["vocab_size"]), d_model=d, n_layers=int(hf["n_layer"]), n_heads=heads,
              d_head=d // heads, d_ff=int(hf.get("n_inner") or 4 * d), max_len=int(hf["n_positions"]),
              norm_eps=float(hf.get("layer_norm_epsilon", 1e-5)), norm="layer", attn_bias=True, mlp_bias=True,
              mlp=_act(hf.get("activation_function", "gelu_new"), arch), parallel_residual=False, rotary_pct=1.0,
              rotary_layout="half", positions="learned", tie_embeddings=bool(hf.get("tie_word_embeddings", True)))


# ----------------------------------------------------------------------------------------------- tensor maps


@dataclasses.dataclass(frozen=True)
class Tensor:
  """One hhh parameter (`path` under params; per layer when `layer`) and its HF tensor."""
  path: tuple
  hf: str  # HF name ("{i}" = the layer)
  to_hhh: Callable[[np.ndarray], np.ndarray]
  to_hf: Callable[[np.ndarray], np.ndarray]
  layer: bool = True


def _same(x):
  return x


def _t(x):
  return np.ascontiguousarray(x.T)


def tensors(arch: str, m: dict, *, score_head: bool = False) -> list:
  """Every tensor of the architecture with config `m` (an hhh model section)."""
  d, h, dh, ff = m["d_model"], m["n_heads"], m["d_head"], m["d_ff"]
  kv = m.get("n_kv_heads") or h
  base = BASE[arch]
  out: list = []

  def add(path, name, to_hhh=_same, to_hf=_same, layer=True):
    out.append(Tensor(tuple(path), name, to_hhh, to_hf, layer))

  def norm(hhh_name, hf_name, bias):
    add(("layers", hhh_name, "scale"), f"{hf_name}.weight")
    if bias:
      add(("layers", hhh_name, "bias"), f"{hf_name}.bias")

  def linear_in_out(path, name, heads=None):
    """HF Linear [out, in] <-> hhh kernel [in, out] or [in, heads, head_dim]."""
    if heads is None:
      add(path, name, _t, _t)
    else:
      add(path, name, lambda w: np.ascontiguousarray(w.T.reshape(d, heads, dh)),
          lambda k: np.ascontiguousarray(k.reshape(d, heads * dh).T))

  def out_proj(path, name, conv=False):
    """attention output: HF Linear [d, h*dh] (Conv1D [h*dh, d]) <-> hhh [h, dh, d]."""
    if conv:
      add(path, name, lambda w: np.ascontiguousarray(w.reshape(h, dh, d)), lambda k: np.ascontiguousarray(
          k.reshape(h * dh, d)))
    else:
      add(path, name, lambda w: np.ascontiguousarray(w.T.reshape(h, dh, d)),
          lambda k: np.ascontiguousarray(k.reshape(h * dh, d).T))

  if arch == "gpt_neox":
    p = f"{base}.layers.{{i}}"
    norm("attention_norm", f"{p}.input_layernorm", True)
    norm("mlp_norm", f"{p}.post_attention_layernorm", True)
    for j, name in enumerate(("query", "key", "value")):  # fused [h, 3, dh] on the output dim
      add(("layers", "attention", name), f"{p}.attention.query_key_value.weight",
          lambda w, j=j: np.ascontiguousarray(w.reshape(h, 3, dh, d)[:, j].transpose(2, 0, 1)), None)
      if m["attn_bias"]:
        add(("layers", "attention", f"{name}_bias"), f"{p}.attention.query_key_value.bias",
            lambda b, j=j: np.ascontiguousarray(b.reshape(h, 3, dh)[:, j]), None)
    out_proj(("layers", "attention", "out"), f"{p}.attention.dense.weight")
    if m["attn_bias"]:
      add(("layers", "attention", "out_bias"), f"{p}.attention.dense.bias")
    linear_in_out(("layers", "mlp", "wi", "kernel"), f"{p}.mlp.dense_h_to_4h.weight")
    add(("layers", "mlp", "wi", "bias"), f"{p}.mlp.dense_h_to_4h.bias")
    linear_in_out(("layers", "mlp", "wo", "kernel"), f"{p}.mlp.dense_4h_to_h.weight")
    add(("layers", "mlp", "wo", "bias"), f"{p}.mlp.dense_4h_to_h.bias")
    add(("embedding",), f"{base}.embed_in.weight", layer=False)
    add(("final_norm", "scale"), f"{base}.final_layer_norm.weight", layer=False)
    add(("final_norm", "bias"), f"{base}.final_layer_norm.bias", layer=False)
    if not score_head and not m["tie_embeddings"]:
      add(("unembedding", "kernel"), "embed_out.weight", _t, _t, layer=False)
  elif arch == "llama":
    p = f"{base}.layers.{{i}}"
    norm("attention_norm", f"{p}.input_layernorm", False)
    norm("mlp_norm", f"{p}.post_attention_layernorm", False)
    for name, proj, heads in (("query", "q_proj", h), ("key", "k_proj", kv), ("value", "v_proj", kv)):
      linear_in_out(("layers", "attention", name), f"{p}.self_attn.{proj}.weight", heads)
      if m["attn_bias"]:
        add(("layers", "attention", f"{name}_bias"), f"{p}.self_attn.{proj}.bias",
            lambda b, heads=heads: np.ascontiguousarray(b.reshape(heads, dh)),
            lambda b: np.ascontiguousarray(b.reshape(-1)))
    out_proj(("layers", "attention", "out"), f"{p}.self_attn.o_proj.weight")
    if m["attn_bias"]:
      add(("layers", "attention", "out_bias"), f"{p}.self_attn.o_proj.bias")
    for hhh_name, proj in (("wg", "gate_proj"), ("wi", "up_proj"), ("wo", "down_proj")):
      linear_in_out(("layers", "mlp", hhh_name, "kernel"), f"{p}.mlp.{proj}.weight")
      if m["mlp_bias"]:
        add(("layers", "mlp", hhh_name, "bias"), f"{p}.mlp.{proj}.bias")
    add(("embedding",), f"{base}.embed_tokens.weight", layer=False)
    add(("final_norm", "scale"), f"{base}.norm.weight", layer=False)
    if not score_head and not m["tie_embeddings"]:
      add(("unembedding", "kernel"), "lm_head.weight", _t, _t, layer=False)
  else:  # gpt2: Conv1D weights are [in, out]
    p = f"{base}.h.{{i}}"
    norm("attention_norm", f"{p}.ln_1", True)
    norm("mlp_norm", f"{p}.ln_2", True)
    for j, name in enumerate(("query", "key", "value")):
      add(("layers", "attention", name), f"{p}.attn.c_attn.weight",
          lambda w, j=j: np.ascontiguousarray(w[:, j * d:(j + 1) * d].reshape(d, h, dh)), None)
      add(("layers", "attention", f"{name}_bias"), f"{p}.attn.c_attn.bias",
          lambda b, j=j: np.ascontiguousarray(b[j * d:(j + 1) * d].reshape(h, dh)), None)
    out_proj(("layers", "attention", "out"), f"{p}.attn.c_proj.weight", conv=True)
    add(("layers", "attention", "out_bias"), f"{p}.attn.c_proj.bias")
    add(("layers", "mlp", "wi", "kernel"), f"{p}.mlp.c_fc.weight")
    add(("layers", "mlp", "wi", "bias"), f"{p}.mlp.c_fc.bias")
    add(("layers", "mlp", "wo", "kernel"), f"{p}.mlp.c_proj.weight")
    add(("layers", "mlp", "wo", "bias"), f"{p}.mlp.c_proj.bias")
    add(("embedding",), f"{base}.wte.weight", layer=False)
    add(("position_embedding",), f"{base}.wpe.weight", layer=False)
    add(("final_norm", "scale"), f"{base}.ln_f.weight", layer=False)
    add(("final_norm", "bias"), f"{base}.ln_f.bias", layer=False)
    if not score_head and not m["tie_embeddings"]:  # GPT-2 with tie_word_embeddings=False keeps its own lm_head
      add(("unembedding", "kernel"), "lm_head.weight", _t, _t, layer=False)
  if score_head:
    add(("score_head", "kernel"), "score.weight", _t, _t, layer=False)
  return out


def fused_to_hf(arch: str, m: dict, layer_params: dict) -> dict:
  """The fused HF tensors of one layer (GPT-NeoX query_key_value, GPT-2 c_attn) from hhh's q/k/v: {suffix: array}."""
  d, h, dh = m["d_model"], m["n_heads"], m["d_head"]
  a = layer_params["attention"]
  if arch == "gpt_neox":
    w = np.stack([a[n].transpose(1, 2, 0) for n in ("query", "key", "value")], axis=1)  # [h, 3, dh, d]
    out = {"attention.query_key_value.weight": w.reshape(3 * h * dh, d)}
    if m["attn_bias"]:
      out["attention.query_key_value.bias"] = np.stack([a[f"{n}_bias"] for n in ("query", "key", "value")],
                                                       axis=1).reshape(-1)
    return out
  if arch == "gpt2":
    return {"attn.c_attn.weight": np.concatenate([a[n].reshape(d, h * dh) for n in ("query", "key", "value")], 1),
            "attn.c_attn.bias": np.concatenate([a[f"{n}_bias"].reshape(-1) for n in ("query", "key", "value")])}
  return {}


# ----------------------------------------------------------------------------------------------- reading HF files


class SafetensorsReader:
  """Memory-mapped tensors of a HF directory (model.safetensors or the shards of model.safetensors.index.json)."""

  def __init__(self, directory: str):
    from safetensors import safe_open  # pylint: disable=g-import-not-at-top
    index = os.path.join(directory, "model.safetensors.index.json")
    single = os.path.join(directory, "model.safetensors")
    if os.path.isfile(index):
      weight_map = _read_json(index).get("weight_map")
      if not isinstance(weight_map, dict):
        raise ConfigError(f"{index}: no \"weight_map\" object (is it a safetensors index?)")
      files = sorted(set(weight_map.values()))
    elif os.path.isfile(single):
      files, weight_map = ["model.safetensors"], None
    else:
      raise ConfigError(f"no model.safetensors or model.safetensors.index.json in {directory} (PyTorch .bin "
                        f"checkpoints are not read: save with safe_serialization=True)")
    def open_file(f):
      path = os.path.join(directory, f)
      try:
        return safe_open(path, framework="numpy")
      except Exception as e:  # pylint: disable=broad-except  (safetensors' error for a cut or foreign file)
        raise ConfigError(f"{path} is not a readable safetensors file ({_first_line(e)}): is it complete?") from None

    self._open = open_file
    if weight_map is None:
      with self._open(files[0]) as h:
        weight_map = {k: files[0] for k in h.keys()}
    self.weight_map = weight_map

  def names(self) -> set:
    return set(self.weight_map)

  def get(self, name: str) -> np.ndarray:
    if name not in self.weight_map:
      raise KeyError(name)
    # Opened per tensor: the file's mapping is released right after the copy, so the pages read do not stay in this
    # process's resident memory for the whole import.
    with self._open(self.weight_map[name]) as h:
      try:
        return h.get_tensor(name)
      except Exception as e:  # pylint: disable=broad-except  (data cut short after a whole header)
        raise ConfigError(f"{self.weight_map[name]}: tensor {name} cannot be read ({_first_line(e)}): is the file "
                          f"complete?") from None


def _first_line(e: BaseException) -> str:
  return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _read_json(path: str) -> dict:
  try:
    with open(path, encoding="utf-8") as f:
      out = json.load(f)
  except (ValueError, UnicodeDecodeError) as e:
    raise ConfigError(f"{path} is not valid JSON ({_first_line(e)})") from None
  if not isinstance(out, dict):
    raise ConfigError(f"{path} is not a JSON object")
  return out


def _hf_name(arch: str, name: str, names: set) -> str:
  """HF names of a *ForSequenceClassification checkpoint keep the base prefix; causal LM ones too. Some Llama
  checkpoints saved from the base model drop the `model.` prefix: accept both."""
  if name in names:
    return name
  base = BASE[arch] + "."
  if name.startswith(base) and name[len(base):] in names:
    return name[len(base):]
  return name


# ----------------------------------------------------------------------------------------------- import


def release_freed_memory() -> bool:
  """glibc only (False elsewhere): large allocations are mapped and unmapped (not kept in the heap once freed) and at
  most 2 malloc arenas serve the process's threads. Without this the buffers that orbax's writer threads free stay
  in per-thread arenas and the import's peak grew by ~0.3x the model (tools/bench_import.py, docs/interop.md). The
  import command calls it once at start; it is process-wide, so library users choose."""
  import ctypes  # pylint: disable=g-import-not-at-top
  try:
    libc = ctypes.CDLL("libc.so.6")
    m_mmap_threshold, m_arena_max = -3, -8
    return bool(libc.mallopt(m_mmap_threshold, 1 << 20)) and bool(libc.mallopt(m_arena_max, 2))
  except (OSError, AttributeError):
    return False


def read_hf_config(directory: str) -> dict:
  path = os.path.join(directory, "config.json")
  if not os.path.isfile(path):
    raise ConfigError(f"{directory} is not a Hugging Face model directory: no config.json")
  return _read_json(path)


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


def import_checkpoint(hf_dir: str, out_dir: str, *, mesh_cfg=None, devices=None, vocab_size: int = 0,
                      overwrite: bool = False, log: Callable[[str], None] = print) -> dict:
  """Writes the hhh run directory `out_dir` for the HF model in `hf_dir`; returns a summary.

  `out_dir` must be new or empty; `overwrite` replaces an earlier import there (and nothing else: a training run is
  refused). vocab_size > the HF vocabulary pads the embedding (and unembedding) with zero rows, e.g. for the
  end-of-context token of an `hf:` vocabulary that the checkpoint's embedding does not cover."""
  import time  # pylint: disable=g-import-not-at-top

  import jax  # pylint: disable=g-import-not-at-top

  from hhh.run import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  from hhh.run import model as run_model  # pylint: disable=g-import-not-at-top
  from hhh import config as hc  # pylint: disable=g-import-not-at-top
  from hhh.core import paths  # pylint: disable=g-import-not-at-top
  t0 = time.perf_counter()
  hf_dir, out_dir = paths.resolve(hf_dir), paths.resolve(out_dir)
  hf = read_hf_config(hf_dir)
  arch = arch_of(hf)
  if os.path.realpath(hf_dir) == os.path.realpath(out_dir):
    raise ConfigError(f"--out={out_dir} is the Hugging Face directory itself: choose a new directory")
  replace = check_import_target(out_dir, overwrite)
  if any(a.endswith("ForSequenceClassification") for a in hf.get("architectures") or []):
    raise ConfigError(f"{hf_dir} is a sequence-classification model: import its base LM (hhh trains the score "
                      f"head from an LM with configs/preference.py)")
  m = model_config(hf)
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
  table = tensors(arch, m)
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
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
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


# ----------------------------------------------------------------------------------------------- export


def hf_config(arch: str, m: dict, source: Optional[dict] = None, *, score_head: bool = False,
              vocab_size: Optional[int] = None, pad_token_id: Optional[int] = None) -> dict:
  """A HF config.json for hhh model section `m` (the imported source config's other fields kept when given)."""
  out = dict(source or {})
  for k in ("_name_or_path", "torch_dtype", "dtype", "transformers_version", "id2label", "label2id"):
    out.pop(k, None)
  v = int(vocab_size or m["vocab_size"])
  act = {"gelu": "gelu", "gelu_tanh": "gelu_new"}
  if arch == "gpt_neox":
    out.update(model_type="gpt_neox", vocab_size=v, hidden_size=m["d_model"], num_hidden_layers=m["n_layers"],
               num_attention_heads=m["n_heads"], intermediate_size=m["d_ff"], max_position_embeddings=m["max_len"],
               rotary_pct=m["rotary_pct"], rotary_emb_base=m["rope_theta"], rope_theta=m["rope_theta"],
               layer_norm_eps=m["norm_eps"], hidden_act=act[m["mlp"]], use_parallel_residual=m["parallel_residual"],
               attention_bias=m["attn_bias"], tie_word_embeddings=m["tie_embeddings"])
    if isinstance(out.get("rope_parameters"), dict):
      out["rope_parameters"] = {**out["rope_parameters"], "rope_theta": m["rope_theta"],
                                "partial_rotary_factor": m["rotary_pct"]}
  elif arch == "llama":
    out.update(model_type="llama", vocab_size=v, hidden_size=m["d_model"], num_hidden_layers=m["n_layers"],
               num_attention_heads=m["n_heads"], num_key_value_heads=m.get("n_kv_heads") or m["n_heads"],
               head_dim=m["d_head"], intermediate_size=m["d_ff"], max_position_embeddings=m["max_len"],
               rope_theta=m["rope_theta"], rms_norm_eps=m["norm_eps"], hidden_act="silu",
               attention_bias=m["attn_bias"], mlp_bias=m["mlp_bias"], tie_word_embeddings=m["tie_embeddings"])
    if isinstance(out.get("rope_parameters"), dict):
      out["rope_parameters"] = {**out["rope_parameters"], "rope_theta": m["rope_theta"]}
  else:
    out.update(model_type="gpt2", vocab_size=v, n_embd=m["d_model"], n_layer=m["n_layers"], n_head=m["n_heads"],
               n_inner=m["d_ff"], n_positions=m["max_len"], layer_norm_epsilon=m["norm_eps"],
               activation_function=act[m["mlp"]], tie_word_embeddings=m["tie_embeddings"])
  out["architectures"] = [SEQ_CLS[arch] if score_head else CAUSAL_LM[arch]]
  if score_head:
    out["num_labels"] = 1
    out["problem_type"] = "regression"
  if pad_token_id is not None:
    out["pad_token_id"] = int(pad_token_id)
  return out


def read_run(run_dir: str) -> dict:
  """The config.json of an hhh run (written by training or by import)."""
  from hhh.core import paths  # pylint: disable=g-import-not-at-top
  path = os.path.join(paths.resolve(run_dir), "config.json")
  if not os.path.isfile(path):
    raise ConfigError(f"{run_dir} has no config.json: export needs the run directory (its `model` section says the "
                      f"architecture)")
  with open(path) as f:
    return json.load(f)


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


def export_checkpoint(run_dir: str, out_dir: str, *, log: Callable[[str], None] = print) -> dict:
  """Writes config.json + model.safetensors (+ the run's tokenizer files) of the hhh run at `run_dir` to `out_dir`."""
  import time  # pylint: disable=g-import-not-at-top

  import jax  # pylint: disable=g-import-not-at-top
  import ml_collections  # pylint: disable=g-import-not-at-top
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top

  from hhh.run import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  from hhh import config as hc  # pylint: disable=g-import-not-at-top
  from hhh.core import paths  # pylint: disable=g-import-not-at-top
  from hhh.run import model as run_model  # pylint: disable=g-import-not-at-top
  t0 = time.perf_counter()
  run_dir, out_dir = paths.resolve(run_dir), paths.resolve(out_dir)
  rec = read_run(run_dir)
  m = dict(rec["model"])
  source = rec.get("hf", {})
  arch = source.get("architecture") or arch_of_model(m)
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
  base = BASE[arch]
  for t in tensors(arch, m, score_head=score_head):
    if t.to_hf is None:
      continue
    for i in range(m["n_layers"]) if t.layer else [None]:
      x = flat[t.path][i] if t.layer else flat[t.path]
      if t.path[0] == "embedding":
        x = x[:vocab]
      elif t.path[0] == "unembedding":
        x = x[:, :vocab]
      out[t.hf.format(i=i)] = np.ascontiguousarray(t.to_hf(x), np.float32)
  if arch in ("gpt_neox", "gpt2"):
    prefix = f"{base}.layers" if arch == "gpt_neox" else f"{base}.h"
    for i in range(m["n_layers"]):
      layer = jax.tree.map(lambda a, i=i: a[i], params["layers"])
      for suffix, x in fused_to_hf(arch, m, layer).items():
        out[f"{prefix}.{i}.{suffix}"] = np.ascontiguousarray(x, np.float32)
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
  from hhh.data import vocab as vocab_lib  # pylint: disable=g-import-not-at-top
  vocab_name = rec.get("data", {}).get("vocab", "byte")
  try:
    pad = vocab_lib.pad_id(vocab_name)
  except Exception:  # pylint: disable=broad-except  (the vocabulary may not be available here: keep the source's)
    pad = None
  cfg = hf_config(arch, m, source.get("config"), score_head=score_head, vocab_size=vocab, pad_token_id=pad)
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
