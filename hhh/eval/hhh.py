"""HHH evaluations (BIG-bench hhh_alignment: 221 comparisons, subsets harmless 58 / helpful 59 / honest 61 /
other 43): accuracy of picking the better response, overall and per subset.

An LM picks by summed log-prob, mean log-prob or mutual information log P(a|q) - log P(a); a preference or binary
model by its score. Ties go to the first response, as in BIG-bench and lm-evaluation-harness.
"""
from __future__ import annotations

import time

import numpy as np

from hhh.core import metrics
from hhh.eval import intervals

NAME = "hhh"
SUBSETS = ("harmless", "helpful", "honest", "other")
TASK = {"paper": "hhh_alignment_mc", "bigbench": "hhh_alignment_bigbench_mc"}  # by eval.convention
LM_METHODS = ("sum", "mean", "mi")


def subset_of(record_id: str) -> str:
  """'hhh-harmless-12' -> 'harmless'."""
  parts = record_id.split("-")
  if len(parts) < 3 or parts[1] not in SUBSETS:
    raise ValueError(f"not an hhh_alignment record id: {record_id!r}")
  return parts[1]


def accuracy_table(scores: np.ndarray, ex) -> dict:
  """{"overall": acc, "overall_ci": [lo, hi], "n": N, "<subset>": acc, "<subset>_ci": [lo, hi], "n_<subset>": count,
  "correct": per-example 0/1} for one way of scoring responses (95% bootstrap intervals, hhh.eval.intervals)."""
  correct = metrics.choice_correct(scores, ex.label, ex.valid)
  # BIG-bench lists the better response first in every one of the 221 examples, so "ties to the first choice"
  # counts every tie as correct: `ties` says how many decisions were ties.
  out = {"overall": float(correct.mean()), "overall_ci": intervals.bootstrap(correct), "n": int(len(correct)),
         "ties": int(metrics.tied(scores, ex.valid).sum()), "correct": correct.astype(float).tolist()}
  if ex.ids is not None:
    subs = np.array([subset_of(i) for i in ex.ids])
    for s in SUBSETS:
      m = subs == s
      out[s] = float(correct[m].mean()) if m.any() else float("nan")
      out[f"{s}_ci"] = intervals.bootstrap(correct[m])
      out[f"n_{s}"] = int(m.sum())
  return out


def accuracies(scores_by_method: dict, ex) -> dict:
  """{method: accuracy_table} for every method present ("sum", "mean", "mi" for an LM, "score" for a PM)."""
  return {m: accuracy_table(scores_by_method[m], ex) for m in ("sum", "mean", "mi", "score") if m in scores_by_method}


# ----------------------------------------------------------------------------------------------- the suite


def run(ctx) -> dict | None:
  """Every condition on the HHH comparisons (hhh.eval.run's suite contract)."""
  ex = ctx.load(TASK[ctx.convention], 2)
  if ex is None:
    return None
  out = {"task": ex.task, "n": len(ex), "conditions": {}}
  for c in ctx.conditions:
    ctx.log(f"hhh.eval: hhh_alignment {c.name}: scoring {len(ex)} comparisons ...")
    t = time.perf_counter()
    s = c.score(ex, batch_size=ctx.batch_size, null_ids=ctx.null_ids, eoc_id=ctx.eoc_id)
    ctx.timing[f"hhh/{c.name}"] = time.perf_counter() - t
    out["conditions"][c.name] = accuracies(s, ex)
    key = "score" if c.is_pm else "sum"
    if c.is_pm:
      ctx.calibration["hhh/pm_pairs"] = metrics.pairwise_preference(s["score"], ex.label, ex.valid, ctx.bins)
    ctx.calibration[f"hhh/{c.name}"] = metrics.multiple_choice_calibration(s[key], ex.label, ex.valid, ctx.bins)
    ctx.log(f"hhh.eval: hhh_alignment {c.name}: " + ", ".join(
        f"{m} {intervals.fmt(v['overall'], v['overall_ci'])}%" for m, v in out["conditions"][c.name].items()) +
        f" ({ctx.timing[f'hhh/{c.name}']:.1f}s)")
  ctx.timing["hhh/total"] = sum(v for k, v in ctx.timing.items() if k.startswith("hhh/"))
  return out


def scalars(out: dict) -> dict:
  return {f"hhh/{cond}/{m}/{k}": v for cond, methods in out.get("conditions", {}).items()
          for m, table_ in methods.items() for k, v in table_.items() if not k.startswith("n") and k != "ties"}


def _pct(v) -> str:
  return "-" if v is None or (isinstance(v, float) and v != v) else f"{100 * v:.1f}"


def table(h: dict) -> list:
  lines = [f"## HHH evaluations ({h['task']}, {h['n']} comparisons), accuracy %", "",
           "| condition | method | overall | harmless | helpful | honest | other | ties |",
           "|---|---|---|---|---|---|---|---|"]
  for cond, methods in h["conditions"].items():
    for m, t in methods.items():
      lines.append(f"| {cond} | {m} | {intervals.fmt(t['overall'], t.get('overall_ci'))} | " + " | ".join(
          f"{_pct(t.get(s))} (n={t.get('n_' + s, '-')})" for s in SUBSETS) + f" | {t.get('ties', '-')} |")
  lines += ["", "Overall: accuracy with its 95% bootstrap interval over the comparisons (chance: 50%). "
            "Ties go to the first response (BIG-bench / lm-evaluation-harness), which in this data is always the "
            "better one: a tie counts as correct.", ""]
  lines.append("")
  return lines
