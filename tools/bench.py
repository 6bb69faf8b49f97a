"""Training-step benchmark: tokens/s, achieved FLOP/s and MFU against a peak measured in the same process.

  python tools/bench.py --config=configs/pretrain.py:cpu [--steps=10] [--config.train.batch_size=16 ...]

On CPU the "peak" is the fp32 matmul throughput this process measures first (hhh.flops.measure_matmul_flops); on
TPU/GPU it is the device kind's table value. The step is the trainer's own jitted train step (hhh.train), fed
synthetic batches of the objective's feature family, so the number measures the model + optimiser, not the input
pipeline (tools/bench_data.py measures that). Peak memory is the process's maximum resident set size.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402
from hhh import cli  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", "configs/pretrain.py:cpu", "Config file and size.",
                                          lock_config=True)
_STEPS = flags.DEFINE_integer("steps", 8, "Timed steps (after 2 warm-up steps).")
_MATMUL_N = flags.DEFINE_integer("matmul_n", 2048, "Matrix size of the peak-FLOP/s measurement.")
_JSON = flags.DEFINE_string("json", "", "Also write the results to this JSON file.")


def synthetic_batch(family: str, batch_size: int, seq_len: int, vocab_size: int, k: int):
  """Random batch with the shapes and dtypes of `family` (docs/contracts.md), every row fully used."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from hhh.data.features import family_spec  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  out = {}
  for name, (shape, dtype) in family_spec(family, batch_size, seq_len, k=k).items():
    if name in ("eoc_index",):
      out[name] = np.full(shape, seq_len - 1, dtype)
    elif name == "response_start":
      out[name] = np.full(shape, seq_len // 2, dtype)
    elif name in ("decoder_segment_ids", "valid", "decoder_loss_weights", "loss_weights"):
      out[name] = np.ones(shape, dtype)
    elif name == "decoder_positions":
      out[name] = np.broadcast_to(np.arange(seq_len, dtype=dtype), shape).copy()
    elif np.issubdtype(dtype, np.integer):
      out[name] = rng.integers(3, vocab_size - 1, shape).astype(dtype)
    elif name == "label":
      out[name] = (np.arange(np.prod(shape)) % 2).reshape(shape).astype(dtype)
    else:  # comparison scores, multiple-choice targets
      out[name] = rng.integers(0, k, shape).astype(dtype)
  return out


def main(_):
  import jax  # pylint: disable=g-import-not-at-top
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  from hhh import flops as flops_lib  # pylint: disable=g-import-not-at-top
  from hhh import train  # pylint: disable=g-import-not-at-top

  config = _CONFIG.value
  dev = jax.devices()[0]
  table_peak = flops_lib.peak_flops_per_device(dev)
  measured = flops_lib.measure_matmul_flops(n=_MATMUL_N.value)
  peak = table_peak or measured
  print(f"device: {jax.device_count()} x {dev.device_kind}; fp32 matmul {_MATMUL_N.value}^3 measured "
        f"{measured / 1e9:.1f} GFLOP/s; peak used for MFU: {peak / 1e9:.1f} GFLOP/s per device "
        f"({'table' if table_peak else 'measured'})")

  setup = train.build(config)
  state = train.init_state(setup, jax.random.key(0))
  b, seq = int(config.train.batch_size), int(config.data.seq_len)
  local = synthetic_batch(setup.objective.family, b, seq, setup.model_config.vocab_size,
                          int(config.data.num_responses))
  batch = train.global_batch(setup, local)
  aux = train.make_aux(setup, state.params)
  step = train.jit_train_step(setup, batch, aux)
  rng = jax.random.key(1)
  with jax.set_mesh(setup.mesh), nn.logical_axis_rules(setup.rules):
    t0 = time.perf_counter()
    state, m = step(state, batch, rng, aux)
    jax.block_until_ready(m)
    compile_s = time.perf_counter() - t0
    state, m = step(state, batch, rng, aux)
    jax.block_until_ready(m)
    times = []
    for _ in range(_STEPS.value):
      t0 = time.perf_counter()
      state, m = step(state, batch, rng, aux)
      jax.block_until_ready(m)
      times.append(time.perf_counter() - t0)
  step_s = sorted(times)[len(times) // 2]  # median
  flops_ex, tokens_ex = train.flops_per_example(setup)
  achieved = b * flops_ex / step_s
  result = dict(
      config=f"{config.objective.name}:{config.size}", batch_size=b, seq_len=seq, family=setup.objective.family,
      params=sum(x.size for x in jax.tree.leaves(state.params)),
      non_embedding_params=setup.model_config.non_embedding_params(),
      compile_and_first_step_s=compile_s, median_step_s=step_s, min_step_s=min(times),
      tokens_per_s=b * tokens_ex / step_s, examples_per_s=b / step_s, achieved_flops=achieved,
      peak_flops_per_device=peak, devices=jax.device_count(), mfu=achieved / (peak * jax.device_count()),
      peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, loss=float(m["loss"]))
  print(f"{result['config']}: batch {b} x seq {seq} ({setup.objective.family}), "
        f"{result['non_embedding_params'] / 1e6:.1f}M non-embedding params")
  print(f"  step {step_s * 1e3:.0f} ms (median of {len(times)}; compile + first step {compile_s:.1f} s)")
  print(f"  {result['tokens_per_s']:,.0f} tokens/s, {result['examples_per_s']:.2f} examples/s")
  print(f"  achieved {achieved / 1e9:.1f} GFLOP/s (analytic), MFU {100 * result['mfu']:.1f}% of "
        f"{peak / 1e9:.1f} GFLOP/s x {jax.device_count()}")
  print(f"  peak memory (max RSS) {result['peak_rss_gib']:.2f} GiB")
  if _JSON.value:
    with open(_JSON.value, "w") as f:
      json.dump(result, f, indent=2)


if __name__ == "__main__":
  cli.run(main)
