"""Evaluation: scoring against hand-computed log-probs, MI, MC2, ties, calibration, real HHH subset counts, the
evaluation job end to end (deterministic, PM + LM conditions, outputs)."""
import json
import os
import threading

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from hhh.core import sharding
from hhh.run import model as run_model
from hhh import scoring
from hhh.scoring import scorer as scorer_lib
from hhh.core import metrics
from hhh.eval import examples, hhh as hhh_eval, run
from hhh.models.transformer import Transformer, TransformerConfig

V = 32
EOC = V - 1


def _model(score_head=False):
  cfg = TransformerConfig(vocab_size=V, d_model=32, n_layers=2, n_heads=2, max_len=128, score_head=score_head,
                          init_std=0.3)
  model = Transformer(cfg)
  params = model.init(jax.random.key(1), jnp.zeros((1, 8), jnp.int32))["params"]
  params = jax.tree.map(lambda p: getattr(p, "value", p), params, is_leaf=lambda p: hasattr(p, "value"))
  return model, params


def _mesh_scorer(model, params, prefix=None):
  mesh_cfg = ml_collections.ConfigDict(dict(shape=dict(data=-1, fsdp=1, tensor=1), slices=1,
                                            rules=[list(r) for r in sharding.DEFAULT_RULES]))
  mesh = sharding.make_mesh(mesh_cfg)
  rules = sharding.rules_from_config(mesh_cfg.rules)
  ms = run_model.build_model(ml_collections.ConfigDict(dict(vars(model.cfg))), mesh_cfg)
  return scoring.Scorer(model, params, mesh, rules, ms.shardings, prefix_tokens=prefix)


_APPLY = {}


def _hand_logprob(model, params, seq, start, end):
  """log P(seq[start:end] | seq[:start]) by an explicit loop over positions."""
  fn = _APPLY.setdefault(model.cfg, jax.jit(lambda p, t: model.apply({"params": p}, t)["logits"]))
  logits = np.asarray(fn(params, jnp.asarray([seq]))[0], np.float64)
  total = 0.0
  for t in range(start, end):
    row = logits[t - 1]
    total += row[seq[t]] - (np.log(np.sum(np.exp(row - row.max()))) + row.max())
  return total


def _sample(ctx, resp, L):
  row = list(ctx) + list(resp) + [EOC]
  return row + [0] * (L - len(row)), len(ctx), len(ctx) + len(resp)


def _examples(rows_by_example, L=24):
  """[[ (ctx, resp), ... ] per example] -> Examples with label 1 on the first response."""
  n, k = len(rows_by_example), max(len(r) for r in rows_by_example)
  tok = np.zeros((n, k, L), np.int32)
  rs, ei, valid, label = (np.zeros((n, k), np.int32), np.zeros((n, k), np.int32), np.zeros((n, k), np.float32),
                          np.zeros((n, k), np.float32))
  for i, rows in enumerate(rows_by_example):
    for j, (c, r) in enumerate(rows):
      tok[i, j], rs[i, j], ei[i, j] = _sample(c, r, L)
      valid[i, j], label[i, j] = 1, float(j == 0)
  return examples.Examples("hand", tok, rs, ei, label, valid, None, {})


def test_lm_scores_match_hand_computed_logprobs_and_mutual_information():
  model, params = _model()
  rng = np.random.default_rng(0)
  rows = [[(rng.integers(3, V - 1, size=int(rng.integers(2, 9))), rng.integers(3, V - 1, size=int(rng.integers(1, 7))))
           for _ in range(3)] for _ in range(5)]
  rows[2] = rows[2][:2]  # a padding response (valid 0)
  ex = _examples(rows)
  null = np.array([5, 6], np.int32)
  scorer = _mesh_scorer(model, params)  # 8 fake devices: 14 rows padded to 16
  s = scoring.score_lm(scorer, ex, batch_size=3, null_ids=null, eoc_id=EOC)
  for i, resp_rows in enumerate(rows):
    for j, (c, r) in enumerate(resp_rows):
      seq, a, b = _sample(c, r, 24)
      cond = _hand_logprob(model, params, seq, a, b)
      useq, ua, ub = _sample(null, r, 24)
      uncond = _hand_logprob(model, params, useq, ua, ub)
      np.testing.assert_allclose(s["sum"][i, j], cond, rtol=1e-4, atol=1e-4)
      assert s["count"][i, j] == len(r)
      np.testing.assert_allclose(s["mean"][i, j], cond / len(r), rtol=1e-4, atol=1e-4)
      np.testing.assert_allclose(s["mi"][i, j], cond - uncond, rtol=1e-4, atol=1e-4)
  assert s["sum"][2, 2] == 0 and s["count"][2, 2] == 0  # padding response untouched


def test_scoring_compiles_each_program_once_ahead_of_time_and_equals_the_jitted_function(monkeypatch):
  """score_lm / score_pm lower every (kind, rows, length) a set needs once, in batch order, compile them on the pool,
  and give bit for bit what the jitted functions give; a second set and a second scorer of the model reuse them."""
  cfg = TransformerConfig(vocab_size=V, d_model=24, n_layers=2, n_heads=2, max_len=192, init_std=0.3)
  model = Transformer(cfg)  # a config of its own: the table of compiled programs is per model config
  params = model.init(jax.random.key(1), jnp.zeros((1, 8), jnp.int32))["params"]
  params = jax.tree.map(lambda p: getattr(p, "value", p), params, is_leaf=lambda p: hasattr(p, "value"))
  lowered = []
  lower = scoring.Scorer._lower  # pylint: disable=protected-access
  monkeypatch.setattr(scoring.Scorer, "_lower", lambda self, *a: lowered.append(a) or lower(self, *a))
  rng = np.random.default_rng(0)
  # 4 examples x 2 responses: contexts of 10 and 100 tokens -> length buckets 64 and 128; null-context rows are short
  rows = [[(rng.integers(3, V - 1, size=n), rng.integers(3, V - 1, size=4)) for _ in range(2)]
          for n in (10, 10, 100, 100)]
  ex = _examples(rows, L=160)
  scorer = _mesh_scorer(model, params)  # 8 fake devices: 4 rows padded to 8
  s = scoring.score_lm(scorer, ex, batch_size=2, null_ids=np.array([5, 6], np.int32), eoc_id=EOC)
  assert lowered == [("lm", 8, 64), ("lm", 8, 128)]  # conditional 64, null 64 (reused), conditional 128, null 64
  for i in range(4):  # the AOT program == the jitted function on the same rows
    (t, rs, ei), n = scorer._flatten(ex.tokens[[i]], ex.response_start[[i]], ex.eoc_index[[i]], ex.valid[[i]])
    with scorer._ctx():
      total, count, _ = scorer._fns["lm"](params, t, rs, ei)
    np.testing.assert_array_equal(np.asarray(total)[:n], s["sum"][i])
    np.testing.assert_array_equal(np.asarray(count)[:n], s["count"][i])
  again = scoring.score_lm(_mesh_scorer(model, params), ex, batch_size=2)  # a second scorer (the distilled LM's)
  np.testing.assert_array_equal(again["sum"], s["sum"])
  assert len(lowered) == 2  # nothing compiled again
  monkeypatch.setenv("HHH_COMPILE_WORKERS", "two")
  with pytest.raises(ValueError, match="HHH_COMPILE_WORKERS must be a positive integer"):
    scoring.compile_workers()
  monkeypatch.setenv("HHH_COMPILE_WORKERS", "3")
  assert scoring.compile_workers() == 3


def test_interrupted_scoring_cancels_the_compiles_it_queued_and_a_rerun_gives_the_same_numbers(monkeypatch):
  """Ctrl-C in the middle of a set: the programs still queued on the compile pool are cancelled (an interrupted
  evaluation does not wait for them at exit) and dropped from the table; scoring the set again compiles what it needs
  and gives the numbers of an uninterrupted run."""
  cfg = TransformerConfig(vocab_size=V, d_model=40, n_layers=1, n_heads=2, max_len=640, init_std=0.3)
  model = Transformer(cfg)  # a config of its own: nothing compiled for it yet
  params = model.init(jax.random.key(2), jnp.zeros((1, 8), jnp.int32))["params"]
  params = jax.tree.map(lambda p: getattr(p, "value", p), params, is_leaf=lambda p: hasattr(p, "value"))
  rng = np.random.default_rng(1)
  # 10 rows of 64 j + 24 tokens (context, 3 response tokens, end of context): one per length bucket 64, 128, ..., 640
  rows = [[(rng.integers(3, V - 1, size=64 * j + 20), rng.integers(3, V - 1, size=3))] for j in range(10)]
  ex = _examples(rows, L=640)
  scorer = _mesh_scorer(model, params)
  real_lm, real_pool = scoring.Scorer.lm, scorer_lib._compile_pool
  calls = []
  pool = scorer_lib.concurrent.futures.ThreadPoolExecutor(1)  # one worker, busy until released: every compile queues
  release = threading.Event()
  pool.submit(release.wait)
  monkeypatch.setattr(scorer_lib, "_compile_pool", lambda: pool)

  def interrupted(self, *a, **kw):
    calls.append(1)
    raise KeyboardInterrupt

  monkeypatch.setattr(scoring.Scorer, "lm", interrupted)
  with pytest.raises(KeyboardInterrupt):
    scoring.score_lm(scorer, ex, batch_size=1)
  release.set()
  assert len(calls) == 1  # interrupted at its first batch
  assert scorer._exes == {}  # the 10 queued compiles were cancelled and dropped
  pool.shutdown(wait=True)
  monkeypatch.setattr(scorer_lib, "_compile_pool", real_pool)
  monkeypatch.setattr(scoring.Scorer, "lm", real_lm)
  again = scoring.score_lm(scorer, ex, batch_size=1)
  fresh = scoring.score_lm(_mesh_scorer(model, params), ex, batch_size=1)
  assert len(scorer._exes) == 10
  np.testing.assert_array_equal(again["sum"], fresh["sum"])
  for i, ((c, r),) in enumerate(rows):
    seq, a, b = _sample(c, r, 640)
    np.testing.assert_allclose(again["sum"][i, 0], _hand_logprob(model, params, seq, a, b), rtol=1e-4, atol=1e-4)


def test_greedy_flag_is_exact_argmax_reproduction():
  model, params = _model()
  ctx = [3, 4, 5, 6]
  logits = np.asarray(model.apply({"params": params}, jnp.asarray([ctx]))["logits"][0])
  best = int(logits[-1].argmax())
  worst = int(logits[-1][3:EOC].argmin()) + 3
  ex = _examples([[(ctx, [best])], [(ctx, [worst])]])
  s = scoring.score_lm(_mesh_scorer(model, params), ex, batch_size=4)
  assert s["greedy"][:, 0].tolist() == [1.0, 0.0]


def test_prompt_prefix_cache_equals_concatenated_context():
  """The prompt condition (shared prefix keys/values) scores exactly like prompt + context in one sequence."""
  model, params = _model()
  prompt = np.array([7, 8, 9, 10, 11, 12], np.int32)
  ctx, resp = [3, 4, 5], [20, 21, 22]
  ex = _examples([[(ctx, resp)]])
  s = scoring.score_lm(_mesh_scorer(model, params, prefix=prompt), ex, batch_size=1, with_prefix=True)
  seq, a, b = _sample(list(prompt) + ctx, resp, 32)
  np.testing.assert_allclose(s["sum"][0, 0], _hand_logprob(model, params, seq, a, b), rtol=1e-4, atol=1e-4)
  plain = scoring.score_lm(_mesh_scorer(model, params, prefix=prompt), ex, batch_size=1)
  assert abs(plain["sum"][0, 0] - s["sum"][0, 0]) > 1e-3  # the prompt really conditions the score


def test_pm_scores_read_at_end_of_context_token():
  model, params = _model(score_head=True)
  params = jax.tree.map(lambda p: p, params)
  key = jax.random.key(3)
  params["score_head"] = {"kernel": jax.random.normal(key, params["score_head"]["kernel"].shape),
                          "bias": jnp.zeros_like(params["score_head"]["bias"])}
  ex = _examples([[([3, 4], [5, 6, 7]), ([3, 4], [8])]])
  s = scoring.score_pm(_mesh_scorer(model, params), ex, batch_size=1)["score"]
  for j, (c, r) in enumerate([([3, 4], [5, 6, 7]), ([3, 4], [8])]):
    seq, _, e = _sample(c, r, 24)
    ref = model.apply({"params": params}, jnp.asarray([seq]), score_index=jnp.asarray([e]))["score"][0]
    np.testing.assert_allclose(s[0, j], float(ref), rtol=1e-5, atol=1e-5)


def test_choice_ties_go_to_first_choice_and_mc2_normalisation():
  valid = np.ones((3, 3))
  target = np.array([[0, 1, 0], [1, 0, 0], [0, 1, 0]], float)
  scores = np.array([[2.0, 2.0, 1.0], [2.0, 2.0, 1.0], [0.0, 1.0, 5.0]])
  assert metrics.choose(scores, valid).tolist() == [0, 0, 2]
  assert metrics.tied(scores, valid).tolist() == [1.0, 1.0, 0.0]
  assert metrics.choice_correct(scores, target, valid).tolist() == [0.0, 1.0, 0.0]
  # An invalid (padding) choice never wins, whatever its score.
  v2 = valid.copy()
  v2[2, 2] = 0
  assert metrics.choose(scores, v2)[2] == 1
  lp = np.log(np.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]]))
  t = np.array([[0, 1, 0], [1, 1, 0]], float)
  np.testing.assert_allclose(metrics.mc2(lp, t, np.ones((2, 3))), [0.3, 0.2])
  # MC2 renormalises over the valid choices only: 0.3 / (0.2 + 0.3).
  np.testing.assert_allclose(metrics.mc2(lp[:1], t[:1], np.array([[1, 1, 0]])), [0.6])
  # Large log-probs do not overflow.
  np.testing.assert_allclose(metrics.mc2(np.array([[-1000.0, -1000.0]]), np.array([[1, 0]]), np.ones((1, 2))), [0.5])


def test_pairwise_accuracy_counts_only_differently_scored_pairs():
  pred = np.array([[3.0, 2.0, 1.0, 1.0], [1.0, 1.0, 0.0, 9.0]])
  score = np.array([[3.0, 2.0, 1.0, 1.0], [2.0, 1.0, 1.0, 0.0]])
  valid = np.array([[1, 1, 1, 1], [1, 1, 1, 0]], float)
  correct, pairs = metrics.pairwise_correct(pred, score, valid)
  assert pairs.tolist() == [5.0, 2.0]  # row 1: (0,1), (0,2); the tie (2,3) and the padding response give no pair
  assert correct.tolist() == [5.0, 1.5]  # (0,1) predicted tie: half a pair, as the trainer's accuracy


def test_one_definition_of_pairwise_accuracy_and_ece_for_training_and_evaluation():
  """The trainer's jnp metrics (inside jit) and the evaluator's numpy ones are the same functions: equal on random
  ranked comparisons with ties, padding and predicted ties, including probabilities on bin edges."""
  rng = np.random.default_rng(0)
  pred = np.round(rng.normal(size=(6, 4)), 1)
  score = rng.integers(0, 3, (6, 4)).astype(float)
  valid = (rng.random((6, 4)) > 0.2).astype(float)
  st = jax.jit(metrics.pair_stats)(jnp.asarray(pred, jnp.float32), jnp.asarray(score), jnp.asarray(valid))
  correct, pairs = metrics.pairwise_correct(pred, score, valid)
  assert float(st["pairs"]) == pairs.sum() and float(st["correct"]) == pytest.approx(correct.sum())
  ece_jit = float(jax.jit(metrics.pairwise_ece)(jnp.asarray(pred, jnp.float32), jnp.asarray(score),
                                                  jnp.asarray(valid)))
  assert ece_jit == pytest.approx(metrics.pairwise_preference(pred, score, valid)["ece"], abs=1e-6)
  edges = np.array([0.0, 0.1, 0.3, 0.7, 1.0])  # exact bin edges land in the same bin in both
  out = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
  assert float(metrics.ece(jnp.asarray(edges), jnp.asarray(out))) == pytest.approx(
      metrics.reliability(edges, out)["ece"], abs=1e-7)


def test_calibration_ece_by_hand():
  r = metrics.reliability([0.05, 0.15, 0.95, 0.95], [0, 1, 1, 0], bins=10)
  # bins: [0,.1): p .05 freq 0 -> .05; [.1,.2): p .15 freq 1 -> .85; [.9,1]: p .95 freq .5 -> .45 (2 of 4)
  np.testing.assert_allclose(r["ece"], 0.25 * 0.05 + 0.25 * 0.85 + 0.5 * 0.45)
  assert r["count"][0] == 1 and r["count"][9] == 2
  perfect = metrics.pairwise_preference(np.array([[5.0, -5.0]]), np.array([[1.0, 0.0]]), np.ones((1, 2)))
  assert perfect["n"] == 2 and perfect["ece"] < 1e-3
  mc = metrics.multiple_choice_calibration(np.array([[0.0, 0.0]]), np.array([[0.0, 1.0]]), np.ones((1, 2)))
  np.testing.assert_allclose(mc["ece"], 0.5)  # picks the first (wrong) choice with confidence 0.5


def test_hhh_real_data_subset_counts(bigbench_dir):
  ex = examples.load("hhh_alignment_mc", seq_len=256, k=2)
  assert len(ex) == 221 and ex.valid.sum() == 442
  assert (ex.label.sum(-1) == 1).all()
  t = hhh_eval.accuracy_table(np.where(ex.label > 0, 1.0, 0.0), ex)  # an oracle scores 100% in every subset
  assert [t[f"n_{s}"] for s in hhh_eval.SUBSETS] == [58, 59, 61, 43]
  assert t["overall"] == 1.0 and all(t[s] == 1.0 for s in hhh_eval.SUBSETS)
  flipped = hhh_eval.accuracy_table(np.where(ex.label > 0, 0.0, 1.0), ex)
  assert flipped["overall"] == 0.0
  assert t["ties"] == 0 and flipped["ties"] == 0
  tied = hhh_eval.accuracy_table(np.zeros_like(ex.label), ex)  # all ties: first response
  np.testing.assert_allclose(tied["overall"], float((ex.label[:, 0] == 1).mean()))
  assert tied["ties"] == 221


def _save_params(path, params):
  from hhh.run import checkpoint as ckpt_lib
  c = ckpt_lib.Checkpointer(str(path), every=1, keep=1, async_save=False)
  c.save(7, {"params": params, "step": jnp.asarray(7)}, {"train_batches": 0}, force=True)
  c.wait()
  c.close()


def test_eval_job_is_deterministic_and_writes_outputs(tmp_path):
  from configs import eval as eval_cfg
  config = eval_cfg.get_config("tiny")
  ms = run_model.build_model(config.model, config.mesh)
  lm = ms.model.init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))["params"]
  lm = jax.tree.map(lambda p: getattr(p, "value", p), lm, is_leaf=lambda p: hasattr(p, "value"))
  _save_params(tmp_path / "lm", lm)
  pm_cfg = ml_collections.ConfigDict(config.model.to_dict())
  pm_cfg.score_head = True
  pm = run_model.build_model(pm_cfg, config.mesh).model.init(jax.random.key(1), jnp.zeros((1, 8), jnp.int32))["params"]
  pm = jax.tree.map(lambda p: getattr(p, "value", p), pm, is_leaf=lambda p: hasattr(p, "value"))
  pm["score_head"]["kernel"] = jax.random.normal(jax.random.key(2), pm["score_head"]["kernel"].shape)
  _save_params(tmp_path / "pm", pm)
  with config.unlocked():
    config.checkpoint = str(tmp_path / "lm")
    config.pm_checkpoint = str(tmp_path / "pm")
    config.eval.suites = "compare"
    config.eval.conditions = "plain,pm,distilled"
    config.eval.max_examples = 12
  out1 = run.evaluate(config, str(tmp_path / "e1"), log=lambda s: None)
  out2 = run.evaluate(config, str(tmp_path / "e2"), log=lambda s: None)
  c1, c2 = out1["compare"]["lab_compare"], out2["compare"]["lab_compare"]
  assert c1 == c2 and c1["n"] == 12
  assert set(c1["conditions"]) == {"plain", "pm"} and "distilled" in out1["skipped"]
  assert c1["conditions"]["plain"]["pairs"] > 12
  saved = json.loads((tmp_path / "e1" / "eval.json").read_text())
  assert saved["compare"]["lab_compare"]["conditions"]["pm"]["score"] == c1["conditions"]["pm"]["score"]
  assert "| lab_compare | pm |" in (tmp_path / "e1" / "eval.md").read_text()
  assert os.listdir(tmp_path / "e1" / "tensorboard")
  # Bad numeric settings are named before any checkpoint is read (the LM path would load fine).
  for key, value in (("batch_size", 0), ("batch_size", -64), ("seq_len", 0), ("calibration_bins", 0)):
    bad = ml_collections.ConfigDict(config.to_dict())
    bad.eval[key] = value
    with pytest.raises(ValueError, match=rf"eval.{key} must be an integer >= 1, got {value}"):
      run.evaluate(bad, str(tmp_path / "e_bad"), log=lambda s: None)
    assert not os.path.exists(tmp_path / "e_bad" / "eval.json")
  # An LM checkpoint cannot serve as a preference model: its score head would be fresh.
  with config.unlocked():
    config.pm_checkpoint = str(tmp_path / "lm")
  with pytest.raises(ValueError, match="lacks parameters"):
    run.evaluate(config, str(tmp_path / "e3"), log=lambda s: None)


@pytest.mark.slow
def test_pm_accuracy_matches_trainer_held_out_metric(tmp_path):
  """A preference model trained on lab_compare, evaluated on the same held-out comparisons: the evaluator's pairwise
  accuracy equals the trainer's held-out `accuracy` over five batches with different pair counts (the trainer pools
  by pairs, METRIC_WEIGHTS; a mean of batch means would differ)."""
  from configs import eval as eval_cfg
  from configs import preference as pref_cfg
  from hhh import train as train_lib
  from hhh.data import pipeline
  n, seq = 40, 96
  c = pref_cfg.get_config("tiny")
  with c.unlocked():
    c.train.steps, c.train.batch_size, c.data.seq_len, c.train.eval_every = 4, 8, seq, 4
    c.train.log_every, c.train.async_checkpoints, c.data.shuffle, c.train.eval_batches = 4, False, False, 5
    # Full rate from step 1: after 4 warm-up steps the scores differed by ~1e-5, where the trainer's and the
    # evaluator's float orders (8-way sharded batches of 8 vs the evaluator's batches) flipped a near-tied pair on
    # another CPU (116 vs 115 of 188 pairs).
    c.optim.warmup_steps = 1
  held_out = next(pipeline.make_iterator("lab_compare", split="validation", family="comparison", seq_len=seq,
                                         batch_size=n, vocab="byte", seed=0, shuffle=False, repeat=False, k=4))
  batches = [{k: v[i:i + 8] for k, v in held_out.items()} for i in range(0, n, 8)]
  pairs = [float(metrics.pair_mask(b["score"], b["valid"]).sum()) for b in batches]
  assert len(set(pairs)) > 1, pairs  # unequal batches: pooling matters
  out = train_lib.train(c, str(tmp_path / "pm"), eval_batches=lambda: iter(batches))
  e = eval_cfg.get_config("tiny")
  with e.unlocked():
    e.pm_checkpoint = str(tmp_path / "pm")
    e.eval.suites, e.eval.conditions = "compare", "pm"
    e.eval.compare_split, e.eval.max_examples, e.eval.seq_len = "validation", n, seq
  res = run.evaluate(e, str(tmp_path / "eval"), log=lambda s: None)
  acc = res["compare"]["lab_compare"]["conditions"]["pm"]["score"]
  assert acc == pytest.approx(out["eval/accuracy"], abs=1e-5)
  assert acc != 0.5  # a trained model, not all ties


def test_alignment_tax_on_mock_tfds(tmp_path):
  """lambada (greedy last word) and a TFDS multiple-choice task, with and without the prompt; tax = difference."""
  import tensorflow_datasets as tfds
  from configs import eval as eval_cfg
  config = eval_cfg.get_config("tiny")
  ms = run_model.build_model(config.model, config.mesh)
  lm = ms.model.init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))["params"]
  lm = jax.tree.map(lambda p: getattr(p, "value", p), lm, is_leaf=lambda p: hasattr(p, "value"))
  _save_params(tmp_path / "lm", lm)
  with config.unlocked():
    config.checkpoint = str(tmp_path / "lm")
    config.eval.suites, config.eval.conditions = "tax", "plain,prompt"
    config.eval.tax_tasks, config.eval.max_examples = "tax_lambada,tax_piqa", 6
    config.eval.seq_len, config.eval.prompt_max_tokens = 64, 450
  # 6 mock examples include a one-word lambada passage (an empty context), which once crashed the tokenizer
  with tfds.testing.mock_data(num_examples=6):
    res = run.evaluate(config, str(tmp_path / "e"), log=lambda s: None)
  assert res["prompt_tokens_used"] <= 450 and res["prompt_tokens_used"] > 300  # the preamble, no whole dialogue
  for task in ("tax_lambada", "tax_piqa"):
    t = res["tax"][task]
    assert t["n"] == 6 and set(t["conditions"]) == {"plain", "prompt"}
    assert res["data"][task]["evaluated"] == 6 and res["data"][task]["no_responses"] == 0
    c = t["conditions"]
    assert t["tax"]["prompt"]["accuracy"] == pytest.approx(c["prompt"]["accuracy"] - c["plain"]["accuracy"])
    if task == "tax_lambada":  # the word's log-prob (graded) and its tax
      assert c["plain"]["word_logprob"] < 0
      assert t["tax"]["prompt"]["word_logprob"] == pytest.approx(c["prompt"]["word_logprob"]
                                                                 - c["plain"]["word_logprob"])
  md = (tmp_path / "e" / "eval.md").read_text()
  assert "| tax_piqa | 6 |" in md and "| tax_lambada | 6 | 0 |" in md  # tax table, data table
  lam = res["tax"]["tax_lambada"]["conditions"]["plain"]  # the tax table shows lambada's word log-prob too
  ci = lam["accuracy_ci"]
  assert f"| tax_lambada | 6 | {100 * lam['accuracy']:.1f}% [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}] " \
         f"({lam['word_logprob']:.2f}) |" in md


def test_lab_last_word_task_is_lambada_format_on_held_out_corpus():
  from hhh.data import lab_corpus, tasks
  docs = lab_corpus.lm_documents("test")
  recs = tasks.lab_last_word("test")
  assert len(recs) == len(docs) == 1200  # every held-out document has a context and a last word
  for d, r in zip(docs[:50], recs[:50]):
    assert d.rstrip().startswith(r["context"] + r["choices"][0]) and r["choices"][0].startswith(" ")
    rest = d.rstrip()[len(r["context"] + r["choices"][0]):]
    assert set(rest) <= set(".,;:!?\"')") and " " not in r["choices"][0][1:] and r["targets"] == [1.0]
  assert recs[0]["context"].endswith("Assistant: The answer is") and recs[0]["choices"] == [" 1189"]
  ex = examples.load("tax_lab_lambada", split="test", seq_len=128, k=1, max_examples=10)
  assert len(ex) == 10 and ex.ids[:2] == ["lab_lm:test:0", "lab_lm:test:1"]
  # one choice, ending in the end-of-context token, with the word's bytes as the response
  word = recs[0]["choices"][0].encode()
  i, j = ex.response_start[0, 0], ex.eoc_index[0, 0]
  assert (ex.tokens[0, 0, i:j] - 3).tolist() == list(word)


@pytest.mark.slow
def test_truthfulqa_suite_on_real_data(tmp_path, bigbench_dir):
  """The TruthfulQA suite end to end on the BIG-bench file (299 questions): MC1/MC2 with intervals for an LM and MC1
  for a PM, its log line, eval.md table and TensorBoard tags."""
  from configs import eval as eval_cfg
  config = eval_cfg.get_config("tiny")
  ms = run_model.build_model(config.model, config.mesh)
  lm = ms.model.init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))["params"]
  _save_params(tmp_path / "lm", jax.tree.map(lambda p: getattr(p, "value", p), lm, is_leaf=lambda p: hasattr(p, "value")))
  with config.unlocked():
    config.checkpoint = str(tmp_path / "lm")
    config.eval.suites, config.eval.conditions, config.eval.seq_len = "truthfulqa", "plain", 256
  lines = []
  res = run.evaluate(config, str(tmp_path / "e"), log=lines.append)
  t = res["truthfulqa"]
  assert t["n"] == 299
  v = t["conditions"]["plain"]
  assert set(v) >= {"mc1_sum", "mc1_mean", "mc2", "mc1_sum_ci", "per_example"}
  assert len(v["per_example"]["mc2"]) == 299 and 0 < v["mc2"] < 1
  assert v["mc1_sum_ci"][0] <= v["mc1_sum"] <= v["mc1_sum_ci"][1]
  assert any(line.startswith("hhh.eval: truthful_qa_mc plain: mc1_sum ") for line in lines)
  assert "## TruthfulQA MC (299 questions)" in (tmp_path / "e" / "eval.md").read_text()
  assert "truthfulqa/plain/mc2" in run.flat_scalars(res)


def test_missing_data_is_reported_and_the_other_suites_run(tmp_path, monkeypatch):
  """No BIG-bench files: the HHH suite is reported missing (named path), the compare suite still runs; a TFDS tax
  set that is neither prepared nor downloadable is MissingData naming what to do, not an obscure TFDS error."""
  from configs import eval as eval_cfg
  from hhh.data import file_tasks, tasks
  config = eval_cfg.get_config("tiny")
  ms = run_model.build_model(config.model, config.mesh)
  lm = ms.model.init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))["params"]
  _save_params(tmp_path / "lm", jax.tree.map(lambda p: getattr(p, "value", p), lm, is_leaf=lambda p: hasattr(p, "value")))
  monkeypatch.setenv("HHH_BIGBENCH_DIR", str(tmp_path / "no_bigbench"))
  tasks.clear_parse_cache()
  try:
    with config.unlocked():
      config.checkpoint = str(tmp_path / "lm")
      config.eval.suites, config.eval.conditions, config.eval.max_examples = "hhh,compare", "plain", 6
    lines = []
    res = run.evaluate(config, str(tmp_path / "e"), log=lines.append)
  finally:
    tasks.clear_parse_cache()
  assert "hhh" not in res and "no_bigbench" in res["missing"]["hhh_alignment_mc"]
  assert res["compare"]["lab_compare"]["n"] == 6
  assert any("hhh_alignment_mc unavailable" in line for line in lines)
  assert "Missing data: hhh_alignment_mc" in (tmp_path / "e" / "eval.md").read_text()

  def offline_load(name, *, download, **kw):
    if not download:
      raise AssertionError(f"Dataset {name}: could not find data in /nowhere.")
    raise ConnectionError("no network")
  monkeypatch.setattr(file_tasks.tfds, "load", offline_load)
  from hhh.data import sources
  with pytest.raises(sources.MissingData, match=r"TFDS piqa:1.0.0: Dataset piqa:1.0.0: could not find data.*"
                                                r"ConnectionError: no network.*tfds build piqa"):
    examples.load("tax_piqa", split="validation", seq_len=64, k=2)
