"""Test set-up: 8 fake CPU devices (set before jax is imported) so sharding runs on a laptop."""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# pytest-xdist workers each load libtpu (AOT compile tests): allow it instead of failing on libtpu's lockfile.
os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")

import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

# One JAX persistent compilation cache for the whole test run: the pytest process that starts first (the xdist
# controller) makes it, its workers and every command a test starts inherit it, so the many tests that train, resume,
# evaluate or sample the same small models compile each program once per run instead of once per process. A cached
# executable is the one XLA built, so no number changes. The cache starts empty on each run and is removed at exit;
# a JAX_COMPILATION_CACHE_DIR already set is used as it is (HHH_TEST_COMPILE_CACHE=0 turns the cache off).
# The size limit turns on JAX's file lock, so concurrent processes never read an entry another is still writing.
CACHE_VARS = ("JAX_COMPILATION_CACHE_DIR", "JAX_COMPILATION_CACHE_MAX_SIZE", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")
if os.environ.get("HHH_TEST_COMPILE_CACHE", "1") != "0" and not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
  _cache = tempfile.mkdtemp(prefix="hhh-test-jax-cache-")
  atexit.register(shutil.rmtree, _cache, True)
  os.environ.update({"JAX_COMPILATION_CACHE_DIR": _cache, "JAX_COMPILATION_CACHE_MAX_SIZE": str(16 << 30),
                     "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.2"})

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


@pytest.fixture
def no_session_compile_cache(monkeypatch):
  """This test sees no test-run compilation cache (for tests of hhh's own cache handling); restored after."""
  import jax  # pylint: disable=g-import-not-at-top
  from jax._src import compilation_cache as cc  # pylint: disable=g-import-not-at-top
  for k in CACHE_VARS:
    monkeypatch.delenv(k, raising=False)
  before = jax.config.jax_compilation_cache_dir
  jax.config.update("jax_compilation_cache_dir", None)
  cc.reset_cache()
  yield
  jax.config.update("jax_compilation_cache_dir", before)
  cc.reset_cache()
