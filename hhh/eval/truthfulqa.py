"""TruthfulQA multiple choice (BIG-bench truthful_qa/task_mc.json, 299 questions, up to 5 choices, one true).

MC1: the true answer ranks first, by summed or by mean log-prob (ties to the first choice). MC2: the normalised
probability mass on the true answers, sum_true P(a|q) / sum_all P(a|q), averaged over questions (with a single true
answer, as in this file, it is that answer's share).
"""
from __future__ import annotations

import time

import numpy as np

from hhh.core import metrics
from hhh.eval import intervals

NAME = "truthfulqa"
MAX_CHOICES = 5


def mc_metrics(scores_by_method: dict, ex) -> dict:
  """{"n", metric: value, metric + "_ci": 95% bootstrap interval, "per_example": {metric: per-question values}} for
  mc1_sum / mc1_mean / mc2 (an LM) and mc1_score (a PM)."""
  per = {}
  if "sum" in scores_by_method:
    per["mc1_sum"] = metrics.choice_correct(scores_by_method["sum"], ex.label, ex.valid)
    per["mc1_mean"] = metrics.choice_correct(scores_by_method["mean"], ex.label, ex.valid)
    per["mc2"] = metrics.mc2(scores_by_method["sum"], ex.label, ex.valid)
  if "score" in scores_by_method:
    per["mc1_score"] = metrics.choice_correct(scores_by_method["score"], ex.label, ex.valid)
  out = {"n": len(ex)}
  for k, v in per.items():
    v = np.asarray(v, np.float64)
    out[k], out[f"{k}_ci"] = float(v.mean()), intervals.bootstrap(v)
  out["per_example"] = {k: np.asarray(v, np.float64).tolist() for k, v in per.items()}
  return out


# ----------------------------------------------------------------------------------------------- the suite


def run(ctx) -> dict | None:
  ex = ctx.load("truthful_qa_mc", MAX_CHOICES)
  if ex is None:
    return None
  out = {"n": len(ex), "conditions": {}}
  for c in ctx.conditions:
    ctx.log(f"hhh.eval: truthful_qa_mc {c.name}: scoring {len(ex)} questions ...")
    t = time.perf_counter()
    s = c.score(ex, batch_size=ctx.batch_size)
    ctx.timing[f"truthfulqa/{c.name}"] = time.perf_counter() - t
    out["conditions"][c.name] = mc_metrics(s, ex)
    key = "score" if c.is_pm else "sum"
    ctx.calibration[f"truthfulqa/{c.name}"] = metrics.multiple_choice_calibration(s[key], ex.label, ex.valid,
                                                                                  ctx.bins)
    v = out["conditions"][c.name]
    ctx.log(f"hhh.eval: truthful_qa_mc {c.name}: " + ", ".join(
        f"{m} {intervals.fmt(v[m], v[m + '_ci'])}%" for m in ("mc1_sum", "mc1_mean", "mc2", "mc1_score") if m in v))
  return out


def scalars(out: dict) -> dict:
  return {f"truthfulqa/{cond}/{k}": v for cond, table_ in out.get("conditions", {}).items()
          for k, v in table_.items() if k != "n"}


def table(t: dict) -> list:
  lines = [f"## TruthfulQA MC ({t['n']} questions), %", "", "| condition | MC1 (sum) | MC1 (mean) | MC2 | MC1 (score) |",
           "|---|---|---|---|---|"]
  for cond, v in t["conditions"].items():
    lines.append(f"| {cond} | " + " | ".join(intervals.fmt(v.get(m), v.get(m + "_ci"))
                                             for m in ("mc1_sum", "mc1_mean", "mc2", "mc1_score")) + " |")
  lines.append("")
  return lines
