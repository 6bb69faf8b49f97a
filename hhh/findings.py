"""The paper's findings (Askell et al. 2021, section 5 of docs: trends a reproduction should see) checked against one
laboratory run: for each claim, the difference that decides it, its paired 95% bootstrap interval over the shared
held-out examples (hhh.eval.intervals), and a verdict.

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


def _row(claim, compared, expect, terms, *, why_not="", note=""):
  row = {"claim": claim, "compared": compared, "expect": expect, "value": None, "ci": None, "note": note}
  if why_not or any(t[1] is None or t[1][0] is None for t in terms):
    row.update(verdict="cannot tell", note=why_not or "not measured in this run")
    return row
  b = intervals.bootstrap_combination([(w, t[0], t[1]) for w, t in terms])
  row.update(value=b["value"], ci=b["ci"], verdict=intervals.verdict(b["ci"], expect=expect, margin=MARGIN))
  return row


def findings(res: dict) -> list:
  """The rows of the paper-vs-run table (claim, compared, expect, value, ci, verdict, note)."""
  sizes = list(res.get("sizes", {}))
  if not sizes:
    return []
  small, big = sizes[0], sizes[-1]
  one_size = "needs two sizes; this run has one" if small == big else ""
  no_hhh = "" if res.get("hhh") else "the HHH evaluations did not run (BIG-bench data not found)"
  rows = []
  il, pm, binary = "imitation (mean log-prob)", "ranked PM", "binary"

  def pm_minus_il(s):
    return [(1.0, _obj(res, s, pm)), (-1.0, _obj(res, s, il))]

  rows.append(_row("A ranked PM tells better from worse more accurately than imitation learning",
                   f"{big}: ranked PM - imitation, pairwise accuracy on held-out lab comparisons", "greater",
                   [(w, t or (None, None)) for w, t in pm_minus_il(big)]))
  rows.append(_row("... and the gap grows with size",
                   f"(ranked PM - imitation) at {big} minus the same at {small}", "greater",
                   [(w, t or (None, None)) for w, t in pm_minus_il(big) + [(-w, t) for w, t in pm_minus_il(small)]],
                   why_not=one_size))
  rows.append(_row("Binary discrimination performs about like imitation learning",
                   f"{big}: binary - imitation, pairwise accuracy (equivalence margin +-{100 * MARGIN:.0f} points)",
                   "similar", [(1.0, _obj(res, big, binary) or (None, None)),
                               (-1.0, _obj(res, big, il) or (None, None))]))

  def hhh_t(s, c):
    return _hhh(res, s, c) or (None, None)

  rows.append(_row("The HHH prompt helps the largest model on the HHH evaluations",
                   f"{big}: prompt - plain, HHH accuracy by mutual information", "greater",
                   [(1.0, hhh_t(big, "prompt")), (-1.0, hhh_t(big, "plain"))], why_not=no_hhh))
  rows.append(_row("... and helps more as models grow",
                   f"(prompt - plain) at {big} minus the same at {small}, HHH accuracy by mutual information",
                   "greater", [(1.0, hhh_t(big, "prompt")), (-1.0, hhh_t(big, "plain")),
                               (-1.0, hhh_t(small, "prompt")), (1.0, hhh_t(small, "plain"))],
                   why_not=no_hhh or one_size))
  rows.append(_row("Context distillation does about as well as prompting",
                   f"{big}: distilled - prompt, HHH accuracy by mutual information (margin +-{100 * MARGIN:.0f} "
                   "points)", "similar", [(1.0, hhh_t(big, "distilled")), (-1.0, hhh_t(big, "prompt"))],
                   why_not=no_hhh))

  base = _tax(res, small, "plain")
  uninformative = ""
  if base is not None:
    k = tax_eval.most_correct(res["tax"])
    if k < tax_eval.MIN_CORRECT:
      uninformative = (f"last-word accuracy is ~0 at these sizes: at most {k} word{'' if k == 1 else 's'} right in "
                       "any condition, so the tax on accuracy is uninformative; the word log-probs are in the tax "
                       "table")
  rows.append(_row("Small models pay only a small alignment tax for the prompt",
                   f"{small}: prompt - plain, last-word accuracy on held-out lab dialogues (margin "
                   f"+-{100 * MARGIN:.0f} points)", "similar",
                   [(1.0, _tax(res, small, "prompt") or (None, None)), (-1.0, base or (None, None))],
                   why_not=uninformative))

  ns = sorted(set(res.get("examples", {}).get("pmp", {}).get("pmp", {})) &
              set(res.get("examples", {}).get("pmp", {}).get("no_pmp", {})), key=int)
  n = ns[0] if ns else None
  pmp_size = res.get("preset", {}).get("pmp_size", big)
  rows.append(_row("Preference-model pre-training improves finetuning sample efficiency",
                   f"{pmp_size}, {n} finetuning comparisons: with binary PMP - without, held-out pairwise accuracy",
                   "greater", [(1.0, _pmp(res, "pmp", n) or (None, None)),
                               (-1.0, _pmp(res, "no_pmp", n) or (None, None))],
                   why_not="" if n is not None else "the PMP stage did not run"))
  return rows


def table(rows: list) -> list:
  """Markdown lines of the paper-vs-run table."""
  out = ["| paper's finding | compared in this run | difference (points) [95% interval] | this run |",
         "|---|---|---|---|"]
  for r in rows:
    diff = "-" if r["value"] is None else (f"{100 * r['value']:+.1f} [{100 * r['ci'][0]:+.1f}, "
                                           f"{100 * r['ci'][1]:+.1f}]")
    verdict = r["verdict"] + (f" ({r['note']})" if r.get("note") else "")
    out.append(f"| {r['claim']} | {r['compared']} | {diff} | {verdict} |")
  return out
