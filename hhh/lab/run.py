"""Running the laboratory (`run_lab`): the settings resolved once, every stage (hhh.lab.stages.run_seed) once per
seed, the first seed in DIR and the others in DIR/seed_<seed>, then, with several seeds, DIR/lab.json and
DIR/report.md again with the spread across seeds and the verdicts decided over seeds and examples. The whole run
shares one persistent JAX compilation cache (`compile_cache`, DIR/jax_cache).
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Callable

import jax
from jax._src import compilation_cache as cc
import ml_collections

from hhh.core import paths
from hhh.lab import findings
from hhh.lab import seeds as seeds_lib
from hhh.lab import stages
from hhh.lab.results import LabResults, write_results
from hhh.lab.settings import resolve


def run_lab(config: ml_collections.ConfigDict, workdir: str, log: Callable[[str], None] = print) -> LabResults:
  """Runs the laboratory in `workdir` (see the module docstring). With --config.seeds=N > 1 every stage runs N times
  with seeds seed, seed+1, ... (the first in `workdir` itself, the others in `workdir/seed_<seed>`, each with its own
  report), and `workdir/report.md` adds the spread across seeds of every headline number and of the paper-vs-run
  differences."""
  p = resolve(config)
  workdir = paths.resolve(workdir)  # the runs' checkpoints need absolute paths; resolve once, here
  seeds = [p["seed"] + i for i in range(p["seeds"])]
  t0 = time.perf_counter()
  results = []
  with (compile_cache(os.path.join(workdir, "jax_cache"), log) if p["compile_cache"] else contextlib.nullcontext()):
    for i, seed in enumerate(seeds):
      label = f"seed {seed} ({i + 1}/{len(seeds)}) " if len(seeds) > 1 else ""
      results.append(stages.run_seed(dict(p, seed=seed),
                                     workdir if i == 0 else os.path.join(workdir, f"seed_{seed}"), log, label=label))
  res = results[0]
  if len(seeds) > 1:
    res["across_seeds"] = seeds_lib.summary(results, seeds)
    res["findings"] = findings.findings(res, runs=results)  # verdicts over seeds and examples
    res["wall_time_s"] = time.perf_counter() - t0
    write_results(res, workdir)
    log(f"\nhhh.lab: {len(seeds)} seeds done in {res['wall_time_s'] / 60:.1f} min; report: "
        f"{os.path.join(workdir, 'report.md')}")
  return res


@contextlib.contextmanager
def compile_cache(directory: str, log: Callable[[str], None] = print):
  """JAX's persistent compilation cache in `directory` for the block (unless JAX_COMPILATION_CACHE_DIR or the jax
  config already name one), then the process's previous setting: the lab's stages run in one process but each builds
  its own jitted functions, so stages with the same shapes (the finetuning grid's runs and evaluations, a size's LM
  and PM scoring, every rerun) compiled the same programs again. A cached executable is the one XLA built, so the
  numbers do not change (docs/lab.md)."""

  def reset():  # quietly: jax logs every reset at INFO
    quiet = logging.getLogger(cc.__name__)
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
      cc.reset_cache()
    finally:
      quiet.setLevel(level)

  if os.environ.get("JAX_COMPILATION_CACHE_DIR") or jax.config.jax_compilation_cache_dir:
    yield jax.config.jax_compilation_cache_dir
    return
  os.makedirs(directory, exist_ok=True)
  before = jax.config.jax_persistent_cache_min_compile_time_secs
  jax.config.update("jax_compilation_cache_dir", directory)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
  reset()  # a compilation earlier in this process would otherwise have settled "no cache" for good
  log(f"hhh.lab: compiled programs are cached in {directory} (--config.compile_cache=0 turns this off)")
  try:
    yield directory
  finally:
    jax.config.update("jax_compilation_cache_dir", None)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", before)
    reset()

