"""Orbax checkpoints: one checkpoint holds the train state (params, optimiser state, step) and the data position.

Layout: `WORKDIR/checkpoints/<step>/{state,data}`. Saves are asynchronous and atomic (orbax writes to a temporary
directory and renames), every host writes its own shards cooperatively, old steps beyond `keep` are deleted.
Restores go directly onto the target sharding (abstract arrays carry their `NamedSharding`), so a 52B state is
never materialised whole on one host.
"""

from __future__ import annotations

import logging
import os

import jax
import orbax.checkpoint as ocp
from etils import epath

STATE, DATA = "state", "data"


class CheckpointNotFoundError(FileNotFoundError):
  pass


def abstract_with_shardings(abstract_tree, shardings):
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract_tree, shardings)


class Checkpointer:
  """The run's CheckpointManager: save every `every` steps, keep the last `keep`, resume from the latest."""

  def __init__(self, workdir: str, *, every: int, keep: int, async_save: bool = True):
    self.directory = epath.Path(workdir) / "checkpoints"
    options = ocp.CheckpointManagerOptions(
        save_interval_steps=max(int(every), 1), max_to_keep=keep, create=True,
        enable_async_checkpointing=async_save)
    self.manager = ocp.CheckpointManager(self.directory, item_names=(STATE, DATA), options=options)

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

  def reached_preemption(self, step: int) -> bool:
    return self.manager.reached_preemption(step)

  def wait(self):
    self.manager.wait_until_finished()

  def close(self):
    self.manager.close()


def _state_item_dir(path: str) -> epath.Path:
  """Accepts a run's workdir, its checkpoints/ folder, a step folder, or the step's state/ item folder."""
  p = epath.Path(os.path.expanduser(str(path)))
  if not p.exists():
    raise CheckpointNotFoundError(f"init_from: {path} does not exist")
  if (p / "checkpoints").is_dir():
    p = p / "checkpoints"
  steps = sorted(int(c.name) for c in p.iterdir() if c.is_dir() and c.name.isdigit()) if p.is_dir() else []
  if steps:
    p = p / str(steps[-1])
  if (p / STATE).is_dir():
    p = p / STATE
  if not (p / "_METADATA").exists() and not (p / "_CHECKPOINT_METADATA").exists() and not (
      p / "manifest.ocdbt").exists():
    raise CheckpointNotFoundError(
        f"init_from: no checkpoint found at {path} (looked for a workdir with checkpoints/<step>/state, "
        f"a step folder, or an orbax state folder)")
  return p


def _flatten(tree, prefix=()):
  if isinstance(tree, dict):
    out = {}
    for k, v in tree.items():
      out.update(_flatten(v, prefix + (k,)))
    return out
  return {prefix: tree}


def _unflatten(flat):
  out = {}
  for path, v in flat.items():
    d = out
    for k in path[:-1]:
      d = d.setdefault(k, {})
    d[path[-1]] = v
  return out


def load_params(path: str, params, shardings):
  """Loads the parameters that exist in the checkpoint at `path` onto `shardings`; the rest keep `params`.

  Returns (params, loaded, fresh) where `loaded`/`fresh` are lists of '/'-joined parameter names. A parameter
  present in both with a different shape is an error (it cannot be meant as the same parameter).
  """
  item = _state_item_dir(path)
  checkpointer = ocp.PyTreeCheckpointer()
  meta = checkpointer.metadata(item)
  tree = getattr(meta, "item_metadata", meta)
  tree = getattr(tree, "tree", tree)
  if not isinstance(tree, dict) or "params" not in tree:
    raise CheckpointNotFoundError(f"init_from: checkpoint at {item} holds no 'params'")
  src = _flatten(dict(tree["params"]))
  dst = _flatten(params)
  dst_sh = _flatten(shardings)
  wanted, fresh = {}, []
  for name, value in dst.items():
    if name in src:
      src_shape = tuple(getattr(src[name], "shape", ()) or ())
      if src_shape != tuple(value.shape):
        raise ValueError(f"init_from: parameter {'/'.join(name)} has shape {src_shape} in {item} but "
                         f"{tuple(value.shape)} in this model")
      wanted[name] = jax.ShapeDtypeStruct(value.shape, value.dtype, sharding=dst_sh[name])
    else:
      fresh.append("/".join(name))
  target = {"params": _unflatten(wanted)}
  restored = checkpointer.restore(item, args=ocp.args.PyTreeRestore(
      item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target), partial_restore=True))
  merged = dict(dst)
  merged.update(_flatten(restored["params"]))
  logging.info("init_from %s: loaded %d parameter arrays, freshly initialised %d: %s",
               item, len(wanted), len(fresh), fresh)
  return _unflatten(merged), ["/".join(n) for n in wanted], fresh
