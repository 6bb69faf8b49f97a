"""Training-step benchmark: tokens/s, achieved FLOP/s, MFU against a stated peak, memory; sweeps and a side-by-side
PyTorch reference.

  python tools/bench.py --config=configs/pretrain.py:cpu [--steps=8] [--config.train.batch_size=16 ...]
  python tools/bench.py --config=configs/pretrain.py:197m --attention=xla,auto --remat=full,dots   # a sweep
  python tools/bench.py --config=configs/preference.py:cpu --torch_python=/path/to/torchvenv/bin/python --rounds=3

On CPU the peak is the fp32 matmul throughput this process measures (hhh.core.flops.measure_matmul_flops): at the start
and, with `--rounds` > 1, again after each round, the best of them (the shared CPU's speed drifts within a run; one
measurement at the start once came out below what the step itself then achieved); on
TPU/GPU it is the device kind's table value (bf16). The step is the trainer's own jitted train step (hhh.train), fed
synthetic batches of the objective's feature family, so the number measures the model + optimiser, not the input
pipeline (tools/bench_data.py does that). Memory: the device's peak bytes in use on GPU/TPU, the process's maximum
resident set size on CPU.

`--attention` / `--remat` / `--grad_accum` take comma-separated values (model.attention, model.remat,
train.grad_accum): every combination is a variant. `--torch_python` runs ../shared/bench/torch_ref.py (a HF
GPT-NeoX model of the same shape, in its own venv: `python3 -m venv torchref && torchref/bin/pip install torch
transformers`; never a project dependency) in the same run, alternating with the hhh variants for `--rounds`
rounds, and reports medians and the ratio.

`--matmuls` also times the step's MLP weight matmuls alone (forward, input gradient, weight gradient at the
microbatch's rows, batch / grad_accum x seq, for each variant's grad_accum; fp32) with XLA and, with
`--torch_python`, with PyTorch, alternating for `--rounds` rounds: how much of a gap to the reference is the matmul
kernel itself rather than the rest of the step.
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from hhh.cli.quiet import quiet  # noqa: E402

quiet()  # start-up quieting, before jax and TensorFlow are imported

from absl import flags  # noqa: E402
from hhh import cli  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", "configs/pretrain.py:cpu", "Config file and size.",
                                          lock_config=True)
_STEPS = flags.DEFINE_integer("steps", 8, "Timed steps per round (after 2 warm-up steps).")
_ROUNDS = flags.DEFINE_integer("rounds", 1, "Rounds; with --torch_python the variants and the reference alternate "
                               "and medians over rounds are reported.")
_ATTENTION = flags.DEFINE_list("attention", [], "model.attention values to sweep (default: the config's).")
_REMAT = flags.DEFINE_list("remat", [], "model.remat values to sweep (default: the config's).")
_GRAD_ACCUM = flags.DEFINE_list("grad_accum", [], "train.grad_accum values to sweep (microbatches per step; default: "
                                "the config's).")
_MATMUL_N = flags.DEFINE_integer("matmul_n", 2048, "Matrix size of the CPU peak-FLOP/s measurement.")
_TORCH_PYTHON = flags.DEFINE_string("torch_python", "", "Python of a venv with torch + transformers: run the PyTorch "
                                    "reference of the same shape side by side.")
_TORCH_REF = flags.DEFINE_string("torch_ref", os.path.join(REPO, "..", "shared", "bench", "torch_ref.py"),
                                 "The reference script.")
_TORCH_ARGS = flags.DEFINE_string("torch_args", "", "Extra arguments for the reference (e.g. --compile).")
_JSON = flags.DEFINE_string("json", "", "Also write the results to this JSON file.")
_MATMULS = flags.DEFINE_bool("matmuls", False, "Also time the step's MLP weight matmuls alone with XLA (and with "
                             "PyTorch under --torch_python), GFLOP/s per shape.")

# The same matmuls in PyTorch (run by --torch_python; argv[1]: JSON list of [name, a_shape, b_shape, ta, tb]).
_TORCH_MATMULS = """
import json, sys, time, torch
out = {}
for name, a, b, ta, tb in json.loads(sys.argv[1]):
  x, y = torch.ones(a) * 0.01, torch.ones(b) * 0.01
  f = lambda: (x.T if ta else x) @ (y.T if tb else y)
  for _ in range(3):
    f()
  t = time.perf_counter()
  for _ in range(10):
    f()
  out[name] = (time.perf_counter() - t) / 10
print(json.dumps({"seconds": out, "torch": torch.__version__, "threads": torch.get_num_threads()}))
"""


def matmul_shapes(config, grad_accum: int = 1) -> list[list]:
  """[name, stored a shape, stored b shape, transpose a, transpose b] of the MLP's matmuls in one microbatch of a
  training step (the whole batch when grad_accum is 1)."""
  m = config.model
  rows = int(config.train.batch_size) // grad_accum * int(config.data.seq_len)
  if _family(config) == "comparison":
    rows *= int(config.data.num_responses)
  d, f = int(m.d_model), int(m.d_ff) or 4 * int(m.d_model)
  return [[f"x @ wi (forward) [{rows},{d}]x[{d},{f}]", [rows, d], [d, f], False, False],
          [f"dy @ wi.T (input gradient) [{rows},{f}]x[{f},{d}]", [rows, f], [d, f], False, True],
          [f"x.T @ dy (weight gradient) [{d},{rows}]x[{rows},{f}]", [rows, d], [rows, f], True, False],
          [f"h @ wo (forward) [{rows},{f}]x[{f},{d}]", [rows, f], [f, d], False, False]]


def _flops(a, ta, b, tb) -> float:
  (m, k), n = (a[::-1] if ta else a), (b[0] if tb else b[1])
  return 2.0 * m * k * n


def time_matmuls_xla(shapes) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  out = {}
  for name, a, b, ta, tb in shapes:
    x, y = jnp.full(a, 0.01, jnp.float32), jnp.full(b, 0.01, jnp.float32)
    f = jax.jit(lambda x, y, ta=ta, tb=tb: (x.T if ta else x) @ (y.T if tb else y))
    for _ in range(3):
      f(x, y).block_until_ready()
    t = time.perf_counter()
    for _ in range(10):
      r = f(x, y)
    r.block_until_ready()
    out[name] = (time.perf_counter() - t) / 10
  return out


def run_matmuls(config, accums=(1,)) -> list[dict]:
  """GFLOP/s of each matmul shape (at the microbatch of each grad_accum in `accums`): medians over --rounds rounds
  of XLA and (alternating) PyTorch."""
  shapes = [s for g in sorted(set(accums)) for s in matmul_shapes(config, g)]
  xla, ref = [], []
  for _ in range(_ROUNDS.value):
    xla.append(time_matmuls_xla(shapes))
    if _TORCH_PYTHON.value:
      out = subprocess.run([_TORCH_PYTHON.value, "-c", _TORCH_MATMULS, json.dumps(shapes)], capture_output=True,
                           text=True, check=False)
      if out.returncode != 0:
        raise RuntimeError(f"the PyTorch matmuls failed:\n{out.stderr[-3000:]}")
      ref.append(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])
  rows = []
  print(f"matmuls alone (fp32, GFLOP/s, median of {_ROUNDS.value} round(s) x 10):")
  for name, a, b, ta, tb in shapes:
    fl = _flops(a, ta, b, tb)
    row = {"matmul": name, "xla_gflops": fl / statistics.median(r[name] for r in xla) / 1e9}
    if ref:
      row["torch_gflops"] = fl / statistics.median(r[name] for r in ref) / 1e9
      row["vs_torch"] = row["xla_gflops"] / row["torch_gflops"]
    rows.append(row)
    print(f"  {name}: XLA {row['xla_gflops']:.1f}" + (f", PyTorch {row['torch_gflops']:.1f} -> {row['vs_torch']:.2f}x"
                                                       if ref else ""))
  return rows


def synthetic_batch(family: str, batch_size: int, seq_len: int, vocab_size: int, k: int):
  """Random batch with the shapes and dtypes of `family` (docs/contracts.md), every row fully used."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from hhh.data.specs import family_spec  # pylint: disable=g-import-not-at-top
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


class Variant:
  """One compiled train step (a config with its overrides) that can be timed repeatedly."""

  def __init__(self, config, label: str):
    import jax  # pylint: disable=g-import-not-at-top
    from hhh import train  # pylint: disable=g-import-not-at-top
    self.config, self.label = config, label
    self.setup = setup = train.build(config)
    self.state = train.init_state(setup, jax.random.key(0))
    self.b, self.seq = int(config.train.batch_size), int(config.data.seq_len)
    local = synthetic_batch(setup.objective.family, self.b, self.seq, setup.model_config.vocab_size,
                            int(config.data.num_responses))
    self.batch = train.global_batch(setup, local)
    self.aux = train.make_aux(setup, self.state.params)
    self.step = train.jit_train_step(setup, self.batch, self.aux)
    self.rng = jax.random.key(1)
    self.compile_s = None
    self.step_times: list[float] = []
    self.round_medians: list[float] = []
    self.loss = float("nan")

  def run(self, steps: int) -> float:
    import jax  # pylint: disable=g-import-not-at-top
    from hhh.core import sharding  # pylint: disable=g-import-not-at-top
    with sharding.activate(self.setup.mesh, self.setup.rules):
      if self.compile_s is None:
        t0 = time.perf_counter()
        self.state, m = self.step(self.state, self.batch, self.rng, self.aux)
        jax.block_until_ready(m)
        self.compile_s = time.perf_counter() - t0
      self.state, m = self.step(self.state, self.batch, self.rng, self.aux)  # warm-up
      jax.block_until_ready(m)
      times = []
      for _ in range(steps):
        t0 = time.perf_counter()
        self.state, m = self.step(self.state, self.batch, self.rng, self.aux)
        jax.block_until_ready(m)
        times.append(time.perf_counter() - t0)
    self.loss = float(m["loss"])
    self.step_times += times
    self.round_medians.append(statistics.median(times))
    return self.round_medians[-1]


def device_peak_memory_gib() -> float | None:
  import jax  # pylint: disable=g-import-not-at-top
  stats = getattr(jax.devices()[0], "memory_stats", lambda: None)()
  if stats and "peak_bytes_in_use" in stats:
    return stats["peak_bytes_in_use"] / 2**30
  return None


def torch_command(config) -> list[str]:
  """The reference's arguments for the same shape: the LM batch, or for a comparison family K rows per example
  as K/2 pairs per example (the same number of sequences of the same length)."""
  m = config.model
  family = _family(config)
  rows = int(config.train.batch_size) * (int(config.data.num_responses) if family == "comparison" else 1)
  args = [_TORCH_PYTHON.value, _TORCH_REF.value, "--layers", str(m.n_layers), "--d_model", str(m.d_model), "--heads",
          str(m.n_heads), "--seq", str(int(config.data.seq_len)), "--vocab", str(m.vocab_size), "--steps",
          str(_STEPS.value)]
  if family == "comparison":
    args += ["--mode", "rm", "--batch", str(rows // 2)]
  else:
    args += ["--batch", str(rows)]
  return args + _TORCH_ARGS.value.split()


def _family(config) -> str:
  from hhh import objectives  # pylint: disable=g-import-not-at-top
  return objectives.get(config.objective.name).family


def run_torch(config) -> dict:
  out = subprocess.run(torch_command(config), capture_output=True, text=True, check=False)
  if out.returncode != 0:
    raise RuntimeError(f"the PyTorch reference failed ({' '.join(torch_command(config))}):\n{out.stderr[-3000:]}")
  return json.loads(out.stdout.strip().splitlines()[-1])


def variants(config) -> list[tuple[str, object]]:
  """Every combination of the swept settings (a value None: the config's own)."""
  sweeps = [("model.attention", _ATTENTION.value or [None]), ("model.remat", _REMAT.value or [None]),
            ("train.grad_accum", [int(x) for x in _GRAD_ACCUM.value] or [None])]
  out = []
  for values in itertools.product(*(vals for _, vals in sweeps)):
    set_ = [(key, v) for (key, _), v in zip(sweeps, values) if v is not None]
    c = config.copy_and_resolve_references()
    with c.unlocked():
      for key, v in set_:
        section, field = key.split(".")
        c[section][field] = v
    out.append((", ".join(f"{key.split('.')[1]}={v}" for key, v in set_) or "config", c))
  return out


def main(_):
  import jax  # pylint: disable=g-import-not-at-top
  from hhh.core import flops as flops_lib  # pylint: disable=g-import-not-at-top
  from hhh import train  # pylint: disable=g-import-not-at-top

  config = _CONFIG.value
  dev = jax.devices()[0]
  table_peak = flops_lib.peak_flops_per_device(dev)
  measured = flops_lib.measure_matmul_flops(n=_MATMUL_N.value) if dev.platform == "cpu" else None
  peak = table_peak or measured
  print(f"device: {jax.device_count()} x {dev.device_kind}; "
        + (f"fp32 matmul {_MATMUL_N.value}^3 measured {measured / 1e9:.1f} GFLOP/s; " if measured else "")
        + f"peak used for MFU: {peak / 1e9:.1f} GFLOP/s per device ({'table' if table_peak else 'measured'})")

  runs = [Variant(c, label) for label, c in variants(config)]
  torch_rounds: list[dict] = []
  peaks = [measured] if measured else []
  for r in range(_ROUNDS.value):
    for v in runs:
      v.run(_STEPS.value)
    if _TORCH_PYTHON.value:
      torch_rounds.append(run_torch(config))
    if measured and _ROUNDS.value > 1:  # this shared CPU's speed drifts: the peak is the best it showed in the run
      peaks.append(flops_lib.measure_matmul_flops(n=_MATMUL_N.value))
    if _ROUNDS.value > 1:
      line = "; ".join(f"{v.label} {v.b * train.flops_per_example(v.setup)[1] / v.round_medians[-1]:,.0f} tok/s"
                       for v in runs)
      if torch_rounds:
        line += f"; torch {torch_rounds[-1]['tokens_per_s']:,.0f} tok/s"
      print(f"round {r + 1}/{_ROUNDS.value}: {line}")

  if len(peaks) > 1:  # CPU (no table peak) over several rounds
    peak = max(peaks)
    print(f"fp32 matmul {_MATMUL_N.value}^3 at the start and after each round: "
          + ", ".join(f"{x / 1e9:.1f}" for x in peaks) + f" GFLOP/s; peak used for MFU: the best, {peak / 1e9:.1f}")
  results = []
  torch_tps = statistics.median(t["tokens_per_s"] for t in torch_rounds) if torch_rounds else None
  for v in runs:
    setup, b, seq = v.setup, v.b, v.seq
    step_s = statistics.median(v.round_medians)
    flops_ex, tokens_ex = train.flops_per_example(setup)
    achieved = b * flops_ex / step_s
    mem = device_peak_memory_gib()
    result = dict(
        config=f"{v.config.objective.name}:{v.config.size}", variant=v.label, attention=v.config.model.get("attention"),
        remat=v.config.model.remat, batch_size=b, seq_len=seq, family=setup.objective.family,
        grad_accum=setup.grad_accum, params=sum(x.size for x in jax.tree.leaves(v.state.params)),
        non_embedding_params=setup.model_config.non_embedding_params(), rounds=len(v.round_medians),
        compile_and_first_step_s=v.compile_s, median_step_s=step_s, min_step_s=min(v.step_times),
        tokens_per_s=b * tokens_ex / step_s, examples_per_s=b / step_s, achieved_flops=achieved,
        peak_flops_per_device=peak, peak_source="table" if table_peak else "measured fp32 matmul",
        peak_measurements=peaks,
        devices=jax.device_count(), device_kind=dev.device_kind, mfu=achieved / (peak * jax.device_count()),
        peak_device_memory_gib=mem,
        peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, loss=v.loss)
    if torch_tps:
      result["torch_tokens_per_s"] = torch_tps
      result["vs_torch"] = result["tokens_per_s"] / torch_tps
    results.append(result)
    print(f"{result['config']} [{v.label}]: batch {b} x seq {seq} ({setup.objective.family}, grad_accum "
          f"{setup.grad_accum}), {result['non_embedding_params'] / 1e6:.1f}M non-embedding params")
    print(f"  step {step_s * 1e3:.0f} ms (median of {len(v.round_medians)} round(s) x {_STEPS.value} steps; compile + "
          f"first step {v.compile_s:.1f} s)")
    print(f"  {result['tokens_per_s']:,.0f} tokens/s, {result['examples_per_s']:.2f} examples/s"
          + (f"; PyTorch reference {torch_tps:,.0f} tokens/s -> {result['vs_torch']:.2f}x" if torch_tps else ""))
    print(f"  achieved {achieved / 1e9:.1f} GFLOP/s (analytic), MFU {100 * result['mfu']:.1f}% of "
          f"{peak / 1e9:.1f} GFLOP/s x {jax.device_count()} ({result['peak_source']})")
    print("  peak memory: " + (f"device {mem:.2f} GiB; " if mem is not None else "")
          + f"process max RSS {result['peak_rss_gib']:.2f} GiB")
  if torch_rounds:
    print(f"PyTorch reference ({torch_rounds[0]['impl']}, {torch_rounds[0]['device']}, torch "
          f"{torch_rounds[0]['torch']}, {torch_rounds[0]['threads']} threads): "
          + ", ".join(f"{t['tokens_per_s']:,.0f}" for t in torch_rounds) + " tokens/s per round")
  matmuls = run_matmuls(config, [v.setup.grad_accum for v in runs]) if _MATMULS.value else None
  if _JSON.value:
    out = {"results": results, "torch": torch_rounds, "torch_command": torch_command(config) if torch_rounds else None}
    if matmuls is not None:
      out["matmuls"] = matmuls
    with open(_JSON.value, "w") as f:
      json.dump(out if (torch_rounds or len(results) > 1 or matmuls is not None) else results[0], f, indent=2)


if __name__ == "__main__":
  cli.run(main)
