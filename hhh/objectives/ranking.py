"""Scoring responses of comparisons, shared by objectives, evaluations and tools.

Two scorers of a sample (context + response + end-of-context token):
  * the score head read at the end-of-context token (preference models, binary discrimination);
  * the MEAN per-token log-probability of the response given the context (imitation learning used as a ranker,
    paper section 3).
And the pairwise statistics of docs/objectives.md: every pair of valid responses with different rank scores
(ties give no pair), accuracy of the model's scores on those pairs, and calibration.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from hhh.models import transformer


def sequence_logprobs(model, params, tokens, response_start, eoc_index):
  """(sum, mean, count) of log p(response token | everything before it), per sample.

  tokens [..., L] = context + response + end-of-context token; response tokens are positions
  response_start .. eoc_index-1 (the end-of-context token itself is not part of the response). Samples with no
  response tokens (padding responses) get sum = mean = count = 0. The vocabulary head runs in chunks of
  `model.logits_chunk` positions (`next_token_logprobs`).
  """
  hidden = model.apply({"params": params}, tokens, return_logits=False, return_hidden=True)["hidden"]
  nxt, _ = next_token_logprobs(params, hidden, tokens, model.cfg)
  return sequence_logprobs_from_token_logprobs(nxt, tokens, response_start, eoc_index)


def next_token_logprobs(params, hidden, tokens, cfg):
  """(log p(x_{t+1} | x_<=t), x_{t+1} == argmax) for t < L-1 from final hidden states [..., L, D] -> 2 x [..., L-1],
  computed by chunks of `cfg.logits_chunk` positions (the [..., L, V] f32 logits are never live at once)."""
  lead, length = tokens.shape[:-1], tokens.shape[-1]
  flat_t = tokens.reshape(-1, length)
  targets = jnp.concatenate([flat_t[:, 1:], jnp.zeros_like(flat_t[:, :1])], axis=1)  # position t predicts t+1

  def per_chunk(h, t):
    logits = transformer.unembed(params, h, cfg)
    logp = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(logp, t[..., None], axis=-1)[..., 0], jnp.argmax(logits, axis=-1) == t

  nxt, hit = transformer.per_position(per_chunk, (hidden.reshape(flat_t.shape + hidden.shape[-1:]), targets),
                                      cfg.logits_chunk)
  return nxt[:, :-1].reshape(lead + (length - 1,)), hit[:, :-1].reshape(lead + (length - 1,))


def sequence_logprobs_from_logits(logits, tokens, response_start, eoc_index):
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)  # [..., L, V]; position t predicts t+1
  nxt = jnp.take_along_axis(logp[..., :-1, :], tokens[..., 1:, None], axis=-1)[..., 0]  # [..., L-1]: log p(x_{t+1})
  return sequence_logprobs_from_token_logprobs(nxt, tokens, response_start, eoc_index)


def sequence_logprobs_from_token_logprobs(nxt, tokens, response_start, eoc_index):
  """(sum, mean, count) over the response of next-token log-probs nxt [..., L-1] (nxt[t] = log p(x_{t+1}))."""
  t = jnp.arange(1, tokens.shape[-1])  # index of the predicted token
  mask = (t >= response_start[..., None]) & (t < eoc_index[..., None])
  mask = mask.astype(jnp.float32)
  count = mask.sum(-1)
  total = (nxt * mask).sum(-1)
  return total, total / jnp.maximum(count, 1.0), count


def pair_mask(rank_scores, valid):
  """[..., K, K] float mask: 1 where response i is ranked strictly above response j and both are valid."""
  v = valid.astype(jnp.float32)
  better = (rank_scores[..., :, None] > rank_scores[..., None, :]).astype(jnp.float32)
  return better * v[..., :, None] * v[..., None, :]


def pair_stats(model_scores, rank_scores, valid):
  """Sums over all (better, worse) pairs: {pairs, correct, better, worse, margin} (jnp scalars).

  `correct` counts a pair 1 if the better response scores strictly higher, 0.5 on an exact tie of model scores.
  """
  m = pair_mask(rank_scores, valid)
  d = model_scores[..., :, None] - model_scores[..., None, :]
  correct = (d > 0).astype(jnp.float32) + 0.5 * (d == 0).astype(jnp.float32)
  return {"pairs": m.sum(), "correct": (m * correct).sum(),
          "better": (m * model_scores[..., :, None]).sum(), "worse": (m * model_scores[..., None, :]).sum(),
          "margin": (m * d).sum()}


def ece(probs, outcomes, weights=None, bins: int = 10):
  """Expected calibration error with `bins` equal-width bins: sum_b n_b/N |mean(prob)_b - mean(outcome)_b|.

  Works on jnp or numpy arrays of any shape (flattened); weights 0 exclude entries.
  """
  xp = jnp if isinstance(probs, jax.Array) else np
  p = xp.reshape(probs, (-1,)).astype(xp.float32)
  y = xp.reshape(outcomes, (-1,)).astype(xp.float32)
  w = xp.ones_like(p) if weights is None else xp.reshape(weights, (-1,)).astype(xp.float32)
  idx = xp.clip((p * bins).astype(xp.int32), 0, bins - 1)
  onehot = (idx[:, None] == xp.arange(bins)[None, :]).astype(xp.float32) * w[:, None]  # [N, bins]
  n_b = onehot.sum(0)
  gap = xp.abs((onehot * p[:, None]).sum(0) - (onehot * y[:, None]).sum(0))  # n_b * |mean p - mean y|
  return gap.sum() / xp.maximum(n_b.sum(), 1.0)


def pairwise_ece(model_scores, rank_scores, valid, bins: int = 10):
  """ECE of sigmoid(r_better - r_worse) as the probability that the better response wins.

  Each pair enters in both orders, (sigmoid(d), 1) and (sigmoid(-d), 0), so a model that always says 0.5 is
  perfectly calibrated and one that is confidently right everywhere is too; with one order only every outcome
  would be 1 and ECE would just be 1 - mean confidence.
  """
  m = pair_mask(rank_scores, valid)
  d = model_scores[..., :, None] - model_scores[..., None, :]
  xp = jnp if isinstance(d, jax.Array) else np
  p = 1.0 / (1.0 + xp.exp(-d))
  probs = xp.concatenate([xp.reshape(p, (-1,)), xp.reshape(1.0 - p, (-1,))])
  outs = xp.concatenate([xp.ones(p.size), xp.zeros(p.size)])
  w = xp.concatenate([xp.reshape(m, (-1,)), xp.reshape(m, (-1,))])
  return ece(probs, outs, w, bins)


def comparison_scores(model, params, batch, scorer: str):
  """Model scores [B, K] of a comparison batch: scorer 'score' (score head at the end-of-context token) or
  'mean_logprob' / 'sum_logprob' (the LM as a ranker)."""
  if scorer == "score":
    return model.apply({"params": params}, batch["tokens"], score_index=batch["eoc_index"],
                       return_logits=False)["score"]
  total, mean, _ = sequence_logprobs(model, params, batch["tokens"], batch["response_start"], batch["eoc_index"])
  if scorer == "mean_logprob":
    return mean
  if scorer == "sum_logprob":
    return total
  raise ValueError(f"unknown scorer {scorer!r}; choose score, mean_logprob or sum_logprob")


def comparison_accuracy(model, params, batches, scorer: str, max_batches: int | None = None) -> dict:
  """Pairwise accuracy (and ECE for score-head models) of `scorer` over an iterable of comparison batches.

  Accuracy is over all (better, worse) pairs with different ranks; chance is 0.5.
  """
  fn = jax.jit(lambda p, b: comparison_scores(model, p, b, scorer))
  tot = {"pairs": 0.0, "correct": 0.0, "better": 0.0, "worse": 0.0, "margin": 0.0}
  all_d, all_m = [], []
  for i, b in enumerate(batches):
    if max_batches is not None and i >= max_batches:
      break
    b = {k: jnp.asarray(v) for k, v in b.items()}
    s = fn(params, b)
    st = jax.device_get(pair_stats(s, b["score"], b["valid"]))
    for k in tot:
      tot[k] += float(st[k])
    s = np.asarray(s)
    all_d.append(s[..., :, None] - s[..., None, :])
    all_m.append(np.asarray(pair_mask(b["score"], b["valid"])))
  n = max(tot["pairs"], 1.0)
  out = {"accuracy": tot["correct"] / n, "pairs": tot["pairs"], "mean_better": tot["better"] / n,
         "mean_worse": tot["worse"] / n, "mean_margin": tot["margin"] / n}
  if all_d and scorer == "score":
    d = np.concatenate([x.reshape(-1) for x in all_d])
    m = np.concatenate([x.reshape(-1) for x in all_m])
    p = 1.0 / (1.0 + np.exp(-d))
    out["ece"] = float(ece(np.concatenate([p, 1 - p]), np.concatenate([np.ones_like(p), np.zeros_like(p)]),
                           np.concatenate([m, m])))
  return out
