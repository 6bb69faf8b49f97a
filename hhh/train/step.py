"""The train and eval steps: one optimiser step is the objective's loss and gradients, averaged over `grad_accum`
equal microbatches, then the optimiser's update, with the step's metrics (loss, gradient norm, learning rate) and an
on-device non-finite flag for hhh.train.finite's guard. `jit_train_step` is the function the trainer runs (and
hhh.train.aot compiles): shardings from the Setup, the old state donated."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from hhh.core import sharding
from hhh.train.state import Setup, TrainState


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
