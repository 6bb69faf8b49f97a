"""The one trainer for every objective.

  python -m hhh.train --config=configs/pretrain.py:tiny --workdir=/tmp/run --config.train.steps=100

An objective (`config.objective.name`) is a pure loss function plus the feature family it consumes; everything else
- sharded state creation, AdamW with warmup and decay, gradient clipping and accumulation, donation, periodic
held-out evaluation, logging, orbax checkpoints with exact resume and a final save on SIGTERM - is shared.
"""

from __future__ import annotations

import dataclasses
import errno
import itertools
import json
import math
import os
import sys
import time
from typing import Any, Callable, Iterator

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from hhh.run import checkpoint as ckpt_lib
from hhh.run import model as run_model
from hhh.core import distributed
from hhh.core import flops as flops_lib
from hhh.run import metric_writer
from hhh import objectives
from hhh.train import optimizer
from hhh.core import paths
from hhh.run import rundir
from hhh.core import sharding
from hhh.data import specs
from hhh.core.errors import ConfigError, UserError
from hhh.models.transformer import Transformer, TransformerConfig, init_inputs


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any


# ----------------------------------------------------------------------------------------------- setup


@dataclasses.dataclass
class Setup:
  """Everything the step functions and the loop share, derived from the config once."""
  config: ml_collections.ConfigDict
  model_config: TransformerConfig
  model: Transformer
  objective: objectives.Objective
  mesh: jax.sharding.Mesh
  rules: tuple
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  abstract_state: Any  # unboxed ShapeDtypeStructs
  state_shardings: Any
  grad_accum: int = 1  # resolved (train.grad_accum, or auto from train.microbatch_per_device)

  def batch_shardings(self, batch):
    return jax.tree.map(lambda x: sharding.batch_sharding(self.mesh, np.ndim(x)), batch)


def check_config(config: ml_collections.ConfigDict, mesh) -> None:
  """Errors that name the problem, before anything is compiled."""
  for key, low in (("train.batch_size", 1), ("data.seq_len", 1), ("train.steps", 1), ("train.log_every", 1),
                   ("train.checkpoint_every", 1), ("train.keep_checkpoints", 1), ("train.eval_every", 0),
                   ("train.eval_batches", 0), ("model.max_len", 1)):
    section, field = key.split(".")
    value = config[section][field]
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
      why = {"train.checkpoint_every": " (steps between saves; the final step is always saved)",
             "train.keep_checkpoints": " (how many recent checkpoints to keep; the newest is never deleted)",
             "train.eval_every": " (0 = no held-out evaluation during training)"}.get(key, "")
      raise ConfigError(f"{key} must be an integer >= {low}{why}, got {value!r}")
  if objectives.get(config.objective.name).family == "comparison" and int(config.data.num_responses) < 2:
    raise ConfigError(f"data.num_responses must be >= 2 for a comparison objective, got {config.data.num_responses}")
  dp = sharding.data_parallel_size(mesh)
  b, accum = int(config.train.batch_size), resolve_grad_accum(config, mesh)
  if b % accum:
    raise ConfigError(f"train.batch_size={b} is not divisible by train.grad_accum={accum}")
  if (b // accum) % dp:
    raise ConfigError(f"the global batch per accumulation step ({b} / grad_accum {accum} = {b // accum}) is not "
                     f"divisible by the data-parallel size {dp} (mesh slice x data x fsdp = "
                     f"{dict((a, mesh.shape[a]) for a in sharding.BATCH_AXES)})")
  if b % jax.process_count():
    raise ConfigError(f"train.batch_size={b} is not divisible by the {jax.process_count()} processes")
  if int(config.data.seq_len) > int(config.model.max_len):
    raise ConfigError(f"data.seq_len={config.data.seq_len} is longer than the model's context "
                     f"model.max_len={config.model.max_len}")


def resolve_grad_accum(config: ml_collections.ConfigDict, mesh) -> int:
  """`train.grad_accum`, or for 0 ("auto") the number of microbatches that gives every data-parallel device
  `train.microbatch_per_device` examples per microbatch (the paper sizes' default: the slice decides the
  accumulation, so one config fits any slice size)."""
  accum = int(config.train.grad_accum)
  if accum >= 1:
    return accum
  if accum < 0:
    raise ConfigError(f"train.grad_accum must be >= 1, or 0 for auto (from train.microbatch_per_device), got {accum}")
  per_device = int(config.train.microbatch_per_device)
  if per_device < 1:
    raise ConfigError(f"train.grad_accum=0 (auto) needs train.microbatch_per_device >= 1, got {per_device}")
  dp, b = sharding.data_parallel_size(mesh), int(config.train.batch_size)
  if b % (dp * per_device):
    raise ConfigError(f"train.grad_accum=0 (auto): train.batch_size={b} is not divisible by data-parallel size {dp} x "
                      f"train.microbatch_per_device={per_device}; set train.grad_accum or the batch size")
  return b // (dp * per_device)


def build(config: ml_collections.ConfigDict, devices=None) -> Setup:
  model_config = TransformerConfig.from_config(config.model)
  model = Transformer(model_config)
  objective = objectives.get(config.objective.name)
  mesh = sharding.make_mesh(config.mesh, devices)
  check_config(config, mesh)
  rules = sharding.rules_from_config(config.mesh.rules)
  tx, schedule = optimizer.make_optimizer(config.optim, int(config.train.steps))

  def init_boxed(rng):
    params = model.init(rng, init_inputs(model_config))["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

  boxed = jax.eval_shape(init_boxed, jax.random.key(0))
  with nn.logical_axis_rules(rules):
    state_shardings = sharding.logical_to_shardings(boxed, mesh, rules)
  abstract_state = nn.meta.unbox(boxed)
  return Setup(config, model_config, model, objective, mesh, rules, tx, schedule, abstract_state, state_shardings,
               grad_accum=resolve_grad_accum(config, mesh))


def init_state(setup: Setup, rng) -> TrainState:
  """Creates the train state already sharded: each device computes only its own shards."""

  def init(rng):
    params = nn.meta.unbox(setup.model.init(rng, init_inputs(setup.model_config))["params"])
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=setup.tx.init(params))

  with sharding.activate(setup.mesh, setup.rules):
    return jax.jit(init, out_shardings=setup.state_shardings)(rng)


# ----------------------------------------------------------------------------------------------- steps


def _mean_over_microbatches(fn, batch, accum: int):
  """Runs fn on `accum` equal microbatches and averages its (pytree) outputs.

  Microbatch i takes rows i, i+accum, i+2*accum, ... so that every device keeps contributing its own rows (a
  contiguous split would put a whole microbatch on a fraction of the data-parallel devices).
  """
  if accum == 1:
    return fn(batch)

  def split(x):
    x = x.reshape((x.shape[0] // accum, accum) + x.shape[1:])
    return jnp.swapaxes(x, 0, 1)

  micro = jax.tree.map(split, batch)
  first = jax.tree.map(lambda x: x[0], micro)
  out_shape = jax.eval_shape(fn, first)
  zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), out_shape)

  def body(acc, mb):
    mb = jax.tree.map(lambda x: sharding.constrain(x, ("activation_batch",) + (None,) * (x.ndim - 1)), mb)
    return jax.tree.map(jnp.add, acc, fn(mb)), None

  total, _ = jax.lax.scan(body, zeros, micro)
  return jax.tree.map(lambda x: x / accum, total)


def make_train_step(setup: Setup):
  objective, model, tx, schedule = setup.objective, setup.model, setup.tx, setup.schedule
  obj_cfg, accum = setup.config.objective, setup.grad_accum

  def train_step(state: TrainState, batch, rng, aux=None):
    rng = jax.random.fold_in(rng, state.step)

    def loss_and_grads(mb):
      def loss(params):
        return objective.loss_fn(params, mb, model=model, config=obj_cfg, rng=rng, aux=aux)
      (l, metrics), grads = jax.value_and_grad(loss, has_aux=True)(state.params)
      return l, metrics, grads

    l, metrics, grads = _mean_over_microbatches(loss_and_grads, batch, accum)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    grad_norm = optax.tree.norm(grads)
    # Checked by the loop before any save (and at log steps), without a host sync per step.
    nonfinite = jnp.logical_not(jnp.isfinite(l) & jnp.isfinite(grad_norm))
    metrics = dict(metrics, loss=l, grad_norm=grad_norm, lr=schedule(state.step), nonfinite=nonfinite)
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

  return train_step


def make_eval_step(setup: Setup):
  objective, model, obj_cfg = setup.objective, setup.model, setup.config.objective

  def eval_step(params, batch, rng, aux=None):
    l, metrics = objective.loss_fn(params, batch, model=model, config=obj_cfg, rng=rng, aux=aux)
    return dict(metrics, loss=l)

  return eval_step


def _aux_shardings(setup: Setup, aux):
  return None if aux is None else jax.tree.map(lambda x: x.sharding, aux)


def jit_train_step(setup: Setup, batch_like, aux=None):
  """`step(state, batch, rng, aux)`; the old state is donated. `batch_like`/`aux` fix shardings (arrays or
  ShapeDtypeStructs with shardings)."""
  repl = sharding.replicated(setup.mesh)
  return jax.jit(make_train_step(setup),
                 in_shardings=(setup.state_shardings, setup.batch_shardings(batch_like), repl,
                               _aux_shardings(setup, aux)),
                 out_shardings=(setup.state_shardings, repl), donate_argnums=(0,))


def jit_eval_step(setup: Setup, batch_like, aux=None):
  repl = sharding.replicated(setup.mesh)
  return jax.jit(make_eval_step(setup),
                 in_shardings=(setup.state_shardings.params, setup.batch_shardings(batch_like), repl,
                               _aux_shardings(setup, aux)),
                 out_shardings=repl)


def make_aux(setup: Setup, initial_params):
  """The objective's frozen inputs (see hhh.objectives), computed once, sharded by the compiler."""
  if setup.objective.init_aux is None:
    return None
  fn = lambda p: setup.objective.init_aux(p, model=setup.model, config=setup.config.objective)  # noqa: E731
  with sharding.activate(setup.mesh, setup.rules):
    return jax.jit(fn)(initial_params)


def global_batch(setup: Setup, local_batch: dict):
  """Assembles the global batch from this host's piece (every host passes its own rows)."""
  return {k: jax.make_array_from_process_local_data(sharding.batch_sharding(setup.mesh, np.ndim(v)), np.asarray(v))
          for k, v in local_batch.items()}


# ----------------------------------------------------------------------------------------------- data


def flops_per_example(setup: Setup) -> tuple[float, int]:
  """(analytic training FLOPs per example, tokens per example) for MFU: tokens from the feature family's spec, the
  output head the vocabulary for an LM and one score for a score-head model."""
  mc, cfg = setup.model_config, setup.config
  seq = int(cfg.data.seq_len)
  head = 1 if mc.score_head else mc.vocab_size
  per_token = flops_lib.train_flops_per_token(mc.non_embedding_params(), mc.n_layers, mc.d_model, seq, head,
                                              attn_width=mc.n_heads * mc.d_head)
  tokens = specs.tokens_per_example(setup.objective.family, seq, k=int(cfg.data.num_responses))
  return per_token * tokens, tokens


def data_iterator(config, *, split: str, start_batch: int, train: bool) -> Iterator[dict]:
  objective = objectives.get(config.objective.name)
  if objective.batches is not None:  # an objective may bring its own data (offline distillation: teacher files)
    own = objective.batches(config, split=split, start_batch=start_batch, train=train)
    if own is not None:
      return own
  from hhh.data import pipeline  # pylint: disable=g-import-not-at-top  (TensorFlow import is slow)
  task = config.data.task if train or not config.data.eval_task else config.data.eval_task
  per_host = int(config.train.batch_size) // jax.process_count()
  family = objective.family
  return pipeline.make_iterator(
      task, split=split, family=family, seq_len=int(config.data.seq_len), batch_size=per_host,
      vocab=config.data.vocab, seed=int(config.seed), shuffle=bool(config.data.shuffle) and train, repeat=train,
      shard_index=jax.process_index(), num_shards=jax.process_count(), start_batch=start_batch,
      k=int(config.data.num_responses))


# ----------------------------------------------------------------------------------------------- loop


def write_run_record(config, workdir: str, *, resume_step: int | None, grad_accum: int = 1) -> None:
  """run.json: seed, command, devices and mesh of the run's first attempt; a resumed attempt writes
  run.resume-<step>.json beside it (the record of how the run began is never rewritten)."""
  name = "run.json" if resume_step is None else f"run.resume-{resume_step}.json"
  record = {"seed": int(config.seed), "argv": sys.argv, "cwd": os.getcwd(), "jax": jax.__version__,
            "devices": [str(d) for d in jax.devices()][:16], "device_count": jax.device_count(),
            "process_count": jax.process_count(), "resumed_from_step": resume_step, "grad_accum": grad_accum,
            "mesh": dict(sharding.resolve_mesh_shape(dict(config.mesh.shape), int(config.mesh.slices),
                                                     jax.device_count()))}
  rundir._write_atomic(os.path.join(workdir, name), json.dumps(record, indent=2) + "\n")  # pylint: disable=protected-access


class DiskFullError(UserError, OSError):
  pass


class NonFiniteError(UserError, FloatingPointError):
  pass


class _FiniteGuard:
  """Holds each step's on-device non-finite flag until the next check (a log step or a save), so the host never
  waits on a step just to check it, and no checkpoint is written after a non-finite loss or gradient."""

  def __init__(self, checkpointer: ckpt_lib.Checkpointer):
    self.checkpointer = checkpointer
    self.pending: list[tuple[int, jax.Array]] = []

  def add(self, step: int, flag) -> None:
    self.pending.append((step, flag))

  def check(self, state=None) -> None:
    flags = jax.device_get([f for _, f in self.pending])
    bad = [s for (s, _), f in zip(self.pending, flags) if bool(f)]
    self.pending = []
    what = "loss or gradient"
    if not bad and state is not None and not bool(ckpt_lib.all_finite(state.params)):
      bad, what = [-1], "parameters"
    if bad:
      where = f"at step {bad[0]}" if bad[0] >= 0 else "after the last step"
      last = self.checkpointer.latest_step()
      resume = (f"the last good checkpoint is {self.checkpointer.directory}/{last} (no checkpoint was written after "
                f"the failure): lower optim.lr or fix the data and rerun the same command to resume from it"
                if last is not None else "no checkpoint had been written yet: the rerun starts from step 0")
      raise NonFiniteError(f"non-finite {what} {where}; stopped without saving. {resume}.")


def held_out_metrics(setup: Setup, params, eval_step, batches, rng, aux=None) -> dict:
  """Held-out metrics over `batches`: a metric the objective declares a mean over units (METRIC_WEIGHTS) is pooled,
  sum(mean x units) / sum(units), so unequal batches (packing, ties, the padded last batch) weigh by their units;
  the others are averaged per batch."""
  return pool_batch_metrics([jax.device_get(eval_step(params, global_batch(setup, local), rng, aux))
                             for local in batches], setup.objective.metric_weights)


def pool_batch_metrics(per_batch: list[dict], weights: dict) -> dict:
  """Per-batch metric dicts -> one dict: weighted means for `weights` ({metric: count metric}), else batch means."""
  out = {}
  for k in (per_batch[0] if per_batch else {}):
    vals = [float(m[k]) for m in per_batch]
    if k in weights:
      units = [float(m[weights[k]]) for m in per_batch]
      out[k] = sum(v * u for v, u in zip(vals, units)) / sum(units) if sum(units) > 0 else 0.0
    else:
      out[k] = sum(vals) / len(vals)
  return out


def train(config: ml_collections.ConfigDict, workdir: str, *, train_batches: Callable[[int], Iterator[dict]] | None = None,
          eval_batches: Callable[[], Iterator[dict]] | None = None, devices=None,
          step_hook: Callable[[int, dict], None] | None = None) -> dict:
  """Trains `config` in `workdir`, resuming from its latest checkpoint. Returns the last logged metrics.

  `train_batches(start_batch)` / `eval_batches()` override the seqio pipeline (tests, tools). `step_hook(step,
  metrics)` is called after each logged step. SIGTERM and Ctrl-C (from the moment this is called) end training
  with a checkpoint of the current step; relative paths in `workdir` and the config are resolved against the
  current directory first.
  """
  workdir = paths.resolve(workdir)
  rundir.check_writable(workdir)
  distributed.install_preemption_handler()
  try:
    return _train(config, workdir, train_batches=train_batches, eval_batches=eval_batches,
                  devices=devices, step_hook=step_hook)
  finally:
    distributed.reset_preemption()


def _train(config, workdir, *, train_batches, eval_batches, devices, step_hook) -> dict:
  distributed.maybe_initialize(config.multihost)
  paths.resolve_config(config)
  primary = distributed.is_primary()
  setup = build(config, devices)
  with rundir.WorkdirLock(workdir, enabled=primary):
    checkpointer = ckpt_lib.Checkpointer(workdir, every=int(config.train.checkpoint_every),
                                         keep=int(config.train.keep_checkpoints),
                                         async_save=bool(config.train.async_checkpoints))
    try:
      return _train_locked(config, workdir, setup, checkpointer, primary, train_batches=train_batches,
                           eval_batches=eval_batches, step_hook=step_hook)
    except Exception as e:  # pylint: disable=broad-except
      if ckpt_lib.no_space_left(e):
        removed = ckpt_lib.remove_partial_saves(checkpointer) if primary else []
        raise DiskFullError(errno.ENOSPC, f"no space left on device while writing to {workdir}; the last complete "
                            f"checkpoint is {_last_checkpoint(checkpointer)}"
                            + (f" (removed the partial save {', '.join(removed)})" if removed else "")
                            + ". Free space (or move the workdir) and rerun the same command to resume") from None
      raise
    finally:
      try:
        checkpointer.close()
      except Exception as e:  # pylint: disable=broad-except
        if not ckpt_lib.no_space_left(e):
          raise


def _last_checkpoint(checkpointer) -> str:
  try:
    checkpointer.manager.reload()
    step = checkpointer.latest_step()
  except Exception:  # pylint: disable=broad-except
    step = None
  return f"{checkpointer.directory}/{step}" if step is not None else "none"


def starting_state(setup: Setup, config) -> tuple[TrainState, list, list]:
  """(state, loaded, fresh): the state a run of `config` starts from, the fresh init of its seed with `init_from`'s
  parameters loaded over it (the names loaded, and those freshly initialised); the same on every resume."""
  state = init_state(setup, jax.random.split(jax.random.key(int(config.seed)), 3)[0])
  if not config.init_from:
    return state, [], []
  params, loaded, fresh = run_model.load_params(config.init_from, state.params, setup.state_shardings.params)
  return state.replace(params=params), loaded, fresh


def starting_params(config) -> tuple[Setup, Any]:
  """(setup, parameters) a run of `config` starts from (`starting_state`): with init_from=RUN, RUN's trained
  parameters on this config's mesh (distillation's stored teacher, tools that score a finished run)."""
  setup = build(config)
  return setup, starting_state(setup, config)[0].params


def _restore_or_start(setup: Setup, config, checkpointer, primary: bool, log) -> tuple[TrainState, Any, int]:
  """(state, aux, batches done) to go on from: the latest good checkpoint (and its data position), else the run's
  starting state. `aux` (frozen inputs) always comes from the starting state, so a resume re-derives the same."""

  def initial_state():
    state, loaded, fresh = starting_state(setup, config)
    if config.init_from:
      log(f"init_from {config.init_from}: loaded {len(loaded)} parameter arrays; freshly initialised: "
          f"{fresh if fresh else 'none'}")
    return state

  abstract = ckpt_lib.abstract_with_shardings(setup.abstract_state, setup.state_shardings)
  finite = lambda st: None if bool(ckpt_lib.all_finite(st.params)) else "its parameters are not finite"  # noqa: E731
  restored = checkpointer.restore_latest(abstract, log=log, check=finite,
                                         move_aside=primary and jax.process_count() == 1)
  if restored is None:
    state = initial_state()
    return state, make_aux(setup, state.params), 0
  start, state, data_state = restored
  aux = None if setup.objective.init_aux is None else make_aux(setup, initial_state().params)
  batches_done = int(data_state["train_batches"])
  log(f"resumed from {checkpointer.directory}/{start} (data position: {batches_done} batches)")
  return state, aux, batches_done


def _train_locked(config, workdir, setup, checkpointer, primary, *, train_batches, eval_batches, step_hook) -> dict:
  log = print if primary else (lambda *_: None)
  latest = checkpointer.latest_step()
  if primary:  # before anything is restored: a different model in this workdir is an error
    rundir.check_resumable(config, workdir, resume_step=latest)
  steps, log_every = int(config.train.steps), int(config.train.log_every)
  rng = jax.random.key(int(config.seed))
  _, step_rng, eval_rng = jax.random.split(rng, 3)  # [0] initialises (starting_state)

  state, aux, batches_done = _restore_or_start(setup, config, checkpointer, primary, log)
  start = int(jax.device_get(state.step))
  resumed = None if latest is None else start  # (the step restored: older than `latest` after a fallback)
  if primary:  # only now: a run whose checkpoints do not restore with this config keeps its record as it was
    rundir.record_config(config, workdir, resume_step=resumed, log=log)
    write_run_record(config, workdir, resume_step=resumed, grad_accum=setup.grad_accum)
  # Records of steps after the restored one came from an attempt that did not save them: drop them.
  writer = metric_writer.MetricWriter(workdir, enabled=primary, resume_step=start)

  n_params = sum(math.prod(x.shape) for x in jax.tree.leaves(setup.abstract_state.params))
  writer.console(f"hhh.train: objective={config.objective.name} size={config.size} params={n_params:,} "
                 f"(non-embedding {setup.model_config.non_embedding_params():,}) mesh={dict(setup.mesh.shape)} "
                 f"batch={config.train.batch_size} (grad_accum {setup.grad_accum}) "
                 f"devices={jax.device_count()} ({jax.devices()[0].device_kind}) workdir={workdir}")

  if train_batches is None:
    train_batches = lambda s: data_iterator(config, split=config.data.train_split, start_batch=s, train=True)  # noqa
  if eval_batches is None:
    eval_batches = lambda: data_iterator(config, split=config.data.eval_split, start_batch=0, train=False)  # noqa
  batches = train_batches(batches_done)

  flops_ex, tokens_ex = flops_per_example(setup)
  peak, peak_src = flops_lib.resolve_peak_flops(jax.devices()[0])
  if peak:
    writer.console(f"peak FLOP/s per device: {peak / 1e9:.1f} G ({peak_src})")

  guard = _FiniteGuard(checkpointer)
  jitted = {}  # the train and eval steps, compiled on their first batch
  last: dict = {}
  clock = {"t_log": time.perf_counter(), "steps": 0}  # time and steps since the last log line
  t_start = time.perf_counter()
  step = saved_step = start

  def log_step(step, metrics):
    nonlocal last
    metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
    guard.check()
    dt = (time.perf_counter() - clock["t_log"]) / clock["steps"]
    examples_per_s = int(config.train.batch_size) / dt
    metrics.update(step_time_s=dt, tokens_per_s=examples_per_s * tokens_ex)
    if peak:
      metrics["mfu"] = flops_lib.mfu(examples_per_s, flops_ex, peak, jax.device_count())  # per example
    eta = None if step == start + 1 else dt * (steps - step)
    writer.write(step, metrics, prefix="train/")
    writer.console(writer.progress_line(step, steps, metrics, eta, order=(
        "loss", "lr", "grad_norm", "tokens_per_s", "step_time_s", "mfu")))
    last = metrics
    if step_hook is not None:
      step_hook(step, metrics)
    clock.update(t_log=time.perf_counter(), steps=0)

  def evaluate_held_out(step):
    held_out = list(itertools.islice(eval_batches(), int(config.train.eval_batches)))
    if held_out:
      if "eval" not in jitted:
        jitted["eval"] = jit_eval_step(setup, global_batch(setup, held_out[0]), aux)
      ev = held_out_metrics(setup, state.params, jitted["eval"], held_out, eval_rng, aux)
      writer.write(step, ev, prefix="eval/")
      writer.console("eval " + writer.progress_line(step, steps, ev, None, order=("loss",)))
      last.update({f"eval/{k}": v for k, v in ev.items()})
    clock["t_log"] = time.perf_counter()  # evaluation time is not training time

  def save(step, force=False):
    nonlocal saved_step
    guard.check(state)
    checkpointer.save(step, state, {"train_batches": batches_done}, force=force)
    saved_step = step

  eval_every = int(config.train.eval_every)
  # A signal during set-up: stop before the first step (nothing new to save).
  preempted = distributed.any_process_preempted()
  try:
    with sharding.activate(setup.mesh, setup.rules):
      while step < steps and not preempted:
        try:
          batch = global_batch(setup, next(batches))
        except StopIteration:
          writer.console(f"training data exhausted after {batches_done} batches at step {step}; stopping")
          break
        if "train" not in jitted:
          jitted["train"] = jit_train_step(setup, batch, aux)
        state, metrics = jitted["train"](state, batch, step_rng, aux)
        step, batches_done, clock["steps"] = step + 1, batches_done + 1, clock["steps"] + 1
        guard.add(step, metrics.pop("nonfinite"))
        if step % log_every == 0 or step == steps or step == start + 1:
          log_step(step, metrics)
        if eval_every > 0 and (step % eval_every == 0 or step == steps):
          evaluate_held_out(step)
        if checkpointer.should_save(step):
          save(step)
        preempted = distributed.any_process_preempted(step=step, every=10) or checkpointer.reached_preemption(step)
      if step > start and saved_step != step:  # the final (or preemption) save
        save(step, force=True)
    checkpointer.wait()
  finally:
    writer.close()
  total = time.perf_counter() - t_start
  if preempted:
    if step > start:
      writer.console(f"stopped by signal: saved step {step} to {checkpointer.directory}; rerun the same command "
                     f"to resume")
    else:
      writer.console(f"stopped by signal before the first step (step {step}); rerun the same command to resume")
  else:
    writer.console(f"done: {step - start} steps in {metric_writer.format_eta(total)}; checkpoints in "
                   f"{checkpointer.directory}")
  last["step"] = step
  last["preempted"] = preempted
  return last


# ----------------------------------------------------------------------------------------------- CLI


def main(argv=None):
  from hhh import cli  # pylint: disable=g-import-not-at-top  (the commands' layer, above this one)

  cli.config_command(
      argv, train, config_help="Config file and model size, e.g. configs/pretrain.py:tiny. Any field can be "
      "overridden: --config.train.steps=100 --config.optim.lr=1e-3 (unknown keys are errors).",
      strings=[("workdir", None, "Run directory: config.json, metrics, TensorBoard events, checkpoints. An existing "
                "workdir is resumed from its latest checkpoint.")],
      required=["config", "workdir"], config_example="configs/pretrain.py:tiny")


if __name__ == "__main__":
  main()
