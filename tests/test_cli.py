"""First contact: every command's --help shows its own flags and exits 0; a run's output carries no start-up noise."""

import glob
import os
import pathlib
import re
import subprocess
import sys

import pytest

import conftest

REPO = pathlib.Path(__file__).resolve().parents[1]

# Each command and flags of its own that --help must show (absl commands: with their help text).
COMMANDS = {
    "hhh.train": ["--config", "--workdir", "Run directory"],
    "hhh.eval": ["--config", "--workdir", "eval.json"],
    "hhh.lab": ["--config", "--workdir", "preset"],
    "hhh.sample": ["--config", "--out", "prompts"],
    "hhh.chat": ["--config", "checkpoint"],
    "hhh.best_of_n": ["--config", "--out", "pm_checkpoint", "judge"],
    "tools/aot_compile.py": ["--config", "--topology", "--num_slices"],
    "tools/bench.py": ["--config", "--steps", "--matmul_n", "--matmuls"],
    "tools/bench_data.py": ["--task", "--batches"],
    "tools/bench_decode.py": ["--config", "--batch_sizes", "--new_tokens"],
    "tools/bench_import.py": ["--layers", "--shards", "--keep"],
    "tools/bench_objectives.py": ["--distill_sizes", "--pm_size", "--reps"],
    "tools/bench_sandbox.py": ["--workers", "--rounds", "--json"],
    "tools/checkpoint_integrity.py": ["--trials", "--overhead_size", "--workdir"],
    "tools/hf_export.py": ["--run", "--out"],
    "tools/hf_import.py": ["--hf", "--out", "--vocab_size", "--overwrite"],
    "tools/lab_check.py": ["--out", "--sizes", "--steps"],
    "tools/lab_diff.py": ["--tolerance"],
    "tools/param_count.py": ["--sizes"],
    "tools/plot.py": ["--out"],
    "tools/show_task.py": ["--split", "--list"],
    "tools/sweep.py": ["--config", "--workdir", "--examples", "--eval_only"],
    "tools/teacher_logits.py": ["--config", "--out", "--top_k"],
    "tools/train_vocab.py": ["--input", "--vocab_size"],
    "tools/transfer_sweep.py": ["--out", "--lm_steps", "--ns"],
}
ABSL_COMMANDS = ["hhh.train", "hhh.eval", "hhh.lab", "hhh.sample", "hhh.chat", "hhh.best_of_n"] + [
    c for c in COMMANDS if c.startswith("tools/") and "from hhh import cli" in (REPO / c).read_text()]

# What a newcomer used to see on every run (CPU machine with libtpu installed), none of it actionable.
NOISE = [
    "cuInit", "cudart_stub", "Could not find cuda drivers", "absl::InitializeLog", "InitGoogle", "libtpu_init_utils",
    "TPU_ACCELERATOR_TYPE", "TPU_WORKER_HOSTNAMES", "host bounds", "Unable to initialize backend", "oneDNN",
    "cpu_feature_guard", "Metadata file does not exist", "uncached FunctionDataset",
]


def _cmd(command):
  return [sys.executable] + (["-m", command] if command.startswith("hhh.") else [str(REPO / command)])


def _newcomer_env(tmp_path):
  return conftest.newcomer_env(tmp_path)


def _run(args, env=None, timeout=300):
  return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def _noise(text):
  return [line for line in text.splitlines() if any(n in line for n in NOISE)]


def test_every_tool_is_covered():
  tools = {f"tools/{p.name}" for p in (REPO / "tools").glob("*.py")}
  assert tools == {c for c in COMMANDS if c.startswith("tools/")}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_shows_own_flags_and_exits_0(command):
  r = _run(_cmd(command) + ["--help"])
  assert r.returncode == 0, r.stdout + r.stderr
  for flag in COMMANDS[command]:
    assert flag in r.stdout, f"{command} --help lacks {flag}:\n{r.stdout}"
  assert "Try --helpfull" not in r.stdout  # absl's short usage, which listed no flags for hhh.eval
  assert _noise(r.stderr) == []


@pytest.mark.parametrize("command", ABSL_COMMANDS)
def test_absl_commands_short_and_full_help(command):
  r = _run(_cmd(command) + ["-h"])
  assert r.returncode == 0, r.stderr
  assert COMMANDS[command][0] in r.stdout
  full = _run(_cmd(command) + ["--helpfull"])
  assert full.returncode == 0, full.stderr
  assert COMMANDS[command][0] in full.stdout and "--verbosity" in full.stdout  # absl's own flags too


def test_help_explains_config_and_shows_resolved_config():
  r = _run(_cmd("hhh.train") + ["--help"])
  assert "--config.a.b=VALUE" in r.stdout and "configs/pretrain.py:tiny" in r.stdout
  assert "top-level fields" in r.stdout and "train.*" in r.stdout
  r = _run(_cmd("hhh.train") + ["--config=configs/pretrain.py:tiny", "--config.train.steps=7", "--help"])
  assert r.returncode == 0, r.stderr
  assert re.search(r"^  steps: 7$", r.stdout, re.M), r.stdout
  r = _run(_cmd("hhh.train") + ["--config=configs/pretrain.py:tiny", "--config.train.stepz=7", "--help"])
  assert r.returncode == 0 and "Did you mean" in r.stdout
  r = _run(_cmd("hhh.lab") + ["--config.preset=smoke", "--help"])
  assert r.returncode == 0 and re.search(r"^preset: smoke$", r.stdout, re.M), r.stdout


@pytest.mark.parametrize("cmd,config,override,hint", [
    ("hhh.train", "configs/preference.py:tiny", "--config.objective.margn=1", 'margn: Did you mean "margin"'),
    ("hhh.train", "configs/pretrain.py:tiny", "--config.trian.steps=1", 'trian: Did you mean "train"'),
    ("hhh.eval", "configs/eval.py:tiny", "--config.eval.suitez=hhh", 'suitez: Did you mean "suites"')])
def test_a_misspelt_config_override_is_one_line_not_a_traceback(tmp_path, cmd, config, override, hint):
  r = _run(_cmd(cmd) + [f"--config={config}", f"--workdir={tmp_path / 'w'}", override])
  assert r.returncode == 2 and f"error: bad --config override: {hint}" in r.stderr, r.stderr
  assert "Traceback" not in r.stderr and not (tmp_path / "w").exists()


def test_help_stops_at_double_dash():
  """Arguments after `--` belong to the command (tools/sweep.py passes them on as overrides)."""
  r = _run(_cmd("tools/sweep.py") + ["--", "--help"])
  assert r.returncode != 0 and "workdir" in r.stderr  # parsed as a run: the required --workdir is missing


_AUTOGRAPH_SCRIPT = """
import os, sys, glob, tempfile
from hhh.cli.quiet import quiet
quiet()  # what every entry point does before its heavy imports
import tensorflow as tf

def f(x):
  if x > 1:  # Python control flow on a tensor: autograph converts (and writes a generated file)
    return x * 2
  return x

assert list(tf.data.Dataset.range(3).map(f).as_numpy_iterator()) == [0, 1, 4]
assert tf.config.get_visible_devices("GPU") == []  # TensorFlow (input pipeline only) leaves accelerators to JAX
files = glob.glob(os.path.join(tempfile.gettempdir(), "**", "__autograph_generated_file*"), recursive=True)
assert files and all(os.path.basename(os.path.dirname(p)).startswith("hhh-autograph-") for p in files), files
print("generated", len(files), flush=True)
if sys.argv[1] == "kill":
  os._exit(0)  # no atexit: what a SIGKILL or a timeout leaves behind
"""


def test_autograph_files_stay_in_a_per_process_dir_and_are_removed(tmp_path):
  env, tmp = _newcomer_env(tmp_path)
  script = tmp_path / "ag.py"
  script.write_text(_AUTOGRAPH_SCRIPT)
  killed = _run([sys.executable, str(script), "kill"], env=env)
  assert killed.returncode == 0, killed.stderr
  assert len(glob.glob(str(tmp / "hhh-autograph-*"))) == 1  # left by the "killed" process
  clean = _run([sys.executable, str(script), "exit"], env=env)
  assert clean.returncode == 0, clean.stderr
  assert _noise(clean.stdout + clean.stderr) == [], clean.stderr
  # the second process removed the first one's directory (its process is gone) and its own at exit
  assert list(tmp.iterdir()) == [], list(tmp.iterdir())


@pytest.mark.slow
def test_training_run_is_quiet_and_leaves_no_temp_files(cli_runs):
  """A tiny run, then a run starting from its checkpoint (the orbax load path) with held-out evaluation, as a newcomer
  runs them (conftest.CliRuns): stdout/stderr without noise, no temporary files left."""
  for name in ("lm", "pm"):
    r = cli_runs.out[name]
    assert r["returncode"] == 0 and _noise(r["stdout"] + r["stderr"]) == [], r["stderr"]
  assert "step 20/20" in cli_runs.out["lm"]["stdout"] and "init_from" in cli_runs.out["pm"]["stdout"]
  assert "step 2/2" in cli_runs.out["pm"]["stdout"] and "eval" in cli_runs.out["pm"]["stdout"]
  assert not glob.glob(str(cli_runs.tmp / "**" / "__autograph_generated_file*"), recursive=True)
  assert not glob.glob(str(cli_runs.tmp / "hhh-autograph-*"))


_TPU_PROBE_SCRIPT = """
import sys
import hhh.cli.quiet
hhh.cli.quiet._no_tpu_here = lambda: False  # a /dev/vfio or /dev/accel node (VMs, CI containers) without any TPU
if sys.argv[1] == "unfiltered":
  hhh.cli.quiet.TPU_STARTUP_NOISE[:] = []
hhh.cli.quiet.quiet()  # what every entry point does before its heavy imports
import jax
print(jax.devices()[0].platform)
"""


@pytest.mark.tpu
def test_libtpu_tried_on_a_machine_without_tpu_fails_quietly(tmp_path):
  pytest.importorskip("libtpu")
  env, _ = _newcomer_env(tmp_path)
  script = tmp_path / "probe.py"
  script.write_text(_TPU_PROBE_SCRIPT)
  quiet = _run([sys.executable, str(script), "filtered"], env=env)
  assert quiet.returncode == 0, quiet.stderr
  assert quiet.stdout.split() == ["cpu"]
  assert _noise(quiet.stdout + quiet.stderr) == [], quiet.stderr
  # the probe really loaded libtpu: without the filter its complaints reach stderr
  loud = _run([sys.executable, str(script), "unfiltered"], env=env)
  assert loud.returncode == 0 and loud.stdout.split() == ["cpu"], loud.stderr
  assert _noise(loud.stderr), loud.stderr


def test_a_closed_stdout_ends_a_command_quietly_with_the_sigpipe_status(tmp_path, monkeypatch):
  """`python -m hhh.sample ... | head -1`: the reader leaves, the command stops with status 141 and no traceback."""
  from hhh.cli import command
  out = open(tmp_path / "stdout", "w")  # pylint: disable=consider-using-with
  monkeypatch.setattr(sys, "stdout", out)

  def main(argv):
    raise BrokenPipeError(32, "Broken pipe")

  with pytest.raises(SystemExit) as e:
    command._user_errors_without_traceback(main, "python -m hhh.sample")([])  # pylint: disable=protected-access
  assert e.value.code == 141
  out.write("x" * 10)
  out.close()  # stdout now points at /dev/null: the interpreter's last flush cannot fail again
  assert (tmp_path / "stdout").read_text() == ""
