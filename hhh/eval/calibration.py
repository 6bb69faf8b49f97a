"""Calibration: expected calibration error and the reliability diagram's bins.

* Preference models: the probability that response A is better than B is sigmoid(score_A - score_B). Every
  comparison is counted in both orientations ((p, 1) for better-vs-worse and (1 - p, 0) for worse-vs-better), so
  the diagram covers [0, 1] and does not depend on the order the responses are listed in.
* Multiple choice: the model's probability of the chosen answer (softmax over the choices' summed log-probs, or
  over PM scores) against whether it is correct.

ECE = sum over equal-width bins of (bin size / n) * |mean predicted probability - observed frequency|.
"""
from __future__ import annotations

import numpy as np


def reliability(prob, outcome, bins: int = 10) -> dict:
  """Equal-width bins over predicted probability: counts, mean prediction and observed frequency per bin."""
  prob, outcome = np.asarray(prob, np.float64).ravel(), np.asarray(outcome, np.float64).ravel()
  edges = np.linspace(0.0, 1.0, bins + 1)
  idx = np.clip(np.digitize(prob, edges[1:-1], right=False), 0, bins - 1)
  count = np.bincount(idx, minlength=bins).astype(np.float64)
  mean_p = np.bincount(idx, prob, minlength=bins) / np.maximum(count, 1)
  freq = np.bincount(idx, outcome, minlength=bins) / np.maximum(count, 1)
  n = max(len(prob), 1)
  ece = float(np.sum(count / n * np.abs(mean_p - freq)))
  return {"edges": edges.tolist(), "count": count.tolist(), "mean_prob": mean_p.tolist(), "frequency": freq.tolist(),
          "ece": ece, "n": int(len(prob))}


def pairwise_preference(scores, target, valid, bins: int = 10) -> dict:
  """Calibration of sigmoid(score difference) over every pair of valid responses with different targets."""
  scores, target, valid = (np.asarray(a, np.float64) for a in (scores, target, valid))
  probs = []
  k = scores.shape[-1]
  for i in range(k):
    for j in range(k):
      ok = (valid[:, i] > 0) & (valid[:, j] > 0) & (target[:, i] > target[:, j])
      probs.append(1.0 / (1.0 + np.exp(-(scores[ok, i] - scores[ok, j]))))
  p = np.concatenate(probs) if probs else np.zeros(0)
  return reliability(np.concatenate([p, 1 - p]), np.concatenate([np.ones_like(p), np.zeros_like(p)]), bins)


def choice_probabilities(scores, valid):
  """Softmax over the valid choices of each row."""
  s = np.where(np.asarray(valid) > 0, np.asarray(scores, np.float64), -np.inf)
  s = s - s.max(-1, keepdims=True)
  e = np.exp(s)
  return e / e.sum(-1, keepdims=True)


def multiple_choice(scores, target, valid, bins: int = 10) -> dict:
  """Calibration of the chosen answer's probability (ties to the first choice, as in accuracy)."""
  from hhh.eval.scoring import choice_correct, choose  # pylint: disable=g-import-not-at-top
  p = choice_probabilities(scores, valid)
  pick = choose(scores, valid)
  conf = np.take_along_axis(p, pick[:, None], axis=-1)[:, 0]
  return reliability(conf, choice_correct(scores, target, valid), bins)
