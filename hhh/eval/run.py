"""The evaluation job.

  python -m hhh.eval --config=configs/eval.py:SIZE --workdir=DIR --config.checkpoint=PATH \\
      [--config.distilled_checkpoint=PATH] [--config.pm_checkpoint=PATH] [--config.eval.suites=hhh,truthfulqa,tax]

Conditions (each row of the tables):
  plain      the LM at `checkpoint`
  prompt     the same LM with the HHH prompt prepended (its keys/values computed once and shared by every row)
  distilled  the context-distilled LM at `distilled_checkpoint`
  pm         the preference or binary model at `pm_checkpoint` (score head; `pm_checkpoint` models get
             model.score_head=True)
Suites: hhh (BIG-bench hhh_alignment, accuracy overall and per subset by sum / mean / mutual information, or score),
truthfulqa (MC1 by sum and mean log-prob, MC2), compare (pairwise accuracy on ranked comparison tasks such as the
lab's held-out `lab_compare`), tax (lambada and TFDS multiple choice, with and without the intervention), toxicity
(RealToxicityPrompts: k sampled continuations per prompt in each LM condition, and best-of-n by the PM, scored by a
toxicity classifier; hhh.eval.toxicity, docs/toxicity.md), code (HumanEval pass@k in each LM condition and
code-correctness ranking by the LMs and the PM, every program run in hhh.sandbox; hhh.eval.code, docs/sandbox.md),
and calibration for whatever ran (preference pairs, multiple-choice answers).

Adding a suite: one module in hhh/eval/ with NAME, run(ctx), scalars(results) and table(results), listed in
SUITE_MODULES below; configs/eval.py's eval.suites selects which run.

The model runs on the same (slice, data, fsdp, tensor) mesh and logical rules as training; parameters are loaded
straight onto their shardings. Outputs in DIR: eval.json (everything, reliability bins included), eval.md (readable
tables), TensorBoard scalars (eval/...) and metrics.jsonl. The same checkpoint gives the same numbers every time
(fixed data order; the toxicity suite samples with a fixed seed, eval.toxicity_seed).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Callable

import jax
import ml_collections
import numpy as np

from hhh import cli
from hhh.core.errors import ConfigError
from hhh.core import paths
from hhh.data import vocab as vocab_lib
from hhh.eval import code as code_eval, compare, examples, hhh as hhh_eval, tax as tax_eval, toxicity, truthfulqa
from hhh import prompts, scoring
from hhh.run import checkpoint as ckpt_lib
from hhh.run import metric_writer
from hhh.run import model as run_model

LM_CONDITIONS = ("plain", "prompt", "distilled")
# The evaluation suites, in report order. Each is one module with NAME, run(ctx) -> its results (None: no data),
# scalars(results) -> {TensorBoard tag: number} and table(results) -> markdown lines; `Context` is what run() gets.
SUITE_MODULES = (hhh_eval, truthfulqa, compare, tax_eval, toxicity, code_eval)
SUITES = tuple(m.NAME for m in SUITE_MODULES)
NULL_CONTEXT = {"paper": "\n\nAssistant:", "bigbench": "\nAssistant:"}
HHH_TASK = hhh_eval.TASK


def _model_from_run(model_cfg, config, path: str, *, what: str, devices, setup=None):
  """The model and its parameters on the mesh (hhh.run.model.model_from_run, shared with hhh.sample / hhh.chat)."""
  return run_model.model_from_run(model_cfg, config.mesh, path, what=what, devices=devices, setup=setup,
                                 score_head_hint=f"Pass it as --config.pm_checkpoint, and an LM run as --config.{what}.")


def checkpoint_step(path: str) -> int:
  try:
    p = run_model._state_item_dir(path)  # pylint: disable=protected-access
  except ckpt_lib.CheckpointNotFoundError:
    return 0
  for part in reversed(p.parts):
    if part.isdigit():
      return int(part)
  return 0


# ----------------------------------------------------------------------------------------------- the prompt


def prompt_ids(spec: str, vocab: str, budget: int) -> tuple[np.ndarray, dict]:
  """Token ids of the HHH prompt (`spec`: a text file, "" = the project's hhh/prompts/hhh_prompt.txt), keeping the
  preamble and as many whole example dialogues as fit in `budget` tokens (hhh.prompts.token_ids, as distillation)."""
  ids, full = prompts.token_ids(spec, vocab, budget)
  return ids, {"prompt_tokens": int(full), "prompt_tokens_used": int(len(ids))}


# ----------------------------------------------------------------------------------------------- evaluation


@dataclasses.dataclass
class Context:
  """What a suite's run() gets: the config, the conditions (each scores an Examples set), `load(task, k, split,
  max_examples)` (-> Examples, or None when the data is missing: recorded and logged), and where to put timings,
  calibration diagrams and missing data."""
  config: ml_collections.ConfigDict
  conditions: list
  load: Callable
  log: Callable[[str], None]
  workdir: str
  convention: str
  batch_size: int
  null_ids: np.ndarray
  eoc_id: int
  bins: int
  timing: dict
  calibration: dict
  missing: dict


class Condition:
  """A way of scoring responses: an LM (optionally after the prompt) or, with is_pm, a score-head model."""

  def __init__(self, name: str, scorer: scoring.Scorer, *, is_pm: bool = False, with_prefix: bool = False):
    self.name, self.scorer, self.is_pm, self.with_prefix = name, scorer, is_pm, with_prefix

  def score(self, ex, *, batch_size: int, null_ids=None, eoc_id=None) -> dict:
    if self.is_pm:
      return scoring.score_pm(self.scorer, ex, batch_size=batch_size)
    return scoring.score_lm(self.scorer, ex, batch_size=batch_size, with_prefix=self.with_prefix,
                            null_ids=null_ids, eoc_id=eoc_id)


def make_conditions(config, devices=None, log: Callable[[str], None] = print) -> tuple[list, dict]:
  """Conditions named in config.eval.conditions whose checkpoints are given (others are skipped, with a note)."""
  ev = config.eval
  wanted = [c.strip() for c in ev.conditions.split(",") if c.strip()]
  unknown = sorted(set(wanted) - set(LM_CONDITIONS + ("pm",)))
  if unknown:
    raise ConfigError(f"unknown eval.conditions {unknown}; choose from {LM_CONDITIONS + ('pm',)}")
  conds, info = [], {"skipped": {}}
  lm_setup = None
  if config.checkpoint and ({"plain", "prompt"} & set(wanted)):
    lm_setup, params = _model_from_run(config.model, config, config.checkpoint, what="checkpoint", devices=devices)
    prefix = None
    if "prompt" in wanted:
      budget = prompts.budget(config.model.max_len, ev.seq_len, ev.prompt_max_tokens)
      try:
        prefix, pinfo = prompt_ids(ev.prompt, config.data.vocab, budget)
        info.update(pinfo)
      except (ImportError, ValueError, OSError) as e:
        info["skipped"]["prompt"] = f"no HHH prompt: {e}"
    scorer = scoring.Scorer.of(lm_setup, params, prefix_tokens=prefix)
    if "plain" in wanted:
      conds.append(Condition("plain", scorer))
    if "prompt" in wanted and prefix is not None:
      conds.append(Condition("prompt", scorer, with_prefix=True))
  elif {"plain", "prompt"} & set(wanted):
    info["skipped"]["plain/prompt"] = "no --config.checkpoint"
  if "distilled" in wanted:
    if config.distilled_checkpoint:
      ms, params = _model_from_run(config.model, config, config.distilled_checkpoint, what="distilled_checkpoint",
                                   devices=devices, setup=lm_setup)
      conds.append(Condition("distilled", scoring.Scorer.of(ms, params)))
    else:
      info["skipped"]["distilled"] = "no --config.distilled_checkpoint"
  if "pm" in wanted:
    if config.pm_checkpoint:
      pm_model = ml_collections.ConfigDict(config.model.to_dict())
      pm_model.score_head = True
      ms, params = _model_from_run(pm_model, config, config.pm_checkpoint, what="pm_checkpoint", devices=devices)
      conds.append(Condition("pm", scoring.Scorer.of(ms, params), is_pm=True))
    else:
      info["skipped"]["pm"] = "no --config.pm_checkpoint"
  for name, why in info["skipped"].items():
    log(f"hhh.eval: skipping condition {name}: {why}")
  return conds, info


def _suites(config) -> list:
  return [s.strip() for s in config.eval.suites.split(",") if s.strip()]


def evaluate(config: ml_collections.ConfigDict, workdir: str, *, devices=None,
             log: Callable[[str], None] = print) -> dict:
  """Runs the configured suites for every condition; writes eval.json, eval.md and TensorBoard scalars."""
  t0 = time.perf_counter()
  workdir = paths.resolve(workdir)
  paths.resolve_config(config)
  ev = config.eval
  conv = ev.convention
  if conv not in HHH_TASK:
    raise ConfigError(f"eval.convention must be one of {sorted(HHH_TASK)}, got {conv!r}")
  for key in ("seq_len", "batch_size", "calibration_bins"):
    value = ev[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ConfigError(f"eval.{key} must be an integer >= 1, got {value!r}")
  suites = _suites(config)
  unknown = sorted(set(suites) - set(SUITES))
  if unknown:
    raise ConfigError(f"unknown eval.suites {unknown}; choose from {', '.join(SUITES)}")
  vocab = config.data.vocab
  eoc = vocab_lib.eoc_id(vocab)
  null = np.asarray(vocab_lib.get_vocabulary(vocab).encode(ev.null_context or NULL_CONTEXT[conv]), np.int32)
  conds, info = make_conditions(config, devices, log)
  seq_len, bs, bins = int(ev.seq_len), int(ev.batch_size), int(ev.calibration_bins)
  res: dict = {"size": config.size, "checkpoint": config.checkpoint, "distilled_checkpoint": config.distilled_checkpoint,
               "pm_checkpoint": config.pm_checkpoint, "convention": conv, "seq_len": seq_len,
               "conditions": [c.name for c in conds], **info, "timing_s": {}, "calibration": {}}

  def load(task, k, split="test", max_examples=0):
    try:
      ex = examples.load(task, split=split, seq_len=seq_len, k=k, vocab=vocab, max_examples=max_examples)
      st = {k_: int(v) for k_, v in ex.stats.items() if k_ != "rows"}
      res.setdefault("data", {})[task] = {"evaluated": len(ex), **st}
      lost = {k_: v for k_, v in st.items() if k_ in ("no_responses", "dropped_responses", "truncated_context",
                                                      "truncated_response") and v}
      if lost:  # counted and reported: skipped records, dropped choices, cut contexts
        log(f"hhh.eval: {task}: {len(ex)} examples evaluated; " + ", ".join(f"{k_} {v}" for k_, v in lost.items()))
      return ex
    except FileNotFoundError as e:  # hhh.data.sources.MissingData and absent files: must not sink the other suites
      res.setdefault("missing", {})[task] = str(e)
      log(f"hhh.eval: {task} unavailable: {e}")
      return None

  ctx = Context(config=config, conditions=conds, load=load, log=log, workdir=workdir, convention=conv,
                batch_size=bs, null_ids=null, eoc_id=eoc, bins=bins, timing=res["timing_s"],
                calibration=res["calibration"], missing=res.setdefault("missing", {}))
  for suite in SUITE_MODULES:
    if suite.NAME in suites:
      out = suite.run(ctx)
      if out is not None:
        res[suite.NAME] = out
  if not res["missing"]:
    del res["missing"]

  res["ece"] = {k: v["ece"] for k, v in res["calibration"].items()}
  res["wall_time_s"] = time.perf_counter() - t0
  write_outputs(res, workdir, step=int(ev.step) if int(ev.step) >= 0 else checkpoint_step(config.checkpoint or
                                                                                          config.pm_checkpoint))
  log(f"hhh.eval: done in {res['wall_time_s']:.1f}s; results in {workdir}/eval.json and eval.md")
  return res


# ----------------------------------------------------------------------------------------------- outputs


def flat_scalars(res: dict) -> dict:
  """The numbers worth a TensorBoard curve: eval/<suite>/<condition>/<metric>."""
  out = {}
  for suite in SUITE_MODULES:
    if suite.NAME in res:
      out.update(suite.scalars(res[suite.NAME]))
  for k, v in res.get("ece", {}).items():
    out[f"ece/{k}"] = v
  return {k: float(v) for k, v in out.items() if isinstance(v, (int, float)) and math.isfinite(float(v))}


def markdown(res: dict) -> str:
  """Readable tables (accuracies in %): each suite's table, then calibration, data and wall time."""
  lines = [f"# Evaluation ({res.get('size')}, convention {res.get('convention')})", ""]
  if res.get("skipped"):
    lines += ["Skipped conditions: " + "; ".join(f"{k} ({v})" for k, v in res["skipped"].items()), ""]
  if res.get("missing"):
    lines += ["Missing data: " + "; ".join(f"{k}: {v}" for k, v in res["missing"].items()), ""]
  for suite in SUITE_MODULES:
    if res.get(suite.NAME):
      lines += suite.table(res[suite.NAME])
  if res.get("ece"):
    lines += ["## Calibration (expected calibration error)", "", "| what | ECE | n |", "|---|---|---|"]
    for k, v in res["ece"].items():
      lines.append(f"| {k} | {v:.3f} | {res['calibration'][k]['n']} |")
    lines.append("")
  if res.get("data"):
    cols = ["evaluated", "no_responses", "dropped_responses", "truncated_context", "truncated_response"]
    lines += ["## Data (records evaluated; skipped records without any response/choice; dropped choices; cut "
              "contexts/responses)", "", "| task | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for task, st in res["data"].items():
      lines.append(f"| {task} | " + " | ".join(str(st.get(c, 0)) for c in cols) + " |")
    lines.append("")
  if res.get("timing_s"):
    lines += ["Wall time: " + ", ".join(f"{k} {v:.1f}s" for k, v in res["timing_s"].items()) +
              f"; total {res.get('wall_time_s', 0):.1f}s", ""]
  return "\n".join(lines)


def write_outputs(res: dict, workdir: str, step: int = 0) -> None:
  if jax.process_index() != 0:
    return
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "eval.json"), "w") as f:
    json.dump(res, f, indent=1, sort_keys=True, default=float)
  with open(os.path.join(workdir, "eval.md"), "w") as f:
    f.write(markdown(res))
  writer = metric_writer.MetricWriter(workdir)
  writer.write(step, flat_scalars(res), prefix="eval/")
  writer.close()


# ----------------------------------------------------------------------------------------------- CLI


def main(argv=None):

  cli.config_command(
      argv, lambda config, workdir: print(markdown(evaluate(config, workdir))),
      config_help="configs/eval.py:SIZE; set --config.checkpoint=PATH (and optionally distilled_checkpoint, "
      "pm_checkpoint).", strings=[("workdir", None, "Where eval.json, eval.md and TensorBoard events go.")],
      required=["config", "workdir"], config_example="configs/eval.py:tiny")
