"""Benchmark of tools/hf_import.py: wall time and peak host memory for a random GPT-NeoX (Pythia-shaped) checkpoint.

  python tools/bench_import.py                      # Pythia-1B shape: 1,011,781,632 parameters, 4.05 GB in f32
  python tools/bench_import.py --layers=2 --d_model=256 --vocab=1024 --shards=2   # a small one, seconds

Writes a HF model directory (config.json + safetensors shards with their index, random f32 weights written one
tensor at a time with numpy; no torch needed) under --dir, then runs `tools/hf_import.py --hf=... --out=...` as a
user would, in its own process, sampling that process's /proc/PID/status every 10 ms. Reports the import's wall time,
its peak resident memory (VmHWM: all of it, mapped safetensors pages included) and its peak anonymous memory (RssAnon:
what the conversion and orbax's write allocate), each also as a multiple of the model's f32 size. --keep leaves the
files for a second run (the HF directory is reused when its config matches).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hhh.cli.quiet import quiet  # noqa: E402

quiet()  # start-up quieting, before jax and TensorFlow are imported

from absl import flags  # noqa: E402
from hhh import cli  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def neox_config(layers: int, d_model: int, heads: int, d_ff: int, vocab: int) -> dict:
  return {"architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox", "hidden_size": d_model,
          "num_hidden_layers": layers, "num_attention_heads": heads, "intermediate_size": d_ff, "vocab_size": vocab,
          "max_position_embeddings": 2048, "rotary_pct": 0.25, "rotary_emb_base": 10000, "hidden_act": "gelu",
          "layer_norm_eps": 1e-5, "use_parallel_residual": True, "tie_word_embeddings": False,
          "torch_dtype": "float32"}


def neox_shapes(c: dict) -> dict:
  d, f, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
  shapes = {"gpt_neox.embed_in.weight": (v, d), "gpt_neox.final_layer_norm.weight": (d,),
            "gpt_neox.final_layer_norm.bias": (d,), "embed_out.weight": (v, d)}
  for i in range(c["num_hidden_layers"]):
    p = f"gpt_neox.layers.{i}"
    shapes.update({
        f"{p}.input_layernorm.weight": (d,), f"{p}.input_layernorm.bias": (d,),
        f"{p}.post_attention_layernorm.weight": (d,), f"{p}.post_attention_layernorm.bias": (d,),
        f"{p}.attention.query_key_value.weight": (3 * d, d), f"{p}.attention.query_key_value.bias": (3 * d,),
        f"{p}.attention.dense.weight": (d, d), f"{p}.attention.dense.bias": (d,),
        f"{p}.mlp.dense_h_to_4h.weight": (f, d), f"{p}.mlp.dense_h_to_4h.bias": (f,),
        f"{p}.mlp.dense_4h_to_h.weight": (d, f), f"{p}.mlp.dense_4h_to_h.bias": (d,)})
  return shapes


def write_random_checkpoint(directory: str, config: dict, shards: int, seed: int = 0) -> int:
  """Writes config.json, model-0000k-of-0000n.safetensors and model.safetensors.index.json; returns the bytes."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  os.makedirs(directory, exist_ok=True)
  shapes = neox_shapes(config)
  names = list(shapes)
  per = -(-len(names) // shards)
  rng = np.random.default_rng(seed)
  weight_map, total = {}, 0
  for k in range(shards):
    part = names[k * per:(k + 1) * per]
    fname = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
    tensors = {n: (0.02 * rng.standard_normal(shapes[n], dtype=np.float32)) for n in part}
    total += sum(t.nbytes for t in tensors.values())
    save_file(tensors, os.path.join(directory, fname), metadata={"format": "pt"})
    del tensors
    weight_map.update({n: fname for n in part})
  with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f)
  with open(os.path.join(directory, "config.json"), "w") as f:
    json.dump(config, f, indent=1)
  return total


def _status(pid: int) -> dict:
  out = {}
  try:
    with open(f"/proc/{pid}/status") as f:
      for line in f:
        key, _, rest = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
          out[key] = int(rest.split()[0]) * 1024
  except (FileNotFoundError, ProcessLookupError):
    pass
  return out


def _cpu_name() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip() + f" ({os.cpu_count()} cores)"
  except OSError:
    pass
  return f"{os.cpu_count()} cores"


def run_import(hf_dir: str, out_dir: str) -> dict:
  """Runs tools/hf_import.py in a child process and samples its memory until it exits."""
  shutil.rmtree(out_dir, ignore_errors=True)
  cmd = [sys.executable, os.path.join(REPO, "tools", "hf_import.py"), f"--hf={hf_dir}", f"--out={out_dir}"]
  t0 = time.perf_counter()
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  peak = {"VmHWM": 0, "RssAnon": 0, "VmRSS": 0}
  done = threading.Event()

  def sample():
    while not done.is_set():
      s = _status(proc.pid)
      for k in peak:
        peak[k] = max(peak[k], s.get(k, 0))
      time.sleep(0.01)

  th = threading.Thread(target=sample, daemon=True)
  th.start()
  output = proc.communicate()[0]
  done.set()
  th.join()
  wall = time.perf_counter() - t0
  if proc.returncode:
    raise SystemExit(f"tools/hf_import.py exited {proc.returncode}:\n{output}")
  return {"seconds": wall, "peak_rss": max(peak["VmHWM"], peak["VmRSS"]), "peak_anon": peak["RssAnon"],
          "log": output.strip().splitlines()[-1] if output.strip() else ""}


def main():
  layers = flags.DEFINE_integer("layers", 16, "layers (Pythia-1B: 16)")
  d_model = flags.DEFINE_integer("d_model", 2048, "hidden size (Pythia-1B: 2048)")
  heads = flags.DEFINE_integer("heads", 8, "attention heads (Pythia-1B: 8)")
  d_ff = flags.DEFINE_integer("d_ff", 0, "MLP width (0: 4 x d_model)")
  vocab = flags.DEFINE_integer("vocab", 50304, "vocabulary rows (Pythia: 50304)")
  shards = flags.DEFINE_integer("shards", 3, "safetensors files")
  directory = flags.DEFINE_string("dir", "bench_import", "where the HF directory (hf/) and the run (run/) go")
  keep = flags.DEFINE_bool("keep", False, "keep both directories afterwards")
  json_out = flags.DEFINE_string("json", "", "also write the result here")

  def run(_):
    from hhh.core import paths  # pylint: disable=g-import-not-at-top
    root = paths.resolve(directory.value)
    hf_dir, out_dir = os.path.join(root, "hf"), os.path.join(root, "run")
    config = neox_config(layers.value, d_model.value, heads.value, d_ff.value or 4 * d_model.value, vocab.value)
    existing = None
    if os.path.isfile(os.path.join(hf_dir, "config.json")):
      with open(os.path.join(hf_dir, "config.json")) as f:
        existing = json.load(f)
    n_params = sum(int(__import__("math").prod(s)) for s in neox_shapes(config).values())
    if existing != config:
      shutil.rmtree(hf_dir, ignore_errors=True)
      t = time.perf_counter()
      write_random_checkpoint(hf_dir, config, shards.value)
      print(f"wrote a random GPT-NeoX checkpoint: {n_params:,} parameters in {shards.value} safetensors files "
            f"({time.perf_counter() - t:.1f}s) -> {hf_dir}", flush=True)
    else:
      print(f"reusing {hf_dir} ({n_params:,} parameters)", flush=True)
    model_bytes = 4 * n_params
    r = run_import(hf_dir, out_dir)
    result = {"parameters": n_params, "model_bytes": model_bytes, "seconds": round(r["seconds"], 2),
              "peak_rss_bytes": r["peak_rss"], "peak_anon_bytes": r["peak_anon"],
              "peak_rss_x_model": round(r["peak_rss"] / model_bytes, 3),
              "peak_anon_x_model": round(r["peak_anon"] / model_bytes, 3), "cpu": _cpu_name()}
    print(r["log"])
    print(f"import: {n_params:,} parameters ({model_bytes / 1e9:.2f} GB f32) in {r['seconds']:.1f}s wall; peak "
          f"memory {r['peak_rss'] / 1e9:.2f} GB resident ({result['peak_rss_x_model']:.2f}x the model), "
          f"{r['peak_anon'] / 1e9:.2f} GB anonymous ({result['peak_anon_x_model']:.2f}x)")
    if json_out.value:
      with open(paths.resolve(json_out.value), "w") as f:
        json.dump(result, f, indent=1)
    if not keep.value:
      shutil.rmtree(root, ignore_errors=True)

  cli.run(run)


if __name__ == "__main__":
  main()
