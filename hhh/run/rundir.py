"""A run's directory: held by one run at a time, and its record (config.json, run.json) never silently rewritten.

The lock is an OS file lock (`fcntl.flock`) on WORKDIR/.lock, which the kernel releases when the holder exits in any
way (crash, SIGKILL), so a dead run never leaves the workdir stuck; the file names the holder (host, pid, start time,
command) for the error the second run gets. In a multi-host run the processes share one workdir: only process 0
takes the lock. Remote workdirs (gs://) have no file locks and are not locked.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket
import sys
import tempfile

import ml_collections

from hhh.config.record import read_run_config
from hhh.core import paths
from hhh.core.errors import ConfigError, UserError

LOCK_NAME = ".lock"
# Differences in these keys change the shapes in the checkpoint: resuming with them changed cannot work.
STATE_KEYS = ("size", "model.", "objective.name")


class WorkdirInUseError(UserError, RuntimeError):
  pass


class ConfigMismatchError(UserError, ValueError):
  pass


def check_writable(workdir: str) -> None:
  """A workdir the run can write: not empty, not a file, and writable (itself and its checkpoints/, or the nearest
  existing parent when it does not exist yet). Checked before anything is built: a read-only checkpoints/ folder
  used to hang in orbax's barrier for minutes before failing with tracebacks."""
  if not workdir:
    raise ConfigError("--workdir is empty: give the run's directory (created if needed)")
  if paths.is_remote(workdir):
    return
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ConfigError(f"--workdir={workdir} is a file, not a directory")
  existing = workdir
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  for d in (existing, os.path.join(workdir, "checkpoints")):
    if not os.path.isdir(d):
      continue
    try:  # a real write (os.access says yes to root on an immutable folder or a read-only mount)
      with tempfile.NamedTemporaryFile(dir=d, prefix=".hhh-write-probe-"):
        pass
    except OSError as e:
      raise ConfigError(f"{d} is not writable ({e.strerror}): the run writes its checkpoints and records there; fix "
                        f"its permissions or choose another --workdir") from None


class WorkdirLock:
  """`with WorkdirLock(workdir):` holds the workdir for this process or raises WorkdirInUseError naming the holder."""

  def __init__(self, workdir: str, *, enabled: bool = True):
    self.workdir = workdir
    self.enabled = enabled and not paths.is_remote(workdir)
    self.path = os.path.join(workdir, LOCK_NAME)
    self._fd: int | None = None

  def acquire(self) -> None:
    if not self.enabled or self._fd is not None:
      return
    os.makedirs(self.workdir, exist_ok=True)
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      try:
        holder = os.read(fd, 4096).decode("utf-8", "replace").strip()
      finally:
        os.close(fd)
      raise WorkdirInUseError(
          f"workdir {self.workdir} is in use by another run ({holder or 'holder unknown'}). Two runs in one workdir "
          f"would overwrite each other's checkpoints and logs: wait for it to finish, stop it, or choose another "
          f"--workdir.") from None
    os.ftruncate(fd, 0)
    os.write(fd, (f"pid {os.getpid()} on host {socket.gethostname()} since "
                  f"{datetime.datetime.now().isoformat(timespec='seconds')}: {' '.join(sys.argv)[:500]}\n").encode())
    self._fd = fd

  def release(self) -> None:
    if self._fd is not None:
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None

  def __enter__(self):
    self.acquire()
    return self

  def __exit__(self, *exc):
    self.release()
    return False


def _flatten(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def config_differences(old: dict, new: dict) -> dict[str, tuple]:
  """{dotted key: (old value, new value)} for every key whose value differs or exists on one side only."""
  a, b = _flatten(old), _flatten(new)
  return {k: (a.get(k, "<absent>"), b.get(k, "<absent>")) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def config_dict(config: ml_collections.ConfigDict) -> dict:
  return json.loads(config.to_json_best_effort(sort_keys=True))


def record_config(config: ml_collections.ConfigDict, workdir: str, *, resume_step: int | None,
                  log=print) -> str:
  """Writes the resolved config. A fresh run writes config.json. A resumed run first compares with the config.json
  it was started with: changed model shape or objective is an error naming the keys (before anything is
  overwritten); other changes (steps, lr, ...) are allowed, listed in the log, and recorded in
  config.resume-<step>.json so config.json stays the record of how the run began. Returns the path written."""
  os.makedirs(workdir, exist_ok=True)
  first = os.path.join(workdir, "config.json")
  new = config_dict(config)
  text = json.dumps(new, indent=2, sort_keys=True) + "\n"
  diff = check_resumable(config, workdir, resume_step=resume_step)
  if diff is not None:
    if diff:
      log("resuming with changed settings: " + ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in diff.items()))
      path = os.path.join(workdir, f"config.resume-{resume_step}.json")
      _write_atomic(path, text)
      return path
    return first
  _write_atomic(first, text)
  return first


def check_resumable(config: ml_collections.ConfigDict, workdir: str, *, resume_step: int | None) -> dict | None:
  """Writes nothing. For a resumed run whose config.json reads: the differences from it ({key: (old, new)}), or
  ConfigMismatchError when the model or objective changed (its checkpoints cannot be restored). None otherwise (a
  fresh run, or no readable config.json: the restore decides, and the trainer writes the record only after it)."""
  first = os.path.join(workdir, "config.json")
  if resume_step is None or not os.path.exists(first):
    return None
  try:
    old = read_run_config(workdir)
  except json.JSONDecodeError:
    return None
  diff = config_differences(old, config_dict(config))
  fatal = {k: v for k, v in diff.items() if any(k == s or k.startswith(s) for s in STATE_KEYS)}
  if fatal:
    listing = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in fatal.items())
    raise ConfigMismatchError(
        f"workdir {workdir} holds a run with a different model or objective ({listing}); its checkpoints cannot "
        f"be resumed with this config. Use another --workdir, or the run's own config ({first}).")
  return diff


def _write_atomic(path: str, text: str) -> None:
  tmp = f"{path}.tmp.{os.getpid()}"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)
