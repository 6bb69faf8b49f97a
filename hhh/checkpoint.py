"""Orbax checkpoints: one checkpoint holds the train state (params, optimiser state, step) and the data position.

Layout: `WORKDIR/checkpoints/<step>/{state,data}`. Saves are asynchronous and atomic (orbax writes to a temporary
directory and renames), every host writes its own shards cooperatively, old steps beyond `keep` are deleted.
Restores go directly onto the target sharding (abstract arrays carry their `NamedSharding`), so a 52B state is
never materialised whole on one host.

`build_model` + `load_model_params` are THE way a command that does not train (hhh.eval, hhh.sample, hhh.chat)
puts a run's parameters onto the model's shardings on the mesh.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import shutil
import sys
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from etils import epath

from hhh import paths
from hhh.errors import UserError

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
  between was printed in a CI run of 2026-12-03), this process's unraisable-exception hook drops exactly those two
  kinds and passes every other one to the hook it replaced, and the asyncio logger drops the failed gather of those
  reads; the run's own WARNING lines are unchanged
  (tests/test_faults.py::test_a_corrupt_checkpoint_on_the_command_line_is_one_warning_and_no_tracebacks)."""
  previous = sys.unraisablehook
  if getattr(previous, "hhh_quiet_late_reads", False):
    return
  # The failed gather of those reads, garbage-collected later, is logged by asyncio ("exception was never retrieved").
  logging.getLogger("asyncio").addFilter(
      lambda r: not ("never retrieved" in str(r.msg) and "while reading array index" in r.getMessage()))

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
    return self.manager.save(step, args=ocp.args.Composite(
        **{STATE: ocp.args.StandardSave(state), DATA: ocp.args.JsonSave(data_state)}), force=force)

  def restore(self, step: int, abstract_state):
    """`abstract_state`: ShapeDtypeStructs with shardings (see `abstract_with_shardings`)."""
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
        state, data_state = self.restore(step, abstract_state)
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

  def close(self):
    self.manager.close()


def _has_state(p: epath.Path) -> bool:
  return (p / "_METADATA").exists() or (p / "_CHECKPOINT_METADATA").exists() or (p / "manifest.ocdbt").exists()


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


def _state_items(path: str, what: str = "init_from") -> list[epath.Path]:
  """The orbax state item folders at `path`, newest first. A run's workdir (or its checkpoints/ folder) gives each
  complete step: a step folder without a written state item (a stray or half-made folder, an orbax tmp folder) is
  passed over, as the trainer's manager does. A step folder or its state/ folder gives itself. `what` names the
  setting that gave `path` in errors."""
  p = epath.Path(paths.resolve(path))
  if not p.exists():
    raise CheckpointNotFoundError(f"{what}: {path} does not exist")
  if (p / "checkpoints").is_dir():
    p = p / "checkpoints"
  steps = sorted(int(c.name) for c in p.iterdir() if c.is_dir() and c.name.isdigit()) if p.is_dir() else []
  items = [p / str(s) / STATE for s in reversed(steps)] if steps else [p / STATE if (p / STATE).is_dir() else p]
  items = [i for i in items if _has_state(i)]
  if not items:
    raise CheckpointNotFoundError(
        f"{what}: no checkpoint found at {path} (looked for a workdir with checkpoints/<step>/state, "
        f"a step folder, or an orbax state folder)")
  return items


def _state_item_dir(path: str, what: str = "init_from") -> epath.Path:
  """The newest complete state item folder at `path` (see `_state_items`)."""
  return _state_items(path, what)[0]


def _warn(line: str) -> None:
  print(line, file=sys.stderr, flush=True)


def run_model_config(path: str, what: str = "checkpoint") -> Optional[dict]:
  """The `model` section of the config.json of the run that wrote the checkpoint at `path` (its workdir is the
  checkpoint's nearest ancestor holding a config.json, up to the workdir above checkpoints/<step>/state), or None
  when there is none (e.g. a bare step folder)."""
  p = _state_item_dir(path, what)
  for d in [p, *list(p.parents)[:3]]:
    f = d / "config.json"
    if f.is_file():
      try:
        model = json.loads(f.read_text()).get("model")
      except (json.JSONDecodeError, OSError):
        return None
      return model if isinstance(model, dict) else None
  return None


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


def _saved_params(checkpointer, item) -> dict:
  """{name tuple: array metadata} of the parameters saved in the orbax state item `item`."""
  meta = checkpointer.metadata(item)
  tree = getattr(meta, "item_metadata", meta)
  tree = getattr(tree, "tree", tree)
  if not isinstance(tree, dict) or "params" not in tree:
    raise CheckpointNotFoundError(f"checkpoint at {item} holds no 'params' (is it an hhh training checkpoint?)")
  return flatten(dict(tree["params"]))


def saved_param_names(path: str, what: str = "init_from") -> list[str]:
  """'/'-joined names of the parameters in the newest checkpoint at `path` (a workdir, checkpoints/ or a step folder)
  whose metadata reads back."""
  checkpointer, errors = ocp.PyTreeCheckpointer(), []
  for item in _state_items(path, what):
    try:
      return ["/".join(n) for n in _saved_params(checkpointer, item)]
    except Exception as e:  # pylint: disable=broad-except  (unreadable metadata: the next older one is tried)
      errors.append(f"{item.parent.name}: {_short(e)}")
  raise CorruptCheckpointError(f"{what}: no checkpoint at {path} can be read ({'; '.join(errors)})")


def load_params(path: str, params, shardings, what: str = "init_from", *, log: Callable[[str], None] = _warn):
  """Loads the parameters that exist in the checkpoint at `path` onto `shardings`; the rest keep `params`.

  The trainer's rule for a damaged run: the newest checkpoint that reads back whole is used, each newer one that
  does not is reported with one WARNING line (on stderr by default) naming it and the step used instead; nothing is
  moved (evaluation, sampling and export only read a run). Returns (params, loaded, fresh) where `loaded`/`fresh`
  are lists of '/'-joined parameter names. A parameter present in both with a different shape is an error (it
  cannot be meant as the same parameter).
  """
  checkpointer, broken = ocp.PyTreeCheckpointer(), []
  _quiet_late_reads_of_failed_restores()
  for item in _state_items(path, what):
    try:
      out = _load_item(checkpointer, item, params, shardings, what)
    except _ShapeMismatch as e:  # the wrong model for this run, not a damaged checkpoint
      raise ValueError(str(e)) from None
    except Exception as e:  # pylint: disable=broad-except  (any failure to read back = this checkpoint is unusable)
      broken.append(f"{item.parent.name}: {_short(e)}")
      log(f"WARNING: checkpoint {item.parent} cannot be used: {_short(e)}")
      continue
    if broken:
      log(f"WARNING: {what}: using the previous complete checkpoint {item.parent}")
    return out
  raise CorruptCheckpointError(f"{what}: no checkpoint at {path} can be restored ({'; '.join(broken)})")


class _ShapeMismatch(Exception):
  """A saved parameter whose shape differs from the model's (load_params re-raises it as a ValueError)."""


def _load_item(checkpointer, item, params, shardings, what):
  src = _saved_params(checkpointer, item)
  dst = flatten(params)
  dst_sh = flatten(shardings)
  wanted, fresh = {}, []
  for name, value in dst.items():
    if name in src:
      src_shape = tuple(getattr(src[name], "shape", ()) or ())
      if src_shape != tuple(value.shape):
        raise _ShapeMismatch(f"{what}: parameter {'/'.join(name)} has shape {src_shape} in {item} but "
                         f"{tuple(value.shape)} in this model")
      wanted[name] = jax.ShapeDtypeStruct(value.shape, value.dtype, sharding=dst_sh[name])
    else:
      fresh.append("/".join(name))
  target = {"params": unflatten(wanted)}
  restored = checkpointer.restore(item, args=ocp.args.PyTreeRestore(
      item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target), partial_restore=True))
  merged = dict(dst)
  merged.update(flatten(restored["params"]))
  logging.debug("loaded %s: %d parameter arrays; freshly initialised %d: %s",
               item, len(wanted), len(fresh), fresh)
  return unflatten(merged), ["/".join(n) for n in wanted], fresh


# ----------------------------------------------------------------------------------------------- a run's model


@dataclasses.dataclass
class ModelSetup:
  model: Any  # hhh.models.transformer.Transformer
  mesh: Any
  rules: tuple
  shardings: Any  # the parameters' NamedShardings
  abstract: Any  # the parameters' ShapeDtypeStructs


def build_model(model_cfg, mesh_cfg, devices=None) -> ModelSetup:
  """The model, the mesh and the parameters' shardings (as in training, without optimiser state)."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  from hhh import sharding  # pylint: disable=g-import-not-at-top
  from hhh.models.transformer import Transformer, TransformerConfig, init_inputs  # pylint: disable=g-import-not-at-top
  mc = TransformerConfig.from_config(model_cfg)
  model = Transformer(mc)
  mesh = sharding.make_mesh(mesh_cfg, devices)
  rules = sharding.rules_from_config(mesh_cfg.rules)
  boxed = jax.eval_shape(lambda r: model.init(r, init_inputs(mc))["params"], jax.random.key(0))
  with nn.logical_axis_rules(rules):
    shardings = sharding.logical_to_shardings(boxed, mesh, rules)
  return ModelSetup(model, mesh, rules, shardings, nn.meta.unbox(boxed))


def load_model_params(ms: ModelSetup, path: str, *, what: str, score_head_hint: str = ""):
  """Parameters of the checkpoint at `path` (a workdir, its checkpoints/ or a step folder) on their shardings.

  Every parameter the model uses must be in the checkpoint (a fresh score head would score nothing, fresh layers
  would generate nothing). An LM (`model.score_head=False`) refuses a preference/binary model's checkpoint: its LM
  head was not kept by that training; `score_head_hint` says what to do instead. `what` names the setting that gave
  `path` in every error (e.g. "checkpoint").
  """
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  from hhh import sharding  # pylint: disable=g-import-not-at-top
  from hhh.errors import ConfigError  # pylint: disable=g-import-not-at-top
  from hhh.models.transformer import init_inputs  # pylint: disable=g-import-not-at-top
  if ms.model.cfg.score_head is False and any(n.startswith("score_head/") for n in saved_param_names(path, what)):
    raise ConfigError(f"{what} {path} is a preference or binary model (it has a score head): used as a language "
                      f"model it would use an LM head its training did not keep." +
                      (f" {score_head_hint}" if score_head_hint else ""))

  def init(r):
    return nn.meta.unbox(ms.model.init(r, init_inputs(ms.model.cfg))["params"])

  with sharding.activate(ms.mesh, ms.rules):
    fresh_params = jax.jit(init, out_shardings=ms.shardings)(jax.random.key(0))
  try:
    params, _, fresh = load_params(path, fresh_params, ms.shardings, what)
  except ValueError as e:
    if "has shape" not in str(e):
      raise
    raise ConfigError(f"{e}: is {path} a run of this model size?") from e
  if ms.model.cfg.score_head is False:
    fresh = [f for f in fresh if not f.startswith("score_head")]
  if fresh:
    raise ConfigError(f"{what} checkpoint {path} lacks parameters {fresh}: is it the right kind of model "
                      f"(an LM for checkpoint/distilled_checkpoint, a preference/binary model for pm_checkpoint) "
                      f"and the right size?")
  return params


def model_from_run(model_cfg, mesh_cfg, path: str, *, what: str, devices=None, score_head_hint: str = "",
                   setup: ModelSetup | None = None) -> tuple[ModelSetup, Any]:
  """(model setup, parameters) of the run (or checkpoint) at `path` on the mesh: the one way evaluation, sampling,
  chat, best-of-n judges and HF export get a trained model (`build_model`, then `load_model_params`); pass `setup`
  to reuse one already built for the same model and mesh."""
  ms = setup or build_model(model_cfg, mesh_cfg, devices)
  return ms, load_model_params(ms, path, what=what, score_head_hint=score_head_hint)
