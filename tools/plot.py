"""The paper's figures as PNG from lab.json / sweep.json files (several sweep files are merged).

  python tools/plot.py /tmp/lab/lab.json --out=/tmp/plots
  python tools/plot.py /tmp/sweep_il/sweep.json /tmp/sweep_pm/sweep.json /tmp/sweep_ft/sweep.json --out=/tmp/plots

Figures (only those with data): objectives.png (accuracy vs parameters per objective), hhh.png (HHH accuracy vs
parameters per condition), tax.png (capability with and without the intervention vs parameters), pmp.png (PMP
sample efficiency), calibration.png (reliability diagrams), toxicity.png (expected maximum toxicity and the probability
of a toxic sample vs parameters, per condition).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hhh.cli.quiet import quiet  # noqa: E402

quiet()  # start-up quieting, before jax and TensorFlow are imported


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("inputs", nargs="+", help="lab.json or sweep.json files")
  ap.add_argument("--out", default="plots", help="output directory")
  args = ap.parse_args(argv)
  from hhh.lab import plots  # pylint: disable=g-import-not-at-top
  res = plots.merge_results([json.load(open(p)) for p in args.inputs])
  os.makedirs(args.out, exist_ok=True)
  made = []
  if res["objectives"]:
    made.append(plots.objectives(res, os.path.join(args.out, "objectives.png")))
  if res["hhh"]:
    made.append(plots.hhh(res, os.path.join(args.out, "hhh.png")))
  if res["tax"]:
    made.append(plots.tax(res, os.path.join(args.out, "tax.png")))
  if any(res["pmp"].values()):
    made.append(plots.pmp(res, os.path.join(args.out, "pmp.png")))
  if res["calibration"]:
    made.append(plots.calibration(res, os.path.join(args.out, "calibration.png")))
  if res["toxicity"]:
    made.append(plots.toxicity(res, os.path.join(args.out, "toxicity.png")))
  print("wrote " + (", ".join(made) if made else "nothing (no plottable data in the inputs)"))
  return made


if __name__ == "__main__":
  main()
