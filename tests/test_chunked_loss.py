"""The vocabulary loss in chunks of positions (`model.logits_chunk`): LM / imitation / distillation losses, their
gradients, sequence log-probs and evaluation scoring equal the whole-sequence computation from full logits, and the
chunked loss never holds the [B, T, V] f32 logits."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from hhh import objectives
from hhh.core import sharding
from hhh.models import transformer
from hhh.models.transformer import Transformer, TransformerConfig, init_inputs
from hhh import scoring
from hhh.objectives import distill, lm

V = 260
CHUNKS = (7,)  # 7 does not divide the length 16: three chunks, the last one padded


@pytest.fixture(scope="module")
def tiny():
  mc = TransformerConfig(vocab_size=V, d_model=32, n_layers=2, n_heads=2, max_len=1024)
  model = Transformer(mc)
  params = nn.meta.unbox(jax.jit(model.init)(jax.random.key(0), init_inputs(mc))["params"])
  params = jax.tree.map(lambda p: p * 4.0 if p.ndim >= 2 else p, params)  # sharper next-token distributions
  return model, params


def chunked(model, chunk):
  return Transformer(dataclasses.replace(model.cfg, logits_chunk=chunk))


def lm_batch(B=3, L=16, seed=0):
  rng = np.random.default_rng(seed)
  tok = rng.integers(2, 250, (B, L)).astype(np.int32)
  seg = np.ones((B, L), np.int32)
  seg[1, 9:] = 2  # two packed documents in row 1
  w = (rng.random((B, L)) > 0.3).astype(np.float32)
  pos = np.tile(np.arange(L, dtype=np.int32), (B, 1))
  pos[1, 9:] = np.arange(L - 9)
  return {"decoder_input_tokens": tok, "decoder_target_tokens": np.roll(tok, -1, 1), "decoder_loss_weights": w,
          "decoder_segment_ids": seg, "decoder_positions": pos}


def assert_trees_close(a, b, rtol=1e-5, atol=1e-6):
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(la) == len(lb)
  for x, y in zip(la, lb):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def test_per_position_equals_direct_with_a_padded_last_chunk():
  rng = np.random.default_rng(0)
  h = jnp.asarray(rng.normal(size=(3, 12, 8)), jnp.float32)
  t = jnp.asarray(rng.integers(0, 20, (3, 12)), jnp.int32)
  w = jnp.asarray(rng.normal(size=(8, 20)), jnp.float32)

  def fn(h, t, w):
    logits = h @ w
    return lm.token_losses(logits, t), logits.argmax(-1)

  def loss(w, chunk):
    ce, _ = transformer.per_position(lambda a, b: fn(a, b, w), (h, t), chunk)
    return (ce * jnp.arange(12.0)).sum()

  want = fn(h, t, w)
  for chunk in (0, 1, 5, 7, 12, 100):
    got = jax.jit(lambda h, t, c=chunk: transformer.per_position(lambda a, b: fn(a, b, w), (h, t), c))(h, t)
    assert_trees_close(got, want)
    np.testing.assert_allclose(jax.grad(loss)(w, chunk), jax.grad(loss)(w, 0), rtol=1e-5, atol=1e-6)


def todays_lm_loss(params, batch, model):
  """The LM loss as computed before chunking: from the model's full [B, T, V] logits."""
  logits = model.apply({"params": params}, batch["decoder_input_tokens"], positions=batch["decoder_positions"],
                       segment_ids=batch["decoder_segment_ids"])["logits"]
  weights = batch["decoder_loss_weights"].astype(jnp.float32)
  losses = lm.token_losses(logits, batch["decoder_target_tokens"])
  n = jnp.maximum(weights.sum(), 1.0)
  correct = (logits.argmax(-1) == batch["decoder_target_tokens"]).astype(jnp.float32)
  return (losses * weights).sum() / n, {"token_accuracy": (correct * weights).sum() / n, "tokens": weights.sum()}


@pytest.mark.parametrize("name", ["lm", "imitation"])
def test_lm_and_imitation_losses_chunked_equal_todays_loss_and_gradients(tiny, name):
  model, params = tiny
  batch = {k: jnp.asarray(v) for k, v in lm_batch().items()}
  obj = objectives.get(name)
  c = ml_collections.ConfigDict(dict(name=name))
  ref = jax.jit(jax.value_and_grad(lambda p: todays_lm_loss(p, batch, model), has_aux=True))(params)
  for chunk in (0,) + CHUNKS:
    m = chunked(model, chunk)
    (loss, metrics), grads = jax.jit(jax.value_and_grad(
        lambda p, m=m: obj.loss_fn(p, batch, model=m, config=c), has_aux=True))(params)
    np.testing.assert_allclose(loss, ref[0][0], rtol=1e-6)
    np.testing.assert_allclose(metrics["token_accuracy"], ref[0][1]["token_accuracy"], rtol=1e-6)
    assert_trees_close(grads, ref[1], rtol=1e-5, atol=1e-7)


def distill_cfg(**kw):
  return ml_collections.ConfigDict({**dict(name="distill", mode="online", prompt_file="", prompt_max_tokens=450,
                                           vocab="byte", student_sees_prompt=False, teacher_dir="", top_k=8), **kw})


def test_distill_online_and_offline_chunked_equal_full_logits(tiny):
  model, params = tiny
  rng = np.random.default_rng(1)
  tokens = jnp.asarray(rng.integers(3, 250, (2, 16)), jnp.int32)
  w = jnp.asarray((rng.random((2, 16)) > 0.2).astype(np.float32))
  aux = jax.jit(lambda p: distill.init_aux(p, model=model, config=distill_cfg()))(params)
  teacher = distill.teacher_logits(model, aux, tokens)
  ids, lps, rem = distill.topk_with_remainder(teacher, 8)
  student_params = jax.tree.map(lambda p: p * 0.7, params)  # a student that differs from the teacher

  def reference(p, mode):
    s = model.apply({"params": p}, tokens)["logits"]
    kl = distill.forward_kl(teacher, s) if mode == "online" else distill.topk_kl(ids, lps, rem, s)
    return (kl * w).sum() / jnp.maximum(w.sum(), 1.0)

  for mode in ("online", "offline"):
    batch = {"tokens": tokens, "loss_weights": w, "topk_ids": ids, "topk_logprobs": lps, "remainder_logprob": rem}
    want = jax.jit(jax.value_and_grad(lambda p, mode=mode: reference(p, mode)))(student_params)
    for chunk in CHUNKS:
      m = chunked(model, chunk)
      got = jax.jit(jax.value_and_grad(lambda p, m=m, mode=mode: distill.loss_fn(
          p, batch, model=m, config=distill_cfg(mode=mode), aux=aux)[0]))(student_params)
      np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-7)
      assert_trees_close(got[1], want[1], rtol=1e-4, atol=1e-7)


def test_sequence_logprobs_and_eval_scoring_chunked_equal_full_logits(tiny):
  model, params = tiny
  rng = np.random.default_rng(2)
  tokens = jnp.asarray(rng.integers(2, 250, (2, 3, 16)), jnp.int32)
  rs, eoc = jnp.array([[3, 5, 15], [1, 0, 4]]), jnp.array([[7, 15, 15], [2, 9, 15]])
  logits = model.apply({"params": params}, tokens)["logits"]
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)  # the whole [..., L, V] logits: the reference
  nxt = jnp.take_along_axis(logp[..., :-1, :], tokens[..., 1:, None], axis=-1)[..., 0]
  hit = jnp.argmax(logits[..., :-1, :], axis=-1) == tokens[..., 1:]
  want = scoring.sequence_logprobs_from_token_logprobs(nxt, tokens, rs, eoc)
  flat = tokens.reshape(6, 16)
  want_eval = scoring.response_stats(nxt.reshape(6, 15), hit.reshape(6, 15), flat, rs.reshape(6), eoc.reshape(6))
  assert float(want_eval[2].sum()) < 6  # not every response is the greedy one
  for chunk in (0,) + CHUNKS:
    m = chunked(model, chunk)
    assert_trees_close(jax.jit(lambda p, m=m: scoring.sequence_logprobs(m, p, tokens, rs, eoc))(params), want)
    got = jax.jit(lambda p, m=m: scoring.lm_forward(m, p, flat, rs.reshape(6), eoc.reshape(6)))(params)
    assert_trees_close(got, want_eval)


def test_chunked_lm_loss_never_holds_the_full_logits():
  mc = TransformerConfig(vocab_size=8192, d_model=32, n_layers=1, n_heads=2, max_len=512)
  B, L = 2, 256
  logits_bytes = B * L * mc.vocab_size * 4
  batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in lm_batch(B, L).items()}
  c = ml_collections.ConfigDict(dict(name="lm"))

  def temp_bytes(chunk):
    model = Transformer(dataclasses.replace(mc, logits_chunk=chunk))
    params = jax.eval_shape(lambda: nn.meta.unbox(model.init(jax.random.key(0), init_inputs(mc))["params"]))
    step = jax.jit(jax.grad(lambda p, b: lm.loss_fn(p, b, model=model, config=c)[0]))
    return step.lower(params, batch).compile().memory_analysis().temp_size_in_bytes

  assert temp_bytes(0) > logits_bytes
  assert temp_bytes(32) < logits_bytes / 2


def test_sharded_step_with_blockwise_attention_and_chunked_loss_equals_single_device():
  """The train step with both memory savers on: (data, fsdp, tensor) = (2, 2, 2) equals one device."""
  from hhh import config as hc, train  # pylint: disable=g-import-not-at-top
  c = hc.base_config("tiny")
  c.data.seq_len, c.train.batch_size, c.optim.warmup_steps = 32, 8, 1
  c.model.update(dict(attention="blockwise", attention_block=8, logits_chunk=8))
  batch_np = lm_batch(8, 32)
  results = []
  for shape, devices in (({"data": 1, "fsdp": 1, "tensor": 1}, jax.devices()[:1]),
                         ({"data": 2, "fsdp": 2, "tensor": 2}, jax.devices()[:8])):
    c.mesh.shape.update(shape)
    setup = train.build(c, devices)
    state = train.init_state(setup, jax.random.key(0))
    batch = train.global_batch(setup, batch_np)
    with sharding.activate(setup.mesh, setup.rules):
      state, metrics = train.jit_train_step(setup, batch)(state, batch, jax.random.key(1), None)
    results.append((jax.device_get(state.params), jax.device_get(metrics)))
  (p1, m1), (p8, m8) = results
  np.testing.assert_allclose(m1["loss"], m8["loss"], rtol=1e-5)
  np.testing.assert_allclose(m1["grad_norm"], m8["grad_norm"], rtol=1e-4)
  assert_trees_close(p1, p8, rtol=1e-4, atol=1.5e-5)
