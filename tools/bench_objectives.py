"""Objective benchmarks (CPU or TPU).

  python tools/bench_objectives.py [--distill_sizes=tiny,cpu] [--pm_size=cpu] [--out=FILE.json]

1. Context-distillation teacher cost per training example: the prompted teacher's logits on a batch of texts with
   the prompt's keys/values computed once and reused (`prefix_cache`, what the online objective does) versus
   running the prompt + text through the model for every example. The prompt is the project's HHH prompt fitted to
   --prompt_tokens (whole dialogues). The one-off cost of computing the reused keys/values is reported too.
2. Preference-model training throughput at --pm_size: full train steps (forward + backward + AdamW) of the
   `preference` objective on lab comparisons; comparisons/s, pairs/s (pairs with different ranks) and sequences/s.
Timings are medians of --reps after a compile/warm-up call; 2 shared CPU cores make them noisy (quote ranges).
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

_DSIZES = flags.DEFINE_list("distill_sizes", ["tiny", "cpu"], "sizes for the distillation teacher benchmark")
_PROMPT = flags.DEFINE_integer("prompt_tokens", 1920, "prompt length budget (byte tokens)")
_DBATCH = flags.DEFINE_integer("distill_batch", 4, "texts per teacher batch")
_PM_SIZE = flags.DEFINE_string("pm_size", "cpu", "size for the PM throughput benchmark")
_PM_BATCH = flags.DEFINE_integer("pm_batch", 16, "comparisons per PM step")
_PM_K = flags.DEFINE_integer("pm_k", 2, "responses per comparison (2: lab_compare_pair, 4: lab_compare)")
_REPS = flags.DEFINE_integer("reps", 5, "timed repetitions")
_OUT = flags.DEFINE_string("out", "", "also write the results as JSON here")


def _time(fn, reps):
  import jax
  jax.block_until_ready(fn())  # compile + warm up
  ts = []
  for _ in range(reps):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    ts.append(time.perf_counter() - t)
  return statistics.median(ts), min(ts), max(ts)


def bench_distill(size, prompt_tokens, batch, reps):
  import jax
  import jax.numpy as jnp
  import numpy as np
  from configs import distill as distill_cfg
  from hhh import train as train_lib
  from hhh import scoring
  from hhh.objectives import distill

  c = distill_cfg.get_config(size)
  c.unlock()
  c.objective.prompt_max_tokens = prompt_tokens
  c.model.max_len = max(int(c.model.max_len), prompt_tokens + int(c.data.seq_len))
  c.lock()
  setup = train_lib.build(c, devices=jax.devices()[:1])
  params = train_lib.init_state(setup, jax.random.key(0)).params
  model, L = setup.model, int(c.data.seq_len)
  ptok = jnp.asarray(distill.prompt_tokens(c.objective))
  P = int(ptok.shape[0])
  texts = jnp.asarray(np.random.default_rng(0).integers(3, 250, (batch, L)), jnp.int32)
  cache_fn = jax.jit(lambda p: scoring.prompt_cache(model, p, ptok))
  cache = cache_fn(params)
  reused = jax.jit(lambda p, cch, x: model.apply({"params": p}, x, prefix_cache=cch)["logits"])
  full = jax.jit(lambda p, x: model.apply({"params": p}, jnp.concatenate(
      [jnp.broadcast_to(ptok, (x.shape[0], P)), x], 1))["logits"][:, P:])
  t_cache = _time(lambda: cache_fn(params), reps)
  t_reused = _time(lambda: reused(params, cache, texts), reps)
  t_full = _time(lambda: full(params, texts), reps)
  np.testing.assert_allclose(reused(params, cache, texts), full(params, texts), atol=1e-4, rtol=1e-4)
  return {"size": size, "prompt_tokens": P, "text_tokens": L, "batch": batch,
          "prompt_cache_once_s": t_cache[0],
          "reused_ms_per_example": 1e3 * t_reused[0] / batch, "recomputed_ms_per_example": 1e3 * t_full[0] / batch,
          "speedup": t_full[0] / t_reused[0],
          "reused_range_ms": [1e3 * t / batch for t in t_reused[1:]],
          "recomputed_range_ms": [1e3 * t / batch for t in t_full[1:]]}


def bench_pm(size, batch, k, reps):
  import jax
  import numpy as np
  from configs import preference as pref_cfg
  from hhh import train as train_lib
  from hhh.data import pipeline
  from hhh.core import metrics

  c = pref_cfg.get_config(size)
  c.unlock()
  c.train.batch_size, c.data.num_responses = batch, k
  c.lock()
  task = "lab_compare_pair" if k == 2 else "lab_compare"
  setup = train_lib.build(c, devices=jax.devices()[:1])
  state = train_lib.init_state(setup, jax.random.key(0))
  it = pipeline.make_iterator(task, split="train", family="comparison", seq_len=int(c.data.seq_len),
                              batch_size=batch, vocab="byte", seed=0, shuffle=True, repeat=True, k=k)
  batches = [next(it) for _ in range(reps + 1)]
  pairs = [float(np.asarray(metrics.pair_mask(b["score"], b["valid"])).sum()) for b in batches]
  with jax.set_mesh(setup.mesh):
    gb = [train_lib.global_batch(setup, b) for b in batches]
    step = train_lib.jit_train_step(setup, gb[0])
    rng = jax.random.key(1)
    state, m = step(state, gb[0], rng, None)  # compile
    jax.block_until_ready(m)
    ts = []
    for b in gb[1:]:
      t = time.perf_counter()
      state, m = step(state, b, rng, None)
      jax.block_until_ready(m)
      ts.append(time.perf_counter() - t)
  dt = statistics.median(ts)
  mean_pairs = statistics.mean(pairs[1:])
  return {"size": size, "task": task, "k": k, "batch_comparisons": batch, "seq_len": int(c.data.seq_len),
          "step_s": dt, "step_range_s": [min(ts), max(ts)], "comparisons_per_s": batch / dt,
          "pairs_per_s": mean_pairs / dt, "sequences_per_s": batch * k / dt, "pairs_per_step": mean_pairs,
          "non_embedding_params": setup.model_config.non_embedding_params()}


def main(_):
  res = {"distill": [], "pm": None}
  for size in _DSIZES.value:
    r = bench_distill(size, _PROMPT.value, _DBATCH.value, _REPS.value)
    res["distill"].append(r)
    print(f"distill teacher [{size}] prompt {r['prompt_tokens']} + text {r['text_tokens']} tokens: reused "
          f"{r['reused_ms_per_example']:.1f} ms/example vs recomputed {r['recomputed_ms_per_example']:.1f} "
          f"ms/example ({r['speedup']:.1f}x); prompt keys/values once: {r['prompt_cache_once_s'] * 1e3:.0f} ms",
          flush=True)
  r = bench_pm(_PM_SIZE.value, _PM_BATCH.value, _PM_K.value, _REPS.value)
  res["pm"] = r
  print(f"PM training [{r['size']}, {r['task']}, B={r['batch_comparisons']} x K={r['k']} x L={r['seq_len']}]: "
        f"{r['pairs_per_s']:.1f} pairs/s, {r['comparisons_per_s']:.1f} comparisons/s, "
        f"{r['sequences_per_s']:.1f} sequences/s (step {r['step_s']:.2f} s, range {r['step_range_s'][0]:.2f}-"
        f"{r['step_range_s'][1]:.2f} s)", flush=True)
  if _OUT.value:
    with open(_OUT.value, "w") as f:
      json.dump(res, f, indent=2)


if __name__ == "__main__":
  cli.run(main)
