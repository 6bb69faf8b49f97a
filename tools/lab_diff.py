"""Compares the headline numbers of two laboratory runs (their lab.json): which numbers differ and by how much.

  python tools/lab_diff.py RUN_A/lab.json RUN_B/lab.json [--tolerance=0]

The numbers are hhh.lab.seeds.headline's (pairwise accuracy per size and objective, HHH accuracy per condition, PMP
finetuning accuracy, the tax's word log-prob, every run's held-out loss) plus the paper-vs-run differences and
verdicts. Prints one line per number that differs by more than --tolerance and a summary; exits 1 when any does
(so `tools/lab_diff.py a b && echo identical` checks reproducibility). docs/lab.md, "Reproducibility", lists what
was measured with it.
"""
from __future__ import annotations

import argparse
import json
import sys


def load(path: str) -> dict:
  from hhh.lab import seeds  # pylint: disable=g-import-not-at-top
  with open(path) as f:
    res = json.load(f)
  out = {k: v for k, (v, _) in seeds.headline(res).items()}
  for r in res.get("findings", []):
    out[f"finding: {r['claim']}"] = r.get("value")
    out[f"verdict: {r['claim']}"] = r.get("verdict")
  return out


def diff(a: dict, b: dict, tolerance: float = 0.0) -> list:
  """[(name, a, b, |a - b| or None)] for every number present in either that differs by more than `tolerance`
  (non-numbers: when unequal)."""
  rows = []
  for k in list(dict.fromkeys(list(a) + list(b))):
    x, y = a.get(k), b.get(k)
    if isinstance(x, (int, float)) and isinstance(y, (int, float)):
      d = abs(float(x) - float(y))
      if d > tolerance:
        rows.append((k, x, y, d))
    elif x != y:
      rows.append((k, x, y, None))
  return rows


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("a", help="the first run's lab.json")
  ap.add_argument("b", help="the second run's lab.json")
  ap.add_argument("--tolerance", type=float, default=0.0, help="report differences larger than this (default 0: any)")
  args = ap.parse_args(argv)
  a, b = load(args.a), load(args.b)
  rows = diff(a, b, args.tolerance)
  for k, x, y, d in rows:
    print(f"{k}: {x} vs {y}" + ("" if d is None else f" (|diff| {d:.6g})"))
  numeric = [d for *_, d in rows if d is not None]
  print(f"{len(rows)} of {len(set(a) | set(b))} numbers differ"
        + (f"; largest |diff| {max(numeric):.6g}" if numeric else ""))
  return 1 if rows else 0


if __name__ == "__main__":
  sys.exit(main())
