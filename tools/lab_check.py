"""Laboratory check: imitation learning vs binary discrimination vs ranked preference modelling, side by side, at
three CPU model sizes with equal training budgets, on the embedded comparison suite.

  python tools/lab_check.py --out=/tmp/obj/lab [--sizes=lab_s,lab_m,lab_l] [--steps=150] [--sequences=32]

Equal budget = the same number of optimiser steps and the same number of L-token training sequences per step
(forward + backward tokens): ranked PM sees sequences/4 comparisons of K=4 responses (`lab_compare`), binary
discrimination `sequences` independent good/bad samples (`lab_binary`), imitation learning `sequences` packed rows
of context + best response (`lab_imitation`, loss on responses only). All from a random initialisation (no LM
pretraining) at the config's default learning rate. Evaluation: pairwise accuracy on the held-out (validation,
unseen contexts) `lab_compare` comparisons, overall and per family; IL ranks by mean per-token log-probability,
binary and PM by the score at the end-of-context token. Writes OUT/lab_check.json and prints a markdown table.
"""

from __future__ import annotations

import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from hhh.cli.quiet import quiet  # noqa: E402

quiet()  # start-up quieting, before jax and TensorFlow are imported

from absl import flags  # noqa: E402
from hhh import cli  # noqa: E402

_OUT = flags.DEFINE_string("out", "/tmp/hhh_lab_check", "output directory (runs + lab_check.json)")
_SIZES = flags.DEFINE_list("sizes", ["lab_s", "lab_m", "lab_l"], "model sizes")
_STEPS = flags.DEFINE_integer("steps", 150, "optimiser steps per run")
_SEQS = flags.DEFINE_integer("sequences", 32, "L-token training sequences per step (PM: sequences/4 comparisons)")
_EVAL = flags.DEFINE_integer("eval_batches", 12, "held-out batches of 16 comparisons per family")
_SEED = flags.DEFINE_integer("seed", 0, "seed")

OBJECTIVES = {  # name -> (config module, batch size as a multiple of sequences, scorer)
    "imitation": ("imitation", 1.0, "mean_logprob"),
    "binary": ("binary", 1.0, "score"),
    "preference": ("preference", 0.25, "score"),
}
FAMILIES = ("arith", "code", "hhh")


def run_one(objective: str, size: str, steps: int, sequences: int, workdir: str, seed: int = 0) -> dict:
  import math
  from hhh import config as hc
  from hhh import train as train_lib
  from hhh.lab import settings as lab_settings
  from hhh.data import pipeline
  from hhh.run import model as run_model
  from hhh import scoring

  mod, mult, scorer = OBJECTIVES[objective]
  c = hc.load(f"{mod}:{size}")
  with c.unlocked():
    c.seed = seed
    c.train.batch_size = int(sequences * mult)
    lab_settings.short_run(c, steps=steps, log_every=25, max_warmup=steps // 5)
  t0 = time.perf_counter()
  last = train_lib.train(c, workdir)
  train_s = time.perf_counter() - t0
  setup, params = run_model.model_from_run(c.model, c.mesh, workdir, what="run")  # the trained run, read whole
  out = {"objective": objective, "size": size, "steps": steps, "batch_size": int(c.train.batch_size),
         "train_seconds": train_s, "final_train_loss": last.get("loss"), "scorer": scorer}
  total_pairs = total_correct = 0.0
  for fam in FAMILIES:
    it = pipeline.make_iterator(f"lab_compare_{fam}", split="validation", family="comparison",
                                seq_len=int(c.data.seq_len), batch_size=16, vocab=c.data.vocab, seed=0,
                                shuffle=False, repeat=False, k=4)
    res = scoring.comparison_accuracy(setup.model, params, it, scorer, max_batches=_EVAL.value)
    out[f"accuracy_{fam}"] = res["accuracy"]
    out[f"pairs_{fam}"] = res["pairs"]
    total_pairs += res["pairs"]
    total_correct += res["accuracy"] * res["pairs"]
  out["accuracy"] = total_correct / max(total_pairs, 1)
  out["pairs"] = total_pairs
  out["stderr"] = math.sqrt(out["accuracy"] * (1 - out["accuracy"]) / max(total_pairs, 1))
  return out


def table(results) -> str:
  lines = ["| size | objective | accuracy (all) | arith | code | hhh | pairs | train s |",
           "|---|---|---|---|---|---|---|---|"]
  for r in results:
    lines.append(f"| {r['size']} | {r['objective']} | {r['accuracy']:.3f} ± {r['stderr']:.3f} | "
                 f"{r['accuracy_arith']:.3f} | {r['accuracy_code']:.3f} | {r['accuracy_hhh']:.3f} | "
                 f"{int(r['pairs'])} | {r['train_seconds']:.0f} |")
  return "\n".join(lines)


def main(_):
  os.makedirs(_OUT.value, exist_ok=True)
  path = os.path.join(_OUT.value, "lab_check.json")
  results = json.load(open(path))["results"] if os.path.exists(path) else []
  done = {(r["size"], r["objective"]) for r in results}
  for size in _SIZES.value:
    for obj in OBJECTIVES:
      if (size, obj) in done:
        continue
      r = run_one(obj, size, _STEPS.value, _SEQS.value, os.path.join(_OUT.value, f"{size}_{obj}"), _SEED.value)
      results.append(r)
      with open(path, "w") as f:  # after every run, so an interrupted check keeps what it measured
        json.dump({"argv": sys.argv, "steps": _STEPS.value, "sequences": _SEQS.value, "results": results}, f,
                  indent=2)
      print(table(results), flush=True)
  print(table(results))


if __name__ == "__main__":
  cli.run(main)
