"""Where metrics go: a readable console line, TensorBoard event files and `metrics.jsonl` in the workdir.

Only process 0 writes (the caller passes `enabled=False` elsewhere).
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time


def _fmt(v: float, key: str = "") -> str:
  if v != v:  # NaN
    return "nan"
  if key == "mfu" or key.endswith("accuracy"):
    return f"{100 * v:.1f}%"
  if key.endswith("_per_s"):
    return f"{v / 1e3:.1f}k" if v >= 1e3 else f"{v:.1f}"
  if key.endswith("time_s"):
    return f"{v * 1e3:.0f}ms" if v < 10 else f"{v:.1f}s"
  a = abs(v)
  if float(v).is_integer() and a >= 1:
    return f"{int(v):,}"
  if a != 0 and (a < 1e-3 or a >= 1e5):
    return f"{v:.3e}"
  return f"{v:.4f}"


def format_eta(seconds: float) -> str:
  return str(datetime.timedelta(seconds=int(max(seconds, 0))))


def drop_records_after(path: str, step: int) -> int:
  """Rewrites the metrics.jsonl at `path` (atomically) without records of steps > `step`; returns how many went.
  Lines that do not parse (a write cut by a kill) go too."""
  if not os.path.exists(path):
    return 0
  keep, dropped = [], 0
  with open(path) as f:
    for line in f:
      try:
        ok = int(json.loads(line)["step"]) <= step
      except (ValueError, KeyError, TypeError):
        ok = False
      if ok:
        keep.append(line if line.endswith("\n") else line + "\n")
      else:
        dropped += 1
  if dropped:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
      f.writelines(keep)
    os.replace(tmp, path)
  return dropped


def read_metrics(run_dir: str) -> list[dict]:
  """Every record of a run's metrics.jsonl (`run_dir/metrics.jsonl`, as MetricWriter.write wrote them), in order;
  [] when the run has none."""
  path = os.path.join(run_dir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f]


class MetricWriter:

  def __init__(self, workdir: str, *, enabled: bool = True, stream=None, resume_step: int | None = None):
    """`resume_step`: a training run restarting from this step (0: from scratch). Records of later steps, written
    by an attempt that died before saving them, are dropped from metrics.jsonl, and TensorBoard is told to purge
    them, so every step appears once."""
    self.enabled = enabled
    self.stream = stream or sys.stdout
    self._tb = None
    self._jsonl = None
    if enabled:
      os.makedirs(workdir, exist_ok=True)
      path = os.path.join(workdir, "metrics.jsonl")
      if resume_step is not None:
        drop_records_after(path, resume_step)
      self._jsonl = open(path, "a")
      import tensorboardX  # pylint: disable=g-import-not-at-top
      purge = {} if resume_step is None else {"purge_step": int(resume_step) + 1}
      self._tb = tensorboardX.SummaryWriter(os.path.join(workdir, "tensorboard"), flush_secs=30, **purge)

  def console(self, text: str):
    if self.enabled:
      print(text, file=self.stream, flush=True)

  def write(self, step: int, metrics: dict, *, prefix: str = ""):
    if not self.enabled:
      return
    scalars = {f"{prefix}{k}": float(v) for k, v in metrics.items()}
    self._jsonl.write(json.dumps({"step": int(step), "time": time.time(), **scalars}) + "\n")
    self._jsonl.flush()
    if self._tb is not None:
      for k, v in scalars.items():
        self._tb.add_scalar(k, v, step)

  def progress_line(self, step: int, total: int, metrics: dict, eta_s: float | None, order=()) -> str:
    width = len(str(total))
    head = f"step {step:>{width}}/{total} ({100.0 * step / max(total, 1):5.1f}%)"
    keys = [k for k in order if k in metrics] + sorted(k for k in metrics if k not in order)
    parts = [head] + [f"{k} {_fmt(float(metrics[k]), k)}" for k in keys]
    if eta_s is not None:
      parts.append(f"ETA {format_eta(eta_s)}")
    return " | ".join(parts)

  def close(self):
    if self._jsonl:
      self._jsonl.close()
    if self._tb is not None:
      self._tb.close()
