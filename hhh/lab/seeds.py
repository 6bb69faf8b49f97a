"""The laboratory across seeds (`python -m hhh.lab --config.seeds=N`): the spread of every headline number and of the
paper-vs-run differences when every stage is rerun with another seed (the seed of model initialisation, of the
trainer's random streams and of sampling; the embedded data and its order are the same). Seed-to-seed spread is the part of the uncertainty that bootstrap
intervals over evaluation examples do not see: it is the variance of training itself.
"""
from __future__ import annotations

import math

import numpy as np


def headline(res: dict) -> dict:
  """{name: (value, unit)} of one lab run's headline numbers: pairwise accuracy per size and objective, HHH accuracy
  per size and condition (mutual information for LMs, score for PMs), PMP finetuning accuracy, the tax's word
  log-prob, and every training run's held-out loss."""
  out = {}
  for s, accs in res.get("objectives", {}).items():
    for o, v in accs.items():
      out[f"lab comparisons, {s}, {o}"] = (v, "%")
  for s, conds in res.get("hhh", {}).items():
    for c, m in conds.items():
      k = "score" if "score" in m else "mi"
      out[f"HHH, {s}, {c} ({'score' if k == 'score' else 'mutual information'})"] = (m[k]["overall"], "%")
  for label, curve in res.get("pmp", {}).items():
    for n, v in sorted(curve.items(), key=lambda kv: int(kv[0])):
      out[f"PMP finetuning, {label.replace('_', ' ')}, {n} comparisons"] = (v, "%")
  for s, t in res.get("tax", {}).items():
    for c, d in t.get("conditions", {}).items():
      if d.get("word_logprob") is not None:
        out[f"tax task, {s}, {c}, last-word log-prob"] = (d["word_logprob"], "nats")
  for name, m in res.get("train", {}).items():
    if m.get("eval/loss") is not None:
      out[f"held-out loss, {name}"] = (m["eval/loss"], "loss")
  return out


def _stats(values: list) -> dict:
  v = np.asarray([x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))], np.float64)
  if v.size == 0:
    return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
  return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0, "min": float(v.min()),
          "max": float(v.max()), "n": int(v.size)}


def summary(results: list, seeds: list) -> dict:
  """Mean, sample std, min and max over seeds of every headline number and of every finding's difference, with
  each seed's value and verdict."""
  heads = [headline(r) for r in results]
  names = list(dict.fromkeys(k for h in heads for k in h))
  numbers = {}
  for k in names:
    vals = [h.get(k, (None, None))[0] for h in heads]
    unit = next(h[k][1] for h in heads if k in h)
    numbers[k] = {"unit": unit, "values": vals, **_stats(vals)}
  finds = []
  for i, row in enumerate(results[0].get("findings", [])):
    rows = [r["findings"][i] if i < len(r.get("findings", [])) else {} for r in results]
    vals = [r.get("value") for r in rows]
    finds.append({"claim": row["claim"], "values": vals, "verdicts": [r.get("verdict") for r in rows],
                  **_stats(vals)})
  return {"seeds": list(seeds), "numbers": numbers, "findings": finds}


def _fmt(v, unit: str) -> str:
  if v is None:
    return "-"
  return f"{100 * v:.1f}" if unit == "%" else f"{v:.3f}"


def table(s: dict) -> list:
  """Markdown lines: the findings across seeds, then every headline number's mean, std, min and max."""
  n = len(s["seeds"])
  out = [f"## Across {n} seeds ({', '.join(str(x) for x in s['seeds'])})", "",
         "Every training stage and evaluation rerun per seed (the first seed's full report is above; the others are in "
         "seed_<seed>/report.md). The seed-to-seed spread is training variance, which the bootstrap intervals over "
         "evaluation examples do not include.", "",
         "| paper's finding | difference per seed (points) | mean +- std | verdict per seed |", "|---|---|---|---|"]
  for f in s["findings"]:
    per = ", ".join("-" if v is None else f"{100 * v:+.1f}" for v in f["values"])
    ms = "-" if f["mean"] is None else f"{100 * f['mean']:+.1f} +- {100 * f['std']:.1f}"
    out.append(f"| {f['claim']} | {per} | {ms} | {', '.join(str(v) for v in f['verdicts'])} |")
  out += ["", "| number | unit | mean | std | min | max | per seed |", "|---|---|---|---|---|---|---|"]
  for k, v in s["numbers"].items():
    u = v["unit"]
    out.append(f"| {k} | {u} | {_fmt(v['mean'], u)} | {_fmt(v['std'], u)} | {_fmt(v['min'], u)} | "
               f"{_fmt(v['max'], u)} | {', '.join(_fmt(x, u) for x in v['values'])} |")
  return out + [""]
