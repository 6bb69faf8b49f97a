"""hhh.core.distributed: multi-host detection, idempotent initialise, process-0 logging, preemption flag."""

import os
import signal

import jax
import pytest

from hhh.core import distributed as dist


@pytest.fixture(autouse=True)
def _fresh_state():
  dist.reset_for_tests()
  yield
  dist.reset_for_tests()


class Recorder:
  def __init__(self):
    self.calls = []

  def __call__(self, **kwargs):
    self.calls.append(kwargs)


@pytest.mark.parametrize("env, multi, reason", [
    ({}, False, "no multi-host environment variables"),
    ({"TPU_WORKER_HOSTNAMES": "t1v-n-0"}, False, "TPU_WORKER_HOSTNAMES lists 1 host(s)"),
    ({"TPU_WORKER_HOSTNAMES": "t1v-n-0,t1v-n-1,t1v-n-2,t1v-n-3"}, True,
     "TPU_WORKER_HOSTNAMES lists 4 host(s)"),
    ({"TPU_PROCESS_ADDRESSES": "10.0.0.1:8476,10.0.0.2:8476"}, True,
     "TPU_PROCESS_ADDRESSES lists 2 host(s)"),
    ({"MEGASCALE_NUM_SLICES": "2"}, True, "MEGASCALE_NUM_SLICES=2"),
    ({"MEGASCALE_NUM_SLICES": "1"}, False, "no multi-host environment variables"),
    ({"MEGASCALE_COORDINATOR_ADDRESS": "10.0.0.1"}, True, "MEGASCALE_COORDINATOR_ADDRESS is set"),
    ({"JAX_COORDINATOR_ADDRESS": "localhost:1234", "JAX_NUM_PROCESSES": "2",
      "JAX_PROCESS_ID": "1"}, True, "JAX_NUM_PROCESSES=2"),
    ({"JAX_COORDINATOR_ADDRESS": "localhost:1234", "JAX_NUM_PROCESSES": "1",
      "JAX_PROCESS_ID": "0"}, False, "JAX_NUM_PROCESSES=1"),
    # The launcher's explicit switch beats everything else, both ways.
    ({"HHH_DISTRIBUTED": "on"}, True, "HHH_DISTRIBUTED=on"),
    ({"HHH_DISTRIBUTED": "OFF", "TPU_WORKER_HOSTNAMES": "a,b"}, False, "HHH_DISTRIBUTED=off"),
])
def test_detect(env, multi, reason):
  assert dist.detect(env) == (multi, reason)


@pytest.mark.parametrize("env, message", [
    ({"JAX_COORDINATOR_ADDRESS": "localhost:1234"}, "missing JAX_NUM_PROCESSES, JAX_PROCESS_ID"),
    ({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"},
     r"JAX_PROCESS_ID=2 must be in \[0, JAX_NUM_PROCESSES=2\)"),
    ({"JAX_NUM_PROCESSES": "two", "JAX_COORDINATOR_ADDRESS": "h:1", "JAX_PROCESS_ID": "0"},
     "JAX_NUM_PROCESSES='two' is not an integer"),
    ({"HHH_DISTRIBUTED": "yes"}, "HHH_DISTRIBUTED='yes'"),
])
def test_detect_rejects_inconsistent_env(env, message):
  with pytest.raises(ValueError, match=message):
    dist.detect(env)


def test_single_host_does_not_initialize():
  init = Recorder()
  info = dist.maybe_initialize(env={}, initialize_fn=init)
  assert init.calls == []
  assert info.initialized is False
  assert (info.process_index, info.process_count) == (0, 1)
  assert info.local_device_count == jax.local_device_count()
  assert info.device_count == jax.device_count()
  assert info.is_primary


def test_tpu_pod_initializes_with_autodetection():
  init = Recorder()
  info = dist.maybe_initialize(env={"TPU_WORKER_HOSTNAMES": "w0,w1"}, initialize_fn=init)
  # On a TPU VM jax finds coordinator/process id itself: no arguments are passed.
  assert init.calls == [{}]
  assert info.initialized is True
  assert info.reason == "TPU_WORKER_HOSTNAMES lists 2 host(s)"


def test_manual_run_passes_explicit_arguments():
  init = Recorder()
  env = {"JAX_COORDINATOR_ADDRESS": "10.1.2.3:8476", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3"}
  dist.maybe_initialize(env=env, initialize_fn=init)
  assert init.calls == [{"coordinator_address": "10.1.2.3:8476", "num_processes": 4, "process_id": 3}]


def test_mode_on_forces_and_mode_off_never():
  init = Recorder()
  info = dist.maybe_initialize("on", env={}, initialize_fn=init)
  assert init.calls == [{}] and info.reason == "mode=on"
  dist.reset_for_tests()
  init = Recorder()
  info = dist.maybe_initialize("off", env={"TPU_WORKER_HOSTNAMES": "a,b", "HHH_DISTRIBUTED": "on"},
                               initialize_fn=init)
  assert init.calls == [] and info.initialized is False and info.reason == "mode=off"


def test_idempotent():
  init = Recorder()
  env = {"MEGASCALE_NUM_SLICES": "2"}
  first = dist.maybe_initialize(env=env, initialize_fn=init)
  second = dist.maybe_initialize("on", env=env, initialize_fn=init)
  assert init.calls == [{}]
  assert second is first
  assert dist.info() is first


def test_rejects_unknown_mode():
  with pytest.raises(ValueError, match="mode='maybe'"):
    dist.maybe_initialize("maybe", env={}, initialize_fn=Recorder())


def test_is_primary_follows_process_index(monkeypatch):
  assert dist.is_primary() is True
  monkeypatch.setattr(jax, "process_index", lambda: 3)
  assert dist.is_primary() is False


def test_sigterm_sets_flag_instead_of_killing():
  before = signal.getsignal(signal.SIGTERM)
  dist.install_preemption_handler()
  assert dist.preemption_requested() is False
  os.kill(os.getpid(), signal.SIGTERM)  # would end pytest if the handler were not installed
  assert dist.preemption_requested() is True
  assert dist.any_process_preempted() is True
  assert dist.preemption_signal() == signal.SIGTERM
  dist.reset_preemption()
  assert dist.preemption_requested() is False
  assert dist.preemption_signal() is None
  assert signal.getsignal(signal.SIGTERM) == before


def test_install_twice_then_reset_restores_original_handler():
  before = signal.getsignal(signal.SIGTERM)
  dist.install_preemption_handler()
  dist.install_preemption_handler()
  dist.reset_preemption()
  assert signal.getsignal(signal.SIGTERM) == before


def test_request_preemption_by_hand():
  assert dist.any_process_preempted() is False
  dist.request_preemption()
  assert dist.preemption_requested() is True


def test_any_process_preempted_multi_process_checks_only_every_n_steps(monkeypatch):
  from jax.experimental import multihost_utils
  gathered = []

  def fake_allgather(x):
    gathered.append(x.tolist())
    import numpy as np
    return np.array([[0], [1]])  # the other process was preempted

  monkeypatch.setattr(jax, "process_count", lambda: 2)
  monkeypatch.setattr(multihost_utils, "process_allgather", fake_allgather)
  assert dist.any_process_preempted(step=7, every=5) is False
  assert gathered == []
  assert dist.any_process_preempted(step=10, every=5) is True
  assert gathered == [[0]]  # this process contributed "not preempted"
  assert dist.any_process_preempted() is True
  with pytest.raises(ValueError, match="every must be >= 1, got 0"):
    dist.any_process_preempted(step=1, every=0)
