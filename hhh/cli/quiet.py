"""Start-up quieting: the commands' entry points call `quiet()` before their heavy imports (jax, TensorFlow), so
the start-up noise a newcomer sees on every run is gone; importing hhh does not call it (a library user's process is
theirs). Each fix acts where the noise starts and only when the noise is certain to be meaningless:
  * JAX tries the TPU backend whenever libtpu is installed, even on a machine without a TPU; libtpu then prints
    host-bounds / TPU_WORKER_HOSTNAMES errors, writes /tmp/tpu_logs, and JAX logs "Unable to initialize backend
    'tpu'". When JAX_PLATFORMS is unset and the machine has no TPU chip (JAX's own PCI check, as JAX already does
    for CUDA), the TPU backend is not tried. Where a device node makes a TPU possible (/dev/vfio, /dev/accel:
    virtual machines and containers have them without any TPU) libtpu is tried with its stderr held: replayed
    whole if a TPU comes up, without libtpu's start-up complaints if it does not. GPUs, TPUs and an explicit
    JAX_PLATFORMS are untouched.
  * TensorFlow (only the tf.data input pipeline uses it) gets TF_CPP_MIN_LOG_LEVEL=1 unless the user set it (drops
    INFO such as the oneDNN and CPU-instruction notices), and its GPUs are hidden from it
    (tf.config.set_visible_devices([], "GPU")) so it neither claims accelerator memory next to JAX nor probes CUDA
    later. Lines that TensorFlow's C++ start-up writes to stderr regardless of that level ("Could not find cuda
    drivers", "failed call to cuInit", "All log messages before absl::InitializeLog()", duplicate CUDA factory
    registrations) are dropped while `import tensorflow` runs; every other line is passed through unchanged.
  * TensorFlow's autograph writes one __autograph_generated_file*.py per converted function into the system
    temporary directory and removes them only at a clean exit, so killed runs (timeouts, SIGKILL, crashes) leave
    them behind by the hundred. They go to a per-process directory instead (hhh-autograph-HOST-PID-*), removed at
    exit; directories left by dead processes of this host are removed by the next run.
  * Known harmless log records: orbax's "Metadata file does not exist: .../_CHECKPOINT_METADATA" (reading an item
    directory of a step, whose metadata lives one level up) and seqio's "Using an uncached FunctionDataset for
    training" (the embedded tasks are in memory; the trainer's exact resume replays the data order itself).
HHH_QUIET=0 turns all of this off (to debug accelerator set-up, for instance).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import glob
import importlib.abc
import importlib.util
import logging
import os
import re
import shutil
import socket
import sys
import tempfile
from typing import Any, Callable, Sequence

_QUIET_DONE = False
_USER_TPU_LIBRARY = False  # TPU_LIBRARY_PATH set by the user (jax sets it itself once libtpu is found)

# Lines TensorFlow's C++ start-up writes to stderr whatever TF_CPP_MIN_LOG_LEVEL says (absl logging before
# absl::InitializeLog); all harmless on a machine without CUDA or with JAX owning the GPUs.
TF_STARTUP_NOISE = [re.compile(p) for p in (
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR\s*$",
    r"cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine",
    r"\] failed call to cuInit",
    r"\] Unable to register cu(DNN|FFT|BLAS) factory",
    r"\] Computation placer already registered",
    r"\] TF-TRT Warning: Could not find TensorRT",
    r"oneDNN custom operations are on",
)]

# What libtpu writes to stderr when it is loaded on a machine that has no TPU (dropped only when its start-up fails).
TPU_STARTUP_NOISE = [re.compile(p) for p in (
    r"^Failed to find host bounds for accelerator type",
    r"^WARNING: Logging before InitGoogle\(\) is written to STDERR\s*$",
    r"TPU_WORKER_HOSTNAMES|TPU_ACCELERATOR_TYPE",
    r"^=== Source Location Trace: ===\s*$",
    r"^\S*libtpu_init_utils\.cc:\d+\s*$",
)]

# Python log records that are harmless and appear on every run (message substrings, by logger).
LOG_NOISE = {
    "absl": [  # orbax and seqio log through absl.logging
        re.compile(r"^Metadata file does not exist: .*_CHECKPOINT_METADATA$"),
        re.compile(r"^Using an uncached FunctionDataset for training is not recommended"),
    ],
    "jax._src.xla_bridge": [re.compile(r"^Unable to initialize backend 'tpu': NOT_FOUND")],
}


class _DropMessages(logging.Filter):

  def __init__(self, patterns):
    super().__init__()
    self.patterns = patterns

  def filter(self, record: logging.LogRecord) -> bool:
    try:
      msg = record.getMessage()
    except Exception:  # pylint: disable=broad-except
      return True
    return not any(p.search(msg) for p in self.patterns)


class _Held:
  """What was written to file descriptor 2 inside `_held_stderr`; `drop(patterns)` removes the matching lines."""

  def __init__(self):
    self.patterns: Sequence[re.Pattern] = ()

  def drop(self, patterns):
    self.patterns = tuple(self.patterns) + tuple(patterns)


@contextlib.contextmanager
def _held_stderr():
  """Collects what anything (C++ included) writes to file descriptor 2; re-emits it at the end, less the lines
  matching what was `drop`ped."""
  held = _Held()
  try:
    sys.stderr.flush()
    saved = os.dup(2)
  except (OSError, ValueError, AttributeError):
    yield held
    return
  with tempfile.TemporaryFile() as tmp:  # a file, not a pipe: a large write cannot block
    os.dup2(tmp.fileno(), 2)
    try:
      yield held
    finally:
      with contextlib.suppress(Exception):
        sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      tmp.seek(0)
      text = tmp.read().decode("utf-8", "replace")
      kept = "".join(line for line in text.splitlines(keepends=True)
                     if not any(p.search(line) for p in held.patterns))
      if kept:
        with contextlib.suppress(OSError):
          os.write(2, kept.encode("utf-8", "replace"))


@contextlib.contextmanager
def filtered_stderr(patterns=TF_STARTUP_NOISE):
  """Collects what anything (C++ included) writes to file descriptor 2 and re-emits every line but the noise."""
  with _held_stderr() as held:
    held.drop(patterns)
    yield


class _AfterImport(importlib.abc.MetaPathFinder):
  """Runs hooks right around the first import of a top-level module (wrapping its loader's exec_module)."""

  def __init__(self):
    self.hooks: dict[str, tuple[Callable[[], Any], Callable[[Any], None]]] = {}
    self._busy: set[str] = set()

  def find_spec(self, name, path=None, target=None):  # noqa: D401
    if name not in self.hooks or name in self._busy:
      return None
    self._busy.add(name)
    try:
      spec = importlib.util.find_spec(name)
    finally:
      self._busy.discard(name)
    # A spec can be asked for without an import (importlib.util.find_spec("tensorflow") to test for it), so the
    # hook stays until a loader actually executes the module.
    around, after = self.hooks[name]
    loader = getattr(spec, "loader", None)
    if loader is None or not hasattr(loader, "exec_module"):
      return spec
    exec_module = loader.exec_module

    def exec_and_hook(module):
      if self.hooks.pop(name, None) is None:
        return exec_module(module)
      if not self.hooks and self in sys.meta_path:
        sys.meta_path.remove(self)
      with around():
        exec_module(module)
        with contextlib.suppress(Exception):
          after(module)

    loader.exec_module = exec_and_hook
    return spec


_FINDER = _AfterImport()


def after_import(name: str, after: Callable[[Any], None], around: Callable[[], Any] = contextlib.nullcontext):
  """Calls after(module) once `name` is imported (now, if it already is), inside the `around()` context."""
  if name in sys.modules:
    with around():
      with contextlib.suppress(Exception):
        after(sys.modules[name])
    return
  _FINDER.hooks[name] = (around, after)
  if _FINDER not in sys.meta_path:
    sys.meta_path.insert(0, _FINDER)


def _no_tpu_here() -> bool:
  from jax._src import hardware_utils  # pylint: disable=g-import-not-at-top
  if hardware_utils.num_available_tpu_chips_and_device_id()[0]:
    return False
  return not (glob.glob("/dev/accel*") or glob.glob("/dev/vfio/[0-9]*"))


def _skip_absent_tpu(jax_module) -> None:
  """No TPU backend attempt (libtpu start-up errors, /tmp/tpu_logs) when JAX could only fall back from it."""
  del jax_module
  if os.environ.get("JAX_PLATFORMS") or "JAX_FORCE_TPU_INIT" in os.environ or _USER_TPU_LIBRARY:
    return
  try:
    _replace_tpu_factory()
  except Exception:  # pylint: disable=broad-except  (private JAX internals: a JAX that differs keeps its noise)
    pass


def _replace_tpu_factory() -> None:
  from jax._src import config as jax_config  # pylint: disable=g-import-not-at-top
  from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
  if jax_config.jax_platforms.value or getattr(xla_bridge, "_backends", None):
    return
  factories = getattr(xla_bridge, "_backend_factories", None)
  if not (isinstance(factories, dict) and "tpu" in factories):
    return
  if _no_tpu_here():
    # The platform stays known (lowering rules are registered for it); only its start-up is skipped. JAX treats
    # the error like libtpu's own "TPU initialization failed" (fail_quietly) and falls back as before.
    def no_tpu():
      raise RuntimeError("NOT_FOUND: no TPU chip on this machine (libtpu not loaded; set JAX_PLATFORMS=tpu or "
                         "JAX_FORCE_TPU_INIT=1 to try anyway)")
    factories["tpu"] = dataclasses.replace(factories["tpu"], factory=no_tpu)
    return
  # Something looks like an accelerator (a /dev/vfio or /dev/accel node: virtual machines and containers have them
  # without any TPU), so libtpu is tried. Its stderr is held while it starts: replayed whole when a TPU comes up,
  # and without libtpu's own start-up complaints when it does not (JAX then falls back, as it always did).
  real = factories["tpu"].factory

  def tpu_or_quiet_failure(*args, **kwargs):
    with _held_stderr() as held:
      try:
        backend = real(*args, **kwargs)
      except BaseException:
        held.drop(TPU_STARTUP_NOISE)
        raise
    return backend

  factories["tpu"] = dataclasses.replace(factories["tpu"], factory=tpu_or_quiet_failure)


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except OSError:
    return True  # exists, not ours
  return True


def _autograph_prefix() -> str:
  host = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:40] or "host"
  return f"hhh-autograph-{host}-"


def remove_stale_autograph_dirs() -> None:
  """Removes the autograph directories of this host's processes that are gone (killed before their atexit)."""
  prefix = _autograph_prefix()
  for d in glob.glob(os.path.join(glob.escape(tempfile.gettempdir()), glob.escape(prefix) + "*")):
    pid = os.path.basename(d)[len(prefix):].split("-", 1)[0]
    if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
      shutil.rmtree(d, ignore_errors=True)


def autograph_dir() -> str:
  """This process's directory for autograph's generated files (created on first use, removed at exit)."""
  global _AUTOGRAPH_DIR
  if _AUTOGRAPH_DIR and os.path.isdir(_AUTOGRAPH_DIR):
    return _AUTOGRAPH_DIR
  base, prefix = tempfile.gettempdir(), _autograph_prefix()
  _AUTOGRAPH_DIR = tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=base)
  owner = os.getpid()
  atexit.register(lambda d=_AUTOGRAPH_DIR: os.getpid() == owner and shutil.rmtree(d, ignore_errors=True))
  return _AUTOGRAPH_DIR


_AUTOGRAPH_DIR = ""


class _AutographTempfile:
  """Stands in for the `tempfile` module inside autograph's loader: its files go to autograph_dir()."""

  def __getattr__(self, name):
    return getattr(tempfile, name)

  @staticmethod
  def NamedTemporaryFile(*args, **kwargs):  # noqa: N802  pylint: disable=invalid-name
    if kwargs.get("dir") is None and len(args) < 6:
      kwargs["dir"] = autograph_dir()
    return tempfile.NamedTemporaryFile(*args, **kwargs)


def _setup_tensorflow(tf) -> None:
  with contextlib.suppress(Exception):
    from tensorflow.python.autograph.pyct import loader  # pylint: disable=g-import-not-at-top
    if getattr(loader, "tempfile", None) is tempfile:
      loader.tempfile = _AutographTempfile()
      remove_stale_autograph_dirs()
  with contextlib.suppress(Exception):  # RuntimeError when TF's devices are already initialised
    tf.config.set_visible_devices([], "GPU")


def quiet() -> None:
  """Installs the start-up noise fixes described in the module docstring (once; HHH_QUIET=0: never)."""
  global _QUIET_DONE
  if _QUIET_DONE or os.environ.get("HHH_QUIET", "1").strip().lower() in ("0", "false", "no", "off"):
    return
  _QUIET_DONE = True
  global _USER_TPU_LIBRARY
  _USER_TPU_LIBRARY = "TPU_LIBRARY_PATH" in os.environ and "jax" not in sys.modules
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
  for name, patterns in LOG_NOISE.items():
    logging.getLogger(name).addFilter(_DropMessages(patterns))
  after_import("jax", _skip_absent_tpu)
  after_import("tensorflow", _setup_tensorflow, around=filtered_stderr)
