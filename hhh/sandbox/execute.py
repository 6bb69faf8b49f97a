"""Running untrusted programs (model-written code) in child processes, never in ours: the parent side.

Each program runs in its own `python -I` child (hhh/sandbox/child.py) with a private temporary working directory
(removed afterwards), a scrubbed environment, stdin closed, stdout and stderr to a file bounded by the file-size
limit, and its own session, so a timeout kills its whole process group. `Sandbox.run_many` runs programs in parallel
over the cores. Every program gets exactly one Result: passed / failed (the assertion or error) / timed_out (wall
clock or CPU time) / crashed (the reason: a limit, a signal, an early exit, a refused action). docs/sandbox.md is the
threat model: what this stops, and what it does not.

Isolation (`isolation=`): "namespaces" (new user, mount, network, PID, IPC and UTS namespaces; everything outside
the working directory read-only; no network at all), "process" (no namespaces: where the OS refuses them) or
"auto" (namespaces where a probe shows they work, else process, and the reason is recorded). A seccomp filter (no
process creation, exec, sockets or signals; seccomp="auto": where a probe shows it works) applies in both. The guard
(an audit hook refusing sockets, process creation, signals, ctypes and writes outside the working directory) is on
in both unless guard=False; tests turn the layers off one by one to show what each holds by itself.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Optional, Sequence

STATUSES = ("passed", "failed", "timed_out", "crashed")
ISOLATIONS = ("auto", "namespaces", "process")


@functools.lru_cache(maxsize=1)
def _child_source() -> str:
  """hhh/sandbox/child.py's text, read on the first run (not at import)."""
  with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "child.py"), encoding="utf-8") as f:
    return f.read()


def layers(described: dict) -> str:
  """'namespaces + seccomp + guard' from Sandbox.describe() (or the same keys read back from a report)."""
  return described["isolation"] + (" + seccomp" if described["seccomp"] else "") + (
      " + guard" if described["guard"] else "")


@dataclasses.dataclass(frozen=True)
class Limits:
  """Per program. cpu_s 0 = the wall-clock timeout rounded up, plus one second."""
  timeout_s: float = 10.0
  cpu_s: int = 0
  memory_mb: int = 1024  # address space
  processes: int = 16  # processes of the sandbox's user (namespaces: inside its user namespace)
  file_mb: int = 16  # largest file it may write, its stdout and stderr included
  open_files: int = 64
  output_kb: int = 16  # the tail of stdout + stderr kept in the Result

  def __post_init__(self):
    bad = [f"{k} must be > 0, got {v}" for k, v in dataclasses.asdict(self).items() if k != "cpu_s" and not v > 0]
    if bad:
      raise ValueError("sandbox limits: " + "; ".join(bad))

  def child(self) -> dict:
    cpu = self.cpu_s or int(math.ceil(self.timeout_s)) + 1
    return {"memory_mb": int(self.memory_mb), "cpu_s": int(cpu), "processes": int(self.processes),
            "file_mb": int(self.file_mb), "open_files": int(self.open_files)}


@dataclasses.dataclass
class Result:
  status: str  # one of STATUSES
  detail: str = ""  # the assertion / error line, or why it timed out or crashed
  seconds: float = 0.0
  isolation: str = ""
  output: str = ""  # the tail of stdout + stderr

  def to_json(self) -> dict:
    return dataclasses.asdict(self)


_PROBE: dict = {}
_PROBE_LOCK = threading.Lock()
SECCOMP_MACHINES = ("x86_64", "aarch64")


def probe() -> dict:
  """What this machine allows, probed once per process by running `pass`: {"namespaces": bool, "seccomp": bool,
  "why": {layer: why not}}."""
  with _PROBE_LOCK:
    if not _PROBE:
      why = {}
      if not sys.platform.startswith("linux"):
        why = {"namespaces": f"Linux only (this is {sys.platform})", "seccomp": f"Linux only (this is {sys.platform})"}
      else:
        if os.uname().machine not in SECCOMP_MACHINES:
          why["seccomp"] = f"no syscall table for {os.uname().machine}"
        for layer, (iso, sec) in (("namespaces", ("namespaces", False)), ("seccomp", ("process", True))):
          if layer not in why:
            r = _run_one("pass", Limits(timeout_s=20.0), iso, guard=False, seccomp=sec)
            if r.status != "passed":
              why[layer] = (r.output.strip().splitlines() or [r.detail])[-1][:300]
      _PROBE.update(namespaces="namespaces" not in why, seccomp="seccomp" not in why, why=why)
    return dict(_PROBE)


def _signal_name(sig: int) -> str:
  try:
    return signal.Signals(sig).name
  except ValueError:
    return f"signal {sig}"


def _classify(rc: int, isolation: str, limits: Limits) -> tuple[str, str]:
  """(status, detail) of a child that left no verdict, from its exit status."""
  sig = -rc if rc < 0 else (rc - 128 if isolation == "namespaces" and rc > 128 else 0)
  if sig == signal.SIGXCPU:
    return "timed_out", f"CPU time limit ({limits.child()['cpu_s']} s)"
  if sig == signal.SIGXFSZ:
    return "crashed", f"file size limit ({limits.file_mb} MB): its output or a file it wrote was too large"
  if sig:
    return "crashed", f"killed by {_signal_name(sig)}"
  return "crashed", f"exited with status {rc} before the end of the program (no verdict)"


def _tail(path: str, kb: int) -> str:
  with open(path, "rb") as f:
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(max(0, size - kb * 1024))
    return f.read().decode("utf-8", "replace")


def _remove(path: str) -> None:
  def retry(fn, p, _):
    try:
      os.chmod(os.path.dirname(p), 0o700)
      os.chmod(p, 0o700)
    except OSError:
      pass
    fn(p)
  shutil.rmtree(path, onerror=retry)


def _run_one(program: str, limits: Limits, isolation: str, *, guard: bool, seccomp: bool,
             tmpdir: Optional[str] = None) -> Result:
  base = tempfile.mkdtemp(prefix="hhh-sandbox-", dir=tmpdir)
  t0 = time.perf_counter()
  try:
    work = os.path.join(base, "work")
    os.mkdir(work, 0o700)
    prog = os.path.join(base, "program.py")
    with open(prog, "w", encoding="utf-8") as f:
      f.write(program)
    out_path = os.path.join(base, "output.txt")
    with open(out_path, "wb") as out, open(os.path.join(base, "verdict.json"), "w+b") as verdict:
      spec = {"program": prog, "workdir": work, "isolation": isolation, "guard": bool(guard), "seccomp": bool(seccomp),
              "limits": limits.child(), "verdict_fd": verdict.fileno()}
      env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": work, "TMPDIR": work}
      proc = subprocess.Popen([sys.executable, "-I", "-c", _child_source(), json.dumps(spec)], cwd=work, env=env,
                              stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                              pass_fds=(verdict.fileno(),), start_new_session=True)
      timed_out = False
      try:
        rc = proc.wait(timeout=limits.timeout_s)
      except subprocess.TimeoutExpired:
        timed_out = True
      try:  # the whole session: whatever the program started that is still there
        os.killpg(proc.pid, signal.SIGKILL)
      except (ProcessLookupError, PermissionError):
        pass
      rc = proc.wait()
      seconds = time.perf_counter() - t0
      verdict.seek(0)
      raw = verdict.read(65536)
    output = _tail(out_path, limits.output_kb)
    if timed_out:
      return Result("timed_out", f"wall-clock limit ({limits.timeout_s:g} s)", seconds, isolation, output)
    try:
      v = json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, json.JSONDecodeError):
      v = None
    if isinstance(v, dict) and v.get("status") in STATUSES:
      return Result(v["status"], str(v.get("detail", "")), seconds, isolation, output)
    status, detail = _classify(rc, isolation, limits)
    return Result(status, detail, seconds, isolation, output)
  finally:
    _remove(base)


class Sandbox:
  """Runs programs under `limits`; see the module docstring for `isolation`, `seccomp` and `guard`. `tmpdir`: where
  each program's private directory is made (default: the system's temporary directory)."""

  def __init__(self, limits: Limits = Limits(), *, isolation: str = "auto", seccomp="auto", guard: bool = True,
               workers: int = 0, tmpdir: Optional[str] = None):
    if isolation not in ISOLATIONS:
      raise ValueError(f"sandbox isolation must be one of {ISOLATIONS}, got {isolation!r}")
    if seccomp not in ("auto", True, False):
      raise ValueError(f"sandbox seccomp must be 'auto', True or False, got {seccomp!r}")
    self.limits, self.guard, self.tmpdir = limits, bool(guard), tmpdir
    self.workers = int(workers) or os.cpu_count() or 1
    self.why: dict = {}
    if "auto" in (isolation, seccomp):
      found = probe()
      self.why = found["why"]
      if isolation == "auto":
        isolation = "namespaces" if found["namespaces"] else "process"
      if seccomp == "auto":
        seccomp = found["seccomp"]
    self.isolation, self.seccomp = isolation, bool(seccomp)

  def describe(self) -> dict:
    """The layers in force (and why any is missing), the limits and the worker count: recorded with results."""
    return {"isolation": self.isolation, "seccomp": self.seccomp, "guard": self.guard, "why_not": dict(self.why),
            "workers": self.workers, "limits": dataclasses.asdict(self.limits)}

  def run(self, program: str) -> Result:
    return _run_one(program, self.limits, self.isolation, guard=self.guard, seccomp=self.seccomp, tmpdir=self.tmpdir)

  def run_many(self, programs: Sequence[str], *, progress: Optional[Callable[[int, int], None]] = None) -> list:
    """Results in the order of `programs`, run `workers` at a time; progress(done, total) after each."""
    programs = list(programs)
    out: list = [None] * len(programs)
    done = 0
    with concurrent.futures.ThreadPoolExecutor(self.workers) as pool:
      futures = {pool.submit(self.run, p): i for i, p in enumerate(programs)}
      for fut in concurrent.futures.as_completed(futures):
        out[futures[fut]] = fut.result()
        done += 1
        if progress is not None:
          progress(done, len(programs))
    return out


def counts(results: Sequence[Result]) -> dict:
  """{status: how many} over every status (zeros included)."""
  return {s: sum(r.status == s for r in results) for s in STATUSES}
