"""The run record: run.json, how a run began (seed, command, devices, mesh, the resolved accumulation), written once
by its first attempt; each resumed attempt writes its own run.resume-<step>.json beside it."""

from __future__ import annotations

import json
import os
import sys

import jax

from hhh.core import sharding
from hhh.run import rundir


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
