"""Test set-up: 8 fake CPU devices (set before jax is imported) so sharding runs on a laptop."""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# pytest-xdist workers each load libtpu (AOT compile tests): allow it instead of failing on libtpu's lockfile.
os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")

import pathlib  # noqa: E402

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
BIGBENCH = pathlib.Path(os.environ.get("HHH_BIGBENCH_DIR", REPO.parent / "shared" / "data" / "bigbench"))


@pytest.fixture
def bigbench_dir():
  if not (BIGBENCH / "hhh_alignment" / "task.json").exists():
    pytest.skip(f"real BIG-bench data not found at {BIGBENCH} (set HHH_BIGBENCH_DIR or place "
                f"hhh_alignment/ and truthful_qa/ there)")
  return BIGBENCH
