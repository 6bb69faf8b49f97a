"""Multi-host helpers: when to call ``jax.distributed.initialize``, who logs, and preemption.

Every host of a TPU pod slice runs the same program (launch/run.sh starts it with ``--worker=all``).
Before any JAX computation each process must join the distributed runtime, or it only sees its own
chips and the "global" mesh silently becomes a per-host mesh. ``maybe_initialize`` decides whether
this run is multi-host from the environment and joins exactly once:

* ``mode="on"`` always initialises, ``mode="off"`` never does.
* ``mode="auto"`` first honours ``HHH_DISTRIBUTED`` (``on``/``off``/``auto``; launch/run.sh exports
  ``HHH_DISTRIBUTED=on`` because on GCE TPU VMs the topology lives in the metadata server, not in
  environment variables of an ssh shell), then initialises when any of these says "several hosts":

  - ``JAX_COORDINATOR_ADDRESS`` + ``JAX_NUM_PROCESSES`` (> 1) + ``JAX_PROCESS_ID``: a manual run,
    e.g. launch/local.sh simulating N processes on localhost. These three are passed to
    ``jax.distributed.initialize`` explicitly (jax itself only reads the address from the env).
  - ``TPU_WORKER_HOSTNAMES`` (or ``TPU_PROCESS_ADDRESSES``) listing more than one host (GKE, and
    TPU VMs whose runtime exports its env).
  - ``MEGASCALE_NUM_SLICES`` > 1 or ``MEGASCALE_COORDINATOR_ADDRESS`` set: multislice over DCN.

Preemption: spot/queued TPU VMs get SIGTERM shortly before they are reclaimed.
``install_preemption_handler`` turns that signal into a flag; the trainer polls
``preemption_requested()`` once per step, writes a final checkpoint (all hosts take part) and
returns normally, so the process exits 0 and the next launch resumes from that checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

MODES = ("auto", "on", "off")

# Set once this process has joined (or decided not to join) the distributed runtime.
_info: "DistributedInfo | None" = None
_lock = threading.Lock()

_preempted = threading.Event()
_preempt_signal: int | None = None
_previous_handlers: dict[int, Any] = {}


@dataclasses.dataclass(frozen=True)
class DistributedInfo:
  """What this process learned when joining (or not joining) the distributed runtime."""
  initialized: bool          # True when jax.distributed.initialize was called by us
  reason: str                # why we did / did not initialise (for the first log line)
  process_index: int
  process_count: int
  local_device_count: int
  device_count: int

  @property
  def is_primary(self) -> bool:
    return self.process_index == 0


def _int_env(env: Mapping[str, str], key: str) -> int | None:
  raw = env.get(key)
  if raw is None or raw.strip() == "":
    return None
  try:
    return int(raw)
  except ValueError as e:
    raise ValueError(f"{key}={raw!r} is not an integer") from e


def _manual_args(env: Mapping[str, str]) -> dict[str, Any] | None:
  """Coordinator/num_processes/process_id from JAX_* variables, or None if not a manual run."""
  addr = env.get("JAX_COORDINATOR_ADDRESS")
  num = _int_env(env, "JAX_NUM_PROCESSES")
  pid = _int_env(env, "JAX_PROCESS_ID")
  given = [k for k, v in (("JAX_COORDINATOR_ADDRESS", addr), ("JAX_NUM_PROCESSES", num),
                          ("JAX_PROCESS_ID", pid)) if v is not None]
  if not given:
    return None
  if len(given) != 3:
    missing = sorted({"JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"} - set(given))
    raise ValueError(f"manual multi-process run needs all of JAX_COORDINATOR_ADDRESS, "
                     f"JAX_NUM_PROCESSES, JAX_PROCESS_ID; missing {', '.join(missing)}")
  if num < 1 or not 0 <= pid < num:
    raise ValueError(f"JAX_PROCESS_ID={pid} must be in [0, JAX_NUM_PROCESSES={num})")
  return {"coordinator_address": addr, "num_processes": num, "process_id": pid}


def detect(env: Mapping[str, str] | None = None) -> tuple[bool, str]:
  """(is multi-host, reason) from environment variables only; never touches JAX or the network."""
  env = os.environ if env is None else env
  forced = env.get("HHH_DISTRIBUTED", "auto").strip().lower()
  if forced not in MODES:
    raise ValueError(f"HHH_DISTRIBUTED={forced!r}; expected one of {MODES}")
  if forced != "auto":
    return forced == "on", f"HHH_DISTRIBUTED={forced}"
  manual = _manual_args(env)
  if manual is not None:
    n = manual["num_processes"]
    return n > 1, f"JAX_NUM_PROCESSES={n}"
  for key in ("TPU_PROCESS_ADDRESSES", "TPU_WORKER_HOSTNAMES"):
    hosts = [h for h in env.get(key, "").split(",") if h.strip()]
    if hosts:
      return len(hosts) > 1, f"{key} lists {len(hosts)} host(s)"
  slices = _int_env(env, "MEGASCALE_NUM_SLICES")
  if slices is not None and slices > 1:
    return True, f"MEGASCALE_NUM_SLICES={slices}"
  if env.get("MEGASCALE_COORDINATOR_ADDRESS"):
    return True, "MEGASCALE_COORDINATOR_ADDRESS is set"
  return False, "no multi-host environment variables"


def maybe_initialize(mode: str = "auto", *, env: Mapping[str, str] | None = None,
                     initialize_fn: Callable[..., None] | None = None) -> DistributedInfo:
  """Join the distributed runtime when this run spans several hosts; idempotent.

  Call first thing in a program's main, before any JAX computation. A second call returns the
  first call's info without initialising again (whatever its ``mode``). ``env`` and
  ``initialize_fn`` (default ``jax.distributed.initialize``) exist so tests need no cluster.
  """
  global _info
  if mode not in MODES:
    raise ValueError(f"mode={mode!r}; expected one of {MODES}")
  with _lock:
    if _info is not None:
      return _info
    env = os.environ if env is None else env
    if mode == "auto":
      multi, reason = detect(env)
    else:
      multi, reason = mode == "on", f"mode={mode}"
    if multi:
      if initialize_fn is None:
        import jax
        initialize_fn = jax.distributed.initialize
      # Explicit JAX_* variables win over cluster auto-detection (jax only reads the address).
      kwargs = _manual_args(env) or {}
      initialize_fn(**kwargs)
    import jax
    _info = DistributedInfo(initialized=multi, reason=reason,
                            process_index=jax.process_index(), process_count=jax.process_count(),
                            local_device_count=jax.local_device_count(),
                            device_count=jax.device_count())
    return _info


def info() -> DistributedInfo | None:
  """The result of the first ``maybe_initialize`` call, or None before it."""
  return _info


def is_primary() -> bool:
  """True on process 0: the one process that logs metrics, writes summaries and prints."""
  import jax
  return jax.process_index() == 0


def _on_signal(signum, frame):  # noqa: ARG001 - signal handler signature
  global _preempt_signal
  if signum == signal.SIGINT and _preempted.is_set():
    raise KeyboardInterrupt  # a second Ctrl-C: stop now, without the final save
  _preempt_signal = signum
  _preempted.set()
  if signum == signal.SIGINT:
    print("\nCtrl-C: saving a checkpoint at the end of this step, then stopping (press Ctrl-C again to stop "
          "at once, without saving)", file=sys.stderr, flush=True)


def install_preemption_handler(signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> None:
  """Record SIGTERM and SIGINT (Ctrl-C) in a flag instead of dying; see ``preemption_requested``.

  A second SIGINT raises KeyboardInterrupt (stop at once, no final save).

  Must be called from the main thread (Python only installs signal handlers there). Installing
  twice is harmless. The previous handlers are kept so ``reset_preemption`` can restore them.
  """
  for sig in signals:
    previous = signal.signal(sig, _on_signal)
    if previous is not _on_signal:
      _previous_handlers[sig] = previous


def preemption_requested() -> bool:
  """True once a preemption signal arrived: save a final checkpoint and return from training.

  Hosts receive SIGTERM at slightly different times; in a multi-host run act on
  ``any_process_preempted()`` instead, so every host takes part in the same final save.
  """
  return _preempted.is_set()


def any_process_preempted(step: int | None = None, every: int = 1) -> bool:
  """``preemption_requested()`` OR-ed over all processes.

  Every host must call it at the same steps, so all of them see the same answer and take part in
  the same final checkpoint. With one process it is just the local flag (no synchronisation).
  With several it is a small all-gather that waits for the work already dispatched, which stops
  the host from running ahead; pass ``step`` and ``every`` to pay that only when
  ``step % every == 0`` (other steps return False on every host alike). A preemption notice gives
  tens of seconds, so checking every few steps is enough.
  """
  import jax
  if every < 1:
    raise ValueError(f"every must be >= 1, got {every}")
  if jax.process_count() == 1:
    return preemption_requested()
  if step is not None and step % every != 0:
    return False
  import numpy as np
  from jax.experimental import multihost_utils
  flags = multihost_utils.process_allgather(np.array([preemption_requested()], dtype=np.int32))
  return bool(np.asarray(flags).any())


def preemption_signal() -> int | None:
  """The signal number that set the flag, or None."""
  return _preempt_signal


def request_preemption() -> None:
  """Set the flag by hand (the trainer's own stop conditions, tests)."""
  _on_signal(signal.SIGTERM, None)


def reset_preemption() -> None:
  """Clear the flag and restore the signal handlers that were there before installing (tests)."""
  global _preempt_signal
  _preempted.clear()
  _preempt_signal = None
  for sig, previous in list(_previous_handlers.items()):
    signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
  _previous_handlers.clear()


def reset_for_tests() -> None:
  """Forget the cached ``maybe_initialize`` result and preemption state (does not shut down JAX)."""
  global _info
  with _lock:
    _info = None
  reset_preemption()
