"""Decode benchmark: prefill and decode tokens/s, compile time, and how far decode is from its memory-bandwidth bound.

  python tools/bench_decode.py [--config=configs/sample.py:cpu] [--batch_sizes=1,32] [--prompt_len=128]
      [--new_tokens=128] [--prefix_len=0] [--json=decode.json]

The model (random parameters of the config's size, on the config's mesh) runs hhh.sampling's two compiled
programs exactly as `python -m hhh.sample` does: prefill (the prompts' forward pass filling the key/value cache)
and the decode loop (`jax.lax.while_loop`, greedy, end-of-sequence disabled so every row decodes --new_tokens
tokens). Reported per batch size:

  * prefill tokens/s: prompt tokens / time of the prefill program (after its compilation);
  * decode tokens/s: generated tokens / time of the decode program, and steps/s (one token per row per step);
  * compile: seconds to compile the decode program (`lower(...).compile()`, one program for every step);
  * bound: decode is memory-bound at small batch - every step reads every parameter and the whole cache
    (k and v of every layer, row and slot, plus the shared prefix). bytes/step divided by the memory bandwidth
    MEASURED here (a jitted sum over a --bandwidth_mib array: read bandwidth; a copy is reported too) gives the
    fastest possible step; `% of bw bound` is the achieved fraction.
  * compute bounds: FLOPs per step (2 x matmul parameters x rows + attention) against the device's peak (the table
    value on TPU/GPU; on CPU a measured square fp32 matmul) and, on CPU, against the throughput of a matmul of the
    decode's own shape ([rows, d_model] x [d_model, d_ff], measured): at large batch decode becomes compute-bound,
    and a skinny matmul runs well below the square peak. `% of compute bound` uses the decode-shaped figure.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from hhh.cli.quiet import quiet  # noqa: E402

quiet()  # start-up quieting, before jax and TensorFlow are imported

from absl import flags  # noqa: E402
from hhh import cli  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", "configs/sample.py:cpu", "Config file and size.",
                                          lock_config=True)
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["1", "32"], "Rows decoded together (each a separate prompt).")
_PROMPT_LEN = flags.DEFINE_integer("prompt_len", 128, "Prompt tokens per row.")
_NEW_TOKENS = flags.DEFINE_integer("new_tokens", 128, "Tokens generated per row (no early stop).")
_PREFIX_LEN = flags.DEFINE_integer("prefix_len", 0, "Tokens of a shared prefix (as the HHH prompt) every row sees.")
_REPS = flags.DEFINE_integer("reps", 3, "Timed repetitions (the median is reported).")
_BANDWIDTH_MIB = flags.DEFINE_integer("bandwidth_mib", 512, "Array size of the memory-bandwidth measurement (MiB).")
_MATMUL_N = flags.DEFINE_integer("matmul_n", 2048, "Matrix size of the CPU peak-FLOP/s measurement.")
_JSON = flags.DEFINE_string("json", "", "Also write the results to this JSON file.")


def measure_bandwidth(mib: int, reps: int = 5) -> dict:
  """Bytes/s of a jitted full read (sum) and of a copy (x + 1: read + write) of a `mib` MiB float32 array."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  n = mib * 2**20 // 4
  x = jnp.ones((n,), jnp.float32)
  total = jax.jit(jnp.sum)
  copy = jax.jit(lambda a: a + 1.0)
  jax.block_until_ready((total(x), copy(x)))
  def best(fn):
    times = []
    for _ in range(reps):
      t0 = time.perf_counter()
      jax.block_until_ready(fn(x))
      times.append(time.perf_counter() - t0)
    return min(times)
  return {"read_bytes_per_s": 4 * n / best(total), "copy_bytes_per_s": 2 * 4 * n / best(copy), "array_mib": mib}


def _tree_bytes(tree) -> int:
  import jax  # pylint: disable=g-import-not-at-top
  return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))


def main(_):
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  from hhh.core import sharding  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from hhh.run import model as run_model  # pylint: disable=g-import-not-at-top
  from hhh.core import flops as flops_lib  # pylint: disable=g-import-not-at-top
  from hhh import sampling  # pylint: disable=g-import-not-at-top
  from hhh.models.transformer import init_inputs  # pylint: disable=g-import-not-at-top

  config = _CONFIG.value
  dev = jax.devices()[0]
  bw = measure_bandwidth(_BANDWIDTH_MIB.value)
  table_peak = flops_lib.peak_flops_per_device(dev)
  peak = table_peak or flops_lib.measure_matmul_flops(n=_MATMUL_N.value)
  print(f"device: {jax.device_count()} x {dev.device_kind}; memory bandwidth measured: read (sum of "
        f"{_BANDWIDTH_MIB.value} MiB) {bw['read_bytes_per_s'] / 1e9:.1f} GB/s, copy {bw['copy_bytes_per_s'] / 1e9:.1f} "
        f"GB/s; matmul peak {peak / 1e9:.1f} GFLOP/s per device ({'table' if table_peak else 'measured fp32'})")

  ms = run_model.build_model(config.model, config.mesh)
  cfg = ms.model.cfg
  with sharding.activate(ms.mesh, ms.rules):
    params = jax.jit(lambda r: nn.meta.unbox(ms.model.init(r, init_inputs(cfg))["params"]),
                     out_shardings=ms.shardings)(jax.random.key(0))
  param_bytes = _tree_bytes(params)
  n_params = sum(x.size for x in jax.tree.leaves(params))
  matmul_params = n_params - params["embedding"].size  # the embedding is a gather, not a matmul
  rng = np.random.default_rng(0)
  vocab_hi = min(cfg.vocab_size, 259)
  prefix = rng.integers(3, vocab_hi, _PREFIX_LEN.value) if _PREFIX_LEN.value else None
  settings = sampling.Settings(max_new_tokens=_NEW_TOKENS.value, temperature=0.0)
  results = []
  for b in [int(x) for x in _BATCH_SIZES.value]:
    sampler = sampling.Sampler(ms.model, params, ms.mesh, ms.rules, "byte", prefix_tokens=prefix, batch_size=b,
                               eos_id=-1)
    prompts = [list(rng.integers(3, vocab_hi, _PROMPT_LEN.value)) for _ in range(b)]
    rows = [(i, 0) for i in range(b)]
    rows_padded = -(-b // sampler.dp) * sampler.dp
    stop_ids = sampler.stop_ids(settings)

    def start():
      return jax.block_until_ready(sampler.start_state(prompts, rows, list(range(b)), settings, rows_padded))

    t0 = time.perf_counter()
    state = start()
    prefill_compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    compiled = sampler.lower_decode(state, settings, stop_ids).compile()
    decode_compile_s = time.perf_counter() - t0
    del compiled
    jax.block_until_ready(sampler.decode(state, _NEW_TOKENS.value, settings, stop_ids))  # first (cached) call
    prefill_s, decode_s = [], []
    for _ in range(_REPS.value):
      t0 = time.perf_counter()
      state = start()
      prefill_s.append(time.perf_counter() - t0)
      t0 = time.perf_counter()
      state = jax.block_until_ready(sampler.decode(state, _NEW_TOKENS.value, settings, stop_ids))
      decode_s.append(time.perf_counter() - t0)
    steps = int(state["step"])
    assert steps == _NEW_TOKENS.value, (steps, _NEW_TOKENS.value)
    pf, dc = statistics.median(prefill_s), statistics.median(decode_s)
    cache_bytes = _tree_bytes({k: state["cache"][k] for k in ("k", "v")})
    prefix_bytes = _tree_bytes(sampler.prefix) if sampler.prefix is not None else 0
    step_bytes = param_bytes + cache_bytes + prefix_bytes
    bound_step_s = step_bytes / bw["read_bytes_per_s"]
    slots = state["cache"]["k"][0].shape[2] + sampler.prefix_len
    step_flops = 2 * matmul_params * rows_padded + 4 * cfg.n_layers * rows_padded * slots * cfg.n_heads * cfg.d_head
    compute_step_s = step_flops / (peak * jax.device_count())
    shaped = (flops_lib.measure_matmul_flops(shape=(rows_padded, cfg.d_model, cfg.d_ff), repeats=5)
              * jax.device_count() if dev.platform == "cpu"
              else peak * jax.device_count())
    shaped_step_s = step_flops / shaped
    r = dict(batch=b, rows=rows_padded, prompt_len=_PROMPT_LEN.value, new_tokens=_NEW_TOKENS.value,
             prefix_len=sampler.prefix_len, cache_slots=int(state["cache"]["k"][0].shape[2]),
             prefill_tokens_per_s=b * _PROMPT_LEN.value / pf, prefill_s=pf, prefill_compile_s=prefill_compile_s,
             decode_tokens_per_s=b * _NEW_TOKENS.value / dc, decode_steps_per_s=_NEW_TOKENS.value / dc,
             decode_s=dc, decode_compile_s=decode_compile_s, param_bytes=param_bytes, cache_bytes=cache_bytes,
             prefix_bytes=prefix_bytes, bytes_per_step=step_bytes, bound_steps_per_s=1 / bound_step_s,
             bound_tokens_per_s=b / bound_step_s, fraction_of_bandwidth_bound=bound_step_s / (dc / steps),
             compute_bound_steps_per_s=1 / compute_step_s, flops_per_step=step_flops,
             decode_shape_matmul_flops=shaped, decode_shape_bound_steps_per_s=1 / shaped_step_s,
             fraction_of_compute_bound=shaped_step_s / (dc / steps))
    results.append(r)

  print(f"{config.size}: {n_params / 1e6:.1f}M parameters ({param_bytes / 2**20:.0f} MiB {cfg.param_dtype}, compute "
        f"{cfg.dtype}), {cfg.n_layers} layers x {cfg.n_heads} heads x {cfg.d_head}; mesh {dict(ms.mesh.shape)}; "
        f"prompt {_PROMPT_LEN.value} + {_NEW_TOKENS.value} new tokens, shared prefix {_PREFIX_LEN.value}")
  head = ("batch", "prefill tok/s", "decode tok/s", "steps/s", "compile s", "MiB/step", "bw bound steps/s",
          "% of bw bound", "peak-compute steps/s", "decode-shape matmul GFLOP/s", "compute bound steps/s",
          "% of compute bound")
  print(" | ".join(head))
  print("|".join("---" for _ in head))
  for r in results:
    print(" | ".join([f"{r['batch']}", f"{r['prefill_tokens_per_s']:,.0f}", f"{r['decode_tokens_per_s']:,.0f}",
                      f"{r['decode_steps_per_s']:,.1f}", f"{r['decode_compile_s']:.2f}",
                      f"{r['bytes_per_step'] / 2**20:,.1f}", f"{r['bound_steps_per_s']:,.1f}",
                      f"{100 * r['fraction_of_bandwidth_bound']:.0f}%", f"{r['compute_bound_steps_per_s']:,.1f}",
                      f"{r['decode_shape_matmul_flops'] / 1e9:,.1f}", f"{r['decode_shape_bound_steps_per_s']:,.1f}",
                      f"{100 * r['fraction_of_compute_bound']:.0f}%"]))
  if _JSON.value:
    with open(_JSON.value, "w") as f:
      json.dump({"device": dev.device_kind, "devices": jax.device_count(), "bandwidth": bw, "peak_flops": peak,
                 "size": config.size, "params": n_params, "results": results}, f, indent=2)


if __name__ == "__main__":
  cli.run(main)
