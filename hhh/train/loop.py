"""The training loop: `train(config, workdir)` builds the run's Setup, takes the workdir's lock, restores the latest
good checkpoint (and its data position) or starts from the run's starting state, then steps, logging (`log_step`),
evaluating on held-out data (`evaluate_held_out`) and saving (`save`) on their schedules, with a final save at the
last step, on SIGTERM and on Ctrl-C; a full disk and a non-finite step stop it with an error that says how to resume.
"""

from __future__ import annotations

import errno
import itertools
import math
import time
from typing import Any, Callable, Iterator

import jax
import ml_collections

from hhh.core import distributed
from hhh.core import flops as flops_lib
from hhh.core import paths
from hhh.core import sharding
from hhh.core.errors import UserError
from hhh.run import checkpoint as ckpt_lib
from hhh.run import metric_writer
from hhh.run import rundir
from hhh.train.data import data_iterator, global_batch
from hhh.train.finite import FiniteGuard
from hhh.train.held_out import held_out_metrics
from hhh.train.mfu import flops_per_example
from hhh.train.record import write_run_record
from hhh.train.state import Setup, TrainState, build, make_aux, starting_state
from hhh.train.step import jit_eval_step, jit_train_step


class DiskFullError(UserError, OSError):
  pass


def train(config: ml_collections.ConfigDict, workdir: str, *,
          train_batches: Callable[[int], Iterator[dict]] | None = None,
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


def restore_or_start(setup: Setup, config, checkpointer, primary: bool, log) -> tuple[TrainState, Any, int]:
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

  state, aux, batches_done = restore_or_start(setup, config, checkpointer, primary, log)
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
    train_batches = lambda s: data_iterator(config, setup.objective, split=config.data.train_split,  # noqa: E731
                                            start_batch=s, train=True)
  if eval_batches is None:
    eval_batches = lambda: data_iterator(config, setup.objective, split=config.data.eval_split,  # noqa: E731
                                         start_batch=0, train=False)
  batches = train_batches(batches_done)

  flops_ex, tokens_ex = flops_per_example(setup)
  peak, peak_src = flops_lib.resolve_peak_flops(jax.devices()[0])
  if peak:
    writer.console(f"peak FLOP/s per device: {peak / 1e9:.1f} G ({peak_src})")

  guard = FiniteGuard(checkpointer)
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

