"""Objectives: pure loss functions, registered by name.

Each module defines `FAMILY` (the feature family of docs/contracts.md it consumes) and
`loss_fn(params, batch, *, model, config, rng, aux) -> (loss, metrics)`; `config` is the run's `config.objective`,
`aux` its frozen inputs (None unless the objective defines `init_aux`). Its settings and their defaults are the
module's `DEFAULTS` dict (`default_config(name)` builds `config.objective` from them).
A module also declares `METRIC_WEIGHTS`: for each metric that is a mean over a batch's units (tokens, samples,
pairs, positions), the name of the metric that counts those units ("loss" included). Held-out evaluation pools
such metrics over batches as sum(mean x count) / sum(count), so a batch counts by its units, not as one; metrics
not listed (counts, per-batch ECE) are averaged per batch.

An objective that needs frozen inputs besides the trained parameters (context distillation: the frozen initial
model and its prompt keys/values) also defines `init_aux(initial_params, *, model, config) -> pytree`. The trainer
calls it once per run with the parameters the run started from (fresh init + `init_from`, re-derived identically on
resume), and passes the result to every `loss_fn(..., aux=aux)` call.

An objective whose data does not come from a seqio task in some mode (offline context distillation reads stored
teacher files) defines `batches(config, *, split, start_batch, train) -> iterator | None`; None means "use the
seqio pipeline".
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Callable

import ml_collections

from hhh.core.errors import ConfigError

_MODULES = {
    "lm": "hhh.objectives.lm",
    "imitation": "hhh.objectives.imitation",
    "binary": "hhh.objectives.binary",
    "preference": "hhh.objectives.preference",
    "distill": "hhh.objectives.distill",
}


@dataclasses.dataclass(frozen=True)
class Objective:
  name: str
  family: str
  loss_fn: Callable
  init_aux: Callable | None = None
  batches: Callable | None = None
  metric_weights: dict = dataclasses.field(default_factory=dict)
  defaults: dict = dataclasses.field(default_factory=dict)  # the module's DEFAULTS: its settings (config.objective)


def register(name: str, module: str) -> None:
  _MODULES[name] = module


def names() -> list[str]:
  return sorted(_MODULES)


def get(name: str) -> Objective:
  if name not in _MODULES:
    raise ConfigError(f"unknown objective {name!r}; registered objectives: {names()}")
  mod = importlib.import_module(_MODULES[name])
  return Objective(name=name, family=mod.FAMILY, loss_fn=mod.loss_fn, init_aux=getattr(mod, "init_aux", None),
                   batches=getattr(mod, "batches", None), metric_weights=dict(getattr(mod, "METRIC_WEIGHTS", {})),
                   defaults=dict(getattr(mod, "DEFAULTS", {})))


def default_config(name: str):
  """`config.objective` of objective `name`: its name and its module's DEFAULTS (the one source of each setting's
  default; losses read the settings as attributes, so a misspelt setting fails)."""
  return ml_collections.ConfigDict(dict(name=name, **get(name).defaults))
