"""The laboratory's console progress: one line per stage with the time elapsed and an estimate of the time left
(`Progress`), from an a-priori cost of every stage (`stage_costs`: a fixed start-up plus its FLOPs at a nominal speed)
rescaled by how fast the stages that ran went. Stage times are kept in DIR/stage_times.json.
"""
from __future__ import annotations

import json
import os
import time
from typing import Optional

from hhh import config as hc
from hhh.lab.settings import finetune_run_name
from hhh.models.transformer import TransformerConfig


class Progress:
  """One line per stage with elapsed time and an estimate of what is left (the trainer prints its own steps).

  Each stage has an a-priori cost (seconds at a nominal speed: a fixed start-up plus its FLOPs, `stage_cost`); the
  time left is the remaining stages' cost scaled by how fast the stages that ran so far went against their estimate
  (stages reused from an earlier run take ~0 s and are left out of that ratio). Stage times are kept in
  DIR/stage_times.json: a rerun that reuses a stage keeps the time it took when it ran."""

  def __init__(self, costs: dict, times_file: str = "", label: str = ""):
    self.costs, self.total, self.done, self.t0 = dict(costs), len(costs), 0, time.perf_counter()
    self.label = label
    self.times: dict = {}
    self.reused: set = set()
    self._ran_cost = self._ran_time = 0.0
    self._left = float(sum(self.costs.values()))
    self.times_file = times_file
    self._stored = {}
    if times_file and os.path.exists(times_file):
      with open(times_file) as f:
        self._stored = json.load(f)

  def eta_s(self) -> Optional[float]:
    if self._ran_cost <= 0:
      return None
    return self._left * self._ran_time / self._ran_cost

  def start(self, name: str, what: str):
    el = time.perf_counter() - self.t0
    eta = self.eta_s()
    eta = "" if eta is None else f", ~{eta / 60:.1f} min left"
    print(f"\n=== lab {self.label}[{self.done + 1}/{self.total}] {name}: {what} (elapsed {el / 60:.1f} min{eta})",
          flush=True)
    self._t = time.perf_counter()

  def end(self, name: str, summary: str = "", *, reused: bool = False):
    dt = time.perf_counter() - self._t
    cost = float(self.costs.get(name, 0.0))
    self._left = max(self._left - cost, 0.0)
    self.done += 1
    if reused and name in self._stored:
      self.times[name] = float(self._stored[name])
      self.reused.add(name)
      print(f"=== lab {name} reused from an earlier run (it took {self.times[name]:.0f}s then) {summary}", flush=True)
    else:
      self.times[name] = dt
      if not reused:
        self._ran_cost += cost
        self._ran_time += dt
      print(f"=== lab {name} done in {dt:.0f}s {summary}", flush=True)
    if self.times_file:
      self._stored[name] = self.times[name]
      tmp = self.times_file + ".tmp"
      with open(tmp, "w") as f:
        json.dump(self._stored, f, indent=1)
      os.replace(tmp, self.times_file)


# The cost model's two constants, fitted by least squares to the 30 stage times of a default run on a 2-core CPU
# (11.8 s per stage, 27.7 GFLOP/s); only the ratios between stages matter, the measured speed of the stages that ran
# rescales them.
NOMINAL_FLOPS = 28e9  # FLOP/s
STAGE_STARTUP_S = 12.0  # compiling and loading, per stage (per condition for evaluations)


def stage_costs(p: dict) -> dict:
  """{stage: estimated seconds at NOMINAL_FLOPS}: training 6 N T (K responses per comparison for the preference
  stages), evaluation 2 N T over the scored rows and the sampled tokens, plus STAGE_STARTUP_S each."""
  sizes, big, pmp_size = p["sizes"], p["sizes"][-1], p["pmp_size"]
  n = {s: param_count(s) for s in sizes}
  tok = p["batch_size"] * p["seq_len"]
  out = {}

  def train(name, size, steps, k=1):
    out[name] = STAGE_STARTUP_S + 6 * n[size] * tok * k * steps / NOMINAL_FLOPS

  for s in sizes:
    train(f"pretrain_{s}", s, p["pretrain_steps"])
  for s in sizes:
    train(f"imitation_{s}", s, p["objective_steps"])
    train(f"binary_{s}", s, p["objective_steps"], 2)
    train(f"preference_{s}", s, p["objective_steps"], 4)
  train(f"pmp_{pmp_size}", pmp_size, p["pmp_steps"], 2)
  for k in p["finetune_examples"]:
    for label in ("pmp", "no_pmp"):
      for f in p["finetune_lr_factors"]:
        name = finetune_run_name(label, pmp_size, k, f)
        train(name, pmp_size, max(k // p["batch_size"], 1), 4)
        out[f"eval_{name}"] = STAGE_STARTUP_S + (
            2 * n[pmp_size] * p["finetune_eval_examples"] * 4 * p["eval_seq_len"] / 2 / NOMINAL_FLOPS)
  train(f"distill_{big}", big, p["distill_steps"], 2)
  half = p["eval_seq_len"] / 2  # rows are bucketed by length: about half the cap on average
  hhh_rows = 221 * 2 * 4 if p["hhh"] else 0  # plain, prompt (its rows as long again with the prompt), null, PM
  for s in sizes:
    rows = p["compare_examples"] * 4 * 2 + hhh_rows + p["compare_examples"] * 3
    sampled = p["toxicity_prompts"] * p["toxicity_samples"] * p["toxicity_tokens"] * (3 if s == big else 2)
    out[f"eval_{s}"] = 4 * STAGE_STARTUP_S + 2 * n[s] * (rows * half + sampled * 64) / NOMINAL_FLOPS
    out[f"eval_objectives_{s}"] = STAGE_STARTUP_S + 2 * n[s] * p["compare_examples"] * 4 * 2 * half / NOMINAL_FLOPS
  out["dialogues"] = STAGE_STARTUP_S + 2 * n[big] * p["dialogues"] * 3 * p["dialogue_tokens"] * 64 / NOMINAL_FLOPS
  out["report"] = 2.0
  return out


def param_count(size: str) -> int:
  """The non-embedding parameters of a size's model (the report's and the cost model's N)."""
  return TransformerConfig.from_config(hc.model_config(size)).non_embedding_params()

