"""Prints decoded examples and counts of any registered task or mixture.

    python tools/show_task.py lab_compare --split=validation --n=3
    python tools/show_task.py hhh_alignment_mc --split=test --count
    python tools/show_task.py --list
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hhh.cli.quiet import quiet  # noqa: E402

quiet()  # start-up quieting, before jax and TensorFlow are imported


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("task", nargs="?", help="registered task or mixture name")
  ap.add_argument("--split", default="train")
  ap.add_argument("--n", type=int, default=3, help="examples to print")
  ap.add_argument("--count", action="store_true",
                  help="count examples, list excluded bad records and truncated ones (count + first 50 ids)")
  ap.add_argument("--vocab", default="byte")
  ap.add_argument("--list", action="store_true", help="list registered tasks and mixtures")
  a = ap.parse_args(argv)

  import seqio
  from hhh.data import tasks
  from hhh.data import vocab as vocab_lib
  if a.list or not a.task:
    for kind, names in tasks.names().items():
      print(f"{kind}:")
      for n in names:
        print(f"  {n:32s} {tasks.kind_of(n)}")
    return 0
  name = tasks.ensure_task(a.task, a.vocab)
  provider = seqio.get_mixture_or_task(name)
  voc = vocab_lib.get_vocabulary(a.vocab)
  ds = provider.get_dataset(None, split=a.split, shuffle=False, num_epochs=1)

  def show(v):
    import numpy as np
    if isinstance(v, bytes):
      return repr(v.decode("utf-8", "replace"))
    if hasattr(v, "to_list"):  # ragged
      v = v.to_list()
    if isinstance(v, np.ndarray) and v.dtype == object:
      v = list(v)
    if isinstance(v, list) and v and hasattr(v[0], "__len__") and not isinstance(v[0], (bytes, str)):
      return "".join(f"\n    [{j}] {voc.decode(list(map(int, r)))!r}" for j, r in enumerate(v))
    if isinstance(v, np.ndarray) and v.dtype.kind in "iu" and v.ndim == 1:
      return repr(voc.decode(v.tolist()))
    return repr(v.tolist() if hasattr(v, "tolist") else v)

  print(f"{a.task} [{tasks.kind_of(a.task)}] split={a.split}")
  for i, ex in enumerate(ds.take(a.n).as_numpy_iterator()):
    print(f"--- example {i}")
    for k, v in ex.items():
      print(f"  {k}: {show(v)}")
  if a.count:
    n = sum(1 for _ in ds.as_numpy_iterator())
    print(f"count: {n} examples in {a.task}/{a.split}")
    base = a.task
    subs = tasks.mixture_tasks(base)
    for t in subs:
      bad = tasks.bad_records(t, a.split)
      print(f"excluded bad records in {t}/{a.split}: {len(bad)}")
      for rid, why in bad[:50]:
        print(f"  {rid}: {why}")
      if len(bad) > 50:
        print(f"  ... and {len(bad) - 50} more")
      cut = tasks.truncated_records(t, a.split)
      print(f"truncated records (kept, shortened by the size cap) in {t}/{a.split}: {len(cut)}")
      for rid, why in cut[:50]:
        print(f"  {rid}: {why}")
      if len(cut) > 50:
        print(f"  ... and {len(cut) - 50} more")
  return 0


if __name__ == "__main__":
  sys.exit(main())
