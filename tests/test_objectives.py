"""Objectives: hand-computed losses and metrics, finite gradients on masked rows (fast; no data pipeline)."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from hhh import objectives
from hhh.models.transformer import Transformer, TransformerConfig, init_inputs
from hhh import scoring
from hhh.core import metrics
from hhh.objectives import binary, preference

V = 260  # byte vocabulary; the end-of-context token is V - 1


def sp(x):  # -log sigmoid(x)
  return math.log1p(math.exp(-x))


def cfg(**kw):
  return ml_collections.ConfigDict({**dict(name="preference", margin=0.0, margin_mode="constant"), **kw})


def cmp_batch(scores, ranks, valid):
  return {"score": jnp.asarray(ranks, jnp.float32), "valid": jnp.asarray(valid, jnp.float32)}, \
      jnp.asarray(scores, jnp.float32)


def test_registered_names_and_families():
  fam = {n: objectives.get(n).family for n in objectives.names()}
  assert fam == {"lm": "lm", "imitation": "lm", "binary": "binary", "preference": "comparison",
                 "distill": "distill"}
  assert objectives.get("distill").init_aux is not None


def test_kway_pairs_ties_and_padding_by_hand():
  # ranks 2 > 1 = 1 (a tie: no pair), 4th response is padding (valid 0) with a large score that must not count.
  batch, r = cmp_batch([[1.0, 0.5, 0.0, 3.0]], [[2.0, 1.0, 1.0, 5.0]], [[1, 1, 1, 0]])
  loss, m = preference.loss_from_scores(r, batch, cfg())
  np.testing.assert_allclose(loss, (sp(0.5) + sp(1.0)) / 2, rtol=1e-6)
  assert float(m["pairs"]) == 2
  np.testing.assert_allclose([m["accuracy"], m["mean_better"], m["mean_worse"], m["mean_margin"]],
                             [1.0, 1.0, 0.25, 0.75], rtol=1e-6)


def test_four_way_list_gives_six_pairs_and_mean_is_over_pairs():
  # row 0: full ranking 3>2>1>0 (6 pairs); row 1: a K=2 comparison padded to K=4 (1 pair), which is wrong.
  batch, r = cmp_batch([[0.3, 0.2, 0.1, 0.0], [0.0, 1.0, 9.0, 9.0]],
                       [[3, 2, 1, 0], [1, 0, 0, 0]], [[1, 1, 1, 1], [1, 1, 0, 0]])
  loss, m = preference.loss_from_scores(r, batch, cfg())
  s = [0.3, 0.2, 0.1, 0.0]
  pair_losses = [sp(s[i] - s[j]) for i in range(4) for j in range(i + 1, 4)] + [sp(-1.0)]
  assert float(m["pairs"]) == 7
  np.testing.assert_allclose(loss, sum(pair_losses) / 7, rtol=1e-6)
  np.testing.assert_allclose(m["accuracy"], 6 / 7, rtol=1e-6)


def test_margin_constant_and_score_gap_by_hand():
  batch, r = cmp_batch([[1.0, 0.5, 0.0]], [[3.0, 1.0, 0.0]], [[1, 1, 1]])
  loss, _ = preference.loss_from_scores(r, batch, cfg(margin=0.5))
  np.testing.assert_allclose(loss, (sp(0.5 - 0.5) + sp(1.0 - 0.5) + sp(0.5 - 0.5)) / 3, rtol=1e-6)
  loss, _ = preference.loss_from_scores(r, batch, cfg(margin=0.5, margin_mode="score_gap"))
  # rank gaps: (0,1) 2, (0,2) 3, (1,2) 1
  np.testing.assert_allclose(loss, (sp(0.5 - 1.0) + sp(1.0 - 1.5) + sp(0.5 - 0.5)) / 3, rtol=1e-6)
  with pytest.raises(ValueError, match="margin_mode"):
    preference.loss_from_scores(r, batch, cfg(margin_mode="bogus"))


def test_pairwise_ece_by_hand():
  # one pair with r_b - r_w = 0.5: entries (0.6225, 1) and (0.3775, 0) in different bins -> ECE = 1 - 0.6225
  batch, r = cmp_batch([[0.5, 0.0]], [[1.0, 0.0]], [[1, 1]])
  _, m = preference.loss_from_scores(r, batch, cfg())
  p = 1 / (1 + math.exp(-0.5))
  np.testing.assert_allclose(m["ece"], 1 - p, rtol=1e-5)
  # two pairs at d=+0.5 and d=-0.5 (one wrong): bins 3 and 6 each hold p=0.3775 / 0.6225 with outcomes {0,1}
  batch, r = cmp_batch([[0.5, 0.0], [0.0, 0.5]], [[1.0, 0.0], [1.0, 0.0]], [[1, 1], [1, 1]])
  _, m = preference.loss_from_scores(r, batch, cfg())
  np.testing.assert_allclose(m["ece"], abs(p - 0.5), rtol=1e-5)
  np.testing.assert_allclose(metrics.ece(np.array([0.05, 0.95]), np.array([0.0, 1.0])), 0.05, rtol=1e-6)


def test_fully_padded_comparisons_give_zero_loss():
  batch, r = cmp_batch([[1.0, 2.0], [3.0, 4.0]], [[1.0, 0.0], [1.0, 1.0]], [[0, 0], [1, 1]])
  loss, m = preference.loss_from_scores(r, batch, cfg())
  assert float(loss) == 0.0 and float(m["pairs"]) == 0.0 and float(m["accuracy"]) == 0.0


def test_binary_logistic_loss_by_hand():
  batch = {"label": jnp.array([1.0, 1.0, 0.0, 0.0]), "valid": jnp.array([1.0, 1.0, 1.0, 0.0])}
  loss, m = binary.loss_from_scores(jnp.array([2.0, -1.0, -0.5, 7.0]), batch)
  np.testing.assert_allclose(loss, (sp(2.0) + sp(-1.0) + sp(0.5)) / 3, rtol=1e-6)
  np.testing.assert_allclose([m["accuracy"], m["mean_score_good"], m["mean_score_bad"]], [2 / 3, 0.5, -0.5],
                             rtol=1e-6)


def _next_token_logprobs(logits, tokens):
  """log p(x_{t+1}) [..., L-1] read from whole logits [..., L, V] (the model's head computes it in chunks)."""
  logp = jax.nn.log_softmax(jnp.asarray(logits, jnp.float32), axis=-1)
  return jnp.take_along_axis(logp[..., :-1, :], jnp.asarray(tokens)[..., 1:, None], axis=-1)[..., 0]


def test_sequence_logprobs_by_hand():
  # V=3, logits at position t favour token (t+1) % 3 with log-probs log(0.5), others log(0.25)
  lp_hi, lp_lo = math.log(0.5), math.log(0.25)
  L = 6
  logits = np.full((1, L, 3), lp_lo, np.float32)
  for t in range(L):
    logits[0, t, (t + 1) % 3] = lp_hi
  tokens = np.array([[0, 1, 2, 1, 1, 2]])  # token t=1,2 follow the favoured pattern, 3 does not (1 != 0)
  s, mean, n = scoring.sequence_logprobs_from_token_logprobs(_next_token_logprobs(logits, tokens), jnp.asarray(tokens),
                                                             jnp.array([1]), jnp.array([5]))
  # response = positions 1..4: tokens 1 (hi), 2 (hi), 1 (lo: favoured 0), 1 (lo: favoured 1? t=3 favours 1 -> hi)
  expect = [lp_hi, lp_hi, lp_lo, lp_hi]
  np.testing.assert_allclose([s[0], mean[0], n[0]], [sum(expect), sum(expect) / 4, 4], rtol=1e-6)
  s, mean, n = scoring.sequence_logprobs_from_token_logprobs(_next_token_logprobs(logits, tokens), jnp.asarray(tokens),
                                                             jnp.array([0]), jnp.array([0]))
  assert (float(s[0]), float(mean[0]), float(n[0])) == (0.0, 0.0, 0.0)


@pytest.fixture(scope="module")
def tiny():
  mc = TransformerConfig(vocab_size=V, d_model=32, n_layers=2, n_heads=2, max_len=512, score_head=True)
  model = Transformer(mc)
  params = model.init(jax.random.key(0), init_inputs(mc))["params"]
  params = jax.tree.map(lambda p: getattr(p, "value", p), params, is_leaf=lambda p: hasattr(p, "value"))
  # a non-zero score head so score-based losses have gradients everywhere
  params["score_head"]["kernel"] = 0.1 * jax.random.normal(jax.random.key(1), params["score_head"]["kernel"].shape)
  return model, params


def test_sequence_logprobs_matches_model_loop(tiny):
  model, params = tiny
  rng = np.random.default_rng(0)
  tokens = jnp.asarray(rng.integers(2, 250, (2, 3, 12)), jnp.int32)
  rs, eoc = jnp.array([[3, 5, 11], [1, 2, 4]]), jnp.array([[7, 11, 11], [2, 9, 11]])
  s, mean, n = scoring.sequence_logprobs(model, params, tokens, rs, eoc)
  logp = np.asarray(jax.nn.log_softmax(model.apply({"params": params}, tokens)["logits"], -1))
  for b in range(2):
    for k in range(3):
      want = sum(logp[b, k, t - 1, int(tokens[b, k, t])] for t in range(int(rs[b, k]), int(eoc[b, k])))
      cnt = int(eoc[b, k]) - int(rs[b, k])
      np.testing.assert_allclose(s[b, k], want, rtol=1e-5, atol=1e-5)
      np.testing.assert_allclose(n[b, k], cnt)
      np.testing.assert_allclose(mean[b, k], want / max(cnt, 1), rtol=1e-5, atol=1e-5)


def _batches(L=16, B=4, K=3):
  """One batch per family with a real row, a truncated row (response fills the sequence) and fully padded rows."""
  rng = np.random.default_rng(0)
  tok = rng.integers(2, 250, (B, K, L)).astype(np.int32)
  tok[:, :, -1] = V - 1
  rs = np.array([[4, 6, 2], [1, 1, 1], [0, 0, 0], [0, 0, 0]], np.int32)[:B, :K]
  eoc = np.array([[9, 15, 5], [15, 15, 15], [0, 0, 0], [0, 0, 0]], np.int32)[:B, :K]
  valid = np.array([[1, 1, 1], [1, 1, 0], [0, 0, 0], [0, 0, 0]], np.float32)[:B, :K]
  tok[2:] = 0
  comparison = {"tokens": tok, "response_start": rs, "eoc_index": eoc,
                "score": np.array([[2, 1, 1], [1, 0, 0], [0, 0, 0], [0, 0, 0]], np.float32), "valid": valid}
  binary_b = {"tokens": tok[:, 0], "response_start": rs[:, 0], "eoc_index": eoc[:, 0],
              "label": np.array([1, 0, 0, 0], np.float32), "valid": valid[:, 0]}
  w = np.zeros((B, L), np.float32)
  w[0, 5:12] = 1
  w[1, 1:] = 1
  lm = {"decoder_input_tokens": tok[:, 0], "decoder_target_tokens": np.roll(tok[:, 0], -1, 1),
        "decoder_loss_weights": w, "decoder_segment_ids": (tok[:, 0] > 0).astype(np.int32),
        "decoder_positions": np.tile(np.arange(L, dtype=np.int32), (B, 1))}
  distill = {"tokens": tok[:, 0], "loss_weights": w}
  return {"lm": lm, "comparison": comparison, "binary": binary_b, "distill": distill}


def _zero_weights(batch):
  out = dict(batch)
  for k in ("valid", "decoder_loss_weights", "loss_weights"):
    if k in out:
      out[k] = np.zeros_like(out[k])
  return out


@pytest.mark.parametrize("name", ["lm", "imitation", "binary", "preference", "distill"])
def test_gradients_finite_including_masked_rows(tiny, name):
  model, params = tiny
  obj = objectives.get(name)
  c = ml_collections.ConfigDict(dict(name=name, margin=0.25, margin_mode="constant", mode="online",
                                     prompt_file="", prompt_max_tokens=600, vocab="byte",
                                     student_sees_prompt=False))
  extra = {"aux": obj.init_aux(params, model=model, config=c)} if obj.init_aux else {}
  batch = {k: jnp.asarray(v) for k, v in _batches()[obj.family].items()}
  f = jax.jit(jax.value_and_grad(lambda p, b: obj.loss_fn(p, b, model=model, config=c, rng=None, **extra),
                                 has_aux=True))
  (loss, metrics), grads = f(params, batch)
  assert np.isfinite(float(loss)) and float(loss) > 0
  assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))
  assert sum(float(jnp.abs(g).sum()) for g in jax.tree.leaves(grads)) > 0
  assert all(np.isfinite(np.asarray(v)).all() for v in metrics.values())
  # every row masked: loss exactly 0 and all gradients exactly 0 (not NaN)
  (loss0, _), grads0 = f(params, {k: jnp.asarray(v) for k, v in _zero_weights(batch).items()})
  assert float(loss0) == 0.0
  assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(grads0))


def test_objectives_own_their_settings_and_read_them_as_attributes():
  """config.objective comes from the objective module's DEFAULTS; a setting the loss reads but the config lacks
  (a typo in a hand-built config) is an error, not a silent default."""
  assert dict(objectives.default_config("preference")) == {"name": "preference", "margin": 0.0,
                                                           "margin_mode": "constant"}
  assert objectives.default_config("distill").top_k == 50 and dict(objectives.default_config("lm")) == {"name": "lm"}
  scores = jnp.array([[1.0, 0.0]])
  batch = {"score": jnp.array([[1.0, 0.0]]), "valid": jnp.ones((1, 2))}
  preference.loss_from_scores(scores, batch, objectives.default_config("preference"))
  typo = ml_collections.ConfigDict(dict(name="preference", margin=0.0, margin_mod="score_gap"))
  with pytest.raises(AttributeError, match="margin_mod"):
    preference.loss_from_scores(scores, batch, typo)
