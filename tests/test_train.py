"""The trainer: sharded == unsharded, exact resume after SIGTERM, init_from, accumulation, loss falls, clear errors."""

import json
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from hhh.run import checkpoint as ckpt_lib
from hhh.run import model as run_model
from hhh import config as hc
from hhh.train import optimizer
from hhh.core import sharding
from hhh import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
L = 32


def tiny_config(**train_overrides):
  c = hc.base_config("tiny")
  c.data.seq_len = L
  c.train.update(dict(steps=8, batch_size=8, log_every=1, eval_every=0, checkpoint_every=100,
                      async_checkpoints=False))
  c.train.update(train_overrides)
  c.optim.warmup_steps = 2
  return c


def lm_batches(batch_size=8, seed=0):
  """Deterministic synthetic LM batches (a learnable copy task); `start` skips batches like the real pipeline."""

  def make(start=0):
    rng = np.random.default_rng(seed)
    i = 0
    while True:
      x = rng.integers(3, 40, (batch_size, L + 1)).astype(np.int32)
      x[:, L // 2 + 1:] = x[:, 1:L // 2 + 1]
      if i >= start:
        yield {"decoder_input_tokens": x[:, :-1], "decoder_target_tokens": x[:, 1:],
               "decoder_loss_weights": np.ones((batch_size, L), np.float32),
               "decoder_segment_ids": np.ones((batch_size, L), np.int32),
               "decoder_positions": np.tile(np.arange(L, dtype=np.int32), (batch_size, 1))}
      i += 1

  return make


def read_metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def test_sharded_step_equals_single_device_step():
  c = tiny_config()
  batch_np = next(lm_batches()())
  results = []
  for shape, devices in (({"data": 1, "fsdp": 1, "tensor": 1}, jax.devices()[:1]),
                         ({"data": 2, "fsdp": 2, "tensor": 2}, jax.devices()[:8])):
    c.mesh.shape.update(shape)
    setup = train.build(c, devices)
    state = train.init_state(setup, jax.random.key(0))
    batch = train.global_batch(setup, batch_np)
    step = train.jit_train_step(setup, batch)
    with sharding.activate(setup.mesh, setup.rules):
      for _ in range(2):
        state, metrics = step(state, batch, jax.random.key(1), None)
    results.append((jax.device_get(state.params), jax.device_get(metrics)))
    if len(devices) == 8:  # the parameters really are sharded over fsdp and tensor
      spec = state.params["layers"]["mlp"]["wi"]["kernel"].sharding.spec
      assert tuple(spec) == (None, "fsdp", "tensor")
  (p1, m1), (p8, m8) = results
  assert m1["loss"] == pytest.approx(m8["loss"], rel=1e-5)
  assert m1["grad_norm"] == pytest.approx(m8["grad_norm"], rel=1e-4)
  # Adam divides by sqrt(v): where a gradient is ~0, reduction-order noise is amplified up to the size of one
  # update (lr 1.5e-3 here), so parameters are compared to within 1% of one update.
  for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p8)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1.5e-5)


def test_gradient_accumulation_matches_one_big_batch():
  outs = []
  for accum in (1, 4):
    c = tiny_config(grad_accum=accum)
    setup = train.build(c, jax.devices()[:2])
    state = train.init_state(setup, jax.random.key(0))
    batch = train.global_batch(setup, next(lm_batches()()))
    with sharding.activate(setup.mesh, setup.rules):
      state, metrics = train.jit_train_step(setup, batch)(state, batch, jax.random.key(1), None)
    outs.append((jax.device_get(state.params), float(metrics["loss"])))
  assert outs[0][1] == pytest.approx(outs[1][1], rel=1e-5)
  for a, b in zip(jax.tree.leaves(outs[0][0]), jax.tree.leaves(outs[1][0])):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1.5e-5)


def test_preference_accumulation_matches_one_batch_and_the_cpu_size_accumulates():
  """Ranked preference at grad_accum 4 == one batch when every comparison has the same number of valid pairs (all K=4
  responses valid, distinct ranks: 6 pairs each), and the `cpu` size's default (4 comparisons per device per
  microbatch; configs/preference.py) resolves to 4 microbatches on one device and 2 on two."""
  from hhh import objectives  # pylint: disable=g-import-not-at-top
  cpu = hc.load("configs/preference.py:cpu")
  assert [train.resolve_grad_accum(cpu, sharding.make_mesh(cpu.mesh, jax.devices()[:n])) for n in (1, 2)] == [4, 2]

  rng = np.random.default_rng(0)
  b, k = 8, 4
  batch_np = {"tokens": rng.integers(3, 40, (b, k, L)).astype(np.int32),
              "response_start": np.full((b, k), L // 2, np.int32),
              "eoc_index": rng.integers(L // 2, L, (b, k)).astype(np.int32),
              "score": np.stack([rng.permutation(k) for _ in range(b)]).astype(np.float32),
              "valid": np.ones((b, k), np.float32)}
  outs = []
  for accum in (1, 4):
    c = tiny_config(grad_accum=accum)
    c.objective = objectives.default_config("preference")
    c.model.score_head = True
    c.data.num_responses = k
    setup = train.build(c, jax.devices()[:2])
    state = train.init_state(setup, jax.random.key(0))
    batch = train.global_batch(setup, batch_np)
    step, history = train.jit_train_step(setup, batch), []
    with sharding.activate(setup.mesh, setup.rules):
      for _ in range(3):  # the score head starts at zero and the lr warms up from 0: pair losses are log 2 at first
        state, metrics = step(state, batch, jax.random.key(1), None)
        history.append(jax.device_get(metrics))
    outs.append((jax.device_get(state.params), history))
  (p1, h1), (p4, h4) = outs
  assert h1[-1]["loss"] < h1[0]["loss"] == pytest.approx(np.log(2))
  for m1, m4 in zip(h1, h4):
    for key in ("loss", "accuracy", "grad_norm"):
      assert m1[key] == pytest.approx(m4[key], rel=1e-5), key
  # The score head's bias cancels in every r_better - r_worse: its gradient is 0 up to reduction order, which Adam
  # turns into +-lr updates of either sign. Every other parameter must agree.
  p1["score_head"].pop("bias"), p4["score_head"].pop("bias")
  for a, b_ in zip(jax.tree.leaves(p1), jax.tree.leaves(p4)):
    np.testing.assert_allclose(a, b_, rtol=1e-4, atol=1.5e-5)


def test_sigterm_then_resume_gives_the_same_losses_as_an_uninterrupted_run(tmp_path):
  steps = 10
  full = train.train(tiny_config(steps=steps), str(tmp_path / "full"), train_batches=lm_batches())
  assert full["step"] == steps and not full["preempted"]

  def preempt_at_4(step, metrics):
    if step == 4:
      os.kill(os.getpid(), signal.SIGTERM)  # the real signal, handled by the trainer's preemption handler

  work = str(tmp_path / "interrupted")
  first = train.train(tiny_config(steps=steps), work, train_batches=lm_batches(), step_hook=preempt_at_4)
  assert first["preempted"] and first["step"] == 4
  assert ckpt_lib.Checkpointer(work, every=1, keep=3).latest_step() == 4
  second = train.train(tiny_config(steps=steps), work, train_batches=lm_batches())
  assert second["step"] == steps and not second["preempted"]

  full_losses = {m["step"]: m["train/loss"] for m in read_metrics(str(tmp_path / "full"))}
  resumed = {m["step"]: m["train/loss"] for m in read_metrics(work) if m["step"] > 4}
  assert sorted(resumed) == list(range(5, steps + 1))
  for s, loss in resumed.items():
    assert loss == full_losses[s], f"step {s}: resumed {loss} != uninterrupted {full_losses[s]}"
  # The workdir records the resolved config and the seed.
  with open(os.path.join(work, "config.json")) as f:
    assert json.load(f)["train"]["steps"] == steps
  with open(os.path.join(work, "run.json")) as f:
    assert json.load(f)["seed"] == 0


def test_init_from_loads_lm_parameters_and_creates_a_fresh_score_head(tmp_path, capsys):
  lm_dir = str(tmp_path / "lm")
  train.train(tiny_config(steps=3), lm_dir, train_batches=lm_batches())
  src = ckpt_lib.Checkpointer(lm_dir, every=1, keep=3)
  c = tiny_config()
  setup = train.build(c, jax.devices()[:1])
  abstract = ckpt_lib.abstract_with_shardings(setup.abstract_state, setup.state_shardings)
  lm_state, _ = src.restore(3, abstract)
  src.close()

  pm = tiny_config()
  pm.model.score_head = True
  pm_setup = train.build(pm, jax.devices()[:1])
  state = train.init_state(pm_setup, jax.random.key(7))
  params, loaded, fresh = run_model.load_params(lm_dir, state.params, pm_setup.state_shardings.params)
  assert fresh == ["score_head/bias", "score_head/kernel"]
  assert "embedding" in loaded and len(loaded) == len(jax.tree.leaves(lm_state.params))
  np.testing.assert_array_equal(params["embedding"], lm_state.params["embedding"])
  np.testing.assert_array_equal(params["layers"]["mlp"]["wi"]["kernel"], lm_state.params["layers"]["mlp"]["wi"]["kernel"])
  np.testing.assert_array_equal(params["score_head"]["kernel"], state.params["score_head"]["kernel"])


def test_init_from_without_a_checkpoint_is_a_clear_error(tmp_path):
  (tmp_path / "empty").mkdir()
  c = tiny_config()
  setup = train.build(c, jax.devices()[:1])
  state = train.init_state(setup, jax.random.key(0))
  with pytest.raises(ckpt_lib.CheckpointNotFoundError, match="no checkpoint found at"):
    run_model.load_params(str(tmp_path / "empty"), state.params, setup.state_shardings.params)
  with pytest.raises(ckpt_lib.CheckpointNotFoundError, match="does not exist"):
    run_model.load_params(str(tmp_path / "missing"), state.params, setup.state_shardings.params)


@pytest.mark.parametrize("change, message", [
    (lambda c: c.mesh.shape.update(dict(data=3, fsdp=1, tensor=1)), "does not divide|has 3 devices per slice"),
    (lambda c: c.mesh.shape.update(dict(data=-1, fsdp=3, tensor=1)), "is not a multiple of 3"),
    (lambda c: c.train.update(dict(batch_size=12)), "not divisible by the data-parallel size 8"),
    (lambda c: c.train.update(dict(batch_size=8, grad_accum=3)), "not divisible by train.grad_accum=3"),
    (lambda c: c.data.update(dict(seq_len=4096)), r"data.seq_len=4096 is longer than the model's context"),
    (lambda c: c.optim.update(dict(schedule="exp")), "unknown optim.schedule 'exp'"),
    (lambda c: c.objective.update(dict(name="nope")), "unknown objective 'nope'"),
    # Every optimiser number is checked for range and finiteness before any step (gradient ascent, NaN lr).
    (lambda c: c.optim.update(dict(lr=-0.003)), r"optim.lr must be a finite number in \[0, inf\) .*got -0.003"),
    (lambda c: c.optim.update(dict(lr=float("nan"))), r"optim.lr must be a finite number .*got nan"),
    (lambda c: c.optim.update(dict(lr=float("inf"))), r"optim.lr must be a finite number .*got inf"),
    (lambda c: c.optim.update(dict(warmup_steps=-1)), r"optim.warmup_steps must be an integer >= 0, got -1"),
    (lambda c: c.optim.update(dict(weight_decay=-0.1)), r"optim.weight_decay must be a finite number in \[0, inf\)"),
    (lambda c: c.optim.update(dict(clip_grad_norm=float("nan"))), r"optim.clip_grad_norm must be a finite number"),
    (lambda c: c.optim.update(dict(b1=1.0)), r"optim.b1 must be a finite number in \[0, 1\)"),
    (lambda c: c.optim.update(dict(b2=-0.5)), r"optim.b2 must be a finite number in \[0, 1\)"),
    (lambda c: c.optim.update(dict(eps=0.0)), r"optim.eps must be a finite number in \(0, inf\)"),
    (lambda c: c.optim.update(dict(end_lr_fraction=1.5)), r"optim.end_lr_fraction must be a finite number in \[0, 1\]"),
])
def test_bad_configs_get_errors_that_name_the_problem(change, message):
  c = tiny_config()
  change(c)
  with pytest.raises(ValueError, match=message):
    train.build(c, jax.devices()[:8])


def test_unknown_config_key_fails_on_the_command_line_naming_the_key(tmp_path):
  cmd = [sys.executable, "-m", "hhh.train", "--config=configs/pretrain.py:tiny", f"--workdir={tmp_path}",
         "--config.train.stepz=1"]
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                        env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert proc.returncode != 0
  assert "stepz" in proc.stderr


def test_learning_rate_schedule_warms_up_and_decays():
  c = tiny_config()
  c.optim.update(dict(lr=1.0, warmup_steps=10, end_lr_fraction=0.1, schedule="linear"))
  sched = optimizer.learning_rate_schedule(c.optim, 110)
  assert float(sched(0)) == 0.0
  assert float(sched(5)) == pytest.approx(0.5)
  assert float(sched(10)) == pytest.approx(1.0)
  assert float(sched(60)) == pytest.approx(0.55)
  assert float(sched(110)) == pytest.approx(0.1)
  c.optim.schedule = "cosine"
  sched = optimizer.learning_rate_schedule(c.optim, 110)
  assert float(sched(60)) == pytest.approx(0.1 + 0.9 * 0.5, rel=1e-5)


def test_nan_loss_stops_training_with_a_clear_error(tmp_path):
  def nan_batches(start=0):
    for b in lm_batches()(start):
      b["decoder_loss_weights"] = np.full_like(b["decoder_loss_weights"], np.nan)
      yield b

  with pytest.raises(FloatingPointError, match="non-finite"):
    train.train(tiny_config(steps=2), str(tmp_path), train_batches=nan_batches)


def test_mesh_rules_shard_large_model_parameters():
  """A paper size must not replicate more than 1% of its parameter bytes (eval_shape only: nothing allocated)."""
  c = hc.base_config("13b")
  c.mesh.shape.update(dict(data=1, fsdp=-1, tensor=4))
  devices = jax.devices()[:8]
  mesh = sharding.make_mesh(c.mesh, devices)
  c.train.batch_size = 8
  setup = train.build(c, devices)
  frac = sharding.replicated_fraction(setup.abstract_state.params, setup.state_shardings.params)
  assert frac < 0.01, f"{frac:.2%} of parameter bytes replicated"
  assert mesh.shape["fsdp"] == 2


@pytest.mark.slow
def test_tiny_lm_loss_falls_on_the_embedded_corpus(tmp_path):
  c = tiny_config(steps=60, batch_size=16, log_every=10)
  c.data.seq_len = 128
  c.optim.warmup_steps = 10
  train.train(c, str(tmp_path))
  losses = [m["train/loss"] for m in read_metrics(str(tmp_path)) if "train/loss" in m]
  assert losses[-1] < 0.7 * losses[0], losses


def test_held_out_metrics_pool_unequal_batches_by_their_tokens():
  """Two held-out batches, one with 1/8 of the other's loss tokens: the held-out loss and token accuracy are those
  of all their tokens together (one batch of both), not the mean of the two batch means."""
  setup = train.build(tiny_config(), jax.devices()[:1])
  params = train.init_state(setup, jax.random.key(0)).params
  gen = lm_batches()()
  full, sparse = next(gen), next(gen)
  sparse["decoder_loss_weights"] = np.zeros_like(sparse["decoder_loss_weights"])
  sparse["decoder_loss_weights"][0, :L // 8 * 8] = 1.0  # 32 tokens vs 256
  step = train.jit_eval_step(setup, train.global_batch(setup, full))
  with sharding.activate(setup.mesh, setup.rules):
    pooled = train.held_out_metrics(setup, params, step, [full, sparse], jax.random.key(1))
    per = [jax.device_get(step(params, train.global_batch(setup, b), jax.random.key(1), None)) for b in (full, sparse)]
  assert per[0]["tokens"] == 256 and per[1]["tokens"] == 32
  want = (per[0]["loss"] * 256 + per[1]["loss"] * 32) / 288
  assert pooled["loss"] == pytest.approx(float(want), rel=1e-6)
  assert pooled["loss"] != pytest.approx((float(per[0]["loss"]) + float(per[1]["loss"])) / 2, rel=1e-4)
  # the same tokens scored as one batch give the same numbers
  both = {k: np.concatenate([full[k], sparse[k]]) for k in full}
  setup2 = train.build(tiny_config(batch_size=16), jax.devices()[:1])
  with sharding.activate(setup2.mesh, setup2.rules):
    one = jax.device_get(train.jit_eval_step(setup2, train.global_batch(setup2, both))(
        params, train.global_batch(setup2, both), jax.random.key(1), None))
  assert pooled["loss"] == pytest.approx(float(one["loss"]), rel=1e-5)
  assert pooled["token_accuracy"] == pytest.approx(float(one["token_accuracy"]), rel=1e-5)
  assert pooled["tokens"] == 144  # a count is averaged per batch


def test_pool_batch_metrics_by_hand():
  got = train.pool_batch_metrics([{"accuracy": 1.0, "pairs": 3.0, "ece": 0.2}, {"accuracy": 0.0, "pairs": 1.0,
                                                                                 "ece": 0.4}], {"accuracy": "pairs"})
  assert got == pytest.approx({"accuracy": 0.75, "pairs": 2.0, "ece": 0.3})
  assert train.pool_batch_metrics([{"accuracy": 0.0, "pairs": 0.0}], {"accuracy": "pairs"}) == {"accuracy": 0.0,
                                                                                                  "pairs": 0.0}
  assert train.pool_batch_metrics([], {}) == {}
