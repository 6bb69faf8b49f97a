"""Peak FLOP/s per device kind, analytic transformer FLOPs, and model FLOPs utilisation (MFU).

MFU = achieved model FLOP/s / peak FLOP/s of the devices used. "Model FLOPs" are counted
analytically from the architecture (never from XLA's cost analysis, which counts a scanned layer
body once and includes rematerialisation). The trainer's logs and tools/aot_compile.py use the
same functions, so their MFU numbers agree.

Peak numbers are dense (no sparsity) bf16 matmul throughput per chip from the vendors' spec
sheets. A jax device is usually one chip, but not always: for TPU v4 topologies obtained with
``jax.experimental.topologies.get_topology_desc`` (AOT compilation on a CPU host) each
*TensorCore* is its own device (``num_cores == 1``, two devices per chip), whereas on a real v4 or
v5p VM both cores of a chip form one "megacore" device (``num_cores == 2``). The per-device peak
is therefore ``chip peak * num_cores / cores_per_chip``.

On CPU there is no meaningful spec-sheet number; ``peak_flops_per_device`` returns None and the
caller measures one with ``measure_matmul_flops`` (fp32 matmuls, timed in this process).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from typing import Any

logger = logging.getLogger(__name__)

GiB = 1024**3
_clock = time.perf_counter  # module attribute so tests can pin the clock without patching `time`


@dataclasses.dataclass(frozen=True)
class ChipSpec:
  name: str                 # short name used in docs and logs
  peak_bf16_flops: float    # dense bf16 FLOP/s per chip
  cores_per_chip: int       # TensorCores (TPU) per chip; 1 for GPUs
  hbm_bytes: int            # HBM per chip


_V4 = ChipSpec("v4", 275e12, 2, 32 * GiB)
_V5E = ChipSpec("v5e", 197e12, 1, 16 * GiB)
_V5P = ChipSpec("v5p", 459e12, 2, 95 * GiB)
_V6E = ChipSpec("v6e", 918e12, 1, 32 * GiB)
_H100_SXM = ChipSpec("h100-sxm", 989e12, 1, 80 * 10**9)
_H100_PCIE = ChipSpec("h100-pcie", 756e12, 1, 80 * 10**9)
_A100_40 = ChipSpec("a100-40gb", 312e12, 1, 40 * 10**9)
_A100_80 = ChipSpec("a100-80gb", 312e12, 1, 80 * 10**9)

# Keyed by jax `device.device_kind`. The TPU runtime reports v5e/v6e as "lite" and v5p as plain
# "TPU v5"; the marketing names are accepted too.
CHIPS: dict[str, ChipSpec] = {
    "TPU v4": _V4,
    "TPU v5 lite": _V5E,
    "TPU v5e": _V5E,
    "TPU v5": _V5P,
    "TPU v5p": _V5P,
    "TPU v6 lite": _V6E,
    "TPU v6e": _V6E,
    "NVIDIA H100 80GB HBM3": _H100_SXM,
    "NVIDIA H100 PCIe": _H100_PCIE,
    "NVIDIA A100-SXM4-40GB": _A100_40,
    "NVIDIA A100-PCIE-40GB": _A100_40,
    "NVIDIA A100-SXM4-80GB": _A100_80,
    "NVIDIA A100 80GB PCIe": _A100_80,
}
_CHIPS_LOWER = {k.lower(): v for k, v in CHIPS.items()}


def chip_spec(device_kind: str) -> ChipSpec | None:
  """The spec for a ``device.device_kind`` string (case-insensitive), or None if unknown."""
  return CHIPS.get(device_kind) or _CHIPS_LOWER.get(device_kind.strip().lower())


def _core_fraction(device: Any, spec: ChipSpec) -> float:
  cores = getattr(device, "num_cores", None)
  if not isinstance(cores, int) or cores <= 0:
    return 1.0
  return min(cores, spec.cores_per_chip) / spec.cores_per_chip


def peak_flops_per_device(device: Any) -> float | None:
  """Dense bf16 peak FLOP/s of one jax device; None on CPU (measure instead) or unknown kinds."""
  if getattr(device, "platform", None) == "cpu":
    return None
  spec = chip_spec(device.device_kind)
  if spec is None:
    logger.warning("no peak FLOP/s known for device kind %r; MFU will not be reported",
                   device.device_kind)
    return None
  return spec.peak_bf16_flops * _core_fraction(device, spec)


def hbm_bytes_per_device(device: Any) -> int | None:
  """HBM of one jax device (a TensorCore's share on per-core v4 AOT devices); None if unknown."""
  if getattr(device, "platform", None) == "cpu":
    return None
  spec = chip_spec(device.device_kind)
  if spec is None:
    return None
  return int(spec.hbm_bytes * _core_fraction(device, spec))


def measure_matmul_flops(n: int = 1024, dtype: Any = None, iters: int = 8, repeats: int = 3,
                         shape: tuple[int, int, int] | None = None) -> float:
  """FLOP/s of jitted ``n x n @ n x n`` matmuls (``shape=(m, k, n)``: ``m x k @ k x n``) on the default device,
  timed in this process.

  Used as the "peak" on CPU, where spec sheets mean nothing. Each matmul is ``2 m k n`` FLOPs; the
  best of ``repeats`` timings of ``iters`` back-to-back matmuls is kept (first call compiles and is
  not timed). Defaults to float32 because CPUs have no fast bf16 matmul.
  """
  import jax
  import jax.numpy as jnp
  m, k, n = (n, n, n) if shape is None else shape
  if min(m, k, n) <= 0 or iters <= 0 or repeats <= 0:
    raise ValueError(f"matrix sizes, iters and repeats must be positive; got {(m, k, n)}, {iters}, {repeats}")
  dtype = jnp.float32 if dtype is None else dtype
  ka, kb = jax.random.split(jax.random.key(0))
  a = jax.random.normal(ka, (m, k), dtype)
  b = jax.random.normal(kb, (k, n), dtype)
  matmul = jax.jit(jnp.matmul)
  matmul(a, b).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    start = _clock()
    outs = [matmul(a, b) for _ in range(iters)]
    jax.block_until_ready(outs)
    best = min(best, _clock() - start)
  return 2.0 * m * k * n * iters / best


@functools.lru_cache(maxsize=None)
def _measured_cpu_peak() -> float:
  return measure_matmul_flops()


def resolve_peak_flops(device: Any = None) -> tuple[float | None, str]:
  """(peak FLOP/s per device, where it came from) for logs: the table, or a CPU measurement.

  The CPU measurement runs once per process and is cached.
  """
  if device is None:
    import jax
    device = jax.devices()[0]
  peak = peak_flops_per_device(device)
  if peak is not None:
    return peak, f"table[{device.device_kind!r}]"
  if getattr(device, "platform", None) == "cpu":
    return _measured_cpu_peak(), "measured fp32 matmul on cpu"
  return None, f"unknown device kind {device.device_kind!r}"


def train_flops_per_token(n_params_nonembed: int, n_layers: int, d_model: int, seq_len: int,
                          vocab_size: int, *, attn_width: int | None = None) -> float:
  """Model FLOPs to train on one token (forward + backward) of a decoder-only transformer.

  ``6 * N + 6 * vocab_size * d_model + 12 * n_layers * seq_len * d_model``

  * ``6 * N``: every non-embedding weight takes part in one multiply-add per token in the
    forward pass (2 FLOPs) and two in the backward pass (gradients w.r.t. activations and
    weights, 4 FLOPs). N is ``TransformerConfig.non_embedding_params()``, which counts each
    matrix at its real size, so the architecture options are accounted for there: the query and
    output projections are ``d_model x n_heads * d_head``, the key and value projections
    ``d_model x n_kv_heads * d_head`` (smaller under grouped-query attention), and the MLP has
    two ``d_model x d_ff`` matrices, three with SwiGLU (gate, up, down). N excludes the token
    and position embeddings and the unembedding; it includes biases and norms (negligible).
  * ``6 * vocab_size * d_model``: the unembedding matmul (d_model -> vocab logits) is a matmul
    like any other, 2 FLOPs per weight forward, 4 backward; with tied embeddings it is the same
    matmul with the embedding's weights. The embedding lookups (token and learned position) are
    gathers and cost no FLOPs. For a scalar score head (preference model) pass the head's width
    instead.
  * ``12 * n_layers * seq_len * d_model``: attention scores ``Q K^T`` and the weighted sum
    ``softmax(.) V`` each cost ``2 * seq_len * d_model`` FLOPs per token per layer forward
    (summed over heads: ``d_model`` here is ``n_heads * d_head``; pass ``attn_width`` when it
    differs from the residual width), so 4 forward and 12 with backward. Grouped-query attention
    does not shrink this term: keys and values are shared, but every query head computes its own
    scores and weighted sum (``attn_width`` counts query heads). The
    causal mask is applied to a full ``seq_len x seq_len`` score matrix, so this counts the
    computation as executed, not the half that the mask keeps.

  Rematerialisation is not counted: MFU measures useful model FLOPs, so recomputed forwards lower
  MFU rather than inflate it.
  """
  for name, value in (("n_params_nonembed", n_params_nonembed), ("n_layers", n_layers),
                      ("d_model", d_model), ("seq_len", seq_len), ("vocab_size", vocab_size)):
    if value < 0:
      raise ValueError(f"{name} must be >= 0, got {value}")
  attn_width = d_model if attn_width is None else attn_width
  if attn_width < 0:
    raise ValueError(f"attn_width must be >= 0, got {attn_width}")
  return float(6 * n_params_nonembed + 6 * vocab_size * d_model
               + 12 * n_layers * seq_len * attn_width)


def forward_flops_per_token(n_params_nonembed: int, n_layers: int, d_model: int, seq_len: int,
                            vocab_size: int, *, attn_width: int | None = None) -> float:
  """Forward-only FLOPs per token (evaluation, scoring): one third of ``train_flops_per_token``,
  i.e. ``2 * N + 2 * vocab_size * d_model + 4 * n_layers * seq_len * d_model``."""
  return train_flops_per_token(n_params_nonembed, n_layers, d_model, seq_len, vocab_size,
                               attn_width=attn_width) / 3.0


def mfu(tokens_per_sec: float, flops_per_token: float, peak_flops_per_device: float,
        n_devices: int) -> float:
  """Model FLOPs utilisation: ``tokens_per_sec * flops_per_token / (peak * n_devices)``.

  A fraction in [0, 1] for sane inputs (multiply by 100 for percent). ``tokens_per_sec`` is the
  global throughput, summed over all devices.
  """
  if peak_flops_per_device is None or peak_flops_per_device <= 0:
    raise ValueError(f"peak_flops_per_device must be positive, got {peak_flops_per_device}")
  if n_devices <= 0:
    raise ValueError(f"n_devices must be positive, got {n_devices}")
  if tokens_per_sec < 0 or flops_per_token < 0:
    raise ValueError("tokens_per_sec and flops_per_token must be >= 0")
  return tokens_per_sec * flops_per_token / (peak_flops_per_device * n_devices)
