"""Objectives: pure loss functions, registered by name.

Each module defines `FAMILY` (the feature family of docs/contracts.md it consumes) and
`loss_fn(params, batch, *, model, config, rng) -> (loss, metrics)`; `config` is the run's `config.objective`.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Callable

_MODULES = {
    "lm": "hhh.objectives.lm",
}


@dataclasses.dataclass(frozen=True)
class Objective:
  name: str
  family: str
  loss_fn: Callable


def register(name: str, module: str) -> None:
  _MODULES[name] = module


def names() -> list[str]:
  return sorted(_MODULES)


def get(name: str) -> Objective:
  if name not in _MODULES:
    raise ValueError(f"unknown objective {name!r}; registered objectives: {names()}")
  mod = importlib.import_module(_MODULES[name])
  return Objective(name=name, family=mod.FAMILY, loss_fn=mod.loss_fn)
