"""Test set-up: 8 fake CPU devices (set before jax is imported) so sharding runs on a laptop."""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The suite's programs are tiny and most run a few steps, so XLA's optimisation passes cost far more than they save
# (a 2-layer model's train step: 12 s to compile at the default level, 4-5 s without, each step 1.5-2x slower).
# JAX's own switch (XLA backend optimisation level 0, no expensive LLVM passes) is inherited by the commands the
# tests start, newcomers' included (conftest.newcomer_env), so in-process and command-line numbers stay comparable;
# HHH_TEST_OPTIMIZE=1 compiles as users do. The programs are the same, compiled with fewer backend passes.
if os.environ.get("HHH_TEST_OPTIMIZE", "0") != "1":
  os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
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

import dataclasses  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import filelock  # noqa: E402
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


_CLOUD_TPU_INIT_VARS = ("GRPC_VERBOSITY", "ENABLE_RUNTIME_UPTIME_TELEMETRY", "TENSORSTORE_CURL_LOW_SPEED_TIME_SECONDS",
                        "TENSORSTORE_CURL_LOW_SPEED_LIMIT_BYTES")


@pytest.fixture
def optimized_compile():
  """This test compiles as users do (conftest's JAX_DISABLE_MOST_OPTIMIZATIONS off): for the few tests that run
  hundreds of steps, where the faster programs repay the longer compiles. Restored after."""
  import jax  # pylint: disable=g-import-not-at-top
  before = jax.config.values["jax_disable_most_optimizations"]
  jax.config.update("jax_disable_most_optimizations", False)
  yield
  jax.config.update("jax_disable_most_optimizations", before)


def newcomer_env(directory: pathlib.Path) -> tuple[dict, pathlib.Path]:
  """The environment of a first run: none of the test set-up's JAX/TF settings (one CPU device, no compilation
  cache), a private temporary directory `directory`/tmp. Returns (env, that temporary directory)."""
  env = dict(os.environ)
  for k in ("JAX_PLATFORMS", "TF_CPP_MIN_LOG_LEVEL", "XLA_FLAGS", "HHH_QUIET", "ALLOW_MULTIPLE_LIBTPU_LOAD",
            *CACHE_VARS):  # nor the test run's compilation cache: a newcomer compiles everything
    env.pop(k, None)
  # Set inside this pytest process once any test imported libtpu (`import libtpu` exports TPU_LIBRARY_PATH) or
  # JAX's cloud_tpu_init ran; a newcomer's shell has none of them, and TPU_LIBRARY_PATH means "I want libtpu".
  for k in [k for k in env if k.startswith(("TPU_", "LIBTPU_")) or k in _CLOUD_TPU_INIT_VARS]:
    env.pop(k)
  tmp = directory / "tmp"
  tmp.mkdir(exist_ok=True)
  env["TMPDIR"] = str(tmp)
  env["PYTHONPATH"] = str(REPO)
  return env, tmp


@dataclasses.dataclass
class CliRuns:
  """Runs made once per test run by `python -m hhh.train` as a newcomer types it: from `root` (not the repository),
  relative workdirs, the newcomer environment. runs/lm: a tiny LM (LM_STEPS steps, a checkpoint every 5, one log line
  per step); runs/pm: a ranked preference model with `--config.init_from=runs/lm` and held-out evaluation. Read-only:
  a test that writes into a run copies it first."""
  root: pathlib.Path
  out: dict  # {"lm" | "pm": {"returncode", "stdout", "stderr"}}

  LM_STEPS = 20

  @property
  def lm(self) -> pathlib.Path:
    return self.root / "runs" / "lm"

  @property
  def pm(self) -> pathlib.Path:
    return self.root / "runs" / "pm"

  @property
  def tmp(self) -> pathlib.Path:
    return self.root / "tmp"

  @staticmethod
  def lm_args(workdir: str, steps: int = LM_STEPS) -> list:
    """The arguments (after the interpreter) of runs/lm's command, for `workdir` and `steps`."""
    return ["-m", "hhh.train", f"--config={REPO}/configs/pretrain.py:tiny", f"--workdir={workdir}",
            f"--config.train.steps={steps}", "--config.train.checkpoint_every=5", "--config.train.log_every=1",
            "--config.train.eval_every=0", "--config.train.batch_size=8", "--config.data.seq_len=32"]

  PM_ARGS = ["-m", "hhh.train", f"--config={REPO}/configs/preference.py:tiny", "--workdir=runs/pm",
             "--config.init_from=runs/lm", "--config.train.steps=2", "--config.train.batch_size=8",
             "--config.data.seq_len=64", "--config.train.eval_every=2", "--config.train.eval_batches=1"]

  def env(self) -> dict:
    """The environment the runs were made with (for commands that must match them, e.g. a resume)."""
    return newcomer_env(self.root)[0]


@pytest.fixture(scope="session")
def cli_runs(tmp_path_factory) -> CliRuns:
  """The shared CliRuns: made by the first xdist worker that asks (the others wait on a file lock, then read it)."""
  base = tmp_path_factory.getbasetemp()
  shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # one folder per test run, every worker
  root = shared / "cli_runs"
  with filelock.FileLock(str(shared / "cli_runs.lock")):
    record = root / "outputs.json"
    if not record.exists():
      root.mkdir(exist_ok=True)
      env, _ = newcomer_env(root)
      out = {}
      for name, args in (("lm", CliRuns.lm_args("runs/lm")), ("pm", CliRuns.PM_ARGS)):
        r = subprocess.run([sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, timeout=900)
        out[name] = {"returncode": r.returncode, "stdout": r.stdout, "stderr": r.stderr}
        assert r.returncode == 0, f"{name}: {r.stdout[-2000:]}\n{r.stderr[-3000:]}"
      record.write_text(json.dumps(out))
  return CliRuns(root, json.loads(record.read_text()))



@dataclasses.dataclass
class Ran:
  """What run_in_process returns: the fields of subprocess.CompletedProcess that tests read."""
  returncode: int
  stdout: str
  stderr: str


def run_in_process(args: list, cwd) -> Ran:
  """`python -m hhh.COMMAND ARGS...` (args as given to the interpreter) run in this process: the command's own
  main(argv), from `cwd`, its stdout and stderr captured and its exit status returned as a subprocess's would be.
  The flags its main() defines are removed afterwards, so the next call defines them again. For tests of what a
  command does; what only a process shows (start-up, signals, interpreter exit, the newcomer's environment) keeps a
  real subprocess."""
  import contextlib  # pylint: disable=g-import-not-at-top
  import importlib  # pylint: disable=g-import-not-at-top
  import io  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  assert args[0] == "-m" and args[1].startswith("hhh."), args
  module = importlib.import_module(args[1])  # a package's command is its __main__'s
  main = getattr(module, "main", None) or importlib.import_module(f"{args[1]}.__main__").main
  main = getattr(main, "main", main)  # a package's main.py module: its main()
  before, was_parsed = set(flags.FLAGS), flags.FLAGS.is_parsed()
  out, err, code, here, argv = io.StringIO(), io.StringIO(), 0, os.getcwd(), sys.argv
  try:
    os.chdir(cwd)
    sys.argv = [args[1], *args[2:]]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
      try:
        main(list(sys.argv))
      except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if isinstance(e.code, str):
          print(e.code, file=sys.stderr)
  finally:
    os.chdir(here)
    sys.argv = argv
    # The command's own flags and the --config.a.b overrides ml_collections defined for them (not the flags of a
    # library first imported here).
    new = set(flags.FLAGS) - before
    own = {n for n in new if flags.FLAGS.find_module_defining_flag(n) == main.__module__}
    for name in new:
      if name.split(".")[0] in own:
        delattr(flags.FLAGS, name)
    if not was_parsed:
      flags.FLAGS.unparse_flags()
  return Ran(code, out.getvalue(), err.getvalue())


def pytest_collection_modifyitems(config, items):
  """The slow tests first, the laboratory's end-to-end runs (minutes each) before them, the rest after (each group in
  its collected order): xdist hands tests out as workers free up, so the many short tests fill in behind the long ones
  instead of a long one starting last and running alone."""
  items.sort(key=lambda item: (item.get_closest_marker("slow") is None, item.path.name != "test_lab.py"))
