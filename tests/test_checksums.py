"""A damaged checkpoint is never restored as good (hhh.run.checksums, issue 34): bit flips that orbax would read back as
finite numbers are caught by the checksums written at save time; the trainer, evaluation and sampling fall back to
the previous checkpoint; a run's record is written only once its checkpoints restore."""

import json
import os
import shutil
import signal

import numpy as np
import pytest

from hhh.run import checksums
from hhh.run import model as run_model
from hhh import train
from test_faults import losses, reference_losses, saved_steps  # noqa: F401  (a fixture)
from test_train import lm_batches, tiny_config


@pytest.fixture(scope="module")
def stopped_at_4(tmp_path_factory, reference_losses):
  """A 12-step run (test_faults.reference_losses' config) stopped by SIGTERM at step 4: checkpoints 1, 2 and 4."""
  work = str(tmp_path_factory.mktemp("stopped_at_4") / "run")

  def stop_at_4(step, metrics):
    if step == 4:
      os.kill(os.getpid(), signal.SIGTERM)

  train.train(tiny_config(steps=12, checkpoint_every=2), work, train_batches=lm_batches(), step_hook=stop_at_4)
  assert saved_steps(work)[-2:] == [2, 4]
  return work


def _flip(step_dir, rng, places, which):
  """Flips one bit at each of `places` random bytes of the step's largest array file ("data") or of a metadata file
  ("metadata"); returns the file's path relative to the step."""
  files = [os.path.relpath(os.path.join(d, f), step_dir) for d, _, fs in os.walk(step_dir) for f in fs
           if f != checksums.FILENAME]
  if which == "data":
    path = max((f for f in files if f"{os.sep}d{os.sep}" in f), key=lambda f: os.path.getsize(os.path.join(step_dir, f)))
  else:
    path = sorted(f for f in files if "metadata" in f.lower() or f.endswith("_METADATA"))[0]
  full = os.path.join(step_dir, path)
  data = bytearray(open(full, "rb").read())
  for pos in rng.choice(len(data), size=min(places, len(data)), replace=False):
    data[pos] ^= 1 << int(rng.integers(8))
  open(full, "wb").write(bytes(data))
  return path


@pytest.mark.parametrize("which, places", [("data", 1), ("data", 8), ("metadata", 1), ("metadata", 8)])
def test_bit_flips_are_detected_and_the_previous_checkpoint_resumes_exactly(stopped_at_4, tmp_path, capsys, which,
                                                                              places, reference_losses):
  work = str(tmp_path / "run")
  shutil.copytree(stopped_at_4, work)
  step4 = os.path.join(work, "checkpoints", "4")
  assert checksums.verify(step4)  # written when the save finished
  flipped = _flip(step4, np.random.default_rng(places), places, which)
  with pytest.raises(checksums.CorruptFilesError, match=f"{flipped} (differs from its checksum|has)"):
    checksums.verify(step4)
  capsys.readouterr()
  out = train.train(tiny_config(steps=12, checkpoint_every=2), work, train_batches=lm_batches())
  assert out["step"] == 12
  text = capsys.readouterr().out
  assert f"WARNING: checkpoint {work}/checkpoints/4 cannot be used: CorruptFilesError: {flipped}" in text, text
  assert "resuming from the previous complete checkpoint, step 2" in text
  assert os.path.isdir(os.path.join(work, "checkpoints_corrupt", "4"))
  assert json.loads(open(os.path.join(work, "run.resume-2.json")).read())["resumed_from_step"] == 2  # not 4
  assert not os.path.exists(os.path.join(work, "run.resume-4.json"))
  assert losses(work) == reference_losses
  # Evaluation and sampling read the corrupt copy's previous checkpoint too (read-only: the same rule, no moves).
  shutil.copytree(os.path.join(work, "checkpoints_corrupt", "4"), os.path.join(work, "checkpoints", "40"))
  lines = []
  setup = train.build(tiny_config(), None)
  zeros = __import__("jax").tree.map(lambda s: np.zeros(s.shape, s.dtype), setup.abstract_state.params)
  run_model.load_params(work, zeros, setup.state_shardings.params, "checkpoint", log=lines.append)
  assert lines[0].startswith(f"WARNING: checkpoint {work}/checkpoints/40 cannot be used: CorruptFilesError: {flipped}")
  assert lines[1] == f"WARNING: checkpoint: using the previous complete checkpoint {work}/checkpoints/12"


def test_a_checkpoint_without_checksums_is_restored_with_a_warning_and_an_added_file_is_damage(stopped_at_4, tmp_path,
                                                                                                capsys):
  work = str(tmp_path / "run")
  shutil.copytree(stopped_at_4, work)
  os.remove(os.path.join(work, "checkpoints", "4", checksums.FILENAME))  # as an older hhh saved it
  capsys.readouterr()
  assert train.train(tiny_config(steps=6, checkpoint_every=2), work, train_batches=lm_batches())["step"] == 6
  text = capsys.readouterr().out
  assert f"WARNING: checkpoint {work}/checkpoints/4 has no checksums" in text and "restoring it unverified" in text
  assert checksums.verify(os.path.join(work, "checkpoints", "6"))  # what this run saved has them
  open(os.path.join(work, "checkpoints", "6", "state", "stray"), "w").write("x")
  with pytest.raises(checksums.CorruptFilesError, match="state/stray was not part of the saved checkpoint"):
    checksums.verify(os.path.join(work, "checkpoints", "6"))


def test_a_run_whose_checkpoints_do_not_restore_keeps_its_record(stopped_at_4, tmp_path):
  """The outside report: config.json deleted, rerun with another size: it failed, but left a config.json of the wrong
  size behind, so the run's own command was refused afterwards."""
  work = str(tmp_path / "run")
  shutil.copytree(stopped_at_4, work)
  os.remove(os.path.join(work, "config.json"))
  other = tiny_config(steps=12, checkpoint_every=2)
  other.model.d_model = 128
  with pytest.raises(Exception, match="can be restored"):
    train.train(other, work, train_batches=lm_batches())
  assert not os.path.exists(os.path.join(work, "config.json")) and saved_steps(work)[-2:] == [2, 4]
  assert train.train(tiny_config(steps=12, checkpoint_every=2), work, train_batches=lm_batches())["step"] == 12
  assert json.loads(open(os.path.join(work, "config.json")).read())["model"]["d_model"] == 64
