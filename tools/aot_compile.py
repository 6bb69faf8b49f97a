"""Compile the real train step for a TPU slice on this (CPU) host and report whether it fits.

  python tools/aot_compile.py --config=configs/preference.py:52b --topology=v5p-128 \
      --config.mesh.shape.data=1 --config.mesh.shape.fsdp=-1 --config.mesh.shape.tensor=4
  python tools/aot_compile.py --config=configs/pretrain.py:13b --topology=v5p-128 --num_slices=2 ...

Needs libtpu (`pip install -e '.[tpu]'`); no TPU is used. The mesh comes from the config (`--config.mesh.*`), the
devices from the topology (`--topology`: v5p-128 / v4-64 count TensorCores, v5e-256 / v6e-256 count chips, or a
libtpu string such as v5p:4x4x4; `--num_slices` slices over DCN). Prints per-device argument, output, temporary and
total bytes against the chip's HBM, the analytic FLOPs of one step, the step time at 100% and at `--mfu`, and the
fraction of parameter bytes replicated on every device. Exits 1 when the step does not fit (or the compiler runs out
of memory), or when a model of >= --replication_check_min_params parameters has more than
--max_replicated_fraction of its parameter bytes replicated on every device; 2 on a usage error (bad topology, mesh
or config).
"""

from __future__ import annotations

import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The TPU devices come from the topology description (compile-only); the host computations (eval_shape) run on CPU.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

from hhh.cli.quiet import quiet  # noqa: E402

quiet()  # start-up quieting, before jax and TensorFlow are imported

from absl import flags  # noqa: E402
from hhh import cli  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file and size, e.g. configs/preference.py:52b; override any field with "
    "--config.a.b=value (as for hhh.train).", lock_config=True)
_TOPOLOGY = flags.DEFINE_string("topology", None, "TPU slice: v5p-128, v4-64, v5e-256, v6e-256, ... or a libtpu "
                                "topology string such as v5p:4x4x4.")
_NUM_SLICES = flags.DEFINE_integer("num_slices", 1, "Number of slices (multi-slice over DCN). Sets "
                                   "config.mesh.slices unless that is overridden to the same value.")
_MFU = flags.DEFINE_float("mfu", 0.4, "MFU at which to state the step time (a fraction).")
_JSON = flags.DEFINE_string("json", None, "Write the report as JSON to this path.")
_MAX_REPL = flags.DEFINE_float("max_replicated_fraction", 0.01, "Fail when more than this fraction of parameter "
                               "bytes is replicated on every device (for models of >= "
                               "--replication_check_min_params parameters).")
_MIN_PARAMS = flags.DEFINE_float("replication_check_min_params", 1e9, "Parameter count from which the "
                                 "replication check applies (small models may be purely data parallel).")
flags.mark_flags_as_required(["config", "topology"])


def main(_):
  logging.getLogger("absl").setLevel(logging.WARNING)
  from hhh.train import aot  # pylint: disable=g-import-not-at-top
  sys.exit(aot.compile_and_check(_CONFIG.value, _TOPOLOGY.value, _NUM_SLICES.value, mfu=_MFU.value, json_path=_JSON.value,
               max_replicated_fraction=_MAX_REPL.value, replication_check_min_params=_MIN_PARAMS.value))


if __name__ == "__main__":
  cli.run(main, config_example="configs/preference.py:52b")
