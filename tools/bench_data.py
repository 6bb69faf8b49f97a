"""Examples/s of the data pipeline (default: the comparison family, as the preference-model trainer reads it).

    python tools/bench_data.py --task=lab_compare --family=comparison --k=4 --seq_len=512 --batch_size=32
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hhh.cli.quiet import quiet  # noqa: E402

quiet()  # start-up quieting, before jax and TensorFlow are imported


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--task", default="lab_compare")
  ap.add_argument("--family", default="comparison")
  ap.add_argument("--split", default="train")
  ap.add_argument("--seq_len", type=int, default=512)
  ap.add_argument("--batch_size", type=int, default=32)
  ap.add_argument("--k", type=int, default=4)
  ap.add_argument("--vocab", default="byte")
  ap.add_argument("--batches", type=int, default=200)
  ap.add_argument("--warmup", type=int, default=5)
  a = ap.parse_args(argv)
  from hhh.data import pipeline
  t0 = time.perf_counter()
  it = pipeline.make_iterator(a.task, split=a.split, family=a.family, seq_len=a.seq_len, batch_size=a.batch_size,
                              vocab=a.vocab, seed=0, shuffle=True, repeat=True, k=a.k)
  for _ in range(a.warmup):
    next(it)
  t1 = time.perf_counter()
  for _ in range(a.batches):
    next(it)
  dt = time.perf_counter() - t1
  n = a.batches * a.batch_size
  print(f"{a.task} family={a.family} L={a.seq_len} B={a.batch_size} k={a.k}: start-up {t1 - t0:.1f}s, "
        f"{n / dt:.0f} examples/s ({a.batches / dt:.1f} batches/s)")
  skip_t = time.perf_counter()
  it2 = pipeline.make_iterator(a.task, split=a.split, family=a.family, seq_len=a.seq_len, batch_size=a.batch_size,
                               vocab=a.vocab, seed=0, shuffle=True, repeat=True, k=a.k, start_batch=a.batches)
  next(it2)
  print(f"resume with start_batch={a.batches}: first batch after {time.perf_counter() - skip_t:.1f}s")
  return 0


if __name__ == "__main__":
  sys.exit(main())
