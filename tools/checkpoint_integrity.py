"""Checkpoint checksums under fire (hhh.run.checksums; docs/reliability.md): random bit flips, and what the checksums cost.

  python tools/checkpoint_integrity.py [--trials=100] [--seed=0] [--overhead_size=cpu] [--workdir=DIR]

Trials: a tiny LM (synthetic copy-task batches, 12 steps, a checkpoint every 2) is trained once uninterrupted and
once stopped at step 4. Each trial copies the stopped run, flips one bit in each of 1-8 random bytes spread over
1-8 random files of checkpoint 4 (array data, OCDBT manifests, metadata: any file), reruns the trainer, and passes
when the damage was detected (checkpoint 4 moved to checkpoints_corrupt/), the run resumed from step 2, and its
losses equal the uninterrupted run's exactly. Overhead: the train state of --overhead_size (with its optimiser
state) saved and restored 3 times, the orbax save / restore against writing / verifying its checksums (0 skips).
One JSON line per measurement, and a summary line.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hhh.cli.quiet import quiet  # noqa: E402

quiet()  # start-up quieting, before jax and TensorFlow are imported

from absl import flags  # noqa: E402
from hhh import cli  # noqa: E402

L = 32


def _config(steps):
  from hhh import config as hc  # pylint: disable=g-import-not-at-top
  c = hc.base_config("tiny")
  c.data.seq_len = L
  c.train.update(dict(steps=steps, batch_size=8, log_every=1, eval_every=0, checkpoint_every=2,
                      async_checkpoints=False))
  c.optim.warmup_steps = 2
  return c


def _batches(start=0):
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  for i in range(10**9):
    x = rng.integers(3, 40, (8, L + 1)).astype(np.int32)
    x[:, L // 2 + 1:] = x[:, 1:L // 2 + 1]
    if i >= start:
      yield {"decoder_input_tokens": x[:, :-1], "decoder_target_tokens": x[:, 1:],
             "decoder_loss_weights": np.ones((8, L), np.float32), "decoder_segment_ids": np.ones((8, L), np.int32),
             "decoder_positions": np.tile(np.arange(L, dtype=np.int32), (8, 1))}


def _losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return {m["step"]: m["train/loss"] for m in map(json.loads, f) if "train/loss" in m}


def _quiet(fn, *a, **k):
  import contextlib  # pylint: disable=g-import-not-at-top
  import io  # pylint: disable=g-import-not-at-top
  buf = io.StringIO()
  with contextlib.redirect_stdout(buf):
    out = fn(*a, **k)
  return out, buf.getvalue()


def trials(n: int, seed: int, root: str) -> dict:
  import numpy as np  # pylint: disable=g-import-not-at-top
  from hhh import train  # pylint: disable=g-import-not-at-top
  from hhh.run import checksums  # pylint: disable=g-import-not-at-top
  ref, stopped = os.path.join(root, "reference"), os.path.join(root, "stopped")
  _quiet(train.train, _config(12), ref, train_batches=_batches)

  def stop_at_4(step, metrics):
    if step == 4:
      os.kill(os.getpid(), signal.SIGTERM)

  _quiet(train.train, _config(12), stopped, train_batches=_batches, step_hook=stop_at_4)
  want = _losses(ref)
  rng = np.random.default_rng(seed)
  passed = 0
  for t in range(n):
    work = os.path.join(root, f"trial{t}")
    shutil.copytree(stopped, work)
    step4 = os.path.join(work, "checkpoints", "4")
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(step4) for f in fs if f != checksums.FILENAME)
    chosen = rng.choice(len(files), size=int(rng.integers(1, 9)), replace=False)
    flips = int(rng.integers(len(chosen), 9))  # 1-8 bytes, at least one per chosen file
    where = []
    for j in range(flips):
      path = files[chosen[j % len(chosen)]]
      data = bytearray(open(path, "rb").read())
      if not data:
        continue
      pos = int(rng.integers(len(data)))
      data[pos] ^= 1 << int(rng.integers(8))
      open(path, "wb").write(bytes(data))
      where.append(f"{os.path.relpath(path, step4)}@{pos}")
    _, log = _quiet(train.train, _config(12), work, train_batches=_batches)
    detected = os.path.isdir(os.path.join(work, "checkpoints_corrupt", "4"))
    resumed_2 = "resuming from the previous complete checkpoint, step 2" in log
    exact = _losses(work) == want
    ok = detected and resumed_2 and exact
    passed += ok
    print(json.dumps({"trial": t, "flips": where, "detected": detected, "resumed_from_2": resumed_2,
                      "losses_equal": exact, "passed": ok}), flush=True)
    shutil.rmtree(work)
  return {"trials": n, "passed": passed}


def overhead(size: str, root: str) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  from hhh import config as hc, train  # pylint: disable=g-import-not-at-top
  from hhh.run import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  from hhh.run import checksums  # pylint: disable=g-import-not-at-top
  c = hc.base_config(size)
  setup = train.build(c, None)
  state = train.init_state(setup, jax.random.key(0))
  abstract = ckpt_lib.abstract_with_shardings(setup.abstract_state, setup.state_shardings)
  ck = ckpt_lib.Checkpointer(root, every=1, keep=10, async_save=False)
  rows = []
  for rep in range(3):
    t0 = time.perf_counter()
    ck.manager.save(rep, args=ocp.args.Composite(  # orbax alone, without Checkpointer's checksums
        **{ckpt_lib.STATE: ocp.args.StandardSave(state), ckpt_lib.DATA: ocp.args.JsonSave({"train_batches": 0})}),
        force=True)
    ck.manager.wait_until_finished()
    t1 = time.perf_counter()
    step_dir = os.path.join(root, "checkpoints", str(rep))
    checksums.write(step_dir)
    t2 = time.perf_counter()
    jax.block_until_ready(ck.restore(rep, abstract, verify=False))
    t3 = time.perf_counter()
    checksums.verify(step_dir)
    t4 = time.perf_counter()
    nbytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(step_dir) for f in fs)
    row = {"size": size, "rep": rep, "checkpoint_mb": round(nbytes / 2**20, 1), "save_s": round(t1 - t0, 3),
           "checksum_write_s": round(t2 - t1, 3), "restore_s": round(t3 - t2, 3), "verify_s": round(t4 - t3, 3)}
    print(json.dumps(row), flush=True)
    rows.append(row)
  ck.close()
  best = lambda k: min(r[k] for r in rows)  # noqa: E731
  return {"size": size, "checkpoint_mb": rows[0]["checkpoint_mb"],
          "save_overhead": round(best("checksum_write_s") / best("save_s"), 3),
          "restore_overhead": round(best("verify_s") / best("restore_s"), 3)}


def main():
  n = flags.DEFINE_integer("trials", 100, "bit-flip trials (0 skips)")
  seed = flags.DEFINE_integer("seed", 0, "seed of the flips")
  size = flags.DEFINE_string("overhead_size", "cpu", "model size whose save/restore overhead is measured (empty: skip)")
  workdir = flags.DEFINE_string("workdir", "", "scratch directory (default: a new temporary one, removed at the end)")

  def run(_):
    import logging  # pylint: disable=g-import-not-at-top
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax's INFO lines per save/restore, as hhh.train does
    root = os.path.abspath(workdir.value) if workdir.value else tempfile.mkdtemp(prefix="hhh-integrity-")
    if workdir.value and os.path.isdir(root) and os.listdir(root):
      from hhh.core.errors import ConfigError  # pylint: disable=g-import-not-at-top
      raise ConfigError(f"--workdir={root} is not empty: give a new or empty directory")
    os.makedirs(root, exist_ok=True)
    summary = {}
    try:
      if n.value:
        summary["bit_flips"] = trials(n.value, seed.value, os.path.join(root, "trials"))
      if size.value:
        summary["overhead"] = overhead(size.value, os.path.join(root, "overhead"))
    finally:
      if not workdir.value:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({"summary": summary}), flush=True)

  cli.run(run)


if __name__ == "__main__":
  main()
