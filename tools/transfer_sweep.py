"""PMP transfer: held-out accuracy of a finetuned preference model vs the number of finetuning comparisons, for
no PMP, ranked PMP and binary PMP (paper section 3, "transfer as finetuning sample efficiency").

  python tools/transfer_sweep.py --out=/tmp/obj/transfer [--size=tiny] [--ns=0,100,300,1000,all]

Pipeline (all through hhh.train.train, on the embedded laboratory, no downloads):
  1. an LM pretrained on `lab_lm` (--lm_steps; or --lm=RUN to reuse one);
  2. ranked PMP (configs/pmp.py:SIZE,ranked,lab: `lab_compare_pair`) and binary PMP (SIZE,binary,lab:
     `lab_compare_binary`), both init_from the LM, at the PMP rate (0.1x pretraining), --pmp_steps;
  3. for each start (the LM with a fresh score head = "no PMP", ranked PMP, binary PMP) and each n in --ns:
     preference finetuning on the first n comparisons of `lab_compare_hhh` train (K=4 ranked; n=0 evaluates the
     start), for clip(ceil(epochs * n / batch), min_steps, max_steps) steps at --finetune_lr;
  4. pairwise accuracy on --eval_batches x 16 comparisons of `lab_compare_hhh` test.
Note: the lab's PMP data (pairs of all three lab families) includes hhh-family comparisons (other contexts: the
lab splits by context), so this is a laboratory of the mechanism, not of the paper's domain shift.
The paper finetunes at 0.01x pretraining; on a CPU-sized budget of a few hundred steps that rate barely moves the
model, so the default --finetune_lr is the PMP rate (configs/pmp.py: 0.1x, 3e-4 for the CPU sizes) for every start
alike (override freely).
Writes OUT/transfer.json and OUT/transfer.png.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from hhh.cli.quiet import quiet  # noqa: E402

quiet()  # start-up quieting, before jax and TensorFlow are imported

from absl import flags  # noqa: E402
from hhh import cli  # noqa: E402

_OUT = flags.DEFINE_string("out", "/tmp/hhh_transfer", "output directory")
_SIZE = flags.DEFINE_string("size", "tiny", "model size")
_NS = flags.DEFINE_list("ns", ["0", "100", "300", "1000", "all"], "numbers of finetuning comparisons")
_LM = flags.DEFINE_string("lm", "", "an existing LM run to start from (else one is trained)")
_LM_STEPS = flags.DEFINE_integer("lm_steps", 200, "LM pretraining steps")
_PMP_STEPS = flags.DEFINE_integer("pmp_steps", 200, "PMP steps (each variant)")
_LR = flags.DEFINE_float("finetune_lr", 0.0, "finetuning learning rate (0: the size's PMP rate, configs/pmp.py: "
                          "PMP_LR_FACTOR x the pretraining rate)")
_EPOCHS = flags.DEFINE_float("epochs", 3.0, "finetuning epochs over the n comparisons")
_MIN_STEPS = flags.DEFINE_integer("min_steps", 20, "minimum finetuning steps")
_MAX_STEPS = flags.DEFINE_integer("max_steps", 150, "maximum finetuning steps")
_BATCH = flags.DEFINE_integer("batch_size", 16, "finetuning batch (comparisons)")
_EVAL = flags.DEFINE_integer("eval_batches", 16, "test batches of 16 comparisons")

_TASK = flags.DEFINE_string("task", "lab_compare_hhh", "finetuning / test task (a K=4 lab comparison task)")


def _config(name, arg, steps, **kv):
  """configs/<name>.py:<arg> as a short run of `steps` steps (hhh.lab.settings.short_run), then `kv` (dotted keys)."""
  from hhh import config as hc
  from hhh.lab import settings as lab_settings
  c = hc.load(f"{name}:{arg}")
  with c.unlocked():
    lab_settings.short_run(c, steps=steps, log_every=50)
    hc.override(c, kv)
  return c


def _rows(task, split, n, k, seq_len):
  """The first n comparisons of task/split (unshuffled) as numpy rows; n=None: all."""
  import numpy as np
  from hhh.data import pipeline
  it = pipeline.make_iterator(task, split=split, family="comparison", seq_len=seq_len, batch_size=64,
                              vocab="byte", seed=0, shuffle=False, repeat=False, k=k)
  parts, have = [], 0
  for b in it:
    keep = b["valid"].sum(-1) > 0
    parts.append({kk: v[keep] for kk, v in b.items()})
    have += int(keep.sum())
    if n is not None and have >= n:
      break
  rows = {kk: np.concatenate([p[kk] for p in parts]) for kk in parts[0]}
  return {kk: v[:n] for kk, v in rows.items()} if n is not None else rows


def _cycle(rows, batch, seed):
  """Batches of `batch` rows, a fresh permutation per epoch; fewer rows than a batch are sampled with
  replacement (every step still sees `batch` comparisons)."""
  import numpy as np
  n = len(rows["tokens"])
  rng = np.random.default_rng(seed)

  def gen(start):
    order = []
    i = 0
    while True:
      while len(order) < batch:
        order.extend(rng.permutation(n).tolist())
      sel, order = order[:batch], order[batch:]
      if i >= start:
        yield {k: v[sel] for k, v in rows.items()}
      i += 1
  return gen


def _params_of(cfg, workdir):
  from hhh.run import model as run_model
  return run_model.model_from_run(cfg.model, cfg.mesh, workdir, what="run")  # the trained run, read whole


def _accuracy(cfg, workdir, test_rows, eval_batches):
  from hhh import scoring
  setup, params = _params_of(cfg, workdir)
  batches = [{k: v[i * 16:(i + 1) * 16] for k, v in test_rows.items()} for i in range(eval_batches)]
  batches = [b for b in batches if len(b["tokens"]) == 16]
  return scoring.comparison_accuracy(setup.model, params, batches, "score")


def main(_):
  from hhh import config as hc
  from hhh import train as train_lib
  out, size = _OUT.value, _SIZE.value
  os.makedirs(out, exist_ok=True)
  t0 = time.perf_counter()
  lm = _LM.value or os.path.join(out, "lm")
  if not _LM.value:
    train_lib.train(_config("pretrain", size, _LM_STEPS.value), lm)
  starts = {"none": lm}
  for variant in ("ranked", "binary"):
    d = os.path.join(out, f"pmp_{variant}")
    train_lib.train(_config("pmp", f"{size},{variant},lab", _PMP_STEPS.value, init_from=lm), d)
    starts[variant] = d
  lr = _LR.value or float(hc.load(f"pmp:{size},binary,lab").optim.lr)  # the PMP rate (configs/pmp.py)
  seq_len = int(hc.load(f"finetune:{size},lab").data.seq_len)
  test_rows = _rows(_TASK.value, "test", 16 * _EVAL.value, 4, seq_len)
  ns = [None if n == "all" else int(n) for n in _NS.value]
  max_n = None if None in ns else max(ns)
  train_rows = _rows(_TASK.value, "train", max_n, 4, seq_len)
  results = []
  for (start, init), n in itertools.product(starts.items(), ns):
    n_eff = len(train_rows["tokens"]) if n is None else n
    if n_eff == 0:
      # no finetuning: the starting model itself (a fresh score head scores every response 0: accuracy 0.5)
      cfg = _config("finetune", f"{size},lab", 1, **{"init_from": init, "optim.lr": 0.0})
      steps = 0
    else:
      steps = int(min(_MAX_STEPS.value, max(_MIN_STEPS.value, math.ceil(_EPOCHS.value * n_eff / _BATCH.value))))
      cfg = _config("finetune", f"{size},lab", steps, **{"init_from": init, "optim.lr": lr,
                                                          "train.batch_size": _BATCH.value,
                                                          "optim.warmup_steps": max(1, steps // 10)})
    wd = os.path.join(out, f"ft_{start}_{n if n is not None else 'all'}")
    rows = {k: v[:max(n_eff, 1)] for k, v in train_rows.items()}
    train_lib.train(cfg, wd, train_batches=_cycle(rows, int(cfg.train.batch_size), 0), eval_batches=lambda: iter(()))
    acc = _accuracy(cfg, wd, test_rows, _EVAL.value)
    pairs = float(ranking_pairs(rows)) if n_eff else 0.0
    results.append({"start": start, "n_comparisons": n_eff, "n_pairs": pairs, "steps": steps, "lr": lr if steps else 0,
                    "test_accuracy": acc["accuracy"], "test_pairs": acc["pairs"], "test_ece": acc.get("ece")})
    print(results[-1], flush=True)
    with open(os.path.join(out, "transfer.json"), "w") as f:
      json.dump({"argv": sys.argv, "size": size, "finetune_task": _TASK.value, "lm_steps": _LM_STEPS.value,
                 "pmp_steps": _PMP_STEPS.value, "results": results, "seconds": time.perf_counter() - t0}, f,
                indent=2)
  plot(results, os.path.join(out, "transfer.png"), size, _TASK.value)


def ranking_pairs(rows):
  import numpy as np
  from hhh.core import metrics
  return float(np.asarray(metrics.pair_mask(rows["score"], rows["valid"])).sum())


def plot(results, path, size, task):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6, 4))
  for start, label in (("none", "no PMP"), ("ranked", "ranked PMP"), ("binary", "binary PMP")):
    pts = sorted((max(r["n_pairs"], 1), r["test_accuracy"]) for r in results if r["start"] == start)
    if pts:
      ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
  ax.set_xscale("log")
  ax.axhline(0.5, color="grey", lw=0.5, ls="--")
  ax.set_xlabel(f"finetuning pairs ({task}; 0 plotted at 1)")
  ax.set_ylabel("test pairwise accuracy")
  ax.set_title(f"PMP transfer, size {size}")
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)


if __name__ == "__main__":
  cli.run(main)
