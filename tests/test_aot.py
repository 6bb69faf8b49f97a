"""AOT compilation of the real train step for TPU topologies on this CPU host (tools/aot_compile.py, hhh/train/aot.py).

Tests marked `tpu` need libtpu (the `tpu` extra) and skip with the reason when TPU topology devices cannot be
created. The replication check of the paper sizes runs on abstract shapes only (no compile, no libtpu).
"""

import dataclasses
import json
import pathlib

import jax
import numpy as np
import pytest

from hhh.train import aot
from hhh.core import sharding
from hhh import config as hc
from hhh.core.sharding import MeshError

REPO = pathlib.Path(__file__).resolve().parents[1]



def config(path: str, size: str, **overrides):
  """configs/<path>:size with dotted overrides, like --config.a.b=v on the command line."""
  return hc.override(hc.load(f"configs/{path}:{size}"), overrides)


def tiny_lm(**overrides):
  return config("pretrain.py", "tiny", **{"data.seq_len": 64, "train.batch_size": 8, **overrides})


_NO_TPU = None


def no_tpu_reason():
  global _NO_TPU
  if _NO_TPU is None:
    _NO_TPU = aot.libtpu_unavailable_reason() or ""
  return _NO_TPU


@pytest.fixture
def tpu():
  reason = no_tpu_reason()
  if reason:
    pytest.skip(reason)


# ----------------------------------------------------------------------------------------------- names (no libtpu)


@pytest.mark.parametrize("name,libtpu,chips", [
    ("v5p-128", "v5p:4x4x4", 64),  # v5p names count TensorCores: 128 cores = 64 chips
    ("v5p-8", "v5p:2x2x1", 4),
    ("v5p-1024", "v5p:8x8x8", 512),
    ("v4-64", "v4:2x4x4", 32),
    ("v4-8", "v4:2x2x1", 4),
    ("v5e-256", "v5e:16x16", 256),  # v5e / v6e names count chips
    ("v5litepod-16", "v5e:4x4", 16),
    ("v6e-256", "v6e:16x16", 256),
    ("v6e-8", "v6e:2x4", 8),
    ("v5p:4x4x8", "v5p:4x4x8", 128),  # a libtpu string passes through
])
def test_parse_topology(name, libtpu, chips):
  t = aot.parse_topology(name)
  assert (t.libtpu, t.chips) == (libtpu, chips)


@pytest.mark.parametrize("name,match", [
    ("v5p-127", "not a multiple of 2"),
    ("v5p-96", "no standard v5p slice with 48 chips"),
    ("v5e-3", "no standard v5e slice with 3 chips"),
    ("v7-64", "unknown topology"),
    ("tpu", "unknown topology"),
])
def test_parse_topology_errors(name, match):
  with pytest.raises(aot.TopologyError, match=match):
    aot.parse_topology(name)


# ----------------------------------------------------------------------------------------------- checks (no libtpu)


def _report(**kw):
  base = dict(config_size="52b", objective="preference", topology="v5p-128", num_slices=1, device_kind="TPU v5",
              num_devices=64, mesh=dict(slice=1, data=1, fsdp=16, tensor=4), global_batch=64, grad_accum=1, seq_len=8192, batch_shapes={},
              n_params=52_000_000_000, param_bytes=208_000_000_000, argument_bytes=10 * aot.GiB,
              output_bytes=10 * aot.GiB, alias_bytes=10 * aot.GiB, temp_bytes=20 * aot.GiB, code_bytes=0,
              total_bytes=30 * aot.GiB, hbm_bytes=95 * aot.GiB, fits=True, flops_per_step=1e18,
              tokens_per_step=1, peak_flops_per_device=459e12, step_time_at_100=1.0, mfu=0.4,
              step_time_at_mfu=2.5, replicated_fraction=0.0001, compile_seconds=1.0)
  base.update(kw)
  return aot.Report(**base)


def test_check_report():
  assert aot.check_report(_report()) == []
  over = aot.check_report(_report(total_bytes=100 * aot.GiB, fits=aot.fits_in_hbm(100 * aot.GiB, 95 * aot.GiB)))
  assert len(over) == 1 and "does not fit: 100.00 GiB per device needed, 95.00 GiB HBM" in over[0]
  oom = aot.check_report(_report(error="RESOURCE_EXHAUSTED: Ran out of memory in memory space hbm", fits=False))
  assert len(oom) == 1 and "ran out of memory" in oom[0]
  repl = aot.check_report(_report(replicated_fraction=0.5))
  assert len(repl) == 1 and "50.0% of parameter bytes" in repl[0]
  # small models may be purely data parallel
  assert aot.check_report(_report(n_params=13_000_000, replicated_fraction=1.0)) == []
  assert aot.fits_in_hbm(5, None)


# ----------------------------------------------------------------------------------------------- replication (no compile)


@pytest.mark.parametrize("size", ["2.7b", "13b", "52b"])
def test_large_sizes_are_sharded(size):
  """The paper's large sizes, on the 8 fake CPU devices with the scale-table meshes: < 1% of parameter bytes on
  every device in full (only norm scales and the score bias stay replicated). Shapes only: nothing is allocated."""
  c = config("pretrain.py", size, **{"mesh.shape.data": 1, "mesh.shape.fsdp": -1, "mesh.shape.tensor": 2,
                                     "model.score_head": True})
  frac = aot.replicated_fraction_for(c, jax.devices())
  assert 0 < frac < 0.01


def test_replication_check_fails_for_data_parallel_52b():
  """The check can fail: pure data parallelism (the CPU sizes' default mesh) replicates every parameter."""
  c = config("pretrain.py", "52b", **{"mesh.shape.data": -1, "mesh.shape.fsdp": 1, "mesh.shape.tensor": 1})
  frac = aot.replicated_fraction_for(c, jax.devices())
  assert frac == 1.0
  problems = aot.check_report(_report(replicated_fraction=frac))
  assert problems and "replicated on every device" in problems[0]


# ----------------------------------------------------------------------------------------------- default meshes

# The 52b preference model's default on a v5p-128 (64 chips), as docs/scale.md measured it: fsdp=32 x tensor=2,
# one comparison per data-parallel device per microbatch, so 512 comparisons / 32 = 16 microbatches per step.
TENSOR_52B = 2
DEFAULT_52B_PREFERENCE_V5P_128 = (dict(slice=1, data=1, fsdp=32, tensor=2), 16)


def test_paper_sizes_default_to_fsdp_and_auto_accumulation():
  from hhh import config as hc
  for size in hc.PAPER_SIZES:
    for path, tensor in (("pretrain.py", hc.PAPER_TENSOR), ("preference.py", hc.PAPER_TENSOR_PREFERENCE)):
      c = config(path, size)
      assert dict(c.mesh.shape) == dict(data=1, fsdp=-1, tensor=tensor[size]), (path, size)
      assert (c.train.grad_accum, c.train.microbatch_per_device) == (0, 1), (path, size)
      assert ["activation_embed", "tensor"] in [list(r) for r in c.mesh.rules]  # residual stream over tensor
      assert c.model.n_heads % tensor[size] == 0
  assert hc.PAPER_TENSOR_PREFERENCE["52b"] == TENSOR_52B
  for size in hc.CPU_SIZES:  # tests and the laboratory: pure data parallelism, no accumulation
    c = config("pretrain.py", size)
    assert dict(c.mesh.shape) == dict(data=-1, fsdp=1, tensor=1) and c.train.grad_accum == 1, size
    assert [list(r) for r in c.mesh.rules] == [list(r) for r in sharding.DEFAULT_RULES]


def test_default_52b_preference_mesh_on_v5p_128_resolves():
  """The default 52b preference config on a v5p-128 (64 chips = 64 compile devices): no override needed. Shapes only
  (an abstract mesh), so no libtpu."""
  from hhh import train
  c = config("preference.py", "52b")
  shape = sharding.resolve_mesh_shape(dict(c.mesh.shape), int(c.mesh.slices), 64)
  mesh = jax.sharding.AbstractMesh(tuple(shape[a] for a in sharding.MESH_AXES), sharding.MESH_AXES)
  want_mesh, want_accum = DEFAULT_52B_PREFERENCE_V5P_128
  assert shape == want_mesh
  assert train.resolve_grad_accum(c, mesh) == want_accum  # one comparison per data-parallel device per microbatch
  # two slices: the slice axis doubles data parallelism and halves the accumulation
  shape2 = sharding.resolve_mesh_shape(dict(c.mesh.shape), 2, 128)
  mesh2 = jax.sharding.AbstractMesh(tuple(shape2[a] for a in sharding.MESH_AXES), sharding.MESH_AXES)
  assert shape2 == dict(want_mesh, slice=2) and train.resolve_grad_accum(c, mesh2) == want_accum // 2


@pytest.mark.tpu
def test_default_52b_preference_builds_for_v5p_128(tpu):
  """The trainer's Setup for the real v5p-128 compile devices (eval_shape only, no compile): mesh, grad_accum and
  sharded parameters."""
  from hhh import train
  setup = train.build(config("preference.py", "52b"), aot.tpu_devices("v5p-128"))
  want_mesh, want_accum = DEFAULT_52B_PREFERENCE_V5P_128
  assert dict(setup.mesh.shape) == want_mesh and setup.grad_accum == want_accum
  assert sharding.replicated_fraction(setup.abstract_state.params, setup.state_shardings.params) < 0.01


# ----------------------------------------------------------------------------------------------- compile (libtpu)


@pytest.mark.tpu
def test_compile_tiny_lm_for_v5p_8(tpu, tmp_path):
  out = []
  path = tmp_path / "r.json"
  code = aot.compile_and_check(tiny_lm(**{"mesh.shape.data": 1, "mesh.shape.fsdp": -1}), "v5p-8", json_path=str(path),
                  out=out.append)
  text = "\n".join(out)
  assert code == 0, text
  r = json.loads(path.read_text())
  assert r["ok"] and r["fits"] and not r["problems"]
  assert r["num_devices"] == 4 and r["device_kind"] == "TPU v5"
  assert r["mesh"] == dict(slice=1, data=1, fsdp=4, tensor=1)
  for k in ("argument_bytes", "output_bytes", "temp_bytes", "total_bytes"):
    assert r[k] > 0, k
  assert r["total_bytes"] < r["hbm_bytes"] == 95 * aot.GiB
  assert r["flops_per_step"] > 0 and 0 < r["step_time_at_100"] < r["step_time_at_mfu"]
  assert r["batch_shapes"]["decoder_input_tokens"] == [8, 64]
  assert "FITS" in text and "OK:" in text


@pytest.mark.tpu
def test_impossible_mesh_is_a_clear_error(tpu):
  out = []
  code = aot.compile_and_check(tiny_lm(**{"mesh.shape.data": 3, "mesh.shape.fsdp": -1}), "v5p-8", out=out.append)  # 3 does not divide 4
  assert code == 2
  assert "does not divide the 4 devices per slice" in "\n".join(out)
  with pytest.raises(MeshError, match="does not divide"):
    aot.compile_train_step(tiny_lm(**{"mesh.shape.tensor": 3}), aot.tpu_devices("v5p-8"))
  out = []
  assert aot.compile_and_check(tiny_lm(), "v5p-96", out=out.append) == 2
  assert "no standard v5p slice" in "\n".join(out)


@pytest.mark.tpu
def test_does_not_fit_exits_non_zero(tpu):
  """A tiny model with an absurd per-device batch: the logits alone need ~64 GiB per v5e chip (16 GiB)."""
  out = []
  c = tiny_lm(**{"train.batch_size": 4 * 16384, "data.seq_len": 512, "mesh.shape.data": -1})
  code = aot.compile_and_check(c, "v5e-4", out=out.append)
  text = "\n".join(out)
  assert code == 1, text
  assert "FAIL:" in text and ("does not fit" in text or "ran out of memory" in text)


@pytest.mark.tpu
@pytest.mark.slow
def test_compile_multislice_v5p(tpu, tmp_path):
  """Two v5p-8 slices over DCN: the slice axis is the outer data-parallel axis; each slice's devices stay together."""
  path = tmp_path / "r.json"
  out = []
  code = aot.compile_and_check(tiny_lm(**{"mesh.shape.data": 1, "mesh.shape.fsdp": -1}), "v5p-8", num_slices=2,
                  json_path=str(path), out=out.append)
  assert code == 0, "\n".join(out)
  r = json.loads(path.read_text())
  assert r["num_devices"] == 8 and r["mesh"] == dict(slice=2, data=1, fsdp=4, tensor=1)
  devices = aot.tpu_devices("v5p-8", 2)
  c = tiny_lm(**{"mesh.shape.data": 1, "mesh.shape.fsdp": -1, "mesh.slices": 2})
  mesh = sharding.make_mesh(c.mesh, devices)
  for s in range(2):
    assert {d.slice_index for d in mesh.devices[s].flat} == {s}


@pytest.mark.tpu
def test_default_52b_preference_mesh_on_two_v5p_128_slices(tpu):
  """The default per-slice mesh (1, 32, 2) splits a physical axis of the 4x4x4 torus; the multi-slice mesh builds
  (it raised NotImplementedError without allow_split_physical_axes) and keeps each slice's devices together."""
  devices = aot.tpu_devices("v5p-128", 2)
  c = config("preference.py", "52b", **{"mesh.slices": 2})
  mesh = sharding.make_mesh(c.mesh, devices)
  assert dict(mesh.shape) == dict(slice=2, data=1, fsdp=32, tensor=2)
  for s in range(2):
    assert {d.slice_index for d in mesh.devices[s].flat} == {s}
  assert len({d.id for d in mesh.devices.flat}) == 128
  single = sharding.make_mesh(config("preference.py", "52b").mesh, aot.tpu_devices("v5p-128"))
  assert dict(single.shape) == dict(slice=1, data=1, fsdp=32, tensor=2)
  # each tensor pair is two neighbouring chips of the torus (one hop), not two chips picked in plain device order
  for pair in single.devices.reshape(-1, 2):
    a, b = (np.array(d.coords) for d in pair)
    assert np.abs(a - b).sum() == 1, (a, b)


@pytest.mark.tpu
@pytest.mark.slow
def test_compile_tiny_preference_model(tpu, tmp_path):
  """The comparison family's [B, K, L] batch and the score head through the real preference objective."""
  from hhh import objectives
  if "preference" not in objectives.names():
    pytest.skip("the preference objective is not registered yet")
  if (REPO / "configs" / "preference.py").exists():
    c = config("preference.py", "tiny", **{"data.seq_len": 64, "train.batch_size": 8})
  else:
    c = tiny_lm(**{"objective.name": "preference", "model.score_head": True})
  path = tmp_path / "r.json"
  out = []
  assert aot.compile_and_check(c, "v4-8", json_path=str(path), out=out.append) == 0, "\n".join(out)
  r = json.loads(path.read_text())
  assert r["device_kind"] == "TPU v4" and r["num_devices"] == 8  # AOT v4 devices are TensorCores
  assert r["hbm_bytes"] == 16 * aot.GiB
  k = int(c.data.num_responses)
  assert r["batch_shapes"]["tokens"] == [8, k, 64] and r["fits"]


@pytest.mark.tpu
@pytest.mark.slow
def test_default_13m_tpu_step_runs_splash_attention(tpu):
  """The default 13m LM config (seq 8192, model.attention=auto) compiled for a v5p-8: the TPU train step runs the
  Pallas splash kernels (forward, dq, dkv), so no [L, L] scores; docs/scale.md checked the 52b step the same way."""
  from hhh import train
  setup = train.build(config("pretrain.py", "13m"), aot.tpu_devices("v5p-8"))
  assert dict(setup.mesh.shape) == dict(slice=1, data=1, fsdp=4, tensor=1) and setup.grad_accum == 128
  state = aot._with_sharding(setup.abstract_state, setup.state_shardings)  # pylint: disable=protected-access
  batch = aot.batch_like(setup, setup.objective.family)
  rng = jax.ShapeDtypeStruct((), jax.eval_shape(lambda: jax.random.key(0)).dtype,
                             sharding=sharding.replicated(setup.mesh))
  with sharding.activate(setup.mesh, setup.rules):
    hlo = train.jit_train_step(setup, batch).lower(state, batch, rng, None).compile().as_text()
  assert 'custom_call_target="tpu_custom_call"' in hlo
  for kernel in ("splash_mha_fwd", "splash_mha_dq", "splash_mha_dkv"):
    assert kernel in hlo, kernel


def test_tool_rejects_slices_mismatch():
  out = []
  code = aot.compile_and_check(tiny_lm(**{"mesh.slices": 4}), "v5p-8", num_slices=2, out=out.append)
  assert code == 2 and "config.mesh.slices=4 but --num_slices=2" in out[0]


def test_report_dataclass_roundtrip():
  r = _report()
  assert aot.Report(**r.as_dict()) == r and "FITS" in aot.format_report(r)
  assert "DOES NOT FIT" in aot.format_report(dataclasses.replace(r, fits=False))
  row = aot.markdown_table([dict(r.as_dict(), batch_shapes={"tokens": [64, 4, 8192]})]).splitlines()[-1]
  assert row.startswith("| 52b | preference | v5p-128 (64 x TPU v5) |") and "64 x 4 x 8192 (1)" in row
  assert "10.0 + 20.0 = **30.0** / 95 GiB" in row and "**2.50 s** at 40%" in row
