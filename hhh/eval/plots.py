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


def _save(fig, path):
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def objectives(res: dict, path: str):
  sizes = res["sizes"]
  fig, ax = plt.subplots(figsize=(5.5, 4))
  names = sorted({o for accs in res["objectives"].values() for o in accs})
  for o in names:
    pts = sorted((sizes[s], accs[o]) for s, accs in res["objectives"].items() if accs.get(o) is not None)
    if pts:
      ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], marker="o", label=o)
  ax.set_xscale("log")
  ax.set_xlabel("non-embedding parameters")
  ax.set_ylabel("pairwise accuracy on held-out comparisons (%)")
  ax.set_title("Telling better from worse, per objective")
  ax.legend(fontsize=7)
  return _save(fig, path)


def hhh(res: dict, path: str):
  """Per condition: mutual information for LMs (the paper's preferred score), the score for the PM."""
  sizes = res["sizes"]
  fig, ax = plt.subplots(figsize=(5.5, 4))
  conds = sorted({c for v in res["hhh"].values() for c in v})
  for c in conds:
    pts = []
    for s, v in res["hhh"].items():
      if c in v:
        m = v[c].get("mi") or v[c].get("score")
        pts.append((sizes[s], m["overall"]))
    pts.sort()
    ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], marker="o", label=c)
  ax.axhline(50, color="gray", lw=0.8, ls=":")
  ax.set_xscale("log")
  ax.set_xlabel("non-embedding parameters")
  ax.set_ylabel("HHH accuracy (%)")
  ax.set_title("HHH evaluations per condition")
  ax.legend(fontsize=7)
  return _save(fig, path)


def tax(res: dict, path: str):
  """Capability (one task per lab/sweep file, e.g. tax_lab_lambada) vs parameters, one line per condition: accuracy,
  and beside it the target word's mean log-prob when the task has it (graded where accuracy is ~0)."""
  sizes = res["sizes"]
  has_lp = any("word_logprob" in c for t in res["tax"].values() for c in t["conditions"].values())
  fig, axes = plt.subplots(1, 2 if has_lp else 1, figsize=(10 if has_lp else 5.5, 4), squeeze=False)
  conds = [c for c in ("plain", "prompt", "distilled") if any(c in t["conditions"] for t in res["tax"].values())]
  panels = [("accuracy", 100.0, "last-word accuracy (%)")] + ([("word_logprob", 1.0, "log-prob of the last word "
                                                                 "(nats)")] if has_lp else [])
  for ax, (key, scale, label) in zip(axes[0], panels):
    for c in conds:
      pts = sorted((sizes[s], t["conditions"][c][key]) for s, t in res["tax"].items()
                   if key in t["conditions"].get(c, {}))
      ax.plot([p[0] for p in pts], [scale * p[1] for p in pts], marker="o", label=c)
    ax.set_xscale("log")
    ax.set_xlabel("non-embedding parameters")
    ax.set_ylabel(label)
    ax.legend(fontsize=7)
  fig.suptitle("Alignment tax: capability with and without the intervention")
  return _save(fig, path)


def pmp(res: dict, path: str):
  fig, ax = plt.subplots(figsize=(5.5, 4))
  names = {"pmp": "with binary PMP", "no_pmp": "without PMP"}
  for label, curve in res["pmp"].items():
    name = names.get(label, label)
    pts = sorted((int(n), a) for n, a in curve.items() if a is not None)
    if pts:
      ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], marker="o", label=name)
  ax.set_xscale("log")
  ax.set_xlabel("finetuning comparisons")
  ax.set_ylabel("held-out accuracy (%)")
  ax.set_title("PMP sample efficiency")
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
  ax.set_xlabel("predicted probability")
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
