"""The alignment tax: a capability evaluation with the intervention (the HHH prompt, or a context-distilled
checkpoint) minus the same evaluation without it.

* lambada (and tax_lab_lambada, the same format on the held-out embedded lab corpus): last-word accuracy, the final
  word is correct when greedy decoding reproduces it exactly (every token of " {word}" is the argmax given the
  passage and the word's earlier tokens), and the word's mean summed log-prob (graded where accuracy is ~0);
* multiple-choice benchmarks (HellaSwag, ARC, OpenBookQA, PIQA from TFDS): the choice with the highest summed
  log-prob (and, reported too, the highest mean log-prob, which favours long answers less).
"""
from __future__ import annotations

from hhh.core import metrics
from hhh.eval import intervals

NAME = "tax"
LAST_WORD = ("tax_lambada", "tax_lab_lambada")


def capability(task: str, scores: dict, ex) -> dict:
  """{"accuracy", "accuracy_ci" (95% bootstrap), "n", "correct" (per example)}, plus "word_logprob" (and its
  interval) for last-word tasks, "accuracy_mean" for multiple choice."""
  if task.split("#")[0] in LAST_WORD:  # also the word's mean summed log-prob: graded where accuracy is ~0
    correct, lp = scores["greedy"][:, 0].astype(float), scores["sum"][:, 0].astype(float)
    return {"accuracy": float(correct.mean()), "accuracy_ci": intervals.bootstrap(correct),
            "word_logprob": float(lp.mean()), "word_logprob_ci": intervals.bootstrap(lp), "n": len(ex),
            "correct": correct.tolist()}
  correct = metrics.choice_correct(scores["sum"], ex.label, ex.valid).astype(float)
  return {"accuracy": float(correct.mean()), "accuracy_ci": intervals.bootstrap(correct),
          "accuracy_mean": float(metrics.choice_correct(scores["mean"], ex.label, ex.valid).mean()), "n": len(ex),
          "correct": correct.tolist()}


MIN_CORRECT = 5  # fewer right answers than this everywhere: accuracy (and its tax) is noise around 0


def most_correct(results: dict) -> int:
  """The most examples any condition got right over `results` ({name: a task's result, as hhh.eval.run keeps it under
  "tax"}): below MIN_CORRECT the accuracy panel and the tax on accuracy say nothing."""
  return int(max((round(float(c.get("accuracy", 0.0)) * float(c.get("n") or t.get("n") or 0))
                  for t in results.values() for c in t.get("conditions", {}).values()), default=0))


def tax(base: dict, with_intervention: dict) -> dict:
  """{metric: with - without} for every accuracy (and word log-prob) both have (negative = the intervention costs
  capability), and "accuracy_ci": the paired 95% bootstrap interval of the accuracy difference (same examples)."""
  out = {k: with_intervention[k] - base[k] for k in base
         if k.startswith(("accuracy", "word_logprob")) and not k.endswith("_ci") and k in with_intervention}
  a, b = with_intervention.get("correct"), base.get("correct")
  if a is not None and b is not None and len(a) == len(b):
    out["accuracy_ci"] = intervals.bootstrap_diff(a, b)["ci"]
  return out


def table_cells(result: dict) -> list:
  """Markdown cells of one task's result: accuracy % per condition (plain, prompt, distilled; the word's log-prob in
  brackets where measured), then the tax of the prompt and of distillation in points (nats)."""
  c, tx = result["conditions"], result.get("tax", {})

  def cell(d: dict, diff: bool) -> str:
    if d.get("accuracy") is None:
      return "-"
    lp, ci = d.get("word_logprob"), d.get("accuracy_ci")
    ci = "" if ci is None else f" [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]" if diff else \
        f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
    if diff:
      return f"{100 * d['accuracy']:+.1f}{ci}" + ("" if lp is None else f" ({lp:+.2f})")
    return f"{100 * d['accuracy']:.1f}" + ("" if lp is None else "%") + ci + ("" if lp is None else f" ({lp:.2f})")

  return ([cell(c.get(k, {}), False) for k in ("plain", "prompt", "distilled")]
          + [cell(tx.get(k, {}), True) for k in ("prompt", "distilled")])


# ----------------------------------------------------------------------------------------------- the suite


def run(ctx) -> dict:
  ev = ctx.config.eval
  res = {}
  lm_conds = [c for c in ctx.conditions if not c.is_pm]
  for task in [t.strip() for t in ev.tax_tasks.split(",") if t.strip()]:
    ex = ctx.load(task, int(ev.tax_k), split=ev.tax_split, max_examples=int(ev.max_examples))
    if ex is None:
      continue
    out = {"n": len(ex), "conditions": {}}
    for c in lm_conds:
      ctx.log(f"hhh.eval: {task} {c.name}: scoring {len(ex)} examples ...")
      out["conditions"][c.name] = capability(task, c.score(ex, batch_size=ctx.batch_size), ex)
    base = out["conditions"].get("plain")
    if base:
      out["tax"] = {c: tax(base, out["conditions"][c]) for c in ("prompt", "distilled") if c in out["conditions"]}
    ctx.log(f"hhh.eval: {task}: " + ", ".join(f"{c} {100 * v['accuracy']:.1f}%" for c, v in out["conditions"].items()))
    res[task] = out
  return res


def scalars(res: dict) -> dict:
  out = {}
  for task, t in res.items():
    for cond, table_ in t["conditions"].items():
      out[f"tax/{task}/{cond}/accuracy"] = table_["accuracy"]
    for cond, d in t.get("tax", {}).items():
      for k, v in d.items():
        out[f"tax/{task}/tax_{cond}/{k}"] = v
  return out


def table(res: dict) -> list:
  if not res:
    return []
  lines = ["## Alignment tax (capability accuracy %, last-word tasks: the word's log-prob in brackets; tax = with - "
           "without intervention, points (nats))", "",
           "| task | n | plain | prompt | distilled | tax (prompt) | tax (distilled) |", "|---|---|---|---|---|---|---|"]
  for task, t in res.items():
    lines.append(f"| {task} | {t['n']} | " + " | ".join(table_cells(t)) + " |")
  lines.append("")
  return lines
