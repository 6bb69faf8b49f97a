"""Faults found from outside (issue 29), each injected: a damaged or untidy run read by evaluation and sampling,
optimiser numbers that cannot train, prompts that are not what they seem. Each asserts its one-line message and that
nothing was lost (docs/reliability.md)."""

import os

import jax
import numpy as np
import pytest

from hhh.run import model as run_model
from hhh import sampling
from hhh import train
from hhh.core.errors import ConfigError
from test_faults import _truncate_data_file
from test_train import lm_batches, tiny_config


@pytest.fixture(scope="module")
def run_2_4(tmp_path_factory):
  """A tiny LM run with checkpoints at steps 1 (orbax saves a run's first step), 2 and 4."""
  work = str(tmp_path_factory.mktemp("run_2_4"))
  train.train(tiny_config(steps=4, checkpoint_every=2, keep_checkpoints=5), work, train_batches=lm_batches())
  return work


def _params_of(work, step_or_run, log=None):
  setup = train.build(tiny_config(), None)
  fresh = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), setup.abstract_state.params)
  lines = []
  params, _, _ = run_model.load_params(step_or_run, fresh, setup.state_shardings.params, "checkpoint",
                                      log=log or lines.append)
  return jax.device_get(params), lines


def test_a_stray_or_damaged_latest_checkpoint_falls_back_like_the_trainer_and_says_which_it_used(run_2_4, tmp_path):
  import shutil
  work = str(tmp_path / "run")
  shutil.copytree(run_2_4, work)
  step4, lines = _params_of(work, work)
  assert lines == []
  step2, _ = _params_of(work, os.path.join(work, "checkpoints", "2"))
  # A stray step folder (newer, empty) is passed over, as the trainer's checkpoint manager does.
  os.makedirs(os.path.join(work, "checkpoints", "40"))
  got, lines = _params_of(work, work)
  assert lines == [] and jax.tree.all(jax.tree.map(np.array_equal, got, step4))
  assert run_model.saved_param_names(work, "checkpoint")
  # A damaged latest checkpoint: one warning naming it, one naming the step used; the previous one is loaded.
  _truncate_data_file(os.path.join(work, "checkpoints", "4"))
  got, lines = _params_of(work, work)
  assert len(lines) == 2, lines
  assert lines[0].startswith(f"WARNING: checkpoint {work}/checkpoints/4 cannot be used: ")
  assert lines[1] == f"WARNING: checkpoint: using the previous complete checkpoint {work}/checkpoints/2"
  assert jax.tree.all(jax.tree.map(np.array_equal, got, step2))
  assert sorted(os.listdir(os.path.join(work, "checkpoints"))) == ["1", "2", "4", "40"]  # read-only: nothing moved
  from hhh.eval import run as eval_run
  assert eval_run.checkpoint_step(work) == 2  # eval.json records the step it evaluated, not the damaged newest


@pytest.mark.parametrize("spec, message", [
    ("missing.tsv", r"prompts file .*missing.tsv does not exist"),
    ("runs/prompts", r"prompts file .*runs/prompts does not exist"),
])
def test_a_prompts_value_that_looks_like_a_missing_file_is_an_error_not_a_prompt(spec, message, tmp_path,
                                                                                 monkeypatch):
  monkeypatch.chdir(tmp_path)
  with pytest.raises(ConfigError, match=message):
    sampling.read_prompts(spec)
  assert sampling.read_prompts("Hello there.") == ["Hello there."]  # text is still text
  assert sampling.read_prompts("hi") == ["hi"]


def test_a_prompts_file_that_is_not_utf8_names_the_line(tmp_path):
  (tmp_path / "p.txt").write_bytes(b"fine\ncaf\xe9\n")
  with pytest.raises(ConfigError, match=r"p.txt, line 2: not valid UTF-8 \(invalid continuation byte at byte 3\)"):
    sampling.read_prompts(str(tmp_path / "p.txt"))


# ----------------------------------------------------------------------------------------------- bad settings


def test_a_workdir_that_cannot_be_written_is_refused_before_anything_is_built(tmp_path):
  from hhh.run import rundir
  (tmp_path / "afile").write_text("mine")
  with pytest.raises(ConfigError, match=r"--workdir=.*afile is a file, not a directory"):
    train.train(tiny_config(steps=1), str(tmp_path / "afile"), train_batches=lm_batches())
  assert (tmp_path / "afile").read_text() == "mine"
  with pytest.raises(ConfigError, match=r"^--workdir is empty"):
    rundir.check_writable("")
  locked = tmp_path / "ro"
  (locked / "checkpoints").mkdir(parents=True)
  # Root ignores permission bits: an immutable folder (chattr +i) is read-only even to root.
  if os.geteuid() == 0:
    lock, unlock = ["chattr", "+i", str(locked / "checkpoints")], ["chattr", "-i", str(locked / "checkpoints")]
  else:
    lock, unlock = ["chmod", "555", str(locked / "checkpoints")], ["chmod", "755", str(locked / "checkpoints")]
  import subprocess
  if subprocess.run(lock, capture_output=True).returncode != 0:
    pytest.skip(f"cannot make a read-only folder here ({' '.join(lock[:2])} failed)")
  try:
    with pytest.raises(ConfigError, match=r"ro/checkpoints is not writable \(.*\): the run writes its checkpoints"):
      train.train(tiny_config(steps=1), str(locked), train_batches=lm_batches())
  finally:
    subprocess.run(unlock, check=True)
  assert os.listdir(locked / "checkpoints") == [] and sorted(os.listdir(locked)) == ["checkpoints"]


def test_unknown_data_settings_and_an_evaluation_typo_are_config_errors():
  from hhh.data import task_registry, vocab
  from hhh.eval import run as eval_run
  from hhh import config as hc
  with pytest.raises(ConfigError, match=r"unknown task or mixture 'nope_task'; registered: \["):
    task_registry.kind_of("nope_task")
  with pytest.raises(ConfigError, match=r"SentencePiece model /nowhere/m.model does not exist"):
    vocab.get_vocabulary("spm:/nowhere/m.model")
  c = hc.load("configs/eval.py:tiny")
  c.unlock()
  c.eval.suites = "hhh,truthfulqq"
  with pytest.raises(ConfigError, match=r"unknown eval.suites \['truthfulqq'\]; choose from hhh, truthfulqa"):
    eval_run.evaluate(c, "unused")  # refused before any checkpoint is looked for


def test_a_split_with_no_records_names_the_task_and_how_to_see_the_exclusions():
  from hhh.data import task_registry
  from hhh.core.errors import DataError
  source = task_registry.function_source(lambda split: [], "lm", ["train"], "local_text")
  with pytest.raises(DataError, match=r"local_text, split 'train': no records .*show_task.py local_text "
                                      r"--split=train --count"):
    source.get_dataset("train", shuffle=False)


def test_config_file_errors_on_the_command_line_are_one_line(tmp_path):
  import subprocess
  import sys
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  for spec, message in (("configs/nope.py:tiny", "config file 'configs/nope.py' not found from the current "
                                                 f"directory {tmp_path}"),
                        (f"{repo}/configs/pretrain.py:huge", "unknown model size 'huge'; choose one of")):
    r = subprocess.run([sys.executable, "-m", "hhh.train", f"--config={spec}", "--workdir=w"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=repo))
    assert r.returncode == 2 and r.stderr.startswith(f"python -m hhh.train: error: --config={spec}: {message}"), \
        r.stderr[-2000:]
    assert len(r.stderr.strip().splitlines()) == 1 and not os.path.exists(tmp_path / "w")


def test_a_long_local_document_enters_in_pieces_and_files_without_text_are_named(tmp_path, monkeypatch):
  """A 20 MB line used to cost ~57x its size in memory (TF's per-byte strings); it is read in bounded pieces now."""
  from hhh.data import file_tasks, tasks
  from hhh.core.errors import DataError
  text = ("word " * 30_000 + "\n") * 3 + "x" * 200_000  # 450,003 characters of words, then an unbreakable run
  pieces = file_tasks.split_text(text, 65_536)
  assert "".join(pieces) == text and max(map(len, pieces)) <= 65_536 and len(pieces) == 11
  # Cut after a space or newline where one is in a piece's second half; the unbreakable run is cut hard.
  assert all(p.endswith((" ", "\n")) for p in pieces[:7]) and len(pieces[7]) == 65_536
  assert file_tasks.split_text("short") == ["short"]
  (tmp_path / "t").mkdir()
  (tmp_path / "t" / "long.txt").write_text(text)
  monkeypatch.setenv("HHH_LOCAL_TEXT_GLOB", str(tmp_path / "t" / "*.txt"))
  tasks.clear_parse_cache()
  split = __import__("hhh.data.sources", fromlist=["x"]).hash_split(str(tmp_path / "t" / "long.txt"),
                                                                     validation_percent=5)
  records = file_tasks._local("local_text")(split).records  # pylint: disable=protected-access
  assert [r["targets"] for r in records] == file_tasks.split_text(text)
  (tmp_path / "t" / "long.txt").write_text("  \n")
  with pytest.raises(DataError, match=r"local_text: 1 \w+ file\(s\) match .* but none holds usable text \(.*long.txt: "
                                      r"empty file\)"):
    file_tasks._local("local_text")(split)  # pylint: disable=protected-access
  tasks.clear_parse_cache()
