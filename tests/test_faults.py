"""Faults are features: each promise of the trainer (docs/reliability.md) with a test that injects the fault.

Relative paths from another cwd, non-finite steps never reaching a checkpoint, a held workdir, a corrupt latest
checkpoint, a full disk, a config that does not match the run being resumed, signals during set-up, Ctrl-C, and a
kill between saves (metrics.jsonl keeps each step once).
"""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

from hhh.run import checkpoint as ckpt_lib
from hhh.run import rundir
from hhh import train
from test_train import lm_batches, read_metrics, tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def losses(workdir):
  return {m["step"]: m["train/loss"] for m in read_metrics(workdir) if "train/loss" in m}


@pytest.fixture(scope="module")
def reference_losses(tmp_path_factory):
  """Losses of an uninterrupted 12-step run (tiny_config, lm_batches, log every step)."""
  ref = str(tmp_path_factory.mktemp("reference"))
  train.train(tiny_config(steps=12, log_every=1, checkpoint_every=100), ref, train_batches=lm_batches())
  return losses(ref)


def saved_steps(workdir):
  c = ckpt_lib.Checkpointer(workdir, every=1, keep=100)
  try:
    return c.all_steps()
  finally:
    c.close()


# ----------------------------------------------------------------------------------------------- non-finite steps


def nan_from(step_index):
  """lm_batches whose loss weights are NaN from batch `step_index` (0-based) on: the loss of that step is NaN."""

  def make(start=0):
    for i, b in enumerate(lm_batches()(start), start):
      if i >= step_index:
        b["decoder_loss_weights"] = np.full_like(b["decoder_loss_weights"], np.nan)
      yield b

  return make


def test_a_non_finite_step_is_never_checkpointed_and_the_error_names_the_last_good_one(tmp_path, reference_losses):
  work = str(tmp_path)
  c = tiny_config(steps=12, log_every=10, checkpoint_every=2, keep_checkpoints=2)
  with pytest.raises(FloatingPointError) as e:
    train.train(c, work, train_batches=nan_from(4))  # step 5 is the first non-finite one
  msg = str(e.value)
  assert "at step 5" in msg and f"{work}/checkpoints/4" in msg and "rerun the same command" in msg
  assert saved_steps(work) == [2, 4]  # 6 and 8 were not written; the good ones were not rotated away
  # The workdir is recoverable: with good data the rerun resumes from 4 and matches an uninterrupted run.
  out = train.train(tiny_config(steps=12, log_every=1, checkpoint_every=2, keep_checkpoints=2), work,
                    train_batches=lm_batches())
  assert out["step"] == 12 and not out["preempted"]
  resumed = {s: v for s, v in losses(work).items() if s > 4}
  assert resumed == {s: v for s, v in reference_losses.items() if s > 4}


def test_a_huge_learning_rate_stops_before_any_non_finite_save(tmp_path):
  """The issue's case: lr 1e6, log every 10, save every 2."""
  work = str(tmp_path)
  c = tiny_config(steps=30, log_every=10, checkpoint_every=2, keep_checkpoints=3)
  c.optim.lr = 1e6
  with pytest.raises(FloatingPointError, match="non-finite"):
    train.train(c, work, train_batches=lm_batches())
  setup = train.build(tiny_config(), None)
  abstract = ckpt_lib.abstract_with_shardings(setup.abstract_state, setup.state_shardings)
  ck = ckpt_lib.Checkpointer(work, every=1, keep=100)
  for step in ck.all_steps():
    state, _ = ck.restore(step, abstract)
    assert bool(ckpt_lib.all_finite(state.params)), f"checkpoint {step} is not finite"
  ck.close()


def test_a_non_finite_checkpoint_from_an_older_version_is_skipped_on_resume(tmp_path, capsys):
  work = str(tmp_path)
  train.train(tiny_config(steps=4, checkpoint_every=2), work, train_batches=lm_batches())
  setup = train.build(tiny_config(), None)
  abstract = ckpt_lib.abstract_with_shardings(setup.abstract_state, setup.state_shardings)
  ck = ckpt_lib.Checkpointer(work, every=1, keep=100, async_save=False)
  state, data = ck.restore(4, abstract)
  import jax
  bad = state.replace(step=state.step + 2, params=jax.tree.map(lambda p: p * np.nan, state.params))
  ck.save(6, bad, data, force=True)
  ck.wait()
  ck.close()
  capsys.readouterr()
  out = train.train(tiny_config(steps=8, checkpoint_every=2), work, train_batches=lm_batches())
  assert out["step"] == 8
  text = capsys.readouterr().out
  assert "checkpoints/6 cannot be used: ValueError: its parameters are not finite" in text
  assert "resuming from the previous complete checkpoint, step 4" in text
  assert os.path.isdir(os.path.join(work, "checkpoints_corrupt", "6"))


# ----------------------------------------------------------------------------------------------- bad config values


BAD_VALUES = [
    ("train.keep_checkpoints", 0, r"train.keep_checkpoints must be an integer >= 1"),
    ("train.checkpoint_every", 0, r"train.checkpoint_every must be an integer >= 1"),
    ("train.batch_size", 0, r"train.batch_size must be an integer >= 1"),
    ("train.batch_size", -8, r"train.batch_size must be an integer >= 1"),
    ("data.seq_len", 0, r"data.seq_len must be an integer >= 1"),
    ("train.log_every", 0, r"train.log_every must be an integer >= 1"),
    ("train.eval_every", -1, r"train.eval_every must be an integer >= 0"),
]


def test_bad_values_are_rejected_naming_the_key_and_nothing_is_deleted(tmp_path):
  work = str(tmp_path)
  train.train(tiny_config(steps=2, checkpoint_every=1), work, train_batches=lm_batches())
  assert saved_steps(work) == [1, 2]
  for key, value, message in BAD_VALUES:
    c = tiny_config(steps=4)
    section, field = key.split(".")
    c[section][field] = value
    with pytest.raises(ValueError, match=message):
      train.train(c, work, train_batches=lm_batches())
    assert saved_steps(work) == [1, 2], key


# ----------------------------------------------------------------------------------------------- one run per workdir


def test_a_held_workdir_is_refused_naming_the_holder_and_a_killed_holder_does_not_leave_it_stuck(tmp_path):
  work = str(tmp_path / "run")
  os.makedirs(work)
  holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
      import sys, time
      sys.path.insert(0, {REPO!r})
      from hhh.run import rundir
      lock = rundir.WorkdirLock({work!r})
      lock.acquire()
      print("held", flush=True)
      time.sleep(600)
      """)], stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(rundir.WorkdirInUseError, match=rf"in use by another run \(pid {holder.pid} on host"):
      train.train(tiny_config(steps=2), work, train_batches=lm_batches())
    assert not os.path.exists(os.path.join(work, "config.json"))  # the second run wrote nothing
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  out = train.train(tiny_config(steps=2), work, train_batches=lm_batches())  # the kernel released the lock
  assert out["step"] == 2


def test_two_trainers_in_one_process_cannot_share_a_workdir(tmp_path):
  work = str(tmp_path)
  with rundir.WorkdirLock(work):
    with pytest.raises(rundir.WorkdirInUseError, match=f"pid {os.getpid()}"):
      train.train(tiny_config(steps=2), work, train_batches=lm_batches())
  assert train.train(tiny_config(steps=2), work, train_batches=lm_batches())["step"] == 2


# ----------------------------------------------------------------------------------------------- the run's record


def test_resuming_with_another_model_is_refused_before_the_record_is_touched(tmp_path):
  work = str(tmp_path)
  train.train(tiny_config(steps=2), work, train_batches=lm_batches())
  before = (tmp_path / "config.json").read_text()
  c = tiny_config(steps=4)
  c.model.d_model = 128
  with pytest.raises(rundir.ConfigMismatchError, match=r"model.d_model: 64 -> 128"):
    train.train(c, work, train_batches=lm_batches())
  assert (tmp_path / "config.json").read_text() == before
  # Other changes (more steps) resume, and are recorded beside the original config.
  out = train.train(tiny_config(steps=4), work, train_batches=lm_batches())
  assert out["step"] == 4
  assert (tmp_path / "config.json").read_text() == before
  assert json.loads((tmp_path / "config.resume-2.json").read_text())["train"]["steps"] == 4
  assert json.loads((tmp_path / "run.resume-2.json").read_text())["resumed_from_step"] == 2


# ----------------------------------------------------------------------------------------------- kills and signals


def test_records_of_unsaved_steps_are_dropped_on_resume_so_each_step_appears_once(tmp_path):
  work = str(tmp_path)

  def crash_at_5(step, metrics):
    if step == 5:
      raise RuntimeError("simulated crash")

  with pytest.raises(RuntimeError, match="simulated crash"):
    train.train(tiny_config(steps=8, checkpoint_every=3), work, train_batches=lm_batches(), step_hook=crash_at_5)
  assert [m["step"] for m in read_metrics(work)] == [1, 2, 3, 4, 5]
  with open(os.path.join(work, "metrics.jsonl"), "a") as f:
    f.write('{"step": 6, "train/lo')  # a line cut by SIGKILL
  train.train(tiny_config(steps=8, checkpoint_every=3), work, train_batches=lm_batches())
  assert [m["step"] for m in read_metrics(work)] == list(range(1, 9))


def test_a_signal_during_set_up_stops_cleanly_before_the_first_step(tmp_path):
  def signal_while_building_the_data(start):
    os.kill(os.getpid(), signal.SIGTERM)
    return lm_batches()(start)

  out = train.train(tiny_config(steps=4), str(tmp_path), train_batches=signal_while_building_the_data)
  assert out["preempted"] and out["step"] == 0
  assert saved_steps(str(tmp_path)) == []
  assert train.train(tiny_config(steps=4), str(tmp_path), train_batches=lm_batches())["step"] == 4


def test_ctrl_c_saves_the_current_step_and_stops_like_sigterm(tmp_path):
  def interrupt_at_3(step, metrics):
    if step == 3:
      os.kill(os.getpid(), signal.SIGINT)

  # Python's default_int_handler, or SIG_IGN where the suite was started as a background job without job control
  before = signal.getsignal(signal.SIGINT)
  out = train.train(tiny_config(steps=8), str(tmp_path), train_batches=lm_batches(), step_hook=interrupt_at_3)
  assert out["preempted"] and out["step"] == 3
  assert saved_steps(str(tmp_path))[-1] == 3  # (orbax also saves a run's first step)
  assert signal.getsignal(signal.SIGINT) is before  # restored after the run


# ----------------------------------------------------------------------------------------------- corrupt checkpoints


def _first_file(root, pred):
  for dirpath, _, files in sorted(os.walk(root)):
    for f in sorted(files):
      if pred(dirpath, f):
        return os.path.join(dirpath, f)
  raise AssertionError(f"no matching file under {root}: {sorted(os.walk(root))}")


def _truncate_data_file(step_dir):
  path = _first_file(os.path.join(step_dir, "state"), lambda d, f: "/d" in d and os.path.getsize(os.path.join(d, f)))
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)


def _empty_manifest(step_dir):
  path = _first_file(os.path.join(step_dir, "state"), lambda d, f: f == "manifest.ocdbt")
  open(path, "wb").close()


CORRUPTIONS = {
    "truncated data file": _truncate_data_file,
    "empty manifest": _empty_manifest,
    "missing _METADATA": lambda d: os.remove(os.path.join(d, "state", "_METADATA")),
    "missing state/": lambda d: shutil.rmtree(os.path.join(d, "state")),
    "garbage data/metadata": lambda d: open(_first_file(os.path.join(d, "data"), lambda _, f: "metadata" in f),
                                            "w").write("\x00garbage{"),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_a_corrupt_latest_checkpoint_is_reported_and_the_previous_one_resumes_exactly(tmp_path, name, capsys,
                                                                                      reference_losses):
  work = str(tmp_path / "run")

  def stop_at_4(step, metrics):
    if step == 4:
      os.kill(os.getpid(), signal.SIGTERM)

  train.train(tiny_config(steps=12, checkpoint_every=2), work, train_batches=lm_batches(), step_hook=stop_at_4)
  assert saved_steps(work)[-2:] == [2, 4]
  CORRUPTIONS[name](os.path.join(work, "checkpoints", "4"))
  capsys.readouterr()
  out = train.train(tiny_config(steps=12, checkpoint_every=2), work, train_batches=lm_batches())
  assert out["step"] == 12
  text = capsys.readouterr().out
  assert f"WARNING: checkpoint {work}/checkpoints/4 cannot be used" in text
  assert "resuming from the previous complete checkpoint, step 2" in text
  assert os.path.isdir(os.path.join(work, "checkpoints_corrupt", "4"))
  assert losses(work) == reference_losses


def test_a_corrupt_checkpoint_on_the_command_line_is_one_warning_and_no_tracebacks(tmp_path, cli_runs):
  # Every data file of the latest checkpoint cut in half: orbax's restore fails while sibling TensorStore reads are
  # still in flight, whose late errors Python used to print on stderr (tens of KB of tracebacks, in 3 of 4 runs).
  work = str(tmp_path / "run")
  shutil.copytree(cli_runs.lm, work)  # 20 steps, checkpoints 10, 15 and 20 (conftest.CliRuns)
  for d, _, files in os.walk(os.path.join(work, "checkpoints", "20", "state")):
    for f in files:
      if os.sep + "d" in d:
        with open(os.path.join(d, f), "r+b") as fh:
          fh.truncate(os.path.getsize(os.path.join(d, f)) // 2)
  proc = subprocess.run([sys.executable, *cli_runs.lm_args("run", steps=22)], cwd=tmp_path, capture_output=True,
                        text=True, timeout=300, env=cli_runs.env())
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f"WARNING: checkpoint {work}/checkpoints/20 cannot be used" in proc.stdout
  assert "resumed from" in proc.stdout and "checkpoints/15 (data position: 15 batches)" in proc.stdout
  for noise in ("Traceback", "Exception ignored", "never retrieved", "Event loop is closed"):
    assert noise not in proc.stderr, proc.stderr[:3000]


def test_late_reads_are_quieted_before_the_first_restore_not_after_a_failure(tmp_path, monkeypatch):
  # orbax closes its event loop inside the failing restore call, so a TensorStore read can land in the closed loop
  # before the exception reaches restore_latest's handler: the quieting hook must already be in place then.
  shown = []
  monkeypatch.setattr(sys, "unraisablehook", shown.append)
  checkpointer = ckpt_lib.Checkpointer(str(tmp_path), every=1, keep=2, async_save=False)
  hook_at_restore = []

  def failing_restore(step, abstract_state, verify=True):
    hook_at_restore.append(getattr(sys.unraisablehook, "hhh_quiet_late_reads", False))
    raise ValueError(f"step {step} is damaged")

  monkeypatch.setattr(checkpointer, "all_steps", lambda: [2, 4])
  monkeypatch.setattr(checkpointer, "restore", failing_restore)
  with pytest.raises(ckpt_lib.CorruptCheckpointError, match=r"step 4: ValueError: step 4 is damaged; step 2: "):
    checkpointer.restore_latest(None, log=lambda _: None)
  assert hook_at_restore == [True, True]

  def unraisable(exc):  # what sys.unraisablehook receives; TensorStore writes its late reads with no object
    return types.SimpleNamespace(exc_type=type(exc), exc_value=exc, exc_traceback=None, err_msg=None, object=None)

  late_read = unraisable(RuntimeError("Event loop is closed"))
  other = unraisable(RuntimeError("something else"))
  sys.unraisablehook(late_read)
  sys.unraisablehook(other)
  assert shown == [other]  # only the late read is dropped; everything else reaches the hook it replaced
  checkpointer.close()


def test_when_no_checkpoint_restores_the_error_lists_each_and_moves_nothing(tmp_path):
  work = str(tmp_path)
  train.train(tiny_config(steps=4, checkpoint_every=2), work, train_batches=lm_batches())
  for step in saved_steps(work):
    shutil.rmtree(os.path.join(work, "checkpoints", str(step), "state"))
  with pytest.raises(ckpt_lib.CorruptCheckpointError, match=r"step 4: .*; step 2: .*move .*checkpoints away"):
    train.train(tiny_config(steps=8), work, train_batches=lm_batches())
  assert saved_steps(work) == [1, 2, 4] and not os.path.exists(os.path.join(work, "checkpoints_corrupt"))


# ----------------------------------------------------------------------------------------------- full disk


def test_a_full_disk_is_one_clear_error_naming_the_last_complete_checkpoint(tmp_path, monkeypatch):
  work = str(tmp_path)
  real_save = ckpt_lib.Checkpointer.save

  def save(self, step, *a, **k):
    if step >= 4:  # orbax had begun the save in its temporary folder when the disk filled
      os.makedirs(os.path.join(work, "checkpoints", f"{step}.orbax-checkpoint-tmp-1234", "state"))
      raise OSError(errno.ENOSPC, "No space left on device", os.path.join(work, "checkpoints", str(step)))
    return real_save(self, step, *a, **k)

  monkeypatch.setattr(ckpt_lib.Checkpointer, "save", save)
  with pytest.raises(train.DiskFullError) as e:
    train.train(tiny_config(steps=6, checkpoint_every=2), work, train_batches=lm_batches())
  msg = str(e.value)
  assert "no space left on device" in msg and f"{work}/checkpoints/2" in msg and "rerun the same command" in msg
  assert "(removed the partial save 4.orbax-checkpoint-tmp-1234)" in msg  # this run's partial save is cleaned up
  assert sorted(os.listdir(os.path.join(work, "checkpoints"))) == ["1", "2"]
  assert e.value.__cause__ is None and e.value.__suppress_context__


# ----------------------------------------------------------------------------------------------- relative paths


def _run(args, cwd, timeout=600):
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO)
  proc = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
  assert proc.returncode == 0, f"{args} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
  return proc


@pytest.mark.slow
def test_commands_with_relative_paths_from_another_directory(tmp_path, cli_runs):
  """README-style commands run from a directory that is not the repository, every path relative: train and init_from
  a relative run (conftest.CliRuns made them so), a rerun (resume), hhh.eval of relative checkpoints, and a tool
  writing to a relative dir."""
  cfg = os.path.join(REPO, "configs")
  first = cli_runs.out["lm"]
  assert "done: 20 steps" in first["stdout"]
  assert (cli_runs.lm / "checkpoints" / "20").is_dir()
  (tmp_path / "runs").mkdir()
  shutil.copytree(cli_runs.lm, tmp_path / "runs" / "tiny")  # a copy to rerun in; the PM is read where it is
  (tmp_path / "runs" / "pm").symlink_to(cli_runs.pm)
  again = subprocess.run([sys.executable, *cli_runs.lm_args("runs/tiny")], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600, env=cli_runs.env())  # a rerun of a finished run: resumes, does nothing
  assert again.returncode == 0, again.stderr[-3000:]
  assert "resumed from" in again.stdout and "done: 0 steps" in again.stdout
  assert [m["step"] for m in read_metrics(str(tmp_path / "runs/tiny"))] == list(range(1, 21))
  pm = cli_runs.out["pm"]
  assert "init_from" in pm["stdout"] and "freshly initialised: ['score_head/bias', 'score_head/kernel']" in pm["stdout"]
  assert json.loads((cli_runs.pm / "config.json").read_text())["init_from"] == str(cli_runs.lm)
  ev = _run(["-m", "hhh.eval", f"--config={cfg}/eval.py:tiny", "--workdir=runs/eval", "--config.checkpoint=runs/tiny",
             "--config.pm_checkpoint=runs/pm", "--config.eval.suites=compare", "--config.eval.max_examples=8",
             "--config.eval.conditions=plain,pm"], tmp_path)
  assert (tmp_path / "runs/eval/eval.json").exists(), ev.stdout
  res = json.loads((tmp_path / "runs/eval/eval.json").read_text())
  assert set(res["compare"]["lab_compare"]["conditions"]) == {"plain", "pm"}
  # A preference model in the LM slot is refused, naming the right flag.
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO)
  bad = subprocess.run([sys.executable, "-m", "hhh.eval", f"--config={cfg}/eval.py:tiny", "--workdir=runs/eval2",
                        "--config.checkpoint=runs/pm", "--config.eval.suites=compare", "--config.eval.max_examples=8"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
  assert bad.returncode != 0 and "is a preference or binary model" in bad.stderr + bad.stdout
  assert "--config.pm_checkpoint" in bad.stderr + bad.stdout
  # A tool: offline-distillation teacher files from a relative LM run into a relative directory.
  _run([os.path.join(REPO, "tools", "teacher_logits.py"), f"--config={cfg}/distill.py:tiny,offline",
        "--config.init_from=runs/tiny", "--out=teacher", "--splits=validation", "--max_examples=8",
        "--config.data.seq_len=32"], tmp_path)
  assert (tmp_path / "teacher" / "meta.json").exists()


def test_a_user_error_on_the_command_line_is_one_line_without_a_traceback(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO)
  env.pop("HHH_TRACEBACK", None)
  proc = subprocess.run([sys.executable, "-m", "hhh.train", f"--config={REPO}/configs/pretrain.py:tiny",
                         "--workdir=run", "--config.train.keep_checkpoints=0"], cwd=tmp_path, capture_output=True,
                        text=True, timeout=300, env=env)
  assert proc.returncode == 1
  assert "python -m hhh.train: error: train.keep_checkpoints must be an integer >= 1" in proc.stderr
  assert "Traceback" not in proc.stderr, proc.stderr


def test_a_save_cut_by_a_kill_is_ignored_and_the_step_is_saved_again(tmp_path, reference_losses):
  """orbax writes a step into `<step>.orbax-checkpoint-tmp` and renames it when complete: a kill mid-save leaves the
  temporary directory, which resume ignores (and the step is written again when training reaches it)."""
  work = str(tmp_path)

  def stop_at_4(step, metrics):
    if step == 4:
      os.kill(os.getpid(), signal.SIGTERM)

  train.train(tiny_config(steps=12, checkpoint_every=2), work, train_batches=lm_batches(), step_hook=stop_at_4)
  ckdir = os.path.join(work, "checkpoints")
  partial = os.path.join(ckdir, "6.orbax-checkpoint-tmp")
  shutil.copytree(os.path.join(ckdir, "4"), partial)
  _truncate_data_file(partial)
  out = train.train(tiny_config(steps=12, checkpoint_every=2, keep_checkpoints=10), work, train_batches=lm_batches())
  assert out["step"] == 12
  assert saved_steps(work)[-5:] == [4, 6, 8, 10, 12] and not os.path.exists(partial)
  assert losses(work) == reference_losses


@pytest.mark.slow
def test_sigkill_between_saves_then_rerun_matches_an_uninterrupted_run_and_logs_each_step_once(tmp_path, cli_runs):
  """The real thing: `kill -9` of `python -m hhh.train` (embedded data, seqio pipeline) after step 12 with the last
  save at 10; the rerun resumes from 10 and its losses equal an uninterrupted run's (conftest.CliRuns' LM, the same
  command and environment), each step logged once."""
  import time
  args = [sys.executable, *cli_runs.lm_args("run")]
  proc = subprocess.Popen(args, cwd=tmp_path, env=cli_runs.env(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  metrics = tmp_path / "run" / "metrics.jsonl"
  deadline = time.time() + 300
  while time.time() < deadline and proc.poll() is None:
    if metrics.exists() and len(metrics.read_text().splitlines()) >= 12:
      break
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert len(metrics.read_text().splitlines()) >= 12 and saved_steps(str(tmp_path / "run"))[-1] < 20
  rerun = subprocess.run(args, cwd=tmp_path, env=cli_runs.env(), capture_output=True, text=True, timeout=600)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  steps = [m["step"] for m in read_metrics(str(tmp_path / "run"))]
  assert steps == list(range(1, 21))
  assert losses(str(tmp_path / "run")) == losses(str(cli_runs.lm))
