"""The train state and everything derived from a config once per run (`Setup`: model, objective, mesh, optimiser,
the state's shardings, the resolved accumulation), and the state a run starts from: the fresh init of its seed,
created already sharded, with `init_from`'s parameters loaded over it (`starting_state`), and the objective's frozen
inputs computed from those starting parameters (`make_aux`)."""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from hhh import objectives
from hhh.core import sharding
from hhh.models.transformer import Transformer, TransformerConfig, init_inputs
from hhh.run import model as run_model
from hhh.train import optimizer
from hhh.train.checks import check_config


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any


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


def build(config: ml_collections.ConfigDict, devices=None) -> Setup:
  """The run's Setup: the objective resolved and the config checked (hhh.train.checks) once, for every later use."""
  model_config = TransformerConfig.from_config(config.model)
  model = Transformer(model_config)
  objective = objectives.get(config.objective.name)
  mesh = sharding.make_mesh(config.mesh, devices)
  grad_accum = check_config(config, mesh, objective)
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
               grad_accum=grad_accum)


def init_state(setup: Setup, rng) -> TrainState:
  """Creates the train state already sharded: each device computes only its own shards."""

  def init(rng):
    params = nn.meta.unbox(setup.model.init(rng, init_inputs(setup.model_config))["params"])
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=setup.tx.init(params))

  with sharding.activate(setup.mesh, setup.rules):
    return jax.jit(init, out_shardings=setup.state_shardings)(rng)


def starting_state(setup: Setup, config) -> tuple[TrainState, list, list]:
  """(state, loaded, fresh): the state a run of `config` starts from, the fresh init of its seed with `init_from`'s
  parameters loaded over it (the names loaded, and those freshly initialised); the same on every resume.

  `init_from` is a partial load (hhh.run.model.load_params over this seed's init: an LM's run under a preference
  model leaves the score head fresh), where reading a finished run whole is hhh.run.model.model_from_run.
  """
  state = init_state(setup, jax.random.split(jax.random.key(int(config.seed)), 3)[0])
  if not config.init_from:
    return state, [], []
  params, loaded, fresh = run_model.load_params(config.init_from, state.params, setup.state_shardings.params)
  return state.replace(params=params), loaded, fresh


def starting_params(config) -> tuple[Setup, Any]:
  """(setup, parameters) a run of `config` starts from (`starting_state`): what offline distillation's stored
  teacher must equal (tools/teacher_logits.py), the online teacher being `make_aux` of the same parameters."""
  setup = build(config)
  return setup, starting_state(setup, config)[0].params


def make_aux(setup: Setup, initial_params):
  """The objective's frozen inputs (see hhh.objectives), computed once, sharded by the compiler."""
  if setup.objective.init_aux is None:
    return None
  fn = lambda p: setup.objective.init_aux(p, model=setup.model, config=setup.config.objective)  # noqa: E731
  with sharding.activate(setup.mesh, setup.rules):
    return jax.jit(fn)(initial_params)
