"""Set-level metrics of scored responses, one definition each, used by the objectives' held-out metrics (jnp, inside
jit), by evaluation, the laboratory and the tools (numpy on the host).

Ranked comparisons (docs/objectives.md): every pair of valid responses with different rank scores is a pair (ties
give none); the model orders it correctly when the better response scores strictly higher, half correct on an exact
tie of model scores.

Multiple choice (HHH, TruthfulQA, tax): the chosen answer is the highest-scoring valid choice, ties going to the first
choice; MC1 = the chosen answer is a best one; MC2 = normalised probability mass on the true answers.

Calibration: expected calibration error over `bins` equal-width bins of predicted probability,
ECE = sum_b (n_b / N) |mean prediction_b - observed frequency_b|. A preference model's probability that response i
beats j is sigmoid(r_i - r_j); every pair enters in both orders, (sigmoid(d), 1) and (sigmoid(-d), 0), so the diagram
covers [0, 1] and does not depend on the order responses are listed in (with one order every outcome would be 1 and
ECE just 1 - mean confidence).

Functions taking `xp`-agnostic arrays work on jax or numpy arrays alike and return the same kind.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _xp(x):
  return jnp if isinstance(x, jax.Array) else np


# ----------------------------------------------------------------------------------------------- ranked pairs


def pair_mask(rank_scores, valid):
  """[..., K, K] float mask: 1 where response i is ranked strictly above response j and both are valid."""
  xp = _xp(rank_scores)
  v = xp.asarray(valid).astype(xp.float32)
  r = xp.asarray(rank_scores)
  better = (r[..., :, None] > r[..., None, :]).astype(xp.float32)
  return better * v[..., :, None] * v[..., None, :]


def pair_correct(model_scores, rank_scores, valid):
  """(correct [..., K, K], mask [..., K, K]): correct[i, j] = 1 if s_i > s_j, 0.5 if s_i == s_j (masked to pairs)."""
  xp = _xp(model_scores)
  m = pair_mask(rank_scores, valid)
  d = model_scores[..., :, None] - model_scores[..., None, :]
  return m * ((d > 0).astype(xp.float32) + 0.5 * (d == 0).astype(xp.float32)), m


def pair_stats(model_scores, rank_scores, valid):
  """Sums over all (better, worse) pairs: {pairs, correct, better, worse, margin} (scalars of the input's kind)."""
  correct, m = pair_correct(model_scores, rank_scores, valid)
  d = model_scores[..., :, None] - model_scores[..., None, :]
  return {"pairs": m.sum(), "correct": correct.sum(),
          "better": (m * model_scores[..., :, None]).sum(), "worse": (m * model_scores[..., None, :]).sum(),
          "margin": (m * d).sum()}


def pairwise_correct(pred, score, valid):
  """Per row of [N, K] host arrays: (correct, pairs) over that row's pairs (pair_correct summed per row)."""
  pred, score, valid = (np.asarray(a, np.float64) for a in (pred, score, valid))
  correct, m = pair_correct(pred, score, valid)
  return correct.sum((-2, -1)).astype(np.float64), m.sum((-2, -1)).astype(np.float64)


# ----------------------------------------------------------------------------------------------- calibration


def _bin_index(p, bins, xp):
  return xp.clip((p * bins).astype(xp.int32), 0, bins - 1)


def ece(probs, outcomes, weights=None, bins: int = 10):
  """Expected calibration error of predictions `probs` against 0/1 `outcomes` (any shape, flattened); weights 0
  exclude entries."""
  xp = _xp(probs)
  p = xp.reshape(xp.asarray(probs), (-1,)).astype(xp.float32)
  y = xp.reshape(xp.asarray(outcomes), (-1,)).astype(xp.float32)
  w = xp.ones_like(p) if weights is None else xp.reshape(xp.asarray(weights), (-1,)).astype(xp.float32)
  onehot = (_bin_index(p, bins, xp)[:, None] == xp.arange(bins)[None, :]).astype(xp.float32) * w[:, None]
  gap = xp.abs((onehot * p[:, None]).sum(0) - (onehot * y[:, None]).sum(0))  # n_b * |mean p - mean y|
  return gap.sum() / xp.maximum(onehot.sum(), 1.0)


def reliability(prob, outcome, bins: int = 10, weights=None) -> dict:
  """The reliability diagram (per equal-width bin: count, mean prediction, observed frequency) and its ECE, binned
  exactly as `ece`."""
  prob = np.asarray(prob, np.float64).ravel()
  outcome = np.asarray(outcome, np.float64).ravel()
  w = np.ones_like(prob) if weights is None else np.asarray(weights, np.float64).ravel()
  idx = _bin_index(prob, bins, np)
  count = np.bincount(idx, w, minlength=bins)
  mean_p = np.bincount(idx, w * prob, minlength=bins) / np.maximum(count, 1e-12)
  freq = np.bincount(idx, w * outcome, minlength=bins) / np.maximum(count, 1e-12)
  n = max(float(w.sum()), 1.0)
  return {"edges": np.linspace(0.0, 1.0, bins + 1).tolist(), "count": count.tolist(), "mean_prob": mean_p.tolist(),
          "frequency": freq.tolist(), "ece": float(np.sum(count / n * np.abs(mean_p - freq))), "n": int(round(w.sum()))}


def _pair_probabilities(model_scores, rank_scores, valid):
  """(probs, outcomes, weights) of every (better, worse) pair in both orders."""
  xp = _xp(model_scores)
  m = pair_mask(rank_scores, valid)
  p = 1.0 / (1.0 + xp.exp(-(model_scores[..., :, None] - model_scores[..., None, :])))
  probs = xp.concatenate([xp.reshape(p, (-1,)), xp.reshape(1.0 - p, (-1,))])
  outcomes = xp.concatenate([xp.ones(p.size), xp.zeros(p.size)])
  weights = xp.concatenate([xp.reshape(m, (-1,)), xp.reshape(m, (-1,))])
  return probs, outcomes, weights


def pairwise_ece(model_scores, rank_scores, valid, bins: int = 10):
  """ECE of sigmoid(r_better - r_worse) as the probability that the better response wins (both orders)."""
  return ece(*_pair_probabilities(model_scores, rank_scores, valid), bins=bins)


def pairwise_preference(scores, target, valid, bins: int = 10) -> dict:
  """The reliability diagram of a preference model's pairs, host arrays [N, K]."""
  scores, target, valid = (np.asarray(a, np.float64) for a in (scores, target, valid))
  probs, outcomes, weights = _pair_probabilities(scores, target, valid)
  return reliability(probs, outcomes, bins, weights=weights)


# ----------------------------------------------------------------------------------------------- multiple choice


def choose(scores, valid):
  """Index of the highest-scoring valid choice per row; ties go to the first choice (np.argmax order)."""
  s = np.where(np.asarray(valid) > 0, np.asarray(scores, np.float64), -np.inf)
  return np.argmax(s, axis=-1)


def tied(scores, valid):
  """Per row: 1 if the top score is shared by two or more valid choices (then the first of them is chosen)."""
  s = np.where(np.asarray(valid) > 0, np.asarray(scores, np.float64), -np.inf)
  return ((s == s.max(-1, keepdims=True)).sum(-1) > 1).astype(np.float64)


def choice_correct(scores, target, valid):
  """Per row: 1 if the chosen choice has the highest target among the valid choices (MC1 / HHH accuracy)."""
  target = np.asarray(target, np.float64)
  pick = choose(scores, valid)
  best = np.where(np.asarray(valid) > 0, target, -np.inf).max(axis=-1)
  return (np.take_along_axis(target, pick[:, None], axis=-1)[:, 0] == best).astype(np.float64)


def mc2(logprob_sums, target, valid):
  """Per row: normalised probability mass on the true choices, sum_{true} P(a) / sum_{all} P(a) with P(a) =
  exp(summed log-prob) (TruthfulQA MC2)."""
  lp = np.where(np.asarray(valid) > 0, np.asarray(logprob_sums, np.float64), -np.inf)
  p = np.exp(lp - lp.max(axis=-1, keepdims=True))
  true = (np.asarray(target) > 0) & (np.asarray(valid) > 0)
  return (p * true).sum(-1) / p.sum(-1)


def choice_probabilities(scores, valid):
  """Softmax over the valid choices of each row."""
  s = np.where(np.asarray(valid) > 0, np.asarray(scores, np.float64), -np.inf)
  e = np.exp(s - s.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def multiple_choice_calibration(scores, target, valid, bins: int = 10) -> dict:
  """The reliability diagram of the chosen answer's probability (softmax over the choices' scores)."""
  conf = np.take_along_axis(choice_probabilities(scores, valid), choose(scores, valid)[:, None], axis=-1)[:, 0]
  return reliability(conf, choice_correct(scores, target, valid), bins)


# ----------------------------------------------------------------------------------------------- code: pass@k


def pass_at_k(n: int, c: int, k: int) -> float:
  """The unbiased estimator of Chen et al. 2021: the chance that at least one of k samples drawn without replacement
  from n, c of them correct, is correct: 1 - C(n-c, k) / C(n, k), computed as a stable product."""
  n, c, k = int(n), int(c), int(k)
  if not 0 <= c <= n or k < 1:
    raise ValueError(f"pass@k needs 0 <= c <= n and k >= 1, got n={n} c={c} k={k}")
  if n - c < k:
    return 1.0
  return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def ranked_top_k(scores, correct, k: int) -> float:
  """The chance that a correct sample is among the k a ranking puts first: samples ordered by `scores` (highest
  first; NaN lowest), ties broken uniformly at random. With every score equal this is pass_at_k (random choice)."""
  s = np.nan_to_num(np.asarray(scores, np.float64), nan=-np.inf)
  y = np.asarray(correct, bool)
  if s.shape != y.shape or s.ndim != 1:
    raise ValueError(f"ranked_top_k needs 1-d scores and labels of one length, got {s.shape} and {y.shape}")
  taken = 0
  for value in np.unique(s)[::-1]:
    group = s == value
    g, gc = int(group.sum()), int(y[group].sum())
    if taken + g <= k:
      if gc:
        return 1.0
      taken += g
      if taken == k:
        return 0.0
    else:
      return pass_at_k(g, gc, k - taken)
  return 0.0
