"""A trained run, read: the newest checkpoint of a run (or a step folder) that reads back whole, and its parameters
on a mesh. The one way evaluation, sampling, chat, best-of-n judges, `init_from` and HF export load a trained model.

The trainer's rule for a damaged run (hhh.run.checkpoint.Checkpointer.restore_latest) without its writes: step folders
with no written state item are passed over, a checkpoint whose checksums (hhh.run.checksums) or restore fail is reported
with one WARNING line and the previous one is used; nothing in the run is moved.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import orbax.checkpoint as ocp
from etils import epath

from hhh.config.record import RUN_CONFIG, read_run_config
from hhh.core.errors import ConfigError
from hhh.core import paths
from hhh.core import sharding
from hhh.models.transformer import Transformer, TransformerConfig, init_inputs
from hhh.run import checksums
from hhh.run.checkpoint import (STATE, CheckpointNotFoundError, CorruptCheckpointError,
                                _quiet_late_reads_of_failed_restores, _short, flatten, unflatten)


def _has_state(p: epath.Path) -> bool:
  return (p / "_METADATA").exists() or (p / "_CHECKPOINT_METADATA").exists() or (p / "manifest.ocdbt").exists()


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
  """The state item folder of `path` that this process loaded (`load_params`), else the newest complete one there
  (see `_state_items`)."""
  return LOADED.get(paths.resolve(path)) or _state_items(path, what)[0]


# {resolved path given to load_params: the state item folder it loaded} (after a fallback, an older step's).
LOADED: dict[str, epath.Path] = {}


def _warn(line: str) -> None:
  print(line, file=sys.stderr, flush=True)


def run_model_config(path: str, what: str = "checkpoint") -> Optional[dict]:
  """The `model` section of the config.json of the run that wrote the checkpoint at `path` (its workdir is the
  checkpoint's nearest ancestor holding a config.json, up to the workdir above checkpoints/<step>/state), or None
  when there is none (e.g. a bare step folder)."""
  p = _state_item_dir(path, what)
  for d in [p, *list(p.parents)[:3]]:
    if (d / RUN_CONFIG).is_file():
      try:
        model = read_run_config(d).get("model")
      except (json.JSONDecodeError, OSError):
        return None
      return model if isinstance(model, dict) else None
  return None


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
    LOADED[paths.resolve(path)] = item
    return out
  raise CorruptCheckpointError(f"{what}: no checkpoint at {path} can be restored ({'; '.join(broken)})")


class _ShapeMismatch(Exception):
  """A saved parameter whose shape differs from the model's (load_params re-raises it as a ValueError)."""


def _load_item(checkpointer, item, params, shardings, what):
  if not paths.is_remote(str(item)) and item.parent.name.isdigit():
    checksums.verify(str(item.parent))  # a step folder: its checksums, when it has them
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
