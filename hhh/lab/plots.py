"""The paper's figures as PNG (matplotlib, Agg backend): accuracy vs parameters per objective, HHH accuracy vs
parameters per condition, the alignment tax (capability with and without the intervention vs parameters), PMP
sample-efficiency curves, calibration (reliability diagrams), toxicity of sampled continuations vs parameters per
condition.

Input is the JSON written by hhh.lab (lab.json) or tools/sweep.py (same keys: sizes, objectives, hhh, tax, pmp,
calibration, toxicity)."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402  pylint: disable=unused-import
from hhh.eval import tax as tax_eval


def _save(fig, path):
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def _chance(ax, level=50.0):
  ax.axhline(level, color="gray", lw=0.8, ls=":", label=f"chance ({level:g}%)")


def _dodge(i: int, n: int) -> float:
  """A small multiplicative x offset for series i of n on a log axis, so error bars at one x do not overlap."""
  return 1.0 + 0.05 * (i - (n - 1) / 2)


def _errorbar(ax, pts, label, *, dodge: float = 1.0, **kw):
  """pts: (x, value, ci or None) with value and ci as fractions; plotted in %, with 95% interval bars."""
  pts = sorted(pts, key=lambda q: q[0])
  xs, ys = [q[0] * dodge for q in pts], [100 * q[1] for q in pts]
  lo = [100 * (q[1] - q[2][0]) if q[2] else 0.0 for q in pts]
  hi = [100 * (q[2][1] - q[1]) if q[2] else 0.0 for q in pts]
  return ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=label, **kw)


def objectives(res: dict, path: str):
  sizes = res["sizes"]
  cis = res.get("objectives_ci", {})
  fig, ax = plt.subplots(figsize=(5.5, 4))
  names = sorted({o for accs in res["objectives"].values() for o in accs})
  for i, o in enumerate(names):
    pts = [(sizes[s], accs[o], cis.get(s, {}).get(o)) for s, accs in res["objectives"].items()
           if accs.get(o) is not None]
    if pts:
      _errorbar(ax, pts, o, dodge=_dodge(i, len(names)))
  _chance(ax)
  ax.set_xscale("log")
  ax.set_xlabel("non-embedding parameters")
  ax.set_ylabel("pairwise accuracy on held-out comparisons (%)")
  ax.set_title("Telling better from worse, per objective (95% intervals)", fontsize=10)
  ax.legend(fontsize=7)
  return _save(fig, path)


def hhh(res: dict, path: str):
  """Per condition: mutual information for LMs (the paper's preferred score), the score for the PM; 95% intervals.
  A condition measured at one size only (distillation: the largest) is a single point, and says so."""
  sizes = res["sizes"]
  fig, ax = plt.subplots(figsize=(5.5, 4))
  conds = [c for c in ("plain", "prompt", "distilled", "pm") if any(c in v for v in res["hhh"].values())]
  conds += sorted({c for v in res["hhh"].values() for c in v} - set(conds))
  for i, c in enumerate(conds):
    pts = []
    for s, v in res["hhh"].items():
      if c in v:
        m = v[c].get("mi") or v[c].get("score")
        pts.append((sizes[s], m["overall"], m.get("overall_ci")))
    label = "PM (score)" if c == "pm" else f"LM {c} (mutual information)"
    if len(pts) == 1 and len(res["hhh"]) > 1:
      label += ", largest size only"
    _errorbar(ax, pts, label, dodge=_dodge(i, len(conds)))
  _chance(ax)
  ax.set_xscale("log")
  ax.set_xlabel("non-embedding parameters")
  ax.set_ylabel("HHH accuracy (%): LMs by mutual information, PM by score", fontsize=8)
  ax.set_title("HHH evaluations per condition (95% intervals)", fontsize=10)
  ax.legend(fontsize=7)
  return _save(fig, path)


def tax(res: dict, path: str):
  """Capability (one task per lab/sweep file, e.g. tax_lab_lambada) vs parameters, one line per condition: accuracy
  with 95% intervals (left out when no condition gets 5 words right: noise around 0), and the target word's mean
  log-prob when the task has it (graded where accuracy is ~0)."""
  sizes = res["sizes"]
  has_lp = any("word_logprob" in c for t in res["tax"].values() for c in t["conditions"].values())
  panels = []
  if tax_eval.most_correct(res["tax"]) >= tax_eval.MIN_CORRECT or not has_lp:
    panels.append(("accuracy", 100.0, "last-word accuracy (%)"))
  if has_lp:
    panels.append(("word_logprob", 1.0, "mean log-prob of the last word (nats)"))
  fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
  conds = [c for c in ("plain", "prompt", "distilled") if any(c in t["conditions"] for t in res["tax"].values())]
  for ax, (key, scale, label) in zip(axes[0], panels):
    for i, c in enumerate(conds):
      pts = sorted(((sizes[s] * _dodge(i, len(conds)), t["conditions"][c][key], t["conditions"][c].get(key + "_ci"))
                    for s, t in res["tax"].items() if key in t["conditions"].get(c, {})), key=lambda q: q[0])
      lo = [scale * (q[1] - q[2][0]) if q[2] else 0.0 for q in pts]
      hi = [scale * (q[2][1] - q[1]) if q[2] else 0.0 for q in pts]
      name = c + (", largest size only" if len(pts) == 1 and len(res["tax"]) > 1 else "")
      ax.errorbar([q[0] for q in pts], [scale * q[1] for q in pts], yerr=[lo, hi], marker="o", capsize=3,
                  label=name)
    ax.set_xscale("log")
    ax.set_xlabel("non-embedding parameters")
    ax.set_ylabel(label)
    ax.legend(fontsize=7)
  fig.suptitle("Alignment tax: capability with and without the intervention (95% intervals)", fontsize=10)
  return _save(fig, path)


def pmp(res: dict, path: str):
  fig, ax = plt.subplots(figsize=(5.5, 4))
  names = {"pmp": "with binary PMP", "no_pmp": "without PMP"}
  cis = res.get("pmp_ci", {})
  ticks = set()
  for i, (label, curve) in enumerate(res["pmp"].items()):
    pts = [(int(n), a, cis.get(label, {}).get(n)) for n, a in curve.items() if a is not None]
    ticks |= {q[0] for q in pts}
    if pts:
      _errorbar(ax, pts, names.get(label, label), dodge=_dodge(i, len(res["pmp"])))
  _chance(ax)
  ax.set_xscale("log")
  if ticks:  # the finetuning-set sizes themselves as ticks (not 3x10^1)
    ax.set_xticks(sorted(ticks), [str(t) for t in sorted(ticks)])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
  ho = res.get("pmp_heldout", {})
  ax.set_xlabel("finetuning comparisons")
  ax.set_ylabel("held-out pairwise accuracy (%" + (f", {ho['examples']} comparisons)" if ho else ")"))
  ax.set_title("PMP sample efficiency (95% intervals)", fontsize=10)
  ax.legend(fontsize=7)
  return _save(fig, path)


def calibration(res: dict, path: str):
  fig, ax = plt.subplots(figsize=(5, 5))
  ax.plot([0, 1], [0, 1], color="gray", lw=0.8, ls=":")
  for name, r in sorted(res.get("calibration", {}).items()):
    if not r:
      continue
    pts = [(m, f) for m, f, n in zip(r["mean_prob"], r["frequency"], r["count"]) if n > 0]
    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=f"{name} (ECE {r['ece']:.3f})")
  ax.set_xlabel("predicted probability that the first response of a pair is better")
  ax.set_ylabel("observed frequency")
  ax.set_title("Calibration (reliability diagram)")
  ax.legend(fontsize=6)
  return _save(fig, path)


def toxicity(res: dict, path: str):
  """The paper's toxicity figure: expected maximum toxicity and the probability of at least one toxic sample vs
  parameters, one line per condition (res["toxicity"][size][condition][subset] from hhh.eval.toxicity); the
  challenging subset dashed when present."""
  sizes = res["sizes"]
  tox = res["toxicity"]
  conds = [c for c in ("plain", "prompt", "distilled") if any(c in v for v in tox.values())]
  conds += sorted({c for v in tox.values() for c in v} - set(conds))
  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  for ax, (key, label) in zip(axes, (("expected_max_toxicity", "expected maximum toxicity over k samples"),
                                     ("toxicity_probability", "P(at least one sample >= 0.5)"))):
    for i, c in enumerate(conds):
      color = f"C{i}"
      for subset, ls in (("overall", "-"), ("challenging", "--")):
        pts = sorted((sizes[s], v[c][subset][key]) for s, v in tox.items()
                     if c in v and v[c].get(subset, {}).get("prompts_scored"))
        if pts:
          ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ls=ls, color=color,
                  label=c if subset == "overall" else f"{c} (challenging)")
    ax.set_xscale("log")
    ax.set_xlabel("non-embedding parameters")
    ax.set_ylabel(label)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
  fig.suptitle("Toxicity of sampled continuations per condition")
  return _save(fig, path)


def lab_figures(res: dict, outdir: str) -> dict:
  os.makedirs(outdir, exist_ok=True)
  out = {"objectives": objectives(res, os.path.join(outdir, "objectives.png")),
         "pmp": pmp(res, os.path.join(outdir, "pmp.png")),
         "calibration": calibration(res, os.path.join(outdir, "calibration.png"))}
  if res.get("hhh"):
    out["hhh"] = hhh(res, os.path.join(outdir, "hhh.png"))
  if res.get("tax"):
    out["tax"] = tax(res, os.path.join(outdir, "tax.png"))
  if res.get("toxicity"):
    out["toxicity"] = toxicity(res, os.path.join(outdir, "toxicity.png"))
  return out


def merge_results(results: list) -> dict:
  """lab.json / sweep.json results merged for one set of plots (tools/plot.py): later files add sizes and series."""
  out = {"sizes": {}, "objectives": {}, "hhh": {}, "tax": {}, "pmp": {}, "calibration": {}, "toxicity": {}}
  for r in results:
    out["sizes"].update(r.get("sizes", {}))
    for s, accs in r.get("objectives", {}).items():
      out["objectives"].setdefault(s, {}).update(accs)
    out["hhh"].update(r.get("hhh", {}))
    out["tax"].update(r.get("tax", {}))
    out["calibration"].update(r.get("calibration", {}))
    for s, conds in r.get("toxicity", {}).items():
      out["toxicity"].setdefault(s, {}).update(conds)
    for label, curve in r.get("pmp", {}).items():  # series "pmp" / "no_pmp" (lab) or a sweep's --label
      out["pmp"].setdefault(label, {}).update(curve)
  return out
