"""Orbax checkpoints: one checkpoint holds the train state (params, optimiser state, step) and the data position.

Layout: `WORKDIR/checkpoints/<step>/{state,data}`. Saves are asynchronous and atomic (orbax writes to a temporary
directory and renames), every host writes its own shards cooperatively, old steps beyond `keep` are deleted.
Restores go directly onto the target sharding (abstract arrays carry their `NamedSharding`), so a 52B state is
never materialised whole on one host. Every finished save gets checksums (hhh.run.checksums), verified before a restore.

Reading a trained run without training it (hhh.eval, hhh.sample, hhh.chat, init_from, export) is hhh.run.model.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sys
from typing import Callable

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from etils import epath

from hhh.run import checksums
from hhh.core import paths
from hhh.core.errors import UserError

STATE, DATA = "state", "data"
CORRUPT_DIR = "checkpoints_corrupt"


class CheckpointNotFoundError(UserError, FileNotFoundError):
  pass


class CorruptCheckpointError(UserError, RuntimeError):
  """No checkpoint of the run could be restored; the message lists each one and why."""


def no_space_left(exc: BaseException) -> bool:
  """True when `exc` (or anything in its cause/context chain) is a full disk."""
  seen = set()
  while exc is not None and id(exc) not in seen:
    seen.add(id(exc))
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
      return True
    if "No space left on device" in str(exc):
      return True
    exc = exc.__cause__ or exc.__context__
  return False


@jax.jit
def all_finite(tree) -> jax.Array:
  """One scalar: every floating-point leaf of `tree` is finite (a reduction on device; cheap next to a step)."""
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def _short(exc: BaseException, limit: int = 300) -> str:
  text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
  return text if len(text) <= limit else text[:limit] + " ..."


def _is_late_read_of_a_failed_restore(unraisable) -> bool:
  if isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == "Event loop is closed":
    return True  # a TensorStore read completing into orbax's closed event loop
  code = getattr(unraisable.object, "cr_code", None)  # an orbax read coroutine whose error nobody awaited
  return code is not None and f"{os.sep}orbax{os.sep}checkpoint{os.sep}" in code.co_filename


def _quiet_late_reads_of_failed_restores():
  """After a restore fails, orbax has closed its event loop while TensorStore reads of the same checkpoint may still
  be in flight. Each that completes later calls back into the closed loop ("RuntimeError: Event loop is closed"), and
  each sibling read that failed too is a coroutine whose exception nobody awaited ("Exception ignored in: <coroutine
  object _read_array_index_and_device_put>" with TensorStore's whole spec): Python prints every one on stderr, tens
  of KB interleaved, after the run has already reported the checkpoint unusable and moved on. They say nothing
  new: the checkpoint is reported (its first error) and skipped. From the first restore attempt on (not the first
  failure: orbax closes its loop inside the failing call, before the error reaches restore_latest; a read landing in
  between is printed otherwise), this process's unraisable-exception hook drops exactly those two
  kinds and passes every other one to the hook it replaced, and the asyncio logger drops the failed gather of those
  reads; the run's own WARNING lines are unchanged
  (tests/test_faults.py::test_a_corrupt_checkpoint_on_the_command_line_is_one_warning_and_no_tracebacks)."""
  previous = sys.unraisablehook
  if getattr(previous, "hhh_quiet_late_reads", False):
    return
  # The failed gather of those reads, garbage-collected later, is logged by asyncio ("exception was never retrieved").
  # A shape mismatch (another model size against this run's checkpoints) fails in orbax's async_deserialize tasks.
  logging.getLogger("asyncio").addFilter(
      lambda r: not ("never retrieved" in str(r.msg) and any(
          s in r.getMessage() for s in ("while reading array index", "coro=<async_deserialize()"))))

  def hook(unraisable):
    if not _is_late_read_of_a_failed_restore(unraisable):
      previous(unraisable)

  hook.hhh_quiet_late_reads = True
  sys.unraisablehook = hook


def abstract_with_shardings(abstract_tree, shardings):
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract_tree, shardings)


class Checkpointer:
  """The run's CheckpointManager: save every `every` steps, keep the last `keep`, resume from the latest."""

  def __init__(self, workdir: str, *, every: int, keep: int, async_save: bool = True,
               max_write_bytes: int | None = None):
    """`max_write_bytes`: the most bytes of array data orbax has in flight to storage at once (None: orbax's
    default, 96 GB). Without a bound every array's encoded chunks can be buffered at once; with one a save's host memory
    is the arrays plus about the bound. Orbax reserves whole arrays, so it must be at least the largest array (a
    save fails naming both sizes otherwise). tools/hf_import.py bounds its write this way (docs/interop.md)."""
    if int(every) < 1:
      raise ValueError(f"train.checkpoint_every must be >= 1 (steps between saves), got {every}; the final step is "
                       f"always saved, so train.checkpoint_every=train.steps saves only at the end")
    if int(keep) < 1:
      raise ValueError(f"train.keep_checkpoints must be >= 1 (how many recent checkpoints to keep), got {keep}")
    self.workdir = epath.Path(paths.resolve(workdir))
    self.directory = self.workdir / "checkpoints"
    self._unchecksummed: set[int] = set()
    options = ocp.CheckpointManagerOptions(
        save_interval_steps=int(every), max_to_keep=int(keep), create=True,
        enable_async_checkpointing=async_save)
    if max_write_bytes is None:
      self.manager = ocp.CheckpointManager(self.directory, item_names=(STATE, DATA), options=options)
    else:
      if int(max_write_bytes) < 1:
        raise ValueError(f"max_write_bytes must be a positive number of bytes, got {max_write_bytes}")
      self.manager = ocp.CheckpointManager(self.directory, options=options, item_handlers={
          STATE: ocp.StandardCheckpointHandler(save_concurrent_gb=int(max_write_bytes) / 10**9),
          DATA: ocp.JsonCheckpointHandler()})

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state, data_state: dict, *, force: bool = False) -> bool:
    """Starts the save of `step` (async unless async_save=False); the previous save's checksums are written first
    (orbax would wait for that save here anyway)."""
    self._write_checksums()
    saved = self.manager.save(step, args=ocp.args.Composite(
        **{STATE: ocp.args.StandardSave(state), DATA: ocp.args.JsonSave(data_state)}), force=force)
    if saved:
      self._unchecksummed.add(int(step))
    return saved

  def _write_checksums(self) -> None:
    """Checksums (hhh.run.checksums) of the steps this Checkpointer saved, once orbax has finished them. Only those: a
    checkpoint found on disk is never blessed with checksums it was not saved with."""
    pending = self._unchecksummed
    if not pending:
      return
    self.manager.wait_until_finished()
    if jax.process_index() == 0 and not paths.is_remote(str(self.directory)):
      for step in sorted(pending):
        step_dir = os.path.join(str(self.directory), str(step))
        if os.path.isdir(step_dir):  # (not rotated away meanwhile)
          checksums.write(step_dir)
    pending.clear()

  def verified(self, step: int) -> bool:
    """True when checkpoint `step` matches its checksums, False when it has none (saved by an older hhh, or cut
    before they were written); CorruptFilesError naming the damaged file otherwise."""
    if paths.is_remote(str(self.directory)):
      return False
    return checksums.verify(os.path.join(str(self.directory), str(step)))

  def restore(self, step: int, abstract_state, *, verify: bool = True):
    """`abstract_state`: ShapeDtypeStructs with shardings (see `abstract_with_shardings`). The step's checksums are
    verified first (CorruptFilesError naming a damaged file) unless `verify` is False (already done)."""
    if verify:
      self.verified(step)
    out = self.manager.restore(step, args=ocp.args.Composite(
        **{STATE: ocp.args.StandardRestore(abstract_state), DATA: ocp.args.JsonRestore()}))
    return out[STATE], out[DATA]

  def should_save(self, step: int) -> bool:
    return self.manager.should_save(step)

  def all_steps(self) -> list[int]:
    return sorted(self.manager.all_steps())

  def restore_latest(self, abstract_state, *, log: Callable[[str], None] = print,
                     check: Callable[[object], str | None] | None = None, move_aside: bool = True):
    """Restores the newest checkpoint that reads back whole; None when the run has none.

    A checkpoint that fails to restore (truncated or missing files, garbage metadata) or that `check(state)`
    rejects (returns a reason, e.g. non-finite parameters) is reported loudly and the previous one is tried. Once one
    restores, the newer broken ones are moved to WORKDIR/checkpoints_corrupt/ (kept for inspection, out of the
    manager's way, so the resumed run can save those steps again). If none restores, nothing is moved and the error
    lists every checkpoint with its reason. Returns (step, state, data_state).
    """
    steps = self.all_steps()
    if not steps:
      return None
    _quiet_late_reads_of_failed_restores()  # before the first restore: a late read can land as soon as one fails
    broken: list[tuple[int, str]] = []
    for step in reversed(steps):
      try:
        if not self.verified(step) and not paths.is_remote(str(self.directory)):
          log(f"WARNING: checkpoint {self.directory / str(step)} has no checksums (saved by an older hhh, or cut "
              f"before they were written): restoring it unverified")
        state, data_state = self.restore(step, abstract_state, verify=False)
        if "train_batches" not in data_state:
          raise ValueError(f"data position record has no 'train_batches': {data_state!r}")
        reason = check(state) if check is not None else None
        if reason:
          raise ValueError(reason)
      except Exception as e:  # pylint: disable=broad-except  (any failure to read back = this checkpoint is unusable)
        broken.append((step, _short(e)))
        log(f"WARNING: checkpoint {self.directory / str(step)} cannot be used: {_short(e)}")
        continue
      if broken:
        moved = [self._move_aside(s) for s, _ in broken] if move_aside else []
        log(f"WARNING: resuming from the previous complete checkpoint, step {step}; "
            + (f"moved the unusable one(s) to {', '.join(str(m) for m in moved)}" if moved else
               f"delete the unusable one(s) ({', '.join(str(s) for s, _ in broken)}) before saving those steps"))
      return step, state, data_state
    listing = "; ".join(f"step {s}: {why}" for s, why in broken)
    raise CorruptCheckpointError(
        f"no checkpoint in {self.directory} can be restored ({listing}). If they were written by this run's config, "
        f"they are damaged: move {self.directory} away to start afresh, or restore a copy. If the config changed "
        f"since, rerun with the config in {self.workdir / 'config.json'}.")

  def _move_aside(self, step: int) -> epath.Path:
    src = self.directory / str(step)
    dest_root = self.workdir / CORRUPT_DIR
    dest_root.mkdir(parents=True, exist_ok=True)
    dest, n = dest_root / str(step), 1
    while dest.exists():
      dest, n = dest_root / f"{step}.{n}", n + 1
    shutil.move(str(src), str(dest))
    self.manager.reload()
    return dest

  def partial_saves(self) -> list[str]:
    """Folders of saves that never completed (orbax writes `<step>.orbax-checkpoint-tmp*` and renames it when whole)
    for steps after the newest complete checkpoint: this run's, as the workdir lock is held."""
    latest = self.latest_step() or 0
    out = []
    for p in sorted(self.directory.iterdir()) if self.directory.exists() else []:
      step = p.name.split(".", 1)[0]
      if ".orbax-checkpoint-tmp" in p.name and step.isdigit() and int(step) > latest:
        out.append(str(p))
    return out

  def reached_preemption(self, step: int) -> bool:
    return self.manager.reached_preemption(step)

  def wait(self):
    self.manager.wait_until_finished()
    self._write_checksums()

  def close(self):
    self._write_checksums()
    self.manager.close()


def remove_partial_saves(checkpointer: Checkpointer) -> list[str]:
  """Removes `checkpointer.partial_saves()` (after a failed save, e.g. a full disk); returns their names."""
  removed = []
  try:
    checkpointer.manager.reload()
    for p in checkpointer.partial_saves():
      shutil.rmtree(p, ignore_errors=True)
      removed.append(os.path.basename(p))
  except OSError:
    pass
  return removed


def flatten(tree, prefix=()) -> dict:
  """{key-path tuple: leaf} of a tree of nested dicts (parameters, shardings, abstract shapes)."""
  if isinstance(tree, dict):
    out = {}
    for k, v in tree.items():
      out.update(flatten(v, prefix + (k,)))
    return out
  return {prefix: tree}


def unflatten(flat: dict) -> dict:
  """The nested dicts of `flatten`'s output."""
  out = {}
  for path, v in flat.items():
    d = out
    for k in path[:-1]:
      d = d.setdefault(k, {})
    d[path[-1]] = v
  return out
