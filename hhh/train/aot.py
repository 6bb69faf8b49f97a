"""Ahead-of-time compilation of the real train step for a TPU slice, on a CPU host.

With libtpu installed (the `tpu` extra), `jax.experimental.topologies.get_topology_desc` gives compile-only devices
of any TPU slice. `compile_train_step(config, devices)` builds the trainer's Setup for them (`hhh.train.build`),
lowers `hhh.train.jit_train_step` - the function the trainer runs - with ShapeDtypeStruct arguments that carry the
state's and the batch's NamedShardings, compiles it, and reports per-device memory against the chip's HBM, the
analytic FLOPs of one step, the step-time bound at a given MFU and the fraction of parameter bytes every device
holds in full. tools/aot_compile.py is the command line; docs/scale.md is the table it produced.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import time
from typing import Any, Sequence

import jax
import numpy as np

from hhh.core import flops as flops_lib
from hhh.core import sharding
from hhh.data.specs import family_spec
from hhh import train

GiB = 1024**3

# Chips -> physical topology of the standard slice shapes. v4 and v5p are 3D tori; v5e and v6e are 2D.
_TORUS_3D = {4: "2x2x1", 8: "2x2x2", 16: "2x2x4", 32: "2x4x4", 64: "4x4x4", 128: "4x4x8", 256: "4x8x8",
             512: "8x8x8", 1024: "8x8x16", 2048: "8x16x16", 4096: "16x16x16", 8960: "16x20x28"}
_TORUS_2D = {1: "1x1", 4: "2x2", 8: "2x4", 16: "4x4", 32: "4x8", 64: "8x8", 128: "8x16", 256: "16x16"}
# (chip family: topology prefix for libtpu, TensorCores per chip counted by the slice name, 2D/3D shapes)
_FAMILIES = {"v4": (2, _TORUS_3D), "v5p": (2, _TORUS_3D), "v5e": (1, _TORUS_2D), "v6e": (1, _TORUS_2D)}


class TopologyError(ValueError):
  pass


@dataclasses.dataclass(frozen=True)
class Topology:
  name: str       # as given, e.g. "v5p-128"
  libtpu: str     # get_topology_desc's topology_name, e.g. "v5p:4x4x4"
  chips: int      # chips per slice


def parse_topology(name: str) -> Topology:
  """`v5p-128` / `v4-64` (TensorCores, as Google Cloud names v4 and v5p slices), `v5e-256` / `v6e-256` (chips), or a
  libtpu topology string such as `v5p:4x4x4`."""
  name = name.strip()
  m = re.fullmatch(r"(v4|v5p|v5e|v6e):(\d+(?:x\d+)+)", name)
  if m:
    return Topology(name, name, math.prod(int(d) for d in m.group(2).split("x")))
  m = re.fullmatch(r"(v4|v5p|v5e|v5litepod|v6e)-(\d+)", name)
  if not m:
    raise TopologyError(f"unknown topology {name!r}: use a slice name such as v5p-128, v4-64, v5e-256, v6e-256 "
                        f"or a libtpu topology such as v5p:4x4x4")
  family = "v5e" if m.group(1) == "v5litepod" else m.group(1)
  cores_in_name, shapes = _FAMILIES[family]
  count = int(m.group(2))
  if count % cores_in_name:
    raise TopologyError(f"{name}: {family} slice names count TensorCores ({cores_in_name} per chip); "
                        f"{count} is not a multiple of {cores_in_name}")
  chips = count // cores_in_name
  if chips not in shapes:
    sizes = ", ".join(f"{family}-{c * cores_in_name}" for c in sorted(shapes))
    raise TopologyError(f"{name}: no standard {family} slice with {chips} chips; known: {sizes} "
                        f"(or pass a libtpu topology string such as {family}:{shapes[min(shapes)]})")
  return Topology(name, f"{family}:{shapes[chips]}", chips)


def tpu_devices(topology: str, num_slices: int = 1) -> list:
  """Compile-only devices of `num_slices` slices of `topology` (needs libtpu; no TPU is used)."""
  # Compile-only devices use no TPU, so several compiling processes (parallel tests, other users of this host) may
  # load libtpu at once; without this libtpu takes a host-wide lock and the second process fails.
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
  from jax.experimental import topologies  # pylint: disable=g-import-not-at-top
  topo = parse_topology(topology)
  if num_slices < 1:
    raise TopologyError(f"num_slices must be >= 1, got {num_slices}")
  kwargs = {"num_slices": num_slices} if num_slices > 1 else {}
  return list(topologies.get_topology_desc(platform="tpu", topology_name=topo.libtpu, **kwargs).devices)


def libtpu_unavailable_reason() -> str | None:
  """None when TPU topologies can be created here, else why not (tests skip with it)."""
  try:
    tpu_devices("v5p:2x2x1")
  except Exception as e:  # pylint: disable=broad-except  (ImportError, RuntimeError from the PJRT plugin, ...)
    return f"cannot create TPU topology devices (is the `tpu` extra / libtpu installed?): {type(e).__name__}: {e}"
  return None


# ----------------------------------------------------------------------------------------------- compile


@dataclasses.dataclass
class Report:
  config_size: str
  objective: str
  topology: str
  num_slices: int
  device_kind: str
  num_devices: int
  mesh: dict
  global_batch: int
  grad_accum: int
  seq_len: int
  batch_shapes: dict
  n_params: int
  param_bytes: int
  # per device, from compiled.memory_analysis()
  argument_bytes: int
  output_bytes: int
  alias_bytes: int
  temp_bytes: int
  code_bytes: int
  total_bytes: int
  hbm_bytes: int | None
  fits: bool
  # analytic
  flops_per_step: float
  tokens_per_step: int
  peak_flops_per_device: float | None
  step_time_at_100: float | None
  mfu: float
  step_time_at_mfu: float | None
  replicated_fraction: float
  compile_seconds: float
  error: str = ""

  def as_dict(self) -> dict:
    return dataclasses.asdict(self)


def _with_sharding(abstract, shardings):
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)


def batch_like(setup, family: str) -> dict:
  """The objective's real global batch as ShapeDtypeStructs sharded like the trainer's `global_batch`."""
  cfg = setup.config
  spec = family_spec(family, int(cfg.train.batch_size), int(cfg.data.seq_len), k=int(cfg.data.num_responses))
  return {k: jax.ShapeDtypeStruct(shape, dtype, sharding=sharding.batch_sharding(setup.mesh, len(shape)))
          for k, (shape, dtype) in spec.items()}


def _aux_like(setup, params_like):
  """Abstract frozen inputs of the objective (e.g. distillation), with the shardings the trainer's make_aux gets."""
  if setup.objective.init_aux is None:
    return None
  fn = lambda p: setup.objective.init_aux(p, model=setup.model, config=setup.config.objective)  # noqa: E731
  with sharding.activate(setup.mesh, setup.rules):
    compiled = jax.jit(fn).lower(params_like).compile()
  abstract = jax.eval_shape(fn, params_like)
  return _with_sharding(abstract, compiled.output_shardings)


def fits_in_hbm(total_bytes: int, hbm_bytes: int | None) -> bool:
  """Unknown HBM (CPU) counts as fitting; otherwise every byte the step needs must be in the chip's HBM."""
  return hbm_bytes is None or total_bytes <= hbm_bytes


def is_oom_error(e: Exception) -> bool:
  s = str(e)
  return "RESOURCE_EXHAUSTED" in s or "Ran out of memory" in s or "out of memory" in s.lower()


def compile_train_step(config, devices: Sequence[Any], *, mfu: float = 0.4, topology: str = "",
                       num_slices: int = 1) -> Report:
  """Compiles `hhh.train.jit_train_step` for `config` on `devices`; an out-of-memory compile is a Report with
  fits=False (and the compiler's message in `error`), any other failure raises."""

  setup = train.build(config, devices)
  mesh = setup.mesh
  state_like = _with_sharding(setup.abstract_state, setup.state_shardings)
  batch = batch_like(setup, setup.objective.family)
  rng_like = jax.ShapeDtypeStruct((), jax.eval_shape(lambda: jax.random.key(0)).dtype,
                                  sharding=sharding.replicated(mesh))
  aux = _aux_like(setup, state_like.params)

  t0 = time.perf_counter()
  error = ""
  mem = None
  with sharding.activate(mesh, setup.rules):
    step = train.jit_train_step(setup, batch, aux)
    lowered = step.lower(state_like, batch, rng_like, aux)
    try:
      mem = lowered.compile().memory_analysis()
    except Exception as e:  # pylint: disable=broad-except
      if not is_oom_error(e):
        raise
      error = str(e).strip().splitlines()[0][:2000] if str(e).strip() else repr(e)
  compile_s = time.perf_counter() - t0

  dev = devices[0]
  hbm = flops_lib.hbm_bytes_per_device(dev)
  if mem is not None:
    arg, out = int(mem.argument_size_in_bytes), int(mem.output_size_in_bytes)
    alias, temp = int(mem.alias_size_in_bytes), int(mem.temp_size_in_bytes)
    code = int(mem.generated_code_size_in_bytes)
    total = arg + out - alias + temp + code
    fits = fits_in_hbm(total, hbm)
  else:
    arg = out = alias = temp = code = total = -1
    fits = False

  flops_ex, tokens_ex = train.flops_per_example(setup)
  b = int(config.train.batch_size)
  flops_step = flops_ex * b
  peak = flops_lib.peak_flops_per_device(dev)
  n = len(devices)
  t100 = flops_step / (peak * n) if peak else None
  params = setup.abstract_state.params
  n_params = sum(math.prod(x.shape) for x in jax.tree.leaves(params))
  param_bytes = sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(params))
  return Report(
      config_size=str(config.size), objective=str(config.objective.name), topology=topology,
      num_slices=num_slices, device_kind=str(dev.device_kind), num_devices=n,
      mesh={k: int(v) for k, v in mesh.shape.items()}, global_batch=b, grad_accum=setup.grad_accum,
      seq_len=int(config.data.seq_len), batch_shapes={k: list(v.shape) for k, v in batch.items()},
      n_params=n_params, param_bytes=param_bytes,
      argument_bytes=arg, output_bytes=out, alias_bytes=alias, temp_bytes=temp, code_bytes=code, total_bytes=total,
      hbm_bytes=hbm, fits=fits, flops_per_step=flops_step, tokens_per_step=tokens_ex * b,
      peak_flops_per_device=peak, step_time_at_100=t100, mfu=mfu,
      step_time_at_mfu=(t100 / mfu if t100 is not None and mfu > 0 else None),
      replicated_fraction=sharding.replicated_fraction(params, setup.state_shardings.params),
      compile_seconds=compile_s, error=error)


# ----------------------------------------------------------------------------------------------- checks


def check_report(r: Report, *, max_replicated_fraction: float = 0.01, min_params_for_check: float = 1e9
                 ) -> list[str]:
  """The reasons the step is not ready for this slice (empty when it is)."""
  problems = []
  if r.error:
    problems.append(f"the compiler ran out of memory for {r.num_devices} x {r.device_kind}: {r.error}")
  elif not r.fits:
    problems.append(f"does not fit: {gib(r.total_bytes)} per device needed, {gib(r.hbm_bytes)} HBM per device "
                    f"({r.device_kind}); shard more (--config.mesh.shape.fsdp/tensor), lower the per-device batch "
                    f"(--config.train.grad_accum) or use a larger slice")
  if r.n_params >= min_params_for_check and r.replicated_fraction > max_replicated_fraction:
    problems.append(f"{r.replicated_fraction:.1%} of parameter bytes ({gib(r.replicated_fraction * r.param_bytes)}) "
                    f"are replicated on every device (limit {max_replicated_fraction:.1%} for models of "
                    f">= {min_params_for_check:.0e} parameters); shard them over fsdp/tensor")
  return problems


def replicated_fraction_for(config, devices) -> float:
  """Fraction of parameter bytes every device holds in full, from abstract shapes only (eval_shape, no compile)."""
  setup = train.build(config, devices)
  return sharding.replicated_fraction(setup.abstract_state.params, setup.state_shardings.params)


# ----------------------------------------------------------------------------------------------- printing


def gib(n) -> str:
  return "?" if n is None or n < 0 else f"{n / GiB:.2f} GiB"


def _seconds(t) -> str:
  return "?" if t is None else (f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s")


def format_report(r: Report) -> str:
  mesh = " x ".join(f"{k}={v}" for k, v in r.mesh.items())
  lines = [
      f"config      {r.objective} size={r.config_size} params={r.n_params:,} ({gib(r.param_bytes)} f32)",
      f"slice       {r.topology} x {r.num_slices} slice(s): {r.num_devices} devices ({r.device_kind}); mesh {mesh}",
      f"batch       global {r.global_batch} (grad_accum {r.grad_accum}), seq_len {r.seq_len}; "
      + ", ".join(f"{k}{v}" for k, v in r.batch_shapes.items()),
  ]
  if r.error:
    lines.append(f"memory      compile failed, out of memory: {r.error}")
  else:
    hbm = r.hbm_bytes
    pct = f" ({r.total_bytes / hbm:.0%} of {gib(hbm)} HBM)" if hbm else ""
    lines += [
        f"per device  arguments {gib(r.argument_bytes)}, outputs {gib(r.output_bytes)} "
        f"(aliased with arguments {gib(r.alias_bytes)}), temporaries {gib(r.temp_bytes)}, code {gib(r.code_bytes)}",
        f"            total {gib(r.total_bytes)}{pct}: {'FITS' if r.fits else 'DOES NOT FIT'}",
    ]
  lines += [
      f"flops       {r.flops_per_step:.3e} model FLOPs per step (analytic, {r.tokens_per_step:,} tokens)",
      f"step time   >= {_seconds(r.step_time_at_100)} at 100% MFU; {_seconds(r.step_time_at_mfu)} at "
      f"{r.mfu:.0%} MFU (peak {r.peak_flops_per_device / 1e12 if r.peak_flops_per_device else float('nan'):.0f} "
      f"TFLOP/s per device)",
      f"sharding    {r.replicated_fraction:.3%} of parameter bytes replicated on every device",
      f"compile     {r.compile_seconds:.1f} s",
  ]
  return "\n".join(lines)


def markdown_table(reports: Sequence[dict]) -> str:
  """docs/scale.md's table from the tool's --json outputs."""
  head = ("| size | objective | slice | mesh (slice, data, fsdp, tensor) | batch x seq (accum) | per device: args + "
          "temp = total / HBM | step at 100% / at MFU | replicated |")
  rows = [head, "|" + "---|" * 8]
  for r in reports:
    m = r["mesh"]
    slices = f"{r['num_slices']} x {r['topology']}" if r["num_slices"] > 1 else r["topology"]
    k = r["batch_shapes"].get("tokens", [])  # [B, K, L] for comparisons: K sequences per example
    batch = (f"{r['global_batch']} x {k[1]} x {r['seq_len']}" if len(k) == 3 else f"{r['global_batch']} x {r['seq_len']}")
    mem = ("out of memory" if r.get("error") else
           f"{r['argument_bytes'] / GiB:.1f} + {r['temp_bytes'] / GiB:.1f} = **{r['total_bytes'] / GiB:.1f}** / "
           f"{r['hbm_bytes'] / GiB:.0f} GiB")
    rows.append(f"| {r['config_size']} | {r['objective']} | {slices} ({r['num_devices']} x {r['device_kind']}) | "
                f"{m['slice']}, {m['data']}, {m['fsdp']}, {m['tensor']} | {batch} ({r['grad_accum']}) | {mem} | "
                f"{_seconds(r['step_time_at_100'])} / **{_seconds(r['step_time_at_mfu'])}** at {r['mfu']:.0%} | "
                f"{r['replicated_fraction']:.3%} |")
  return "\n".join(rows)


def compile_and_check(config, topology: str, num_slices: int = 1, *, mfu: float = 0.4, json_path: str | None = None,
        max_replicated_fraction: float = 0.01, replication_check_min_params: float = 1e9, out=print) -> int:
  """tools/aot_compile.py: compiles the train step for the slice, prints the report and returns the exit code (0 fits,
  1 does not fit or replicates too much, 2 usage error)."""

  try:
    if int(config.mesh.slices) not in (1, num_slices):
      raise sharding.MeshError(f"config.mesh.slices={config.mesh.slices} but --num_slices={num_slices}")
    if int(config.mesh.slices) != num_slices:
      config.mesh.slices = num_slices
    devices = tpu_devices(topology, num_slices)
    report = compile_train_step(config, devices, mfu=mfu, topology=topology, num_slices=num_slices)
  except (TopologyError, sharding.MeshError, ValueError) as e:
    out(f"error: {e}")
    return 2
  out(format_report(report))
  problems = check_report(report, max_replicated_fraction=max_replicated_fraction,
                              min_params_for_check=replication_check_min_params)
  if json_path:
    os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
    with open(json_path, "w") as f:
      json.dump(dict(report.as_dict(), problems=problems, ok=not problems), f, indent=2)
  for p in problems:
    out(f"FAIL: {p}")
  if not problems:
    out("OK: the train step fits this slice")
  return 1 if problems else 0
