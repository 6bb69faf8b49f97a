"""Sandbox benchmark: executions per second for HumanEval's 164 canonical solutions, against a bare interpreter.

  python tools/bench_sandbox.py [--workers=0] [--rounds=2] [--json=sandbox.json]

Reported (best of --rounds, each in a fresh pool):
  * the 164 canonical solutions through hhh.sandbox with the default layers (namespaces where the OS allows them,
    seccomp, resource limits, the guard): wall time, programs/s, and how many passed (all 164 should);
  * the same with isolation=process (no namespaces), to show what the namespaces cost;
  * the floor: `python -c pass` started 164 times with the same parallelism (the interpreter's own start-up);
  * per-program overhead: (sandbox wall - floor wall) x workers / 164.
The issue's goal: the 164 in under 60 s on this 2-core machine.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hhh.cli.quiet import quiet  # noqa: E402

quiet()  # start-up quieting, before jax and TensorFlow are imported


def _bare(n: int, workers: int) -> float:
  t0 = time.perf_counter()
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    list(pool.map(lambda _: subprocess.run([sys.executable, "-I", "-c", "pass"], check=True), range(n)))
  return time.perf_counter() - t0


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--workers", type=int, default=0, help="programs at once; 0 = one per core")
  ap.add_argument("--rounds", type=int, default=2, help="best of this many runs of each measurement")
  ap.add_argument("--json", default="", help="also write the numbers to this file")
  args = ap.parse_args(argv)
  # After parsing: the data package pulls in seqio and TensorFlow (seconds), which --help does not need.
  from hhh import sandbox  # pylint: disable=g-import-not-at-top
  from hhh.data import humaneval  # pylint: disable=g-import-not-at-top
  problems, _ = humaneval.read_problems()
  programs = [humaneval.program(p, p.canonical_solution) for p in problems]
  out = {"programs": len(programs), "cpu": _cpu(), "cores": os.cpu_count()}
  for name, kw in (("default", {}), ("process", {"isolation": "process"})):
    sb = sandbox.Sandbox(**kw, workers=args.workers)
    best = None
    for _ in range(args.rounds):
      t0 = time.perf_counter()
      results = sb.run_many(programs)
      wall = time.perf_counter() - t0
      if best is None or wall < best[0]:
        best = (wall, sandbox.counts(results))
    out[name] = {"wall_s": best[0], "programs_per_s": len(programs) / best[0], "counts": best[1],
                 "layers": {k: v for k, v in sb.describe().items() if k in ("isolation", "seccomp", "guard")},
                 "workers": sb.workers}
  workers = out["default"]["workers"]
  out["bare"] = {"wall_s": min(_bare(len(programs), workers) for _ in range(args.rounds))}
  for name in ("default", "process"):
    out[name]["overhead_ms_per_program"] = 1000 * (out[name]["wall_s"] - out["bare"]["wall_s"]) * workers / len(
        programs)
  print(f"{len(programs)} canonical solutions, {workers} workers ({out['cpu']}):")
  for name in ("default", "process"):
    d = out[name]
    print(f"  sandbox {name:8s} {d['wall_s']:6.1f} s  {d['programs_per_s']:6.1f} programs/s  "
          f"+{d['overhead_ms_per_program']:.0f} ms/program over bare  layers {d['layers']}  {d['counts']}")
  print(f"  bare `python -I -c pass` x {len(programs)}: {out['bare']['wall_s']:.1f} s")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(out, f, indent=1)
  return 0 if out["default"]["counts"]["passed"] == len(programs) else 1


def _cpu() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    return "unknown"


if __name__ == "__main__":
  sys.exit(main())
