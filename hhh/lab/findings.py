"""The paper's findings (Askell et al. 2021, section 5 of docs: trends a reproduction should see) checked against one
laboratory run: for each claim, the difference that decides it, its paired 95% bootstrap interval, and a verdict. With
one training seed the interval covers the shared held-out examples only; with several (hhh.lab --config.seeds=N) it is
the hierarchical bootstrap over seeds and examples (hhh.eval.intervals.bootstrap_seeds), so training variance is
inside it, and each seed's own verdict is reported beside it (the finding holds in k of n seeds).

  supports      the interval lies on the claimed side (a "greater" claim: above 0; a "similar" claim: inside
                +-5 points)
  contradicts   the interval lies on the other side (below 0; wholly outside +-5 points)
  cannot tell   the interval straddles the line, or the measurement is uninformative at these sizes (e.g. an
                accuracy that is ~0 everywhere), or the stage did not run (missing data, one size only)

Input: the lab's results (hhh.lab.run_lab's dict), whose evaluations keep per-example outcomes.
"""
from __future__ import annotations

from typing import Optional

from hhh.eval import intervals, tax as tax_eval

MARGIN = 0.05  # "about the same": within 5 points


def _obj(res, size, name) -> Optional[tuple]:
  e = res.get("examples", {}).get("objectives", {}).get(size, {}).get(name)
  return None if e is None else (e["correct"], e["pairs"])


def _hhh(res, size, cond) -> Optional[tuple]:
  c = res.get("hhh", {}).get(size, {}).get(cond)
  if not c:
    return None
  m = c.get("score") if cond == "pm" else c.get("mi")
  return None if not m or "correct" not in m else (m["correct"], None)


def _tax(res, size, cond) -> Optional[tuple]:
  c = res.get("tax", {}).get(size, {}).get("conditions", {}).get(cond)
  return None if not c or "correct" not in c else (c["correct"], None)


def _pmp(res, label, n) -> Optional[tuple]:
  e = res.get("examples", {}).get("pmp", {}).get(label, {}).get(n)
  return None if e is None else (e["correct"], e["pairs"])


def _row(claim, compared, expect, terms, runs, *, why_not="", note=""):
  """terms: [(weight, getter)], getter(one run's results) -> (correct, counts) or None; runs: one result per seed."""
  row = {"claim": claim, "compared": compared, "expect": expect, "value": None, "ci": None, "note": note, "seeds": 0,
         "seed_verdicts": []}
  reps = [[x for x in (g(r) for r in runs) if x is not None and x[0] is not None] for _, g in terms]
  if why_not or any(not rep for rep in reps):
    row.update(verdict="cannot tell", note=why_not or "not measured in this run")
    return row
  try:
    b = intervals.bootstrap_seeds([(w, rep) for (w, _), rep in zip(terms, reps)])
  except ValueError as e:  # e.g. seeds evaluated on different examples
    row.update(verdict="cannot tell", note=str(e))
    return row
  row.update(value=b["value"], ci=b["ci"], seeds=b["seeds"],
             verdict=intervals.verdict(b["ci"], expect=expect, margin=MARGIN))
  if len(runs) > 1:  # each seed's own verdict (examples only): does the finding hold in every seed?
    for r in runs:
      one = [g(r) for _, g in terms]
      if all(x is not None and x[0] is not None for x in one):
        ci = intervals.bootstrap_combination([(w, x[0], x[1]) for (w, _), x in zip(terms, one)])["ci"]
        row["seed_verdicts"].append(intervals.verdict(ci, expect=expect, margin=MARGIN))
  return row


def findings(res: dict, runs: Optional[list] = None) -> list:
  """The rows of the paper-vs-run table (claim, compared, expect, value, ci, verdict, note, seeds, seed_verdicts).
  `runs`: the results of every training seed (res first; default [res]): each verdict is then decided by the
  hierarchical bootstrap over seeds and examples (intervals.bootstrap_seeds), and seed_verdicts holds each seed's
  own verdict."""
  runs = [res] if not runs else list(runs)
  sizes = list(res.get("sizes", {}))
  if not sizes:
    return []
  small, big = sizes[0], sizes[-1]
  one_size = "needs two sizes; this run has one" if small == big else ""
  no_hhh = "" if res.get("hhh") else "the HHH evaluations did not run (BIG-bench data not found)"
  rows = []
  il, pm, binary = "imitation (mean log-prob)", "ranked PM", "binary"

  def obj(s, name):
    return lambda r: _obj(r, s, name)

  def hhh_t(s, c):
    return lambda r: _hhh(r, s, c)

  def tax_t(s, c):
    return lambda r: _tax(r, s, c)

  def pm_minus_il(s):
    return [(1.0, obj(s, pm)), (-1.0, obj(s, il))]

  rows.append(_row("A ranked PM tells better from worse more accurately than imitation learning",
                   f"{big}: ranked PM - imitation, pairwise accuracy on held-out lab comparisons", "greater",
                   pm_minus_il(big), runs))
  rows.append(_row("... and the gap grows with size",
                   f"(ranked PM - imitation) at {big} minus the same at {small}", "greater",
                   pm_minus_il(big) + [(-w, g) for w, g in pm_minus_il(small)], runs, why_not=one_size))
  rows.append(_row("Binary discrimination performs about like imitation learning",
                   f"{big}: binary - imitation, pairwise accuracy (equivalence margin +-{100 * MARGIN:.0f} points)",
                   "similar", [(1.0, obj(big, binary)), (-1.0, obj(big, il))], runs))
  rows.append(_row("The HHH prompt helps the largest model on the HHH evaluations",
                   f"{big}: prompt - plain, HHH accuracy by mutual information", "greater",
                   [(1.0, hhh_t(big, "prompt")), (-1.0, hhh_t(big, "plain"))], runs, why_not=no_hhh))
  rows.append(_row("... and helps more as models grow",
                   f"(prompt - plain) at {big} minus the same at {small}, HHH accuracy by mutual information",
                   "greater", [(1.0, hhh_t(big, "prompt")), (-1.0, hhh_t(big, "plain")),
                               (-1.0, hhh_t(small, "prompt")), (1.0, hhh_t(small, "plain"))], runs,
                   why_not=no_hhh or one_size))
  rows.append(_row("Context distillation does about as well as prompting",
                   f"{big}: distilled - prompt, HHH accuracy by mutual information (margin +-{100 * MARGIN:.0f} "
                   "points)", "similar", [(1.0, hhh_t(big, "distilled")), (-1.0, hhh_t(big, "prompt"))], runs,
                   why_not=no_hhh))

  uninformative = ""
  if _tax(res, small, "plain") is not None:
    k = max(tax_eval.most_correct(r["tax"]) for r in runs if r.get("tax"))
    if k < tax_eval.MIN_CORRECT:
      uninformative = (f"last-word accuracy is ~0 at these sizes: at most {k} word{'' if k == 1 else 's'} right in "
                       "any condition, so the tax on accuracy is uninformative; the word log-probs are in the tax "
                       "table")
  rows.append(_row("Small models pay only a small alignment tax for the prompt",
                   f"{small}: prompt - plain, last-word accuracy on held-out lab dialogues (margin "
                   f"+-{100 * MARGIN:.0f} points)", "similar",
                   [(1.0, tax_t(small, "prompt")), (-1.0, tax_t(small, "plain"))], runs, why_not=uninformative))

  ns = sorted(set(res.get("examples", {}).get("pmp", {}).get("pmp", {})) &
              set(res.get("examples", {}).get("pmp", {}).get("no_pmp", {})), key=int)
  n = ns[0] if ns else None
  pmp_size = res.get("preset", {}).get("pmp_size", big)
  rows.append(_row("Preference-model pre-training improves finetuning sample efficiency",
                   f"{pmp_size}, {n} finetuning comparisons: with binary PMP - without, held-out pairwise accuracy",
                   "greater", [(1.0, lambda r: _pmp(r, "pmp", n)), (-1.0, lambda r: _pmp(r, "no_pmp", n))], runs,
                   why_not="" if n is not None else "the PMP stage did not run"))
  return rows


def table(rows: list) -> list:
  """Markdown lines of the paper-vs-run table."""
  out = ["| paper's finding | compared in this run | difference (points) [95% interval] | seeds | this run |",
         "|---|---|---|---|---|"]
  for r in rows:
    diff = intervals.fmt(r["value"], r["ci"], signed=True)
    verdict = r["verdict"] + (f" ({r['note']})" if r.get("note") else "")
    per = r.get("seed_verdicts") or []
    if per:  # each seed's own verdict: the finding holds (supports) in k of n seeds
      counts = {v: per.count(v) for v in ("supports", "contradicts", "cannot tell") if v in per}
      verdict += f"; supported in {counts.get('supports', 0)} of {len(per)} seeds" + (
          "" if counts == {"supports": len(per)} else " (" + ", ".join(f"{v} {k}" for v, k in counts.items()) + ")")
    out.append(f"| {r['claim']} | {r['compared']} | {diff} | {r.get('seeds') or '-'} | {verdict} |")
  return out
