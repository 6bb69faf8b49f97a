"""Mesh construction on the 8 fake CPU devices (tests/conftest.py): single- and multi-slice shapes, the -1 axis,
and errors that name the problem for impossible meshes."""

import jax
import ml_collections
import numpy as np
import pytest

from hhh.core import sharding
from hhh.core.sharding import MeshError, make_mesh, resolve_mesh_shape


def mesh_cfg(slices=1, **shape):
  return ml_collections.ConfigDict(dict(shape=dict(shape), slices=slices))


def test_eight_fake_devices():
  assert jax.device_count() == 8


@pytest.mark.parametrize("shape,slices,expected", [
    (dict(data=-1, fsdp=1, tensor=1), 1, dict(slice=1, data=8, fsdp=1, tensor=1)),
    (dict(data=1, fsdp=-1, tensor=1), 1, dict(slice=1, data=1, fsdp=8, tensor=1)),
    (dict(data=1, fsdp=-1, tensor=2), 1, dict(slice=1, data=1, fsdp=4, tensor=2)),
    (dict(data=2, fsdp=2, tensor=2), 1, dict(slice=1, data=2, fsdp=2, tensor=2)),
    (dict(data=1, fsdp=2, tensor=-1), 1, dict(slice=1, data=1, fsdp=2, tensor=4)),
    (dict(data=-1, fsdp=1, tensor=1), 2, dict(slice=2, data=4, fsdp=1, tensor=1)),
    (dict(data=1, fsdp=-1, tensor=2), 2, dict(slice=2, data=1, fsdp=2, tensor=2)),
    (dict(data=1, fsdp=1, tensor=1), 8, dict(slice=8, data=1, fsdp=1, tensor=1)),
    (dict(fsdp=-1), 4, dict(slice=4, data=1, fsdp=2, tensor=1)),  # missing axes default to 1
])
def test_mesh_shapes(shape, slices, expected):
  mesh = make_mesh(mesh_cfg(slices, **shape))
  assert mesh.axis_names == sharding.MESH_AXES
  assert dict(mesh.shape) == expected
  # every device exactly once
  ids = sorted(d.id for d in mesh.devices.flat)
  assert ids == sorted(d.id for d in jax.devices())


def test_multislice_cpu_stand_in_keeps_slices_contiguous():
  """On CPU (no slice_index) consecutive device blocks play the slices: slice s holds devices 4s..4s+3."""
  mesh = make_mesh(mesh_cfg(2, data=1, fsdp=-1, tensor=1))
  devs = jax.devices()
  for s in range(2):
    assert {d.id for d in mesh.devices[s].flat} == {d.id for d in devs[4 * s:4 * s + 4]}


def test_mesh_on_a_subset_of_devices():
  mesh = make_mesh(mesh_cfg(1, data=1, fsdp=-1, tensor=2), jax.devices()[:4])
  assert dict(mesh.shape) == dict(slice=1, data=1, fsdp=2, tensor=2)


def test_batch_sharding_spans_every_data_parallel_axis():
  mesh = make_mesh(mesh_cfg(2, data=2, fsdp=-1, tensor=1))
  assert sharding.data_parallel_size(mesh) == 8
  x = jax.device_put(np.arange(16 * 3).reshape(16, 3), sharding.batch_sharding(mesh, 2))
  assert {s.data.shape for s in x.addressable_shards} == {(2, 3)}


@pytest.mark.parametrize("shape,slices,match", [
    (dict(data=3, fsdp=-1, tensor=1), 1, r"does not divide the 8 devices per slice"),
    (dict(data=2, fsdp=2, tensor=1), 1, r"has 4 devices per slice but there are 8"),
    (dict(data=4, fsdp=4, tensor=1), 1, r"has 16 devices per slice but there are 8"),
    (dict(data=-1, fsdp=-1, tensor=1), 1, r"at most one mesh axis may be -1"),
    (dict(data=1, fsdp=1, tensor=0), 1, r"must be positive or -1"),
    (dict(data=-2, fsdp=1, tensor=1), 1, r"must be positive or -1"),
    (dict(data=1, fsdp=-1, tensor=1, model=2), 1, r"unknown mesh axes \['model'\]"),
    (dict(data=1, fsdp=-1, tensor=1), 3, r"cannot be split into mesh.slices=3"),
    (dict(data=1, fsdp=-1, tensor=1), 0, r"mesh.slices must be >= 1"),
    (dict(data=1, fsdp=-1, tensor=8), 2, r"does not divide the 4 devices per slice"),
    (dict(data=1, fsdp=8, tensor=1), 2, r"has 8 devices per slice but there are 4"),
])
def test_impossible_meshes_raise_mesh_error(shape, slices, match):
  with pytest.raises(MeshError, match=match):
    make_mesh(mesh_cfg(slices, **shape))


def test_resolve_mesh_shape_without_devices():
  """The pure shape arithmetic used for pod sizes (no devices needed)."""
  assert resolve_mesh_shape(dict(data=1, fsdp=-1, tensor=4), 2, 128) == dict(slice=2, data=1, fsdp=16, tensor=4)
  with pytest.raises(MeshError, match="does not divide"):
    resolve_mesh_shape(dict(data=1, fsdp=-1, tensor=3), 1, 64)


def test_unknown_mesh_axis_in_rules():
  with pytest.raises(MeshError, match=r"unknown mesh axes \['model'\]"):
    sharding.rules_from_config([["heads", "model"]])
  with pytest.raises(MeshError, match=r"unknown mesh axes \['pipe'\]"):
    sharding.rules_from_config([["activation_batch", ["data", "pipe"]]])


def test_mesh_error_is_a_value_error():
  assert issubclass(MeshError, ValueError)
