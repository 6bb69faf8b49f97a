"""Every objective end to end through hhh.train.train on the embedded laboratory data (slow: minutes on CPU).

Held-out accuracy is pairwise accuracy on the validation split of `lab_compare` (contexts never seen in training),
and must beat chance by 3 binomial standard errors.
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from hhh import config as hc
from hhh import train as train_lib
from hhh import scoring
from hhh.run import model as run_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("optimized_compile")]  # hundreds of steps: compile fully


def config(name, arg="tiny", **overrides):
  c = hc.load(f"{name}:{arg}")
  c.unlock()
  c.train.update(dict(batch_size=16, log_every=10, eval_every=0, checkpoint_every=1000, async_checkpoints=False))
  hc.override(c, overrides)
  c.lock()
  return c


def trained_params(cfg, workdir):
  # the trained run's parameters (its last checkpoint, read whole)
  return run_model.model_from_run(cfg.model, cfg.mesh, workdir, what="run")


def held_out_accuracy(setup, params, scorer, batches=10):
  from hhh.data import pipeline
  it = pipeline.make_iterator("lab_compare", split="validation", family="comparison", seq_len=128, batch_size=16,
                              vocab="byte", seed=0, shuffle=False, repeat=False, k=4)
  res = scoring.comparison_accuracy(setup.model, params, it, scorer, max_batches=batches)
  return res, 0.5 + 3 * math.sqrt(0.25 / res["pairs"])


def eval_metrics(workdir):
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  return {r["step"]: {k[5:]: v for k, v in r.items() if k.startswith("eval/")} for r in rows
          if any(k.startswith("eval/") for k in r)}


@pytest.mark.parametrize("name,scorer", [("preference", "score"), ("binary", "score"),
                                         ("imitation", "mean_logprob")])
def test_objective_trains_and_beats_chance_on_held_out_comparisons(tmp_path, name, scorer):
  cfg = config(name, **{"train.steps": 120})
  last = train_lib.train(cfg, str(tmp_path))
  assert last["step"] == 120 and math.isfinite(last["loss"])
  setup, params = trained_params(cfg, str(tmp_path))
  res, threshold = held_out_accuracy(setup, params, scorer)
  print(name, res)
  assert res["accuracy"] > threshold, (name, res, threshold)


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
  d = str(tmp_path_factory.mktemp("lm"))
  train_lib.train(config("pretrain", **{"train.steps": 60}), d)
  return d


def test_online_distillation_reduces_held_out_kl(tmp_path, lm_run):
  cfg = config("distill", **{"train.steps": 30, "train.eval_every": 1, "train.eval_batches": 1,
                             "init_from": lm_run, "optim.lr": 1e-3})
  train_lib.train(cfg, str(tmp_path))
  ev = eval_metrics(str(tmp_path))
  first, final = ev[1]["kl"], ev[30]["kl"]  # lr is 0 at step 0 (warmup), so step 1 is the initial model
  print("online KL", first, final)
  assert first > 1e-3 and final < 0.8 * first


def test_offline_distillation_reduces_held_out_kl(tmp_path, lm_run):
  base = dict(**{"init_from": lm_run, "optim.lr": 1e-3})
  teacher_dir = str(tmp_path / "teacher")
  subprocess.run([sys.executable, os.path.join(REPO, "tools", "teacher_logits.py"),
                  "--config=configs/distill.py:tiny,offline", f"--config.init_from={lm_run}", f"--out={teacher_dir}",
                  "--max_examples=96"], cwd=REPO, check=True)
  with open(os.path.join(teacher_dir, "meta.json")) as f:
    meta = json.load(f)
  assert meta["k"] == 50 and meta["splits"]["train"]["examples"] == 96
  with np.load(os.path.join(teacher_dir, "train.npz")) as f:
    np.testing.assert_allclose(np.exp(f["topk_logprobs"]).sum(-1) + np.exp(f["remainder_logprob"]), 1, atol=1e-4)
  cfg = config("distill", "tiny,offline", **base, **{"objective.teacher_dir": teacher_dir, "train.steps": 30,
                                                       "train.eval_every": 1, "train.eval_batches": 1})
  train_lib.train(cfg, str(tmp_path / "run"))
  ev = eval_metrics(str(tmp_path / "run"))
  print("offline KL", ev[1]["kl"], ev[30]["kl"])
  assert ev[1]["kl"] > 1e-3 and ev[30]["kl"] < 0.8 * ev[1]["kl"]


def test_pmp_then_finetune_restores(tmp_path, lm_run):
  pmp_dir, ft_dir = str(tmp_path / "pmp"), str(tmp_path / "ft")
  pmp = config("pmp", "tiny,binary,lab", **{"init_from": lm_run, "train.steps": 20, "train.log_every": 1,
                                            "train.eval_every": 20, "optim.lr": 1e-3})
  seen = {}
  train_lib.train(pmp, pmp_dir, step_hook=lambda s, m: seen.setdefault(s, m))
  # LM weights + a FRESH (zero) score head: every score is 0 at step 1, so the loss is exactly log 2
  np.testing.assert_allclose(seen[1]["loss"], math.log(2), rtol=1e-6)
  assert seen[1]["mean_margin"] == 0.0
  pmp_eval = eval_metrics(pmp_dir)[20]
  assert pmp_eval["loss"] < math.log(2) - 1e-3  # the head learned something, so restoring it is observable
  # finetune from PMP with lr 0 and PMP's eval data: its first evaluation must reproduce PMP's last one
  ft = config("finetune", "tiny,lab", **{"init_from": pmp_dir, "train.steps": 1, "train.eval_every": 1,
                                         "optim.lr": 0.0, "data.task": "lab_compare_binary",
                                         "data.num_responses": 2})
  train_lib.train(ft, ft_dir)
  ft_eval = eval_metrics(ft_dir)[1]
  for k in ("loss", "accuracy", "mean_margin"):
    np.testing.assert_allclose(ft_eval[k], pmp_eval[k], rtol=1e-5, atol=1e-6)
