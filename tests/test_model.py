"""The transformer: causality, packing isolation, scan == unrolled, remat, score head, prefix cache, dtypes."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hhh.models.attention import attention_mask
from hhh.models.layers import rotary
from hhh.models.transformer import Transformer, TransformerConfig, init_inputs

CFG = dict(vocab_size=97, d_model=32, n_layers=2, n_heads=4, max_len=64)


def make(**kw):
  cfg = TransformerConfig(**{**CFG, **kw})
  model = Transformer(cfg)
  params = nn.meta.unbox(model.init(jax.random.key(1), init_inputs(cfg)))["params"]
  return cfg, model, params


def tokens(shape, seed=0):
  return jnp.asarray(np.random.default_rng(seed).integers(1, CFG["vocab_size"], shape), jnp.int32)


def test_attention_mask_is_causal_and_segment_local():
  seg = jnp.array([[1, 1, 2, 2, 0]])
  m = np.asarray(attention_mask(seg, 0))[0, 0]
  expected = np.array([
      [1, 0, 0, 0, 0],
      [1, 1, 0, 0, 0],
      [0, 0, 1, 0, 0],
      [0, 0, 1, 1, 0],
      [0, 0, 0, 0, 1],
  ], bool)
  np.testing.assert_array_equal(m, expected)
  # A shared prefix of 2 keys is visible to every query.
  mp = np.asarray(attention_mask(seg, 2))[0, 0]
  assert mp.shape == (5, 7) and mp[:, :2].all()
  np.testing.assert_array_equal(mp[:, 2:], expected)


def test_rotary_preserves_norm_and_is_relative():
  x = jax.random.normal(jax.random.key(0), (1, 4, 2, 8))
  pos = jnp.arange(4)[None]
  y = rotary(x, pos, 10000.0)
  np.testing.assert_allclose(jnp.linalg.norm(y, axis=-1), jnp.linalg.norm(x, axis=-1), rtol=1e-5)
  # q.k depends only on the position difference.
  q, k = x[:, :1], x[:, 1:2]
  dot = lambda a, b: float(jnp.sum(rotary(q, jnp.array([[a]]), 1e4) * rotary(k, jnp.array([[b]]), 1e4)))  # noqa
  assert dot(3, 1) == pytest.approx(dot(7, 5), rel=1e-4)
  assert dot(3, 1) != pytest.approx(dot(3, 2), rel=1e-3)


def test_logits_are_causal():
  _, model, params = make()
  t = tokens((2, 16))
  a = model.apply({"params": params}, t)["logits"]
  b = model.apply({"params": params}, t.at[:, 10:].set(5))["logits"]
  np.testing.assert_allclose(a[:, :10], b[:, :10], atol=1e-6)
  assert not np.allclose(a[:, 10:], b[:, 10:])


def test_packed_documents_do_not_see_each_other():
  _, model, params = make()
  doc1, doc2 = tokens((1, 6), seed=1), tokens((1, 10), seed=2)
  packed = jnp.concatenate([doc1, doc2], axis=1)
  seg = jnp.array([[1] * 6 + [2] * 10])
  pos = jnp.array([list(range(6)) + list(range(10))])
  out = model.apply({"params": params}, packed, positions=pos, segment_ids=seg)["logits"]
  alone1 = model.apply({"params": params}, doc1)["logits"]
  alone2 = model.apply({"params": params}, doc2)["logits"]
  np.testing.assert_allclose(out[:, :6], alone1, atol=1e-5)
  np.testing.assert_allclose(out[:, 6:], alone2, atol=1e-5)


def test_scan_equals_unrolled_layers():
  _, scanned, p_scan = make(scan_layers=True)
  _, unrolled, _ = make(scan_layers=False)
  p_unrolled = {k: v for k, v in p_scan.items() if k != "layers"}
  for i in range(CFG["n_layers"]):
    p_unrolled[f"layer_{i}"] = jax.tree.map(lambda x, i=i: x[i], p_scan["layers"])
  t = tokens((2, 12))
  np.testing.assert_allclose(scanned.apply({"params": p_scan}, t)["logits"],
                             unrolled.apply({"params": p_unrolled}, t)["logits"], atol=1e-5)


def _eqns(jaxpr, name):
  """Every equation of primitive `name` in a jaxpr and the jaxprs nested in it (scan bodies, jits, custom VJPs)."""
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == name:
      yield eqn
    for v in eqn.params.values():
      for sub in (v if isinstance(v, (tuple, list)) else (v,)):
        inner = getattr(sub, "jaxpr", sub)
        if hasattr(inner, "eqns"):
          yield from _eqns(inner, name)


@pytest.mark.parametrize("score_head", [False, True])
def test_cpu_layout_equals_the_accelerator_layout(monkeypatch, score_head):
  """On CPU the projections are 2-D matmuls and the layer scan is unrolled (layout.flat_matmuls); TPU and GPU
  trace the 3-D einsums and a rolled scan. Both give the same logits, scores and gradients, and each is really the
  layout it claims to be."""
  from hhh.models import layout
  cfg, model, params = make(score_head=score_head, n_kv_heads=2)
  t = tokens((2, 12))
  idx = jnp.array([11, 5])

  def loss(p):
    out = model.apply({"params": p}, t, score_index=idx if score_head else None)
    return jnp.mean(out["logits"] ** 2) + (jnp.sum(out["score"] ** 2) if score_head else 0.0)

  def run():
    jaxpr = jax.make_jaxpr(jax.grad(loss))(params).jaxpr
    plain = [e for e in _eqns(jaxpr, "dot_general") if not e.params["dimension_numbers"][1][0]]  # no batch dims
    unroll = {e.params["unroll"] for e in _eqns(jaxpr, "scan")}
    return loss(params), jax.grad(loss)(params), plain, unroll

  assert layout.flat_matmuls()  # this host is a CPU
  l_cpu, g_cpu, dots_cpu, unroll_cpu = run()
  monkeypatch.setattr(layout, "flat_matmuls", lambda: False)
  l_acc, g_acc, dots_acc, unroll_acc = run()
  assert all(v.aval.ndim == 2 for e in dots_cpu for v in e.invars), "a projection is not a 2-D matmul on CPU"
  assert any(v.aval.ndim > 2 for e in dots_acc for v in e.invars)
  assert unroll_cpu == {cfg.n_layers} and unroll_acc == {1}
  np.testing.assert_allclose(l_cpu, l_acc, rtol=1e-6)
  for a, b in zip(jax.tree.leaves(g_cpu), jax.tree.leaves(g_acc)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("policy", ["full", "dots", "dots_no_batch"])
def test_remat_is_applied_and_gives_the_same_gradients(policy):
  _, plain, params = make(remat="none")
  _, remat, _ = make(remat=policy)
  t = tokens((2, 12))

  def loss(model):
    return lambda p: jnp.mean(model.apply({"params": p}, t)["logits"] ** 2)

  # The feature is really on: the rematerialised model's jaxpr holds the remat (checkpoint) primitive.
  assert "remat" in str(jax.make_jaxpr(loss(remat))(params))
  assert "remat" not in str(jax.make_jaxpr(loss(plain))(params))
  g1, g2 = jax.grad(loss(plain))(params), jax.grad(loss(remat))(params)
  for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_score_is_read_at_the_given_end_of_context_index():
  cfg, model, params = make(score_head=True)
  params = dict(params, score_head={"kernel": jax.random.normal(jax.random.key(3), (cfg.d_model, 1)),
                                    "bias": jnp.array([0.5])})
  t = tokens((2, 3, 16))  # [batch, K responses, length]
  idx = jnp.array([[4, 9, 15], [0, 7, 11]])
  out = model.apply({"params": params}, t, score_index=idx)
  assert out["score"].shape == (2, 3)
  # Tokens after the end-of-context index cannot change the score (causal read-out at the index).
  t2 = t.at[0, 0, 5:].set(1)
  out2 = model.apply({"params": params}, t2, score_index=idx)
  assert float(out2["score"][0, 0]) == pytest.approx(float(out["score"][0, 0]), abs=1e-5)
  # The score equals the head applied to the final hidden state at that index: moving the index changes it.
  out3 = model.apply({"params": params}, t, score_index=idx.at[0, 0].set(5))
  assert abs(float(out3["score"][0, 0]) - float(out["score"][0, 0])) > 1e-4


def test_lm_has_no_score_head_and_says_so():
  _, model, params = make()
  assert "score_head" not in params
  with pytest.raises(ValueError, match="no score head"):
    model.apply({"params": params}, tokens((1, 8)), score_index=jnp.array([3]))


def test_prefix_cache_gives_the_same_logits_as_recomputing_the_prefix():
  _, model, params = make()
  prefix, text = tokens((1, 20), seed=5), tokens((3, 12), seed=6)
  cache = model.apply({"params": params}, prefix, return_cache=True, return_logits=False)["cache"]
  cache = jax.tree.map(lambda c: c[:, 0], cache)  # [layers, P, heads, head_dim]
  with_cache = model.apply({"params": params}, text, prefix_cache=cache)["logits"]
  full = model.apply({"params": params}, jnp.concatenate([jnp.repeat(prefix, 3, 0), text], axis=1))["logits"]
  np.testing.assert_allclose(with_cache, full[:, 20:], atol=1e-5)


def test_bfloat16_compute_keeps_float32_params_and_logits():
  _, model, params = make(dtype="bfloat16")
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
  out = model.apply({"params": params}, tokens((1, 8)))
  assert out["logits"].dtype == jnp.float32
  _, model32, _ = make()
  ref = model32.apply({"params": params}, tokens((1, 8)))["logits"]
  np.testing.assert_allclose(out["logits"], ref, atol=0.1)


def test_sequence_longer_than_context_is_an_error():
  _, model, params = make(max_len=16)
  with pytest.raises(ValueError, match="exceeds the model context max_len=16"):
    model.apply({"params": params}, tokens((1, 17)))


def test_bad_model_config_names_the_problem():
  with pytest.raises(ValueError, match="unknown remat policy"):
    TransformerConfig(**{**CFG, "remat": "sometimes"})
  with pytest.raises(ValueError, match="not divisible by n_heads"):
    TransformerConfig(**{**CFG, "d_model": 30})
  with pytest.raises(ValueError, match=r"unknown model config keys \['layers'\]"):
    TransformerConfig.from_config({**CFG, "layers": 3})


def test_analytic_non_embedding_count_matches_the_parameters():
  cfg, _, params = make()
  n = sum(x.size for k, v in params.items() if k not in ("embedding", "unembedding", "score_head")
          for x in jax.tree.leaves(v))
  assert n == cfg.non_embedding_params()
