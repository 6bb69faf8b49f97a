"""Uncertainty of evaluation numbers: percentile-bootstrap intervals over examples.

Every accuracy hhh reports is a ratio of sums over examples: correct decisions / decisions (one per example for
multiple choice and last-word tasks, several response pairs per example for ranked comparisons). Resampling the
examples with replacement (B = 2000 resamples, a fixed seed: the same numbers give the same interval every time) and
taking the 2.5th and 97.5th percentiles of the resampled ratio gives the 95% interval. Two numbers measured on the
same examples (two conditions, two objectives, two sizes on one test set) are compared with the paired bootstrap of
their difference: the same resampled examples for both, which is much tighter than two separate intervals when the
numbers are correlated.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95


def _indices(n: int, resamples: int, seed: int) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _ratio(num: np.ndarray, den: np.ndarray, idx: np.ndarray) -> np.ndarray:
  d = den[idx].sum(axis=1)
  return np.where(d > 0, num[idx].sum(axis=1) / np.maximum(d, 1e-300), np.nan)


def _as_arrays(correct, counts) -> tuple[np.ndarray, np.ndarray]:
  c = np.asarray(correct, np.float64).reshape(-1)
  n = np.ones_like(c) if counts is None else np.asarray(counts, np.float64).reshape(-1)
  if c.shape != n.shape:
    raise ValueError(f"correct and counts differ in length: {c.shape[0]} vs {n.shape[0]}")
  if not np.all(np.isfinite(c)) or not np.all(np.isfinite(n)):
    raise ValueError("bootstrap: correct/counts contain NaN or inf")
  return c, n


def bootstrap(correct: Sequence[float], counts: Optional[Sequence[float]] = None, *, resamples: int = RESAMPLES,
              level: float = LEVEL, seed: int = 0) -> list:
  """[lo, hi]: the `level` percentile-bootstrap interval of sum(correct) / sum(counts) over examples (counts = 1 per
  example when None). [nan, nan] for no examples."""
  c, n = _as_arrays(correct, counts)
  if c.size == 0 or n.sum() <= 0:
    return [float("nan"), float("nan")]
  r = _ratio(c, n, _indices(c.size, resamples, seed))
  a = (1 - level) / 2
  lo, hi = np.nanquantile(r, [a, 1 - a])
  return [float(lo), float(hi)]


def bootstrap_combination(terms: Sequence[tuple], *, resamples: int = RESAMPLES, level: float = LEVEL,
                          seed: int = 0) -> dict:
  """The paired bootstrap of sum_i w_i * acc_i for accuracies measured on the same examples; `terms` are
  (w_i, correct_i, counts_i or None) with row j of every term the same example. E.g. a difference
  [(1, a, None), (-1, b, None)], or a difference of differences (does the gap grow with size?).
  {"value": point estimate, "ci": [lo, hi], "p_le_0": share of resamples with value <= 0}."""
  arrays = [(float(w), *_as_arrays(c, n)) for w, c, n in terms]
  sizes = {c.size for _, c, _ in arrays}
  if len(sizes) != 1:
    raise ValueError(f"a paired bootstrap needs the same examples in every term, got lengths {sorted(sizes)}")
  size = sizes.pop()
  if size == 0 or any(n.sum() <= 0 for _, _, n in arrays):
    return {"value": float("nan"), "ci": [float("nan"), float("nan")], "p_le_0": float("nan")}
  idx = _indices(size, resamples, seed)
  v = sum(w * _ratio(c, n, idx) for w, c, n in arrays)
  a = (1 - level) / 2
  lo, hi = np.nanquantile(v, [a, 1 - a])
  return {"value": float(sum(w * c.sum() / n.sum() for w, c, n in arrays)), "ci": [float(lo), float(hi)],
          "p_le_0": float(np.nanmean(v <= 0))}


def bootstrap_seeds(terms: Sequence[tuple], *, resamples: int = RESAMPLES, level: float = LEVEL,
                    seed: int = 0) -> dict:
  """The hierarchical paired bootstrap of sum_i w_i * acc_i over training seeds AND evaluation examples.

  `terms` are (w_i, replicates_i) with replicates_i = [(correct, counts or None), ...], one per independently
  trained seed, every array over the same examples. Each resample draws the examples with replacement (the same draw
  for every term and seed: paired) and the seeds with replacement (the same draw for every term that has the most
  seeds, so the terms of one seed, e.g. two objectives finetuned from that seed's pretrained LM, stay together; a
  term with fewer seeds draws its own), and takes the mean over the drawn seeds. The point estimate is the mean over
  seeds. With one seed per term this is bootstrap_combination exactly (the same example draws).
  {"value", "ci", "p_le_0", "seeds": the most seeds of any term}."""
  terms = [(float(w), [_as_arrays(c, n) for c, n in reps]) for w, reps in terms]
  if any(not reps for _, reps in terms):
    raise ValueError("bootstrap_seeds: every term needs at least one seed's outcomes")
  sizes = {c.size for _, reps in terms for c, _ in reps}
  if len(sizes) != 1:
    raise ValueError(f"a paired bootstrap needs the same examples in every term and seed, got lengths {sorted(sizes)}")
  size, most = sizes.pop(), max(len(reps) for _, reps in terms)
  if size == 0 or any(n.sum() <= 0 for _, reps in terms for _, n in reps):
    return {"value": float("nan"), "ci": [float("nan"), float("nan")], "p_le_0": float("nan"), "seeds": most}
  idx = _indices(size, resamples, seed)
  rng = np.random.default_rng(seed + 1)
  shared = rng.integers(0, most, size=(resamples, most))
  v = np.zeros(resamples)
  for w, reps in terms:
    per_seed = np.stack([_ratio(c, n, idx) for c, n in reps], axis=1)  # [resamples, seeds]
    draw = shared if len(reps) == most else rng.integers(0, len(reps), size=(resamples, len(reps)))
    v += w * np.take_along_axis(per_seed, draw, axis=1).mean(axis=1)
  a = (1 - level) / 2
  lo, hi = np.nanquantile(v, [a, 1 - a])
  value = sum(w * np.mean([c.sum() / n.sum() for c, n in reps]) for w, reps in terms)
  return {"value": float(value), "ci": [float(lo), float(hi)], "p_le_0": float(np.nanmean(v <= 0)), "seeds": most}


def bootstrap_diff(correct_a, correct_b, counts_a=None, counts_b=None, **kw) -> dict:
  """The paired bootstrap of acc(a) - acc(b) on the same examples (row i of a and of b is the same example):
  {"value", "ci", "p_le_0"} as bootstrap_combination."""
  return bootstrap_combination([(1.0, correct_a, counts_a), (-1.0, correct_b, counts_b)], **kw)


def verdict(ci: Sequence[float], *, expect: str = "greater", margin: float = 0.05) -> str:
  """How a difference's interval speaks to a claim: expect="greater" (a > b), "similar" (a ~ b).
  "supports" / "contradicts" / "cannot tell". A "similar" claim is judged against an equivalence margin of `margin`
  (5 points): supported when the whole interval lies inside +-margin, contradicted when it lies wholly outside."""
  lo, hi = float(ci[0]), float(ci[1])
  if not (np.isfinite(lo) and np.isfinite(hi)):
    return "cannot tell"
  if expect == "greater":
    return "supports" if lo > 0 else ("contradicts" if hi < 0 else "cannot tell")
  if expect == "similar":
    if -margin <= lo and hi <= margin:
      return "supports"
    return "contradicts" if (lo > margin or hi < -margin) else "cannot tell"
  raise ValueError(f"expect must be 'greater' or 'similar', got {expect!r}")


def fmt(value, ci=None, *, scale: float = 100.0, digits: int = 1, signed: bool = False) -> str:
  """'62.3 [55.0, 69.4]' (percent by default; signed: '+1.2 [-3.4, +5.6]', for differences); '-' for missing."""
  if value is None or (isinstance(value, float) and value != value):
    return "-"
  spec = f"{'+' if signed else ''}.{digits}f"
  s = f"{scale * float(value):{spec}}"
  if ci is not None and all(x is not None and x == x for x in ci):
    s += f" [{scale * ci[0]:{spec}}, {scale * ci[1]:{spec}}]"
  return s
