"""Ranked comparisons (the lab's held-out comparisons, or any comparison task): pairwise accuracy of every way of
scoring responses (a PM's score; an LM's summed / mean log-prob and mutual information) over the pairs of responses
with different ranks (hhh.core.metrics.pairwise_correct; chance 50%), with 95% bootstrap intervals and per-example counts
for paired comparisons in the lab report."""
from __future__ import annotations

from hhh.core import metrics
from hhh.eval import intervals

NAME = "compare"
METHODS = ("score", "sum", "mean", "mi")


def accuracies(s: dict, ex) -> dict:
  """{method: accuracy, method_ci, "pairs", "per_example": {method: correct pairs per example, "pairs": ...}}."""
  accs, per = {}, {}
  for m in METHODS:
    if m in s:
      correct, pairs = metrics.pairwise_correct(s[m], ex.label, ex.valid)
      accs[m] = float(correct.sum() / max(pairs.sum(), 1))
      accs[f"{m}_ci"] = intervals.bootstrap(correct, pairs)
      per[m], per["pairs"] = correct.tolist(), pairs.tolist()
  accs["pairs"] = int(sum(per["pairs"]))
  accs["per_example"] = per  # correct pairs and pairs per example (paired bootstraps in the lab report)
  return accs


def run(ctx) -> dict:
  ev = ctx.config.eval
  res = {}
  for task in [t.strip() for t in ev.compare_tasks.split(",") if t.strip()]:
    ex = ctx.load(task, int(ev.compare_k), split=ev.compare_split, max_examples=int(ev.max_examples))
    if ex is None:
      continue
    out = {"n": len(ex), "conditions": {}}
    only = [x.strip() for x in ev.compare_conditions.split(",") if x.strip()]
    for c in ctx.conditions:
      if only and c.name not in only:
        continue
      ctx.log(f"hhh.eval: {task} {c.name}: scoring {len(ex)} comparisons ...")
      s = c.score(ex, batch_size=ctx.batch_size, null_ids=None if c.is_pm or not ev.compare_mi else ctx.null_ids,
                  eoc_id=ctx.eoc_id)
      accs = out["conditions"][c.name] = accuracies(s, ex)
      if c.is_pm:
        ctx.calibration[f"{task}/pm_pairs"] = metrics.pairwise_preference(s["score"], ex.label, ex.valid, ctx.bins)
      ctx.log(f"hhh.eval: {task} {c.name}: " + ", ".join(f"{m} {intervals.fmt(accs[m], accs[m + '_ci'])}%"
                                                          for m in METHODS if m in accs))
    res[task] = out
  return res


def scalars(res: dict) -> dict:
  return {f"compare/{task}/{cond}/{k}": v for task, t in res.items() for cond, table_ in t["conditions"].items()
          for k, v in table_.items() if k != "pairs"}


def table(res: dict) -> list:
  if not res:
    return []
  lines = ["## Ranked comparisons: pairwise accuracy %", "", "| task | condition | score | sum | mean | mi | pairs |",
           "|---|---|---|---|---|---|---|"]
  for task, t in res.items():
    for cond, v in t["conditions"].items():
      lines.append(f"| {task} | {cond} | " + " | ".join(intervals.fmt(v.get(m), v.get(m + "_ci"))
                                                        for m in METHODS) + f" | {v['pairs']} |")
  lines += ["", "95% bootstrap intervals over the comparisons in brackets; chance: 50%.", ""]
  return lines
