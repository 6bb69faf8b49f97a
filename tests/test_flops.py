"""hhh.core.flops: peak table, analytic FLOPs (hand-computed), MFU, CPU measurement."""

import importlib.util
from types import SimpleNamespace

import jax
import pytest

from hhh.core import flops


def dev(kind, platform="tpu", num_cores=None):
  d = SimpleNamespace(device_kind=kind, platform=platform)
  if num_cores is not None:
    d.num_cores = num_cores
  return d


@pytest.mark.parametrize("kind, peak", [
    ("TPU v4", 275e12),
    ("TPU v5 lite", 197e12),
    ("TPU v5e", 197e12),
    ("TPU v5", 459e12),
    ("TPU v5p", 459e12),
    ("TPU v6 lite", 918e12),
    ("tpu v6 lite", 918e12),  # case-insensitive
    ("NVIDIA H100 80GB HBM3", 989e12),
    ("NVIDIA H100 PCIe", 756e12),
    ("NVIDIA A100-SXM4-80GB", 312e12),
    ("NVIDIA A100-SXM4-40GB", 312e12),
])
def test_peak_per_chip_device(kind, peak):
  assert flops.peak_flops_per_device(dev(kind, platform="gpu" if "NVIDIA" in kind else "tpu")) == peak


def test_megacore_vs_per_core_devices():
  # Real v4/v5p VMs: one device = both TensorCores of a chip.
  assert flops.peak_flops_per_device(dev("TPU v4", num_cores=2)) == 275e12
  assert flops.peak_flops_per_device(dev("TPU v5", num_cores=2)) == 459e12
  # AOT topologies for v4: one device per TensorCore -> half a chip.
  assert flops.peak_flops_per_device(dev("TPU v4", num_cores=1)) == 137.5e12
  assert flops.hbm_bytes_per_device(dev("TPU v4", num_cores=1)) == 16 * 2**30
  assert flops.hbm_bytes_per_device(dev("TPU v5", num_cores=2)) == 95 * 2**30
  # Single-core chips are unaffected by num_cores.
  assert flops.peak_flops_per_device(dev("TPU v5 lite", num_cores=1)) == 197e12


def test_cpu_and_unknown_return_none():
  assert flops.peak_flops_per_device(jax.devices("cpu")[0]) is None
  assert flops.peak_flops_per_device(dev("cpu", platform="cpu")) is None
  assert flops.peak_flops_per_device(dev("TPU v99")) is None
  assert flops.hbm_bytes_per_device(dev("TPU v99")) is None


@pytest.mark.skipif(importlib.util.find_spec("libtpu") is None, reason="needs libtpu (tpu extra)")
@pytest.mark.parametrize("topology, n_devices, peak", [
    ("v4:2x2x1", 8, 137.5e12),   # 4 chips, one device per TensorCore
    ("v5p:2x2x1", 4, 459e12),    # 4 chips, megacore devices
    ("v5e:2x2", 4, 197e12),
    ("v6e:2x2", 4, 918e12),
])
def test_aot_topology_devices(topology, n_devices, peak):
  from jax.experimental import topologies
  devices = topologies.get_topology_desc(platform="tpu", topology_name=topology).devices
  assert len(devices) == n_devices
  assert {flops.peak_flops_per_device(d) for d in devices} == {peak}


def test_train_flops_toy_by_hand():
  # 6*1000 + 6*50*8 + 12*2*16*8 = 6000 + 2400 + 3072
  assert flops.train_flops_per_token(1000, 2, 8, 16, 50) == 11472.0
  assert flops.forward_flops_per_token(1000, 2, 8, 16, 50) == 3824.0


def test_each_term_separately():
  assert flops.train_flops_per_token(7, 0, 0, 0, 0) == 42.0           # 6N
  assert flops.train_flops_per_token(0, 5, 3, 0, 11) == 198.0         # 6*V*d (no seq -> no attn)
  assert flops.train_flops_per_token(0, 5, 3, 4, 0) == 720.0          # 12*L*T*d
  # Attention counts the full (unmasked) T x T scores: doubling T doubles it.
  assert flops.train_flops_per_token(0, 5, 3, 8, 0) == 1440.0


def test_attention_width_separate_from_residual_width():
  # d_model=6 for the unembedding (6*11*6=396), 4 heads x 2 = 8 for attention (12*5*4*8=1920).
  assert flops.train_flops_per_token(0, 5, 6, 4, 11, attn_width=8) == 396.0 + 1920.0
  assert flops.forward_flops_per_token(0, 5, 6, 4, 11, attn_width=8) == 772.0


def test_train_flops_52b_like():
  L, d, T, V = 64, 8192, 8192, 65536
  n = 12 * L * d * d  # 51_539_607_552
  expected = 6 * 51_539_607_552 + 6 * 65536 * 8192 + 12 * 64 * 8192 * 8192
  assert expected == 363_998_478_336
  assert flops.train_flops_per_token(n, L, d, T, V) == 363_998_478_336.0
  assert flops.forward_flops_per_token(n, L, d, T, V) == 121_332_826_112.0


def test_train_flops_rejects_negative():
  with pytest.raises(ValueError, match="seq_len must be >= 0, got -1"):
    flops.train_flops_per_token(1, 1, 1, -1, 1)


def test_mfu_by_hand():
  # 2e4 tok/s * 1e9 FLOP/tok = 2e13 FLOP/s over 4 v5e chips (7.88e14) = 0.0253807...
  assert flops.mfu(2e4, 1e9, 197e12, 4) == pytest.approx(2e13 / 7.88e14, rel=1e-12)
  assert flops.mfu(2e4, 1e9, 197e12, 4) == pytest.approx(0.025380710659898477, rel=1e-12)
  assert flops.mfu(1.0, 10.0, 5.0, 2) == 1.0


@pytest.mark.parametrize("args, message", [
    ((1.0, 1.0, None, 1), "peak_flops_per_device must be positive, got None"),
    ((1.0, 1.0, 0.0, 1), "peak_flops_per_device must be positive"),
    ((1.0, 1.0, 1.0, 0), "n_devices must be positive, got 0"),
])
def test_mfu_rejects_bad_inputs(args, message):
  with pytest.raises(ValueError, match=message):
    flops.mfu(*args)


def test_measure_matmul_flops_is_plausible_and_counts_2n3(monkeypatch):
  measured = flops.measure_matmul_flops(n=128, iters=2, repeats=1)
  assert 1e7 < measured < 1e14  # some CPU, not a unit error (s vs ms) in either direction
  # Pin the clock: each clock call advances 1 s -> one repeat of `iters` matmuls takes
  # exactly 1 s, so FLOP/s == 2 n^3 iters.
  ticks = iter(range(1000))
  monkeypatch.setattr(flops, "_clock", lambda: float(next(ticks)))
  assert flops.measure_matmul_flops(n=64, iters=3, repeats=1) == 2 * 64**3 * 3
  assert flops.measure_matmul_flops(shape=(8, 16, 32), iters=3, repeats=1) == 2 * 8 * 16 * 32 * 3


def test_measure_rejects_bad_sizes():
  with pytest.raises(ValueError, match="must be positive"):
    flops.measure_matmul_flops(n=0)


def test_resolve_peak_flops(monkeypatch):
  assert flops.resolve_peak_flops(dev("TPU v5 lite")) == (197e12, "table['TPU v5 lite']")
  monkeypatch.setattr(flops, "_measured_cpu_peak", lambda: 1.5e11)
  assert flops.resolve_peak_flops(jax.devices("cpu")[0]) == (1.5e11, "measured fp32 matmul on cpu")
  assert flops.resolve_peak_flops(dev("TPU v99")) == (None, "unknown device kind 'TPU v99'")
